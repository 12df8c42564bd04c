//! Sigil client library: obtain certificates, sign, log and verify Sigstore bundles.
//!
//! Verification ([`verify`]) is pure and offline: bundle + trusted root + artifact + policy.

pub mod browser_login;
pub mod ca;
pub mod cli;
pub mod config;
pub mod exit;
pub mod http;
pub mod log_http;
pub mod log_v1;
pub mod log_v2;
pub mod logs;
pub mod monitor;
pub mod oci;
pub mod oidc;
pub mod progress;
pub mod sign;
pub mod sign_in;
pub mod tsa;
pub mod tuf;
pub mod verify;
