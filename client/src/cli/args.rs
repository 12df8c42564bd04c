//! The argument groups several commands share, defined once, and the helpers they share to read
//! and write files and print.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use sigil_core::bundle::Bundle;
use sigil_core::crypto::PublicKey;

use crate::config::{TrustSources, now};
use crate::oci::{ImageRef, Registry, RegistryOptions};
use crate::sign::{self, Services, Signer};
use crate::sign_in::SignInArgs;
use crate::verify::{CertificatePolicy, Claim, Policy, StringMatcher};

/// Where trust material comes from.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// trusted_root.json to verify against.
    #[arg(long, env = "SIGIL_TRUSTED_ROOT")]
    pub trusted_root: Option<PathBuf>,
    /// signing_config.json naming the CA, log and OIDC issuer.
    #[arg(long, env = "SIGIL_SIGNING_CONFIG")]
    pub signing_config: Option<PathBuf>,
    /// Client trust config (trusted root + signing config in one file, as sigstore-python reads).
    #[arg(long, env = "SIGIL_TRUST_CONFIG")]
    pub trust_config: Option<PathBuf>,
}

impl TrustArgs {
    pub fn sources(&self) -> TrustSources {
        TrustSources {
            trusted_root: self.trusted_root.clone(),
            signing_config: self.signing_config.clone(),
            trust_config: self.trust_config.clone(),
        }
    }
}

/// The witnesses a log's checkpoints must be cosigned by.
#[derive(Args, Clone, Debug, Default)]
pub struct WitnessArgs {
    /// A witness's verifier key (`name+id+base64`, as `sigil-server witness` prints it); repeat
    /// for several.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned each entry's checkpoint (default: all).
    #[arg(long)]
    pub witness_threshold: Option<usize>,
    /// A deployment's witness policy (`witnesses.json` of its trust files: per log, its
    /// witnesses and how many must cosign); it wins over --witness for the logs it lists.
    #[arg(long, value_name = "FILE")]
    pub witness_policy: Option<PathBuf>,
}

impl WitnessArgs {
    pub fn policy(&self) -> anyhow::Result<crate::verify::witness::WitnessPolicies> {
        let threshold = self.witness_threshold.unwrap_or(self.witnesses.len());
        let usage = |e: crate::verify::error::VerifyError| crate::exit::usage(e.to_string());
        let mut p = crate::verify::witness::WitnessPolicies {
            all_logs: crate::verify::witness::WitnessPolicy::new(&self.witnesses, threshold)
                .map_err(usage)?,
            by_log: Vec::new(),
        };
        if let Some(f) = &self.witness_policy {
            let doc: serde_json::Value = serde_json::from_slice(&read(f)?)
                .map_err(|e| crate::exit::usage(format!("{}: not JSON: {e}", f.display())))?;
            p.add_document(&doc).map_err(usage)?;
        }
        Ok(p)
    }
}

/// Which transparency log API signatures go to.
#[derive(Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Rekor API major version to log with (1 or 2); default: the newest the signing config
    /// lists. Version 2 also timestamps the signature at the signing config's TSA.
    #[arg(long, env = "SIGIL_REKOR_VERSION", value_parser = clap::value_parser!(u32).range(1..=2))]
    pub rekor_version: Option<u32>,
}

impl LogArgs {
    pub fn versions(&self) -> Vec<u32> {
        match self.rekor_version {
            Some(v) => vec![v],
            None => sign::REKOR_VERSIONS.to_vec(),
        }
    }
}

/// Who must have signed.
#[derive(Args, Clone, Debug, Default)]
pub struct IdentityArgs {
    /// Expected certificate identity (SAN: e-mail or URI), exact.
    #[arg(long)]
    pub certificate_identity: Option<String>,
    /// Expected certificate identity, regular expression.
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Expected OIDC issuer, exact.
    #[arg(long)]
    pub certificate_oidc_issuer: Option<String>,
    /// Expected OIDC issuer, regular expression.
    #[arg(long)]
    pub certificate_oidc_issuer_regexp: Option<String>,
    #[arg(long)]
    pub certificate_github_workflow_trigger: Option<String>,
    #[arg(long)]
    pub certificate_github_workflow_sha: Option<String>,
    #[arg(long)]
    pub certificate_github_workflow_name: Option<String>,
    #[arg(long)]
    pub certificate_github_workflow_repository: Option<String>,
    #[arg(long)]
    pub certificate_github_workflow_ref: Option<String>,
    /// Verify with this public key (PEM) instead of a certificate identity.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// `--<what>` exactly or `--<what>-regexp`; one of them is required.
pub fn matcher(exact: &Option<String>, re: &Option<String>, what: &str) -> Result<StringMatcher> {
    match (exact, re) {
        (Some(e), _) => Ok(StringMatcher::Exact(e.clone())),
        (None, Some(r)) => StringMatcher::regex(r).with_context(|| format!("--{what}-regexp")),
        (None, None) => bail!("--{what} or --{what}-regexp is required (or --key)"),
    }
}

impl IdentityArgs {
    pub fn policy(&self) -> Result<Policy> {
        if let Some(k) = &self.key {
            let pem =
                std::fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?;
            let key = PublicKey::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM public key", k.display()))?;
            return Ok(Policy::Key(key));
        }
        let identity = matcher(
            &self.certificate_identity,
            &self.certificate_identity_regexp,
            "certificate-identity",
        )?;
        let issuer = matcher(
            &self.certificate_oidc_issuer,
            &self.certificate_oidc_issuer_regexp,
            "certificate-oidc-issuer",
        )?;
        let claims = [
            (
                Claim::GithubWorkflowTrigger,
                &self.certificate_github_workflow_trigger,
            ),
            (
                Claim::GithubWorkflowSha,
                &self.certificate_github_workflow_sha,
            ),
            (
                Claim::GithubWorkflowName,
                &self.certificate_github_workflow_name,
            ),
            (
                Claim::GithubWorkflowRepository,
                &self.certificate_github_workflow_repository,
            ),
            (
                Claim::GithubWorkflowRef,
                &self.certificate_github_workflow_ref,
            ),
        ]
        .into_iter()
        .filter_map(|(c, v)| Some((c, v.clone()?)))
        .collect();
        Ok(Policy::Certificate(CertificatePolicy {
            identity: Some(identity),
            issuer: Some(issuer),
            claims,
        }))
    }
}

/// Where a keyless signature's identity token comes from.
#[derive(Args, Clone, Debug, Default)]
pub struct TokenArgs {
    /// OIDC identity token (else SIGSTORE_ID_TOKEN, GitHub Actions, `sigil login`, a browser
    /// sign-in when interactive, the device flow otherwise).
    #[arg(long)]
    pub identity_token: Option<String>,
    #[command(flatten)]
    pub sign_in: SignInArgs,
}

/// How to reach an OCI registry.
#[derive(Args, Clone, Debug, Default)]
pub struct RegistryArgs {
    /// Registry username (else the Docker/containers config and credential helpers).
    #[arg(long, env = "SIGIL_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    /// Registry password or token.
    #[arg(long, env = "SIGIL_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// Allow plain HTTP to a registry that is not on loopback.
    #[arg(long)]
    pub allow_insecure_registry: bool,
}

impl RegistryArgs {
    pub fn connect(&self, image: &ImageRef) -> Result<Registry> {
        let opts = RegistryOptions {
            username: self.registry_username.clone(),
            password: self.registry_password.clone(),
            allow_insecure: self.allow_insecure_registry,
        };
        Ok(Registry::connect(image, &opts)?)
    }
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// The signer and the services to use: `key`, else an ephemeral key certified by the signing
/// config's CA for the identity token; the log is the first of `rekor_versions` the signing
/// config lists.
pub fn signer(
    key: Option<&Path>,
    token: &TokenArgs,
    trust: &TrustArgs,
    rekor_versions: &[u32],
) -> Result<(Signer, Services)> {
    let svc = Services::select(&trust.sources().signing_config()?, now(), rekor_versions)?;
    if let Some(k) = key {
        return Ok((Signer::Key(sign::load_key(k)?), svc));
    }
    let ca = svc.ca.clone().ok_or_else(|| {
        anyhow!("the signing config lists no CA; use --key for key-based signing")
    })?;
    let tok = token
        .sign_in
        .token(token.identity_token.as_deref(), svc.oidc.as_deref())?;
    Ok((sign::keyless_signer(&ca, &tok)?, svc))
}

pub fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

pub fn load_bundle(p: &Path) -> Result<Bundle> {
    Bundle::from_json(&read(p)?).with_context(|| format!("bundle {}", p.display()))
}

pub fn write_bundle(p: &Path, b: &Bundle) -> Result<()> {
    std::fs::write(p, b.to_json()?).with_context(|| format!("writing {}", p.display()))
}

pub fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
