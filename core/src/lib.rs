//! `sigil-core`: the formats and math shared by the Sigil server and client.
//!
//! Nothing here performs I/O, reads a clock or draws randomness: time and keys are arguments,
//! so every function is deterministic, fast to test and safe to fuzz.

pub mod bundle;
pub mod certs;
pub mod checkpoint;
pub mod crypto;
pub mod jcs;
pub mod merkle;
pub mod note;
pub mod oid;
pub mod rekor;
pub mod rekor_v2;
pub mod rfc3161;
pub mod sct;
pub mod tiles;
pub mod trust;
pub mod witness;
