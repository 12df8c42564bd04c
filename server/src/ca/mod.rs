//! Certificate authority (Fulcio-compatible API): OIDC token → short-lived code-signing
//! certificate with an embedded SCT from the CT log, which the CA reaches over RFC 6962 HTTP.
//!
//! - [`oidc`]: token verification (discovery, JWKS cache, claims);
//! - [`identity`]: issuer types mapping claims to the SAN and Sigstore extensions;
//! - [`cert`]: the certificate profile, precertificates, CA certificates;
//! - [`signer`]: key backends behind [`CaSigner`], the chain, `generate_ca`; [`pkcs11`]: the
//!   issuing key in an HSM or SoftHSM2 token;
//! - [`ct`]: the CT log client; [`issue`]: the issuance flow; [`http`]: the HTTP API.

pub mod cert;
pub mod config;
pub mod ct;
pub mod error;
pub mod http;
pub mod identity;
pub mod issue;
pub mod oidc;
pub mod pkcs11;
pub mod setup;
pub mod signer;

pub use cert::CaNames;
pub use config::{CaConfig, CiProviderTemplates, IssuerConfig, IssuerType, SctMode};
pub use error::CaError;
pub use http::router;
pub use issue::{Ca, Issued, KeyProof};
pub use signer::{CaFiles, CaKeys, CaSigner, SoftwareSigner, generate_ca, generate_in_memory};
