//! Test harness shared by Sigil's end-to-end tests.
