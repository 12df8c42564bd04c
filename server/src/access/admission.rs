//! Write admission: which entries a log appends. Off by default (anyone who reaches the log may
//! append, as with public Rekor). On, an entry is admitted when every signer passes a rule:
//! its certificate was issued by this deployment's CA (the current chain or a rotated one), or
//! its public key is in the allow list; or when the request carries a writer credential.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sigil_core::crypto::PublicKey;
use sigil_core::rekor::Signer;
use x509_cert::Certificate;

use super::credentials::{CredentialConfig, Credentials, Refusal};
use crate::error::AppError;
use crate::keyfile::resolve;

/// `[log.admission]` / `[rekor_v2.admission]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Off: every valid entry is appended.
    #[serde(default)]
    pub enabled: bool,
    /// Admit certificates issued by this deployment's CA (current or rotated).
    #[serde(default = "yes")]
    pub this_ca: bool,
    /// PEM file of the public keys (`PUBLIC KEY` blocks) that may sign key-based entries,
    /// relative to the data dir. Empty: none.
    #[serde(default)]
    pub allowed_keys: PathBuf,
    /// Requests carrying one of these credentials are admitted whatever signed them.
    #[serde(default)]
    pub writers: CredentialConfig,
}

fn yes() -> bool {
    true
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            this_ca: true,
            allowed_keys: PathBuf::new(),
            writers: CredentialConfig::default(),
        }
    }
}

impl AdmissionConfig {
    pub fn validate(&self, key: &str) -> Result<(), String> {
        self.writers.validate(&format!("{key}.writers"))?;
        if self.enabled
            && !self.this_ca
            && self.allowed_keys.as_os_str().is_empty()
            && !self.writers.any()
        {
            return Err(format!(
                "{key}: admission is enabled but no rule can admit anything: set this_ca, \
                 allowed_keys or a [{key}.writers] credential"
            ));
        }
        Ok(())
    }
}

/// A CA certificate of this deployment, as a leaf's issuer is matched against it.
struct Issuer {
    subject_der: Vec<u8>,
    key: PublicKey,
}

/// One log's admission policy.
pub struct Admission {
    log: &'static str,
    issuers: Vec<Issuer>,
    allowed_keys: HashSet<Vec<u8>>,
    writers: Option<Credentials>,
}

impl Admission {
    /// `ca_chains`: every chain (DER) of this deployment's CA, the current one and the rotated
    /// ones. `None` when admission is off.
    pub fn load(
        log: &'static str,
        cfg: &AdmissionConfig,
        data_dir: &Path,
        ca_chains: &[Vec<Vec<u8>>],
    ) -> anyhow::Result<Option<Self>> {
        if !cfg.enabled {
            return Ok(None);
        }
        let mut issuers = Vec::new();
        if cfg.this_ca {
            for der in ca_chains.iter().flatten() {
                let cert = Certificate::from_der(der)
                    .map_err(|e| anyhow::anyhow!("a CA certificate does not parse: {e}"))?;
                let spki = sigil_core::certs::spki_der(&cert)?;
                issuers.push(Issuer {
                    subject_der: cert.tbs_certificate.subject.to_der()?,
                    key: PublicKey::from_spki_der(&spki)?,
                });
            }
            if issuers.is_empty() {
                anyhow::bail!(
                    "{log} admission: this_ca is on but this deployment's CA certificates were \
                     not found (run `sigil-server init`, or turn this_ca off)"
                );
            }
        }
        let mut allowed_keys = HashSet::new();
        if !cfg.allowed_keys.as_os_str().is_empty() {
            let path = resolve(data_dir, &cfg.allowed_keys);
            let text = std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            for (label, der) in sigil_core::certs::pem_decode_all(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            {
                if label != "PUBLIC KEY" {
                    anyhow::bail!(
                        "{}: expected PUBLIC KEY blocks, found {label:?}",
                        path.display()
                    );
                }
                PublicKey::from_spki_der(&der).map_err(|e| {
                    anyhow::anyhow!("{}: a key does not parse: {e}", path.display())
                })?;
                allowed_keys.insert(der);
            }
        }
        Ok(Some(Self {
            log,
            issuers,
            allowed_keys,
            writers: Credentials::load(&cfg.writers, data_dir)?,
        }))
    }

    /// Admits the entry or answers 403 naming every rule that refused it.
    pub async fn admit(&self, signers: &[Signer], headers: &HeaderMap) -> Result<(), AppError> {
        let mut reasons = Vec::new();
        // A writer credential, when one is presented, admits by itself.
        if let Some(writers) = &self.writers {
            match writers.check(headers).await {
                Ok(p) => {
                    tracing::info!(log = self.log, rule = p.rule, who = %p.who, "entry admitted by a writer credential");
                    crate::metrics::access("write", "admitted", p.rule);
                    return Ok(());
                }
                Err(Refusal::Missing) => {}
                Err(r) => reasons.push(format!("writer credential: {}", r.message())),
            }
        }
        let mut rule = "";
        let all_pass = !signers.is_empty()
            && signers.iter().all(|s| match self.signer_passes(s) {
                Ok(r) => {
                    rule = r;
                    true
                }
                Err(reason) => {
                    reasons.push(reason);
                    false
                }
            });
        if all_pass {
            crate::metrics::access("write", "admitted", rule);
            return Ok(());
        }
        let refused_by =
            if self.writers.is_some() && reasons.iter().any(|r| r.starts_with("writer")) {
                "writer-credential"
            } else if signers.iter().any(|s| matches!(s, Signer::Certificate(_))) {
                "this-ca"
            } else {
                "allowed-keys"
            };
        crate::metrics::access("write", "refused", refused_by);
        let message = format!(
            "the {} log's admission policy refused this entry: {}",
            self.log,
            reasons.join("; ")
        );
        tracing::warn!(log = self.log, rule = refused_by, %message, "entry refused");
        Err(AppError::Forbidden(message))
    }

    fn signer_passes(&self, signer: &Signer) -> Result<&'static str, String> {
        match signer {
            Signer::Certificate(chain) => {
                if self.issuers.is_empty() {
                    return Err(
                        "certificate-signed entries are not admitted (this_ca is off)".into(),
                    );
                }
                let leaf = chain
                    .first()
                    .and_then(|d| Certificate::from_der(d).ok())
                    .ok_or("the signing certificate does not parse")?;
                let issuer_der = leaf.tbs_certificate.issuer.to_der().unwrap_or_default();
                let issued_here = self.issuers.iter().any(|i| {
                    i.subject_der == issuer_der
                        && sigil_core::crypto::verify_cert_signature(&leaf, &i.key).is_ok()
                });
                if issued_here {
                    Ok("this-ca")
                } else {
                    Err(format!(
                        "the signing certificate (issuer {:?}) was not issued by this \
                         deployment's CA",
                        leaf.tbs_certificate.issuer.to_string()
                    ))
                }
            }
            Signer::PublicKey(spki) => {
                if self.allowed_keys.contains(spki) {
                    Ok("allowed-keys")
                } else {
                    Err(format!(
                        "the public key (SHA-256 {}) is not in the allow list",
                        hex::encode(sigil_core::crypto::sha256(spki))
                    ))
                }
            }
        }
    }
}
