//! Container images in OCI registries: sign and verify the way cosign 2 does (signature images
//! at `sha256-<hex>.sig`, attestations at `.att`), Sigstore bundles as OCI 1.1 referrers where
//! the registry supports them, and Kyverno admission policies for this instance.

pub mod auth;
pub mod cli;
pub mod cosign;
pub mod kyverno;
pub mod reference;
pub mod registry;
pub mod sign;
pub mod verify;

pub use reference::{ImageRef, looks_like_image};
pub use registry::{Registry, RegistryOptions};
pub use sign::{Attached, Resolved, SignOptions, attest_image, resolve, sign_image};
pub use verify::{
    ImageVerifyError, SignatureError, VerifiedImage, VerifiedSignature, verify_attestations,
    verify_image,
};

/// Registry and image-format errors.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid image reference {reference:?}: {why}")]
    Reference { reference: String, why: String },
    #[error("registry {registry}: authentication failed: {why}")]
    Auth { registry: String, why: String },
    #[error("cannot reach the registry at {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered HTTP {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{what}: the registry served content with digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("image {0} not found in the registry")]
    NotFound(String),
    #[error("{0}")]
    Format(String),
}
