//! RFC 6962 / RFC 9162 Merkle tree hashing and proofs.

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];
