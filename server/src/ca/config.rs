//! CA configuration: trusted OIDC issuers, certificate validity, CT log and SCT mode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::CaError;

/// How the CA obtains and delivers SCTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SctMode {
    /// Precertificate to the CT log, SCT embedded in the final certificate (what clients require).
    #[default]
    Embedded,
    /// Final certificate to the CT log (`add-chain`), SCT returned beside it.
    Detached,
}

/// The issuer types Fulcio knows; each maps token claims to the SAN and extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerType {
    Email,
    GithubWorkflow,
    GitlabPipeline,
    BuildkiteJob,
    CodefreshWorkflow,
    ChainguardIdentity,
    Kubernetes,
    Spiffe,
    Uri,
    Username,
    CiProvider,
}

impl IssuerType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::GithubWorkflow => "github-workflow",
            Self::GitlabPipeline => "gitlab-pipeline",
            Self::BuildkiteJob => "buildkite-job",
            Self::CodefreshWorkflow => "codefresh-workflow",
            Self::ChainguardIdentity => "chainguard-identity",
            Self::Kubernetes => "kubernetes",
            Self::Spiffe => "spiffe",
            Self::Uri => "uri",
            Self::Username => "username",
            Self::CiProvider => "ci-provider",
        }
    }

    /// The claim whose value a proof of possession signs (Fulcio's defaults).
    pub fn default_challenge_claim(&self) -> &'static str {
        match self {
            Self::Email => "email",
            _ => "sub",
        }
    }
}

/// Claim templates of a `ci-provider` issuer (Fulcio's `CIIssuerMetadata`). A template is either
/// a claim name, or text with `{{ .claim }}` placeholders; values come from the token's claims,
/// then from `default_template_values`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CiProviderTemplates {
    pub subject_alternative_name_template: String,
    /// Extension name (Fulcio's field names in snake case: `build_signer_uri`, `runner_environment`,
    /// `source_repository_uri`, …) → template.
    #[serde(default)]
    pub extension_templates: BTreeMap<String, String>,
    #[serde(default)]
    pub default_template_values: BTreeMap<String, String>,
}

/// One trusted OIDC issuer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact issuer URL (matched byte for byte against `iss`) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// … or a meta-issuer pattern where each `*` matches `[-_a-zA-Z0-9]+`, anchored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard_issuer_url: Option<String>,
    /// Expected `aud`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(rename = "type")]
    pub issuer_type: IssuerType,
    /// `uri` / `username`: the domain identities must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_domain: Option<String>,
    /// `spiffe`: the trust domain SPIFFE IDs must belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_trust_domain: Option<String>,
    /// Claim the proof of possession signs, instead of the type's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_claim: Option<String>,
    /// `email`: a claim (dotted path, e.g. `federated_claims.connector_id`) to use as the issuer
    /// in the certificate instead of `iss` (federated issuers such as Dex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_claim: Option<String>,
    /// `email`: accept tokens whose `email_verified` is not true. Off by default.
    #[serde(default)]
    pub skip_email_verification: bool,
    /// `ci-provider`: claim templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_provider: Option<CiProviderTemplates>,
    /// A human description (shown nowhere but the configuration endpoint's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl IssuerConfig {
    /// An exact-URL issuer with the default client id.
    pub fn exact(url: impl Into<String>, issuer_type: IssuerType) -> Self {
        Self {
            issuer_url: Some(url.into()),
            wildcard_issuer_url: None,
            client_id: default_client_id(),
            issuer_type,
            subject_domain: None,
            spiffe_trust_domain: None,
            challenge_claim: None,
            issuer_claim: None,
            skip_email_verification: false,
            ci_provider: None,
            description: None,
        }
    }

    /// The configured URL or pattern, for messages.
    pub fn label(&self) -> &str {
        self.issuer_url
            .as_deref()
            .or(self.wildcard_issuer_url.as_deref())
            .unwrap_or("")
    }

    pub fn challenge_claim(&self) -> &str {
        self.challenge_claim
            .as_deref()
            .unwrap_or(self.issuer_type.default_challenge_claim())
    }

    /// Checks what serde cannot: one URL form, http(s), type-specific settings present.
    pub fn validate(&self) -> Result<(), CaError> {
        let url = match (&self.issuer_url, &self.wildcard_issuer_url) {
            (Some(u), None) | (None, Some(u)) => u,
            _ => {
                return Err(CaError::Config(
                    "an issuer needs exactly one of issuer_url or wildcard_issuer_url".into(),
                ));
            }
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(CaError::Config(format!(
                "issuer {url:?} must be an http(s) URL"
            )));
        }
        if self.issuer_url.as_deref().is_some_and(|u| u.contains('*')) {
            return Err(CaError::Config(format!(
                "issuer_url {url:?} contains '*': use wildcard_issuer_url for patterns"
            )));
        }
        if self.client_id.is_empty() {
            return Err(CaError::Config(format!(
                "issuer {url:?}: client_id must not be empty"
            )));
        }
        match self.issuer_type {
            IssuerType::Spiffe if self.spiffe_trust_domain.is_none() => Err(CaError::Config(
                format!("spiffe issuer {url:?} needs spiffe_trust_domain"),
            )),
            IssuerType::Uri | IssuerType::Username if self.subject_domain.is_none() => {
                Err(CaError::Config(format!(
                    "{} issuer {url:?} needs subject_domain",
                    self.issuer_type.as_str()
                )))
            }
            IssuerType::CiProvider if self.ci_provider.is_none() => Err(CaError::Config(format!(
                "ci-provider issuer {url:?} needs a ci_provider table of templates"
            ))),
            _ => Ok(()),
        }
    }
}

fn default_client_id() -> String {
    "sigstore".into()
}
fn default_validity() -> u64 {
    10 * 60
}
fn default_skew() -> u64 {
    60
}
fn default_jwks_refresh() -> u64 {
    5
}
fn default_max_body() -> usize {
    64 * 1024
}

/// PEM text given inline (it contains a PEM header) or the path of a PEM file.
pub fn load_pem_source(s: &str) -> Result<String, CaError> {
    if s.contains("-----BEGIN") {
        Ok(s.to_string())
    } else {
        std::fs::read_to_string(s).map_err(|e| CaError::Config(format!("reading {s:?}: {e}")))
    }
}

/// Configuration of the certificate authority.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Leaf certificate validity in seconds (Fulcio: 10 minutes).
    #[serde(default = "default_validity")]
    pub validity_secs: u64,
    /// Allowed clock skew for `exp`/`nbf`/`iat`, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// Least time between two JWKS refreshes of one issuer caused by an unknown `kid`.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_min_secs: u64,
    /// CT log base URL (its RFC 6962 API is under `/ct/v1/`). Without it no SCT is obtained,
    /// which clients refuse: only for tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct_log_url: Option<String>,
    /// CT log public key: PEM text, or the path of a PEM file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct_log_public_key: Option<String>,
    #[serde(default)]
    pub sct_mode: SctMode,
    /// Largest accepted request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            validity_secs: default_validity(),
            clock_skew_secs: default_skew(),
            jwks_refresh_min_secs: default_jwks_refresh(),
            ct_log_url: None,
            ct_log_public_key: None,
            sct_mode: SctMode::Embedded,
            max_body_bytes: default_max_body(),
        }
    }
}

impl CaConfig {
    pub fn validate(&self) -> Result<(), CaError> {
        for iss in &self.issuers {
            iss.validate()?;
        }
        if self.validity_secs == 0 || self.validity_secs > 24 * 3600 {
            return Err(CaError::Config(format!(
                "validity_secs {} must be between 1 and 86400",
                self.validity_secs
            )));
        }
        if self.ct_log_url.is_some() != self.ct_log_public_key.is_some() {
            return Err(CaError::Config(
                "set both ct_log_url and ct_log_public_key (the CA verifies every SCT)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_defaults() {
        let cfg: CaConfig = toml::from_str(
            r#"
            ct_log_url = "http://127.0.0.1:1"
            ct_log_public_key = "/etc/ct.pem"
            sct_mode = "detached"
            [[issuers]]
            issuer_url = "https://accounts.example.com"
            type = "email"
            [[issuers]]
            wildcard_issuer_url = "https://oidc.eks.*.amazonaws.com/id/*"
            type = "kubernetes"
            client_id = "sigstore-k8s"
            [[issuers]]
            issuer_url = "https://ci.example.com"
            type = "ci-provider"
            [issuers.ci_provider]
            subject_alternative_name_template = "{{ .url }}/{{ .repository }}"
            extension_templates = { build_trigger = "event_name" }
            default_template_values = { url = "https://ci.example.com" }
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.validity_secs, 600);
        assert_eq!(cfg.sct_mode, SctMode::Detached);
        assert_eq!(cfg.issuers[0].client_id, "sigstore");
        assert_eq!(cfg.issuers[0].challenge_claim(), "email");
        assert_eq!(cfg.issuers[1].challenge_claim(), "sub");
        assert_eq!(cfg.issuers[1].issuer_type, IssuerType::Kubernetes);
        assert_eq!(
            cfg.issuers[2]
                .ci_provider
                .as_ref()
                .unwrap()
                .extension_templates["build_trigger"],
            "event_name"
        );
    }

    #[test]
    fn rejects_incomplete_issuers() {
        let mut spiffe = IssuerConfig::exact("https://spire.example", IssuerType::Spiffe);
        assert!(spiffe.validate().is_err());
        spiffe.spiffe_trust_domain = Some("example.org".into());
        spiffe.validate().unwrap();
        let mut both = IssuerConfig::exact("https://a.example", IssuerType::Email);
        both.wildcard_issuer_url = Some("https://*.example".into());
        assert!(both.validate().is_err());
        assert!(
            IssuerConfig::exact("ftp://x", IssuerType::Email)
                .validate()
                .is_err()
        );
        assert!(
            toml::from_str::<IssuerConfig>("issuer_url = 'https://x'\ntype = 'bogus'").is_err()
        );
    }
}
