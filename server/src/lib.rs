//! Sigil server library: the roles `sigil-server` runs (log, CA, TSA), usable in-process by tests.
