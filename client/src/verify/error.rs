//! Why verification failed: the one error type of the verifier, below every check that uses it.

use sigil_core::bundle::BundleError;

/// Why verification failed. Each variant names the check; values that differ are included.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("bundle: {0}")]
    Bundle(#[from] BundleError),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("witness policy: {0}")]
    Witness(String),
    #[error("untrusted certificate: issuer {issuer:?} does not chain to a trusted CA ({reasons})")]
    UntrustedCertificate { issuer: String, reasons: String },
    #[error(
        "signing time {signing_time} is outside the certificate validity {not_before} .. {not_after}"
    )]
    CertificateNotValidAt {
        signing_time: String,
        not_before: String,
        not_after: String,
    },
    #[error("SCT: {0}")]
    Sct(String),
    #[error("identity mismatch: expected {expected}, certificate SANs are {actual:?}")]
    IdentityMismatch {
        expected: String,
        actual: Vec<String>,
    },
    #[error("issuer mismatch: expected {expected}, certificate OIDC issuer is {actual:?}")]
    IssuerMismatch { expected: String, actual: String },
    #[error("claim {claim} mismatch: expected {expected:?}, certificate has {actual:?}")]
    ClaimMismatch {
        claim: &'static str,
        expected: String,
        actual: String,
    },
    #[error("artifact digest mismatch: bundle says {bundle} ({algorithm}), artifact is {artifact}")]
    DigestMismatch {
        algorithm: String,
        bundle: String,
        artifact: String,
    },
    #[error("artifact signature: {0}")]
    Signature(String),
    #[error("verification key: {0}")]
    Key(String),
    #[error("transparency log: bundle has no tlog entries")]
    NoTlogEntry,
    #[error("transparency log: entry's log ID {0} is not a log in the trusted root")]
    UnknownLog(String),
    #[error("transparency log: log key {log_id} is not valid at the entry's time {time}")]
    LogKeyNotValid { log_id: String, time: String },
    #[error(
        "tlog entry body mismatch in {field}: bundle implies {expected}, log entry has {actual}"
    )]
    BodyMismatch {
        field: String,
        expected: String,
        actual: String,
    },
    #[error("tlog entry: {0}")]
    Entry(String),
    #[error("inclusion proof: {0}")]
    InclusionProof(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("signed entry timestamp (SET): {0}")]
    Set(String),
    #[error("tlog entry has neither an inclusion proof with a checkpoint nor a SET")]
    NoInclusionEvidence,
    #[error("no trusted signing time: {0}")]
    SigningTime(String),
    #[error("RFC 3161 timestamp: {0}")]
    Timestamp(String),
    #[error("in-toto statement: {0}")]
    Statement(String),
}
