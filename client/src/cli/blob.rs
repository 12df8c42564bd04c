//! Files: `sign-blob`, `verify-blob`, `generate-key-pair`, and `attest`/`verify-attestation` when
//! their subject is a file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use sigil_core::bundle::{Bundle, IN_TOTO_PAYLOAD_TYPE};
use sigil_core::crypto::{KeyAlgorithm, SigningKey, sha256};

use super::args::{
    IdentityArgs, LogArgs, Output, TokenArgs, TrustArgs, WitnessArgs, load_bundle, print_json,
    read, signer, write_bundle,
};
use super::attest::{AttestArgs, VerifyAttestationArgs};
use crate::exit;
use crate::sign::{self, Services, Signer};
use crate::verify::{
    Artifact, CertificatePolicy, Options, Policy, Verified, verify_bundle, x509::fmt_time,
};

/// The predicate type of `attest FILE --predicate` when `--type` is not given.
const DEFAULT_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

#[derive(Args, Clone, Debug)]
pub struct SignBlobArgs {
    file: PathBuf,
    #[arg(long)]
    bundle: PathBuf,
    /// Sign with this private key (PKCS#8 PEM, encrypted or not) instead of keyless.
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    token: TokenArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct GenerateKeyPairArgs {
    #[arg(long, default_value = "sigil")]
    output_key_prefix: String,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args, Clone, Debug)]
pub struct VerifyBlobArgs {
    file: PathBuf,
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    identity: IdentityArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    witness: WitnessArgs,
}

/// `sign-blob`.
pub fn sign_blob(a: SignBlobArgs) -> Result<()> {
    let data = crate::progress::read_file(&a.file)?;
    let (signer, svc) = signer(a.key.as_deref(), &a.token, &a.trust, &a.log.versions())?;
    let signed = sign::sign_blob(&signer, &data, &svc.target())?;
    self_check(&signed.bundle, &Artifact::Bytes(&data), &a.trust, &signer)?;
    write_bundle(&a.bundle, &signed.bundle)?;
    eprintln!(
        "tlog entry created with index: {} (Rekor v{} log {}{})",
        signed.log_index,
        svc.rekor_version,
        svc.rekor,
        if svc.tsa.is_some() {
            ", signature timestamped by the TSA"
        } else {
            ""
        }
    );
    print_signed(&a.bundle, &signed, &svc, a.output)
}

/// `generate-key-pair`.
pub fn generate_key_pair(a: GenerateKeyPairArgs) -> Result<()> {
    let pw = sign::password()?;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let (kp, pp) = (
        format!("{}.key", a.output_key_prefix),
        format!("{}.pub", a.output_key_prefix),
    );
    for p in [&kp, &pp] {
        if Path::new(p).exists() {
            bail!("{p} exists; refusing to overwrite");
        }
    }
    std::fs::write(&kp, key.to_encrypted_pkcs8_pem(&pw)?)?;
    std::fs::write(&pp, key.public_key().to_pem())?;
    if a.output == Output::Json {
        return print_json(&json!({"privateKey": kp, "publicKey": pp}));
    }
    println!("Private key written to {kp}\nPublic key written to {pp}");
    Ok(())
}

/// `verify-blob`.
pub fn verify_blob(a: VerifyBlobArgs) -> Result<()> {
    let b = load_bundle(&a.bundle)?;
    let policy = a.identity.policy()?;
    let artifact = crate::verify::artifact::load(&a.file, &b, &policy)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let v = verify_with(&b, &artifact.as_artifact(), &policy, &a.trust, &a.witness)?;
    report(&v, a.output);
    Ok(())
}

/// A usage error for a file subject without `--bundle`.
fn needs_bundle(command: &str) -> anyhow::Error {
    exit::usage(format!(
        "{command} FILE needs --bundle <BUNDLE> (the bundle file; an image reference as the \
         subject takes no --bundle)"
    ))
}

/// `attest [FILE]`: an in-toto statement about the file (or `--statement`) signed and logged.
pub fn attest(a: &AttestArgs, file: Option<&Path>) -> Result<()> {
    let bundle = a.bundle.as_deref().ok_or_else(|| needs_bundle("attest"))?;
    let stmt = match (&a.statement, &a.predicate, file) {
        (Some(s), _, _) => read(s)?,
        (None, Some(p), Some(f)) => {
            let pred: Value = serde_json::from_slice(&read(p)?).context("predicate is not JSON")?;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            serde_json::to_vec(&json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": name, "digest": {"sha256": hex::encode(sha256(&read(f)?))}}],
                "predicateType": a.predicate_type.as_deref().unwrap_or(DEFAULT_PREDICATE_TYPE),
                "predicate": pred,
            }))?
        }
        _ => {
            return Err(exit::usage("pass --statement, or FILE with --predicate"));
        }
    };
    let (signer, svc) = signer(a.key.as_deref(), &a.token, &a.trust, &a.log.versions())?;
    let signed = sign::sign_dsse(&signer, IN_TOTO_PAYLOAD_TYPE, &stmt, &svc.target())?;
    self_check(&signed.bundle, &Artifact::None, &a.trust, &signer)?;
    write_bundle(bundle, &signed.bundle)?;
    print_signed(bundle, &signed, &svc, a.output)
}

/// `verify-attestation [FILE] --bundle`: the bundle is an in-toto attestation (about the file,
/// if given) by the expected signer.
pub fn verify_attestation(a: &VerifyAttestationArgs, file: Option<&Path>) -> Result<()> {
    let bundle = a
        .bundle
        .as_deref()
        .ok_or_else(|| needs_bundle("verify-attestation"))?;
    let b = load_bundle(bundle)?;
    let policy = a.identity.policy()?;
    let loaded = match file {
        Some(f) => Some(
            crate::verify::artifact::load(f, &b, &policy)
                .with_context(|| format!("reading {}", f.display()))?,
        ),
        None => None,
    };
    let artifact = loaded.as_ref().map_or(Artifact::None, |a| a.as_artifact());
    let v = verify_with(&b, &artifact, &policy, &a.trust, &a.witness)?;
    if v.payload_type.as_deref() != Some(IN_TOTO_PAYLOAD_TYPE) {
        bail!("bundle is not an in-toto attestation");
    }
    if let Some(t) = &a.predicate_type {
        let got = v
            .statement
            .as_ref()
            .and_then(|s| s.get("predicateType"))
            .and_then(Value::as_str);
        if got != Some(t.as_str()) {
            bail!("predicate type mismatch: expected {t:?}, statement has {got:?}");
        }
    }
    report(&v, a.output);
    Ok(())
}

/// Verifies what was just produced, as sigstore clients do before handing out a bundle.
fn self_check(
    b: &Bundle,
    artifact: &Artifact<'_>,
    trust: &TrustArgs,
    signer: &Signer,
) -> Result<()> {
    let root = trust.sources().trusted_root()?;
    let policy = match signer {
        Signer::Key(k) => Policy::Key(k.public_key()),
        Signer::Keyless { .. } => Policy::Certificate(CertificatePolicy::default()),
    };
    verify_bundle(b, artifact, &root, &policy, &Options::default())
        .context("the new bundle does not verify")?;
    Ok(())
}

/// Verifies a bundle offline against the trusted root (and the witnesses, if any).
pub fn verify_with(
    b: &Bundle,
    artifact: &Artifact<'_>,
    policy: &Policy,
    trust: &TrustArgs,
    witnesses: &WitnessArgs,
) -> Result<Verified> {
    let root = trust.sources().trusted_root()?;
    let opts = Options {
        witnesses: witnesses.policy()?,
        ..Options::default()
    };
    verify_bundle(b, artifact, &root, policy, &opts)
        .map_err(|e| anyhow!("verification failed: {e}"))
}

/// What the verifying commands print.
pub fn report(v: &Verified, output: Output) {
    match output {
        Output::Json => {
            let j = json!({"verified": true, "result": v});
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        }
        Output::Text => {
            if let Some(c) = &v.certificate {
                eprintln!(
                    "Certificate identity: {} (issuer {})",
                    c.subject_alternative_names.join(", "),
                    c.issuer.as_deref().unwrap_or("?")
                );
            }
            for e in &v.tlog_entries {
                // Rekor v2 entries have no integrated time: the signing time came from a TSA.
                let when = if e.integrated_time > 0 {
                    format!("integrated {}", fmt_time(e.integrated_time))
                } else {
                    format!("signed at {} (RFC 3161 timestamp)", v.signing_time_rfc3339)
                };
                eprintln!(
                    "Log entry {} at index {} ({}), {when}",
                    e.uuid, e.log_index, e.log_url
                );
            }
            println!("Verified OK");
        }
    }
}

/// How to run this `sigil` again in a printed command: as typed when it came from PATH, else
/// by its absolute path.
fn sigil_command() -> String {
    let arg0 = std::env::args().next().unwrap_or_default();
    if !arg0.contains('/') && !arg0.is_empty() {
        return arg0;
    }
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or(arg0)
}

/// What sign-blob and attest print: the bundle, the entry, the log that holds it and the
/// command that fetches it.
fn print_signed(
    bundle: &Path,
    signed: &sign::Signed,
    svc: &Services,
    output: Output,
) -> Result<()> {
    // A Rekor v1 entry ID is the tree ID and the UUID; the UUID names the entry in either log.
    let uuid = signed
        .uuid
        .get(signed.uuid.len().saturating_sub(64)..)
        .unwrap_or(&signed.uuid);
    let fetch = format!("{} log get --uuid {uuid}", sigil_command());
    if output == Output::Json {
        return print_json(&json!({
            "bundle": bundle,
            "logIndex": signed.log_index,
            "uuid": uuid,
            "entryId": signed.uuid,
            "log": {"url": svc.rekor.trim_end_matches('/'), "rekorVersion": svc.rekor_version},
            "fetchCommand": fetch,
        }));
    }
    println!("Wrote bundle to {}", bundle.display());
    println!(
        "Log index: {} (Rekor v{} log {})",
        signed.log_index,
        svc.rekor_version,
        svc.rekor.trim_end_matches('/')
    );
    println!("Entry UUID: {uuid}");
    println!("Fetch the entry with:");
    println!("  {fetch}");
    Ok(())
}
