//! RFC 6962 client of the CT log the CA submits to (`add-pre-chain`, `add-chain`). The CA talks
//! to the log over HTTP even when both run in one process, and verifies every SCT it gets.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use sigil_core::crypto::PublicKey;
use sigil_core::sct::{self, LogEntry, SctJson, SignedCertificateTimestamp};

use super::error::CaError;

/// Largest CT response accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A CT log: its base URL (the RFC 6962 API is under `<base>/ct/v1/`) and public key.
pub struct CtClient {
    base: String,
    key: PublicKey,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct ChainRequest {
    chain: Vec<String>,
}

impl CtClient {
    pub fn new(base_url: &str, key: PublicKey) -> Result<Self, CaError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CaError::Config(format!("CT HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            key,
            http,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Submits a precertificate and its issuer chain; returns the SCT after verifying it over
    /// `tbs_der` (the TBS without poison) and the issuer's key hash.
    pub async fn add_pre_chain(
        &self,
        precert_der: &[u8],
        chain: &[Vec<u8>],
        issuer_spki_der: &[u8],
        tbs_der: &[u8],
    ) -> Result<(SignedCertificateTimestamp, SctJson), CaError> {
        let entry = LogEntry::Precert {
            issuer_key_hash: sct::issuer_key_hash(issuer_spki_der),
            tbs_der: tbs_der.to_vec(),
        };
        self.submit("add-pre-chain", precert_der, chain, &entry)
            .await
    }

    /// Submits a final certificate (detached-SCT mode).
    pub async fn add_chain(
        &self,
        cert_der: &[u8],
        chain: &[Vec<u8>],
    ) -> Result<(SignedCertificateTimestamp, SctJson), CaError> {
        let entry = LogEntry::X509 {
            cert_der: cert_der.to_vec(),
        };
        self.submit("add-chain", cert_der, chain, &entry).await
    }

    async fn submit(
        &self,
        endpoint: &str,
        leaf: &[u8],
        chain: &[Vec<u8>],
        entry: &LogEntry,
    ) -> Result<(SignedCertificateTimestamp, SctJson), CaError> {
        let url = format!("{}/ct/v1/{endpoint}", self.base);
        let body = ChainRequest {
            chain: std::iter::once(leaf)
                .chain(chain.iter().map(Vec::as_slice))
                .map(|c| B64.encode(c))
                .collect(),
        };
        let mut resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| CaError::Unavailable(format!("CT log {url} is unreachable: {e}")))?;
        let status = resp.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CaError::Unavailable(format!("CT log {url}: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(CaError::Internal(format!(
                    "CT log {url}: response too large"
                )));
            }
        }
        if !status.is_success() {
            let text =
                String::from_utf8_lossy(bytes.get(..bytes.len().min(512)).unwrap_or_default())
                    .into_owned();
            let msg = format!("CT log {url} answered {status}: {text}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                CaError::Unavailable(msg)
            } else {
                CaError::Internal(msg)
            });
        }
        let json: SctJson = serde_json::from_slice(&bytes)
            .map_err(|e| CaError::Internal(format!("CT log {url}: bad SCT response: {e}")))?;
        let sct = SignedCertificateTimestamp::from_json(&json)
            .map_err(|e| CaError::Internal(format!("CT log {url}: bad SCT: {e}")))?;
        sct::verify_sct(&sct, entry, &self.key).map_err(|e| {
            CaError::Internal(format!(
                "CT log {url} returned an SCT that does not verify with its configured key: {e}"
            ))
        })?;
        Ok((sct, json))
    }
}
