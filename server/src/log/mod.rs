//! Transparency logs: the Merkle log engine, the Rekor v1, Rekor v2 and CT log APIs, and
//! `setup`, which opens each from the configuration.

pub mod ct;
pub mod engine;
pub mod rekor_v1;
pub mod rekor_v2;
pub mod setup;
pub mod v2_search;
