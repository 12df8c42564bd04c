//! Who must have signed: a known key, or a certificate identity (SAN, OIDC issuer, CI claims).

use der::Decode;
use serde::Serialize;
use sigil_core::certs::{self, San};
use sigil_core::crypto::PublicKey;
use sigil_core::oid;
use x509_cert::Certificate;

use super::error::VerifyError;

/// Who must have signed.
#[derive(Clone, Debug)]
pub enum Policy {
    /// A Fulcio-style certificate matching this policy.
    Certificate(CertificatePolicy),
    /// A known public key (bundle `publicKey` or a certificate's key).
    Key(PublicKey),
}

/// Matches a string exactly or by regular expression (unanchored, as cosign does).
#[derive(Clone, Debug)]
pub enum StringMatcher {
    Exact(String),
    Regex(regex::Regex),
}

impl StringMatcher {
    /// A regexp matcher; errors on an invalid expression.
    pub fn regex(re: &str) -> Result<Self, regex::Error> {
        Ok(Self::Regex(regex::Regex::new(re)?))
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Exact(e) => e == s,
            Self::Regex(r) => r.is_match(s),
        }
    }

    /// How the matcher reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Self::Exact(e) => format!("{e:?}"),
            Self::Regex(r) => format!("regexp /{}/", r.as_str()),
        }
    }
}

/// A claim Fulcio records in a certificate extension that the policy can pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    GithubWorkflowTrigger,
    GithubWorkflowSha,
    GithubWorkflowName,
    GithubWorkflowRepository,
    GithubWorkflowRef,
}

impl Claim {
    fn name(self) -> &'static str {
        match self {
            Self::GithubWorkflowTrigger => "github-workflow-trigger",
            Self::GithubWorkflowSha => "github-workflow-sha",
            Self::GithubWorkflowName => "github-workflow-name",
            Self::GithubWorkflowRepository => "github-workflow-repository",
            Self::GithubWorkflowRef => "github-workflow-ref",
        }
    }

    /// The legacy (raw string) extension, and the newer DER-UTF8String one that carries the same
    /// value where there is one.
    fn oids(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::GithubWorkflowTrigger => {
                ("1.3.6.1.4.1.57264.1.2", Some("1.3.6.1.4.1.57264.1.20"))
            }
            Self::GithubWorkflowSha => ("1.3.6.1.4.1.57264.1.3", Some("1.3.6.1.4.1.57264.1.13")),
            Self::GithubWorkflowName => ("1.3.6.1.4.1.57264.1.4", None),
            Self::GithubWorkflowRepository => ("1.3.6.1.4.1.57264.1.5", None),
            Self::GithubWorkflowRef => ("1.3.6.1.4.1.57264.1.6", Some("1.3.6.1.4.1.57264.1.14")),
        }
    }
}

/// What the signer's certificate must say.
#[derive(Clone, Debug, Default)]
pub struct CertificatePolicy {
    /// Matched against every e-mail/URI/otherName SAN; one must match.
    pub identity: Option<StringMatcher>,
    /// Matched against the OIDC issuer extension (1.3.6.1.4.1.57264.1.8, else .1.1).
    pub issuer: Option<StringMatcher>,
    /// Exact values for CI claims.
    pub claims: Vec<(Claim, String)>,
}

/// The identity facts read from a Fulcio certificate.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertIdentity {
    pub subject_alternative_names: Vec<String>,
    pub issuer: Option<String>,
}

fn utf8_ext(cert: &Certificate, oid: &str) -> Option<String> {
    let raw = certs::extension_value(cert, oid)?;
    der::asn1::Utf8StringRef::from_der(raw)
        .ok()
        .map(|s| s.as_str().to_owned())
}

fn raw_ext(cert: &Certificate, oid: &str) -> Option<String> {
    certs::extension_value(cert, oid)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
}

/// Reads SANs and the OIDC issuer from a certificate.
pub fn cert_identity(cert: &Certificate) -> CertIdentity {
    let sans = certs::subject_alt_names(cert)
        .into_iter()
        .map(|s| match s {
            San::Email(v) | San::Uri(v) | San::Other(v) => v,
        })
        .collect();
    let issuer = utf8_ext(cert, &oid::ISSUER_V2.to_string())
        .or_else(|| raw_ext(cert, &oid::ISSUER_V1.to_string()));
    CertIdentity {
        subject_alternative_names: sans,
        issuer,
    }
}

/// Reads a claim's value from the certificate.
pub fn claim_value(cert: &Certificate, claim: Claim) -> Option<String> {
    let (legacy, v2) = claim.oids();
    raw_ext(cert, legacy).or_else(|| v2.and_then(|o| utf8_ext(cert, o)))
}

impl CertificatePolicy {
    /// Checks the certificate against the policy; the error names the field and both values.
    pub fn check(&self, cert: &Certificate) -> Result<CertIdentity, VerifyError> {
        let id = cert_identity(cert);
        if let Some(m) = &self.identity
            && !id.subject_alternative_names.iter().any(|s| m.matches(s))
        {
            return Err(VerifyError::IdentityMismatch {
                expected: m.describe(),
                actual: id.subject_alternative_names.clone(),
            });
        }
        if let Some(m) = &self.issuer {
            let actual = id.issuer.clone().unwrap_or_default();
            if id.issuer.is_none() || !m.matches(&actual) {
                return Err(VerifyError::IssuerMismatch {
                    expected: m.describe(),
                    actual,
                });
            }
        }
        for (claim, want) in &self.claims {
            let got = claim_value(cert, *claim);
            if got.as_deref() != Some(want.as_str()) {
                return Err(VerifyError::ClaimMismatch {
                    claim: claim.name(),
                    expected: want.clone(),
                    actual: got.unwrap_or_else(|| "(absent)".into()),
                });
            }
        }
        Ok(id)
    }
}
