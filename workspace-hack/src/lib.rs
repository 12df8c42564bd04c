//! No code: see Cargo.toml. Depending on this crate gives every build of a workspace binary the
//! same features of the shared dependencies.
