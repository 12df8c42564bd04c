//! The image subcommands: `sign`, `verify`, `attest IMAGE`, `verify-attestation IMAGE` and
//! `policy kyverno`. `attest`/`verify-attestation` share their names with the blob commands:
//! [`dispatch_image_attestation`] takes them when the subject is an image reference.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};
use sigil_core::crypto::PublicKey;

use super::cosign::SIGNATURE_TYPE;
use super::kyverno::{KyvernoOptions, cluster_policy, cluster_policy_value};
use super::reference::{ImageRef, looks_like_image};
use super::registry::{Registry, RegistryOptions};
use super::sign::{SignOptions, attest_image, predicate_type_uri, predicate_value, sign_image};
use super::verify::{Source, VerifiedImage, verify_attestations, verify_image};
use crate::config::{TrustSources, now};
use crate::sign::{Services, Signer};
use crate::verify::Policy;
use crate::verify::{CertificatePolicy, StringMatcher};

/// How to reach the registry.
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
    fn connect(&self, image: &ImageRef) -> Result<Registry> {
        let opts = RegistryOptions {
            username: self.registry_username.clone(),
            password: self.registry_password.clone(),
            allow_insecure: self.allow_insecure_registry,
        };
        Ok(Registry::connect(image, &opts)?)
    }
}

/// Where trust material comes from.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// trusted_root.json to verify against.
    #[arg(long, env = "SIGIL_TRUSTED_ROOT")]
    pub trusted_root: Option<PathBuf>,
    /// signing_config.json naming the CA, log and OIDC issuer.
    #[arg(long, env = "SIGIL_SIGNING_CONFIG")]
    pub signing_config: Option<PathBuf>,
    /// Client trust config (trusted root + signing config).
    #[arg(long, env = "SIGIL_TRUST_CONFIG")]
    pub trust_config: Option<PathBuf>,
}

impl TrustArgs {
    fn sources(&self) -> TrustSources {
        TrustSources {
            trusted_root: self.trusted_root.clone(),
            signing_config: self.signing_config.clone(),
            trust_config: self.trust_config.clone(),
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
    /// Verify with this public key (PEM) instead of a certificate identity.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

fn matcher(exact: &Option<String>, re: &Option<String>, what: &str) -> Result<StringMatcher> {
    match (exact, re) {
        (Some(e), _) => Ok(StringMatcher::Exact(e.clone())),
        (None, Some(r)) => StringMatcher::regex(r).with_context(|| format!("--{what}-regexp")),
        (None, None) => bail!("--{what} or --{what}-regexp is required (or --key)"),
    }
}

impl IdentityArgs {
    fn policy(&self) -> Result<Policy> {
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
        Ok(Policy::Certificate(CertificatePolicy {
            identity: Some(identity),
            issuer: Some(issuer),
            claims: Vec::new(),
        }))
    }
}

/// How to sign.
#[derive(Args, Clone, Debug, Default)]
pub struct SignerArgs {
    /// Sign with this private key (PKCS#8 PEM; password in SIGIL_PASSWORD) instead of keyless.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// OIDC identity token (else SIGSTORE_ID_TOKEN, GitHub Actions, `sigil login`, a browser
    /// sign-in when interactive, the device flow otherwise).
    #[arg(long)]
    pub identity_token: Option<String>,
    #[command(flatten)]
    pub sign_in: crate::sign_in::SignInArgs,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct SignArgs {
    /// IMAGE[:TAG|@sha256:DIGEST]; a tag is resolved to its digest, which is what gets signed.
    pub image: String,
    /// Extra `key=value` claims for the payload's `optional` section.
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Do not attach a Sigstore bundle referrer even where the registry supports referrers.
    #[arg(long)]
    pub no_referrer: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// IMAGE[:TAG|@sha256:DIGEST].
    pub image: String,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct AttestArgs {
    /// IMAGE[:TAG|@sha256:DIGEST].
    pub image: String,
    /// The predicate file (JSON; any text for --type custom).
    #[arg(long)]
    pub predicate: PathBuf,
    /// slsaprovenance, slsaprovenance1, spdx, spdxjson, cyclonedx, vuln, openvex, custom, or a URI.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct VerifyAttestationArgs {
    /// IMAGE[:TAG|@sha256:DIGEST].
    pub image: String,
    /// Only attestations of this predicate type count (shorthand or URI).
    #[arg(long = "type")]
    pub predicate_type: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct KyvernoArgs {
    /// imageReferences pattern(s), e.g. 'registry.example/team/*'.
    #[arg(long = "image", required = true)]
    pub images: Vec<String>,
    /// Required certificate identity.
    #[arg(long)]
    pub subject: Option<String>,
    #[arg(long)]
    pub subject_regexp: Option<String>,
    /// Required OIDC issuer.
    #[arg(long)]
    pub issuer: Option<String>,
    #[arg(long)]
    pub issuer_regexp: Option<String>,
    #[arg(long, default_value = "sigil-verify-images")]
    pub name: String,
    /// validationFailureAction: Enforce or Audit.
    #[arg(long, default_value = "Enforce")]
    pub action: String,
    /// Rekor URL as the cluster reaches it (default: the trusted root's).
    #[arg(long)]
    pub rekor_url: Option<String>,
    /// text prints YAML; json prints the same document as JSON.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Subcommand, Clone, Debug)]
pub enum PolicyCmd {
    /// Print a Kyverno ClusterPolicy (verifyImages, keyless) trusting this instance.
    Kyverno(KyvernoArgs),
}

/// The image subcommands the CLI flattens into its own.
#[derive(Subcommand, Clone, Debug)]
pub enum ImageCmd {
    /// Sign a container image in an OCI registry (keyless, or --key) the way cosign does.
    Sign(SignArgs),
    /// Verify a container image's signatures (cosign tag scheme and bundle referrers).
    Verify(VerifyArgs),
    /// Admission policies for this instance.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
}

impl ImageCmd {
    /// Whether the command checks evidence (see [`crate::exit::classify`]).
    pub fn verifies(&self) -> bool {
        matches!(self, ImageCmd::Verify(_))
    }
}

/// `sigil attest IMAGE` / `sigil verify-attestation IMAGE`.
#[derive(Subcommand, Clone, Debug)]
pub enum AttestCmd {
    /// Attest to a container image: an in-toto statement in a DSSE envelope at `.att`.
    Attest(AttestArgs),
    /// Verify a container image's attestations.
    VerifyAttestation(VerifyAttestationArgs),
}

#[derive(Parser)]
#[command(name = "sigil")]
struct AttestCli {
    #[command(subcommand)]
    cmd: AttestCmd,
}

/// Runs `attest`/`verify-attestation` when the subject is an image reference; `None` leaves the
/// arguments to the blob commands.
pub fn dispatch_image_attestation(args: &[OsString]) -> Option<ExitCode> {
    let sub = args.get(1)?.to_str()?;
    if sub != "attest" && sub != "verify-attestation" {
        return None;
    }
    let image_like = |a: &&OsString| {
        a.to_str()
            .is_some_and(|s| !s.starts_with('-') && looks_like_image(s))
    };
    let positional_image = args.iter().skip(2).any(|a| image_like(&a));
    let blob_flags = args.iter().any(|a| a == "--bundle" || a == "--statement");
    match AttestCli::try_parse_from(args) {
        Ok(cli) => {
            let image = match &cli.cmd {
                AttestCmd::Attest(a) => &a.image,
                AttestCmd::VerifyAttestation(a) => &a.image,
            };
            if !looks_like_image(image) {
                return None;
            }
            let verifying = matches!(cli.cmd, AttestCmd::VerifyAttestation(_));
            Some(match run_attest(cli.cmd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => crate::exit::report(&e, verifying),
            })
        }
        Err(e) if positional_image && !blob_flags => {
            let _ = e.print();
            Some(ExitCode::from(2))
        }
        Err(_) => None,
    }
}

fn signer(args: &SignerArgs, trust: &TrustArgs) -> Result<(Signer, Services)> {
    let svc = Services::from_signing_config(&trust.sources().signing_config()?, now())?;
    if let Some(k) = &args.key {
        return Ok((Signer::Key(crate::sign::load_key(k)?), svc));
    }
    let ca = svc.ca.clone().ok_or_else(|| {
        anyhow!("the signing config lists no CA; use --key for key-based signing")
    })?;
    let token = args
        .sign_in
        .token(args.identity_token.as_deref(), svc.oidc.as_deref())?;
    Ok((crate::sign::keyless_signer(&ca, &token)?, svc))
}

fn parse_image(s: &str) -> Result<ImageRef> {
    Ok(ImageRef::parse(s)?)
}

fn say_resolved(r: &super::sign::Resolved, original: &ImageRef) {
    match &r.from_tag {
        Some(tag) => eprintln!(
            "Resolved tag {tag} of {} to {}; signing the digest.",
            original.name(),
            r.digest
        ),
        None => eprintln!("Signing pinned digest {} of {}.", r.digest, original.name()),
    }
}

/// Runs an image subcommand.
pub fn run(cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Sign(a) => {
            let image = parse_image(&a.image)?;
            let mut annotations = BTreeMap::new();
            for kv in &a.annotations {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow!("annotation {kv:?} is not KEY=VALUE"))?;
                annotations.insert(k.to_owned(), v.to_owned());
            }
            let (signer, svc) = signer(&a.signer, &a.trust)?;
            let reg = a.registry.connect(&image)?;
            let opts = SignOptions {
                annotations,
                no_referrer: a.no_referrer,
            };
            let done = sign_image(&reg, &image, &signer, &svc.rekor, &opts)?;
            crate::progress::clear_status();
            say_resolved(&done.resolved, &image);
            eprintln!("tlog entry created with index: {}", done.log_index);
            eprintln!("Pushing signature to: {}:{}", image.name(), done.tag);
            if a.output == Output::Json {
                let j = json!({"image": done.resolved.image.to_string(), "logIndex": done.log_index,
                    "uuid": done.uuid, "log": {"url": svc.rekor, "rekorVersion": 1},
                    "signature": format!("{}:{}", image.name(), done.tag),
                    "signatureManifest": done.tag_manifest,
                    "bundleReferrer": done.referrer.as_ref().map(|r| format!("{}@{r}", image.name()))});
                println!("{}", serde_json::to_string_pretty(&j)?);
                return Ok(());
            }
            println!("Signed {}", done.resolved.image);
            println!("Log index: {}", done.log_index);
            println!("Entry UUID: {}", done.uuid);
            println!(
                "Signature: {}:{} ({})",
                image.name(),
                done.tag,
                done.tag_manifest
            );
            match &done.referrer {
                Some(r) => println!("Bundle referrer: {}@{r}", image.name()),
                None => println!("Bundle referrer: none (the registry has no OCI referrers API)"),
            }
            Ok(())
        }
        ImageCmd::Verify(a) => {
            let image = parse_image(&a.image)?;
            let policy = a.identity.policy()?;
            let root = a.trust.sources().trusted_root()?;
            let reg = a.registry.connect(&image)?;
            let v = verify_image(&reg, &image, &root, &policy)?;
            print_verified(&v, &policy, a.output, false)
        }
        ImageCmd::Policy {
            cmd: PolicyCmd::Kyverno(a),
        } => {
            let root = a.trust.sources().trusted_root()?;
            let subject = matcher(&a.subject, &a.subject_regexp, "subject")?;
            let issuer = matcher(&a.issuer, &a.issuer_regexp, "issuer")?;
            // The Rekor v1 key as the log serves it picks the right one of the root's logs.
            let url = a
                .rekor_url
                .clone()
                .or_else(|| root.tlogs.first().map(|l| l.base_url.clone()));
            let rekor_key_spki = url.as_deref().and_then(|u| match rekor_public_key(u) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("note: could not read the log's key ({e:#}); using the trusted root's first log");
                    None
                }
            });
            let opts = KyvernoOptions {
                name: a.name,
                images: a.images,
                subject,
                issuer,
                action: a.action,
                rekor_url: a.rekor_url,
                rekor_key_spki,
            };
            match a.output {
                Output::Text => print!("{}", cluster_policy(&root, &opts, now())?),
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&cluster_policy_value(&root, &opts, now())?)?
                ),
            }
            Ok(())
        }
    }
}

/// `GET <rekor>/api/v1/log/publicKey`: the Rekor v1 log's key (SPKI DER).
fn rekor_public_key(url: &str) -> Result<Vec<u8>> {
    let u = format!("{}/api/v1/log/publicKey", url.trim_end_matches('/'));
    let resp = crate::http::http()?
        .get(&u)
        .send()
        .with_context(|| format!("GET {u}"))?;
    if !resp.status().is_success() {
        bail!("GET {u} answered {}", resp.status());
    }
    let pem = resp.text()?;
    Ok(PublicKey::from_pem(&pem)
        .with_context(|| format!("{u}: not a PEM public key"))?
        .spki_der()
        .to_vec())
}

/// Runs `attest IMAGE` / `verify-attestation IMAGE`.
pub fn run_attest(cmd: AttestCmd) -> Result<()> {
    match cmd {
        AttestCmd::Attest(a) => {
            let image = parse_image(&a.image)?;
            let type_uri = predicate_type_uri(&a.predicate_type);
            let contents = std::fs::read(&a.predicate)
                .with_context(|| format!("reading {}", a.predicate.display()))?;
            let predicate = predicate_value(&type_uri, &contents)
                .with_context(|| format!("{}", a.predicate.display()))?;
            let (signer, svc) = signer(&a.signer, &a.trust)?;
            let reg = a.registry.connect(&image)?;
            let done = attest_image(&reg, &image, &signer, &svc.rekor, &type_uri, predicate)?;
            crate::progress::clear_status();
            say_resolved(&done.resolved, &image);
            eprintln!("tlog entry created with index: {}", done.log_index);
            if a.output == Output::Json {
                let j = json!({"image": done.resolved.image.to_string(), "predicateType": type_uri,
                    "logIndex": done.log_index, "log": {"url": svc.rekor, "rekorVersion": 1},
                    "attestation": format!("{}:{}", image.name(), done.tag),
                    "attestationManifest": done.tag_manifest,
                    "bundleReferrer": done.referrer.as_ref().map(|r| format!("{}@{r}", image.name()))});
                println!("{}", serde_json::to_string_pretty(&j)?);
                return Ok(());
            }
            println!("Attested {} ({type_uri})", done.resolved.image);
            println!("Log index: {}", done.log_index);
            println!(
                "Attestation: {}:{} ({})",
                image.name(),
                done.tag,
                done.tag_manifest
            );
            if let Some(r) = &done.referrer {
                println!("Bundle referrer: {}@{r}", image.name());
            }
            Ok(())
        }
        AttestCmd::VerifyAttestation(a) => {
            let image = parse_image(&a.image)?;
            let policy = a.identity.policy()?;
            let root = a.trust.sources().trusted_root()?;
            let reg = a.registry.connect(&image)?;
            let want = a.predicate_type.as_deref().map(predicate_type_uri);
            let v = verify_attestations(&reg, &image, &root, &policy, want.as_deref())?;
            print_verified(&v, &policy, a.output, true)
        }
    }
}

/// cosign's JSON for one verified signature: the payload with `optional` carrying the Rekor
/// bundle, the certificate's issuer and subject.
pub fn cosign_json(
    s: &super::verify::VerifiedSignature,
    resolved: &super::sign::Resolved,
) -> Value {
    let mut v = match &s.source {
        Source::Tag { .. } => s.payload.clone(),
        Source::Referrer { .. } => json!({"critical": {
            "identity": {"docker-reference": resolved.image.name()},
            "image": {"docker-manifest-digest": resolved.digest},
            "type": SIGNATURE_TYPE,
        }}),
    };
    let mut optional = match v.get("optional") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if let Some(b) = &s.rekor_bundle {
        optional.insert(
            "Bundle".into(),
            serde_json::to_value(b).unwrap_or(Value::Null),
        );
    }
    if let Some(c) = &s.verified.certificate {
        if let Some(i) = &c.issuer {
            optional.insert("Issuer".into(), json!(i));
            optional.insert("1.3.6.1.4.1.57264.1.1".into(), json!(i));
        }
        if let Some(sub) = c.subject_alternative_names.first() {
            optional.insert("Subject".into(), json!(sub));
        }
    }
    if let Value::Object(m) = &mut v {
        m.insert("optional".into(), Value::Object(optional));
    }
    v
}

fn print_verified(
    v: &VerifiedImage,
    policy: &Policy,
    output: Output,
    attestations: bool,
) -> Result<()> {
    let what = if attestations {
        "attestations"
    } else {
        "signatures"
    };
    eprintln!("\nVerification for {} --", v.resolved.image);
    eprintln!("The following checks were performed on each of these {what}:");
    eprintln!(
        "  - The cosign claims were validated (image digest {} and repository {})",
        v.resolved.digest,
        v.resolved.image.name()
    );
    eprintln!("  - Existence of the claims in the transparency log was verified offline");
    match policy {
        Policy::Certificate(_) => eprintln!(
            "  - The code-signing certificate was verified using trusted certificate authority certificates"
        ),
        Policy::Key(_) => {
            eprintln!("  - The signatures were verified against the specified public key")
        }
    }
    for r in &v.rejected {
        eprintln!(
            "  (ignored a {} that did not verify: {r})",
            if attestations {
                "attestation"
            } else {
                "signature"
            }
        );
    }
    match output {
        Output::Json if attestations => {
            let envs: Vec<Value> = v
                .signatures
                .iter()
                .filter_map(|s| s.envelope.as_ref())
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect();
            for e in envs {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
        Output::Json => {
            let all: Vec<Value> = v
                .signatures
                .iter()
                .map(|s| cosign_json(s, &v.resolved))
                .collect();
            println!("{}", serde_json::to_string(&all)?);
        }
        Output::Text => {
            for s in &v.signatures {
                let who = s
                    .verified
                    .certificate
                    .as_ref()
                    .map(|c| {
                        format!(
                            "{} (issuer {})",
                            c.subject_alternative_names.join(", "),
                            c.issuer.as_deref().unwrap_or("?")
                        )
                    })
                    .unwrap_or_else(|| "the given key".into());
                let idx = s.verified.tlog_entries.first().map_or(-1, |e| e.log_index);
                let kind = s
                    .payload
                    .get("predicateType")
                    .and_then(Value::as_str)
                    .map(|p| format!(" [{p}]"))
                    .unwrap_or_default();
                println!(
                    "Verified {}{kind}: signed by {who} at {}, log index {idx}",
                    s.source, s.verified.signing_time_rfc3339
                );
            }
            println!("Verified OK");
        }
    }
    Ok(())
}
