//! Container images in OCI registries: sign and verify the way cosign 2 does (signature images
//! at `sha256-<hex>.sig`, attestations at `.att`), Sigstore bundles as OCI 1.1 referrers where
//! the registry supports them, and Kyverno admission policies for this instance.

pub mod auth;
pub mod cosign;
pub mod error;
pub mod kyverno;
pub mod reference;
pub mod registry;
pub mod sign;
pub mod verify;

pub use error::OciError;
pub use reference::{ImageRef, looks_like_image};
pub use registry::{Registry, RegistryOptions};
pub use sign::{Attached, Resolved, SignOptions, attest_image, resolve, sign_image};
pub use verify::{
    ImageVerifyError, SignatureError, VerifiedImage, VerifiedSignature, verify_attestations,
    verify_image,
};
