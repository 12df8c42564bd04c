//! Transparency logs: the Merkle log engine, the Rekor v1 API and the CT log API.

pub mod ct;
pub mod engine;
pub mod rekor_v1;
pub mod rekor_v2;
pub mod v2_search;
