//! The one way this crate builds HTTP clients (aws-lc-rs as the TLS provider, Sigil's user agent,
//! a timeout) and reads JSON API answers.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

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

/// A client builder with the crypto provider installed, Sigil's user agent and a 60 s timeout;
/// callers with other needs (redirects, longer transfers) adjust it.
pub fn builder() -> reqwest::blocking::ClientBuilder {
    install_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
}

/// The same for an async client (the TUF client's transport).
pub fn async_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
}

/// A blocking HTTP client with sane timeouts.
pub fn http() -> Result<reqwest::blocking::Client> {
    Ok(builder().build()?)
}

/// The JSON body of a successful answer; a failure status is an error naming `what` and the body.
pub fn json_answer(resp: reqwest::blocking::Response, what: &str) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if !status.is_success() {
        bail!("{what} answered {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: answer is not JSON: {text}"))
}
