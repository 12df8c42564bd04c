//! Sigil server library: the roles `sigil-server` runs (log, CA, TSA), usable in-process by tests.

pub mod ca;
pub mod error;
pub mod log;
pub mod storage;
