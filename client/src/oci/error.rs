//! Registry and image-format errors, below every module of `oci` that raises them.

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
