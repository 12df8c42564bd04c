//! Container images: `sign`, `verify`, `policy kyverno`, and `attest`/`verify-attestation` when
//! their subject is an image reference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::args::{IdentityArgs, Output, RegistryArgs, TokenArgs, TrustArgs, matcher, signer};
use super::attest::{AttestArgs, VerifyAttestationArgs};
use crate::config::now;
use crate::exit;
use crate::oci::ImageRef;
use crate::oci::cosign::SIGNATURE_TYPE;
use crate::oci::kyverno::{KyvernoOptions, cluster_policy, cluster_policy_value};
use crate::oci::sign::{
    Resolved, SignOptions, attest_image, predicate_type_uri, predicate_value, sign_image,
};
use crate::oci::verify::{
    Source, VerifiedImage, VerifiedSignature, verify_attestations, verify_image,
};
use crate::verify::Policy;

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
    /// Sign with this private key (PKCS#8 PEM; password in SIGIL_PASSWORD) instead of keyless.
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub token: TokenArgs,
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

fn parse_image(s: &str) -> Result<ImageRef> {
    Ok(ImageRef::parse(s)?)
}

fn say_resolved(r: &Resolved, original: &ImageRef) {
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
            // Image signatures go to Rekor v1: cosign reads their SET.
            let (signer, svc) = signer(a.key.as_deref(), &a.token, &a.trust, &[1])?;
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
            let rekor_key_spki = url.as_deref().and_then(|u| match crate::log_v1::public_key(u) {
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

/// `attest IMAGE`: an in-toto statement about the image, in a DSSE envelope at its `.att` tag.
pub fn attest(a: &AttestArgs, image: &str) -> Result<()> {
    let image = parse_image(image)?;
    let predicate_file = a
        .predicate
        .as_deref()
        .ok_or_else(|| exit::usage("attest IMAGE needs --predicate <PREDICATE>"))?;
    let type_uri = predicate_type_uri(a.predicate_type.as_deref().unwrap_or("custom"));
    let contents = std::fs::read(predicate_file)
        .with_context(|| format!("reading {}", predicate_file.display()))?;
    let predicate = predicate_value(&type_uri, &contents)
        .with_context(|| format!("{}", predicate_file.display()))?;
    let (signer, svc) = signer(a.key.as_deref(), &a.token, &a.trust, &[1])?;
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

/// `verify-attestation IMAGE`: the image's attestations (of `--type`, if given) by the expected
/// signer.
pub fn verify_attestation(a: &VerifyAttestationArgs, image: &str) -> Result<()> {
    let image = parse_image(image)?;
    let policy = a.identity.policy()?;
    let root = a.trust.sources().trusted_root()?;
    let reg = a.registry.connect(&image)?;
    let want = a.predicate_type.as_deref().map(predicate_type_uri);
    let v = verify_attestations(&reg, &image, &root, &policy, want.as_deref())?;
    print_verified(&v, &policy, a.output, true)
}

/// cosign's JSON for one verified signature: the payload with `optional` carrying the Rekor
/// bundle, the certificate's issuer and subject.
pub fn cosign_json(s: &VerifiedSignature, resolved: &Resolved) -> Value {
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
