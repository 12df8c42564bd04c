//! Sigil server library: the roles `sigil-server` runs (log, CA, TSA), usable in-process by tests.

pub mod access;
pub mod app;
pub mod backup;
pub mod ca;
pub mod clock;
pub mod config;
pub mod dev_oidc;
pub mod error;
pub mod explorer;
pub mod fsck;
pub mod init;
pub mod keyfile;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod rotate;
pub mod routes;
pub mod storage;
pub mod tls;
pub mod trust;
pub mod trust_history;
pub mod tsa;
pub mod tuf;
pub mod witness;

/// Installs aws-lc-rs as the process's TLS crypto provider, once. reqwest is built without a
/// provider of its own so that one cryptography library serves the whole program; every HTTP
/// client this crate builds calls this first.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first; that one is used.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}
