//! Bearer credentials a writer or reader presents: static tokens from a file, or OpenID Connect
//! ID tokens from one issuer whose claim must hold one of the allowed values. Tokens are held
//! only as SHA-256 digests and never logged; refusals say which rule refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ca::oidc::OidcVerifier;
use crate::ca::{IssuerConfig, IssuerType};
use crate::keyfile::resolve;

/// Who may present a credential (one of the `[… .writers]` / `[read_access]` tables).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Static bearer tokens, one per line (`#` starts a comment), relative to the data dir.
    /// Empty: no static tokens.
    #[serde(default)]
    pub tokens_file: PathBuf,
    /// Accept OpenID Connect ID tokens from this issuer (exact URL)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// ... whose `aud` is this ...
    #[serde(default = "default_audience")]
    pub oidc_audience: String,
    /// ... and whose `claim` (a dotted path into the claims) is one of `claim_values`
    /// (`*@example.com` matches every value ending in `@example.com`).
    #[serde(default = "default_claim")]
    pub claim: String,
    #[serde(default)]
    pub claim_values: Vec<String>,
}

impl Default for CredentialConfig {
    fn default() -> Self {
        Self {
            tokens_file: PathBuf::new(),
            oidc_issuer: None,
            oidc_audience: default_audience(),
            claim: default_claim(),
            claim_values: Vec::new(),
        }
    }
}

/// Sigstore clients' tokens name `sigstore` (so `sigil login`'s token reads the log too).
fn default_audience() -> String {
    "sigstore".into()
}
fn default_claim() -> String {
    "email".into()
}

impl CredentialConfig {
    /// Whether any kind of credential is configured.
    pub fn any(&self) -> bool {
        !self.tokens_file.as_os_str().is_empty() || self.oidc_issuer.is_some()
    }

    /// Checks without I/O; `key` names the table in messages.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if let Some(iss) = &self.oidc_issuer {
            if !(iss.starts_with("https://") || iss.starts_with("http://")) {
                return Err(format!("{key}.oidc_issuer: {iss:?} is not an http(s) URL"));
            }
            // An issuer alone would admit every account it knows (a public IdP: everyone).
            if self.claim_values.is_empty() {
                return Err(format!(
                    "{key}.claim_values: name who may use ID tokens from {iss} (values of the \
                     `{}` claim, or a pattern such as \"*@example.com\")",
                    self.claim
                ));
            }
            if self.claim.is_empty() {
                return Err(format!("{key}.claim: must name a claim"));
            }
        }
        Ok(())
    }
}

/// The rule a credential passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `static-token`, `oidc` or `client-certificate`.
    pub rule: &'static str,
    /// Who, for the logs: the token file's line, the token's subject, the certificate's subject.
    pub who: String,
}

/// Why a credential was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credential was presented (401).
    Missing,
    /// The credential is not valid: unknown, expired, badly signed... (401).
    Invalid { rule: &'static str, reason: String },
    /// A valid credential that the claim rule does not allow (403).
    NotAllowed { rule: &'static str, reason: String },
}

impl Refusal {
    /// The rule's name for logs and metrics.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::Missing => "no-credential",
            Refusal::Invalid { rule, .. } | Refusal::NotAllowed { rule, .. } => rule,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Missing => "no credential: send `Authorization: Bearer <token>`".into(),
            Refusal::Invalid { reason, .. } | Refusal::NotAllowed { reason, .. } => reason.clone(),
        }
    }
}

/// Verifies presented bearer credentials against one [`CredentialConfig`].
pub struct Credentials {
    /// SHA-256 of each static token → its line in the file.
    tokens: HashMap<[u8; 32], usize>,
    oidc: Option<OidcVerifier>,
    claim: String,
    claim_values: Vec<String>,
}

impl Credentials {
    /// Reads the token file; `None` when nothing is configured.
    pub fn load(cfg: &CredentialConfig, data_dir: &Path) -> anyhow::Result<Option<Self>> {
        if !cfg.any() {
            return Ok(None);
        }
        let mut tokens = HashMap::new();
        if !cfg.tokens_file.as_os_str().is_empty() {
            let path = resolve(data_dir, &cfg.tokens_file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow::anyhow!("cannot read the token file {}: {e}", path.display())
            })?;
            for (n, line) in text.lines().enumerate() {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if t.len() < 16 {
                    anyhow::bail!(
                        "{} line {}: a token must be at least 16 characters (use a random one, \
                         e.g. `openssl rand -hex 32`)",
                        path.display(),
                        n + 1
                    );
                }
                tokens.insert(sigil_core::crypto::sha256(t.as_bytes()), n + 1);
            }
        }
        let oidc = match &cfg.oidc_issuer {
            Some(iss) => {
                let mut issuer = IssuerConfig::exact(iss.clone(), IssuerType::Email);
                issuer.client_id = cfg.oidc_audience.clone();
                Some(OidcVerifier::new(vec![issuer], 60, 10).map_err(|e| anyhow::anyhow!("{e}"))?)
            }
            None => None,
        };
        Ok(Some(Self {
            tokens,
            oidc,
            claim: cfg.claim.clone(),
            claim_values: cfg.claim_values.clone(),
        }))
    }

    /// The bearer token of a request, if any.
    pub fn bearer(headers: &HeaderMap) -> Option<&str> {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
            .filter(|t| !t.is_empty())
    }

    /// Checks the request's bearer credential.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        let token = Self::bearer(headers).ok_or(Refusal::Missing)?;
        if let Some(line) = self
            .tokens
            .get(&sigil_core::crypto::sha256(token.as_bytes()))
        {
            return Ok(Principal {
                rule: "static-token",
                who: format!("token of line {line}"),
            });
        }
        let is_jwt = token.split('.').count() == 3;
        match &self.oidc {
            Some(oidc) if is_jwt => {
                let verified = oidc.verify(token).await.map_err(|e| Refusal::Invalid {
                    rule: "oidc",
                    reason: e.to_string(),
                })?;
                self.claim_allows(&verified.claims)
                    .map(|value| Principal {
                        rule: "oidc",
                        who: value,
                    })
                    .map_err(|reason| Refusal::NotAllowed {
                        rule: "oidc",
                        reason,
                    })
            }
            _ => Err(Refusal::Invalid {
                rule: if is_jwt { "oidc" } else { "static-token" },
                reason: if is_jwt && self.oidc.is_none() {
                    "ID tokens are not accepted here (no OIDC issuer is configured)".into()
                } else {
                    "the bearer token is not one this server knows".into()
                },
            }),
        }
    }

    /// The claim's value when one of the allowed values matches it.
    fn claim_allows(&self, claims: &serde_json::Map<String, Value>) -> Result<String, String> {
        let mut value: Option<&Value> = None;
        for (i, part) in self.claim.split('.').enumerate() {
            value = if i == 0 {
                claims.get(part)
            } else {
                value.and_then(|v| v.get(part))
            };
        }
        let Some(Value::String(v)) = value else {
            return Err(format!(
                "the ID token has no string claim `{}`, which this server's rule reads",
                self.claim
            ));
        };
        if self.claim == "email" && claims.get("email_verified") == Some(&Value::Bool(false)) {
            return Err("the ID token's e-mail address is not verified".into());
        }
        if self.claim_values.iter().any(|p| claim_matches(p, v)) {
            Ok(v.clone())
        } else {
            Err(format!(
                "the ID token's `{}` ({v:?}) is not one this server allows",
                self.claim
            ))
        }
    }
}

/// `*suffix` matches values ending in `suffix` (with something before it); anything else
/// matches itself exactly.
fn claim_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => value.len() > suffix.len() && value.ends_with(suffix),
        None => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_patterns() {
        assert!(claim_matches("a@example.com", "a@example.com"));
        assert!(!claim_matches("a@example.com", "b@example.com"));
        assert!(claim_matches("*@example.com", "b@example.com"));
        assert!(!claim_matches("*@example.com", "b@example.com.evil"));
        assert!(!claim_matches("*@example.com", "@example.com"));
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(Credentials::bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(Credentials::bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(Credentials::bearer(&h), None);
    }

    #[tokio::test]
    async fn static_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t"),
            "# readers\n0123456789abcdef0123\n\nfedcba9876543210fedc\n",
        )
        .unwrap();
        let cfg = CredentialConfig {
            tokens_file: "t".into(),
            ..Default::default()
        };
        let c = Credentials::load(&cfg, dir.path()).unwrap().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Bearer fedcba9876543210fedc".parse().unwrap(),
        );
        assert_eq!(c.check(&h).await.unwrap().who, "token of line 4");
        h.insert(
            header::AUTHORIZATION,
            "Bearer fedcba9876543210fedX".parse().unwrap(),
        );
        assert!(matches!(c.check(&h).await, Err(Refusal::Invalid { .. })));
        assert_eq!(c.check(&HeaderMap::new()).await, Err(Refusal::Missing));
        std::fs::write(dir.path().join("t"), "short\n").unwrap();
        assert!(Credentials::load(&cfg, dir.path()).is_err());
    }
}
