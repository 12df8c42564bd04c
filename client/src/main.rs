//! `sigil`: sign and verify artifacts with a private Sigstore.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sigil::config::{TrustSources, config_dir, now};
use sigil::policy::{CertificatePolicy, Claim, StringMatcher};
use sigil::sign::{self, Services, Signer};
use sigil::verify::{Artifact, Options, Policy, Verified, verify_bundle};
use sigil_core::bundle::{Bundle, IN_TOTO_PAYLOAD_TYPE};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, SigningKey, sha256};
use sigil_core::trust::{SigningConfig, TrustedRoot};

/// sigil: sign and verify artifacts with a private Sigstore.
#[derive(Parser)]
#[command(name = "sigil", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Debug, Default)]
struct TrustArgs {
    /// trusted_root.json to verify against.
    #[arg(long, env = "SIGIL_TRUSTED_ROOT", global = true)]
    trusted_root: Option<PathBuf>,
    /// signing_config.json naming the CA, log and OIDC issuer.
    #[arg(long, env = "SIGIL_SIGNING_CONFIG", global = true)]
    signing_config: Option<PathBuf>,
    /// Client trust config (trusted root + signing config in one file, as sigstore-python reads).
    #[arg(long, env = "SIGIL_TRUST_CONFIG", global = true)]
    trust_config: Option<PathBuf>,
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

/// Which transparency log API signatures go to.
#[derive(Args, Clone, Debug, Default)]
struct LogArgs {
    /// Rekor API major version to log with (1 or 2); default: the newest the signing config
    /// lists. Version 2 also timestamps the signature at the signing config's TSA.
    #[arg(long, env = "SIGIL_REKOR_VERSION", value_parser = clap::value_parser!(u32).range(1..=2))]
    rekor_version: Option<u32>,
}

impl LogArgs {
    fn versions(&self) -> Vec<u32> {
        match self.rekor_version {
            Some(v) => vec![v],
            None => sign::REKOR_VERSIONS.to_vec(),
        }
    }
}

#[derive(Args, Clone, Debug, Default)]
struct IdentityArgs {
    /// Expected certificate identity (SAN: e-mail or URI), exact.
    #[arg(long)]
    certificate_identity: Option<String>,
    /// Expected certificate identity, regular expression.
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    /// Expected OIDC issuer, exact.
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    /// Expected OIDC issuer, regular expression.
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,
    #[arg(long)]
    certificate_github_workflow_trigger: Option<String>,
    #[arg(long)]
    certificate_github_workflow_sha: Option<String>,
    #[arg(long)]
    certificate_github_workflow_name: Option<String>,
    #[arg(long)]
    certificate_github_workflow_repository: Option<String>,
    #[arg(long)]
    certificate_github_workflow_ref: Option<String>,
    /// Verify with this public key (PEM) instead of a certificate identity.
    #[arg(long)]
    key: Option<PathBuf>,
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
        let identity = match (
            &self.certificate_identity,
            &self.certificate_identity_regexp,
        ) {
            (Some(e), _) => StringMatcher::Exact(e.clone()),
            (None, Some(r)) => StringMatcher::regex(r).context("--certificate-identity-regexp")?,
            (None, None) => bail!(
                "--certificate-identity or --certificate-identity-regexp is required (or --key)"
            ),
        };
        let issuer = match (
            &self.certificate_oidc_issuer,
            &self.certificate_oidc_issuer_regexp,
        ) {
            (Some(e), _) => StringMatcher::Exact(e.clone()),
            (None, Some(r)) => {
                StringMatcher::regex(r).context("--certificate-oidc-issuer-regexp")?
            }
            (None, None) => bail!(
                "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required (or --key)"
            ),
        };
        let mut claims = Vec::new();
        for (c, v) in [
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
        ] {
            if let Some(v) = v {
                claims.push((c, v.clone()));
            }
        }
        Ok(Policy::Certificate(CertificatePolicy {
            identity: Some(identity),
            issuer: Some(issuer),
            claims,
        }))
    }
}

#[derive(Args, Clone, Debug, Default)]
struct TokenArgs {
    /// OIDC identity token (else SIGSTORE_ID_TOKEN, GitHub Actions, `sigil login`, a browser
    /// sign-in when interactive, the device flow otherwise).
    #[arg(long)]
    identity_token: Option<String>,
    #[command(flatten)]
    sign_in: sigil::sign_in::SignInArgs,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Trust configuration.
    Trust {
        #[command(subcommand)]
        cmd: TrustCmd,
    },
    /// Get an identity token and store it for later commands.
    Login {
        /// OIDC issuer (default: the signing config's).
        #[arg(long)]
        issuer: Option<String>,
        /// Use the OAuth 2.0 device flow instead of Sigil's development issuer.
        #[arg(long, conflicts_with = "browser")]
        device: bool,
        /// Sign in through a browser (authorization code flow with PKCE and a loopback redirect).
        #[arg(long)]
        browser: bool,
        /// With --browser: only print the sign-in URL; do not start a browser.
        #[arg(long, env = "SIGIL_NO_LAUNCH_BROWSER")]
        no_launch_browser: bool,
        /// With --browser: seconds to wait for the sign-in to finish.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        #[arg(long, default_value = "sigstore")]
        client_id: String,
        /// Print the raw ID token on stdout (for any Sigstore client's --identity-token)
        /// instead of storing it.
        #[arg(long)]
        print_token: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Sign a file and log the signature; writes a Sigstore bundle.
    SignBlob {
        file: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        /// Sign with this private key (PKCS#8 PEM, encrypted or not) instead of keyless.
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Generate an ECDSA P-256 key pair: <prefix>.key (encrypted with SIGIL_PASSWORD) and <prefix>.pub.
    GenerateKeyPair {
        #[arg(long, default_value = "sigil")]
        output_key_prefix: String,
    },
    /// Verify a file against a bundle, offline.
    VerifyBlob {
        file: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Sign an in-toto statement (DSSE) about a file and log it.
    Attest {
        /// The subject file.
        file: Option<PathBuf>,
        /// Predicate JSON (with --type) …
        #[arg(long)]
        predicate: Option<PathBuf>,
        #[arg(long, default_value = "https://slsa.dev/provenance/v1")]
        r#type: String,
        /// … or a complete in-toto statement.
        #[arg(long)]
        statement: Option<PathBuf>,
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        token: TokenArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Verify a DSSE attestation bundle (and that the file is one of its subjects).
    VerifyAttestation {
        file: Option<PathBuf>,
        #[arg(long)]
        bundle: PathBuf,
        /// Required predicate type.
        #[arg(long)]
        r#type: Option<String>,
        #[command(flatten)]
        identity: IdentityArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Read and check the transparency log.
    Log {
        #[command(subcommand)]
        cmd: LogCmd,
    },
    /// Conformance protocol: sign.
    SignBundle {
        #[arg(long)]
        staging: bool,
        #[arg(long)]
        in_toto: bool,
        #[arg(long)]
        identity_token: String,
        #[arg(long)]
        bundle: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        file: PathBuf,
    },
    /// Conformance protocol: verify.
    VerifyBundle {
        #[arg(long)]
        staging: bool,
        #[arg(long)]
        bundle: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        trust: TrustArgs,
        /// A file, or `sha256:<hex>`.
        file: String,
    },
    /// Container images: sign, verify, policy (see `sigil::oci::cli`).
    #[command(flatten)]
    Image(sigil::oci::cli::ImageCmd),
}

#[derive(Subcommand)]
enum TrustCmd {
    /// Fetch and store a Sigil server's trusted root and signing config.
    Init {
        /// Server base URL.
        #[arg(long)]
        url: Option<String>,
        /// Expected `sha256:<hex>` of trusted_root.json (pinning; required with --from).
        #[arg(long)]
        root_digest: Option<String>,
        /// Air-gapped: a directory holding trusted_root.json and signing_config.json.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Show the stored trust files and their fingerprints.
    Show,
}

#[derive(Subcommand)]
enum LogCmd {
    /// Fetch an entry and verify its inclusion proof.
    Get {
        #[arg(long)]
        index: Option<u64>,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Read the Rekor v2 log (from its tiles; by --index only) instead of the v1 log.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2), default_value_t = 1)]
        rekor_version: u32,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Find entries by artifact, digest or identity.
    Search {
        #[arg(long)]
        artifact: Option<PathBuf>,
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long)]
        identity: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Check the log's checkpoint is consistent with the last one seen.
    Verify {
        /// Check the Rekor v2 log (proofs computed from its tiles) instead of the v1 log.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2), default_value_t = 1)]
        rekor_version: u32,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

fn main() -> ExitCode {
    // `attest IMAGE` / `verify-attestation IMAGE` go to the image commands; files stay here.
    if let Some(code) =
        sigil::oci::cli::dispatch_image_attestation(&std::env::args_os().collect::<Vec<_>>())
    {
        return code;
    }
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Image(c) => sigil::oci::cli::run(c),
        Cmd::Trust { cmd } => trust_cmd(cmd),
        Cmd::Login {
            issuer,
            device,
            browser,
            no_launch_browser,
            timeout,
            client_id,
            print_token,
            trust,
        } => {
            let issuer = match issuer {
                Some(i) => i,
                None => services(&trust.sources().signing_config()?)?
                    .oidc
                    .ok_or_else(|| {
                        anyhow!("the signing config lists no OIDC issuer; pass --issuer")
                    })?,
            };
            let token = if browser {
                sigil::browser_login::browser_login(&sigil::browser_login::BrowserLogin {
                    issuer: &issuer,
                    client_id: &client_id,
                    launch_browser: !no_launch_browser,
                    timeout: std::time::Duration::from_secs(timeout),
                })?
            } else if device {
                sigil::oidc::device_flow(&issuer, &client_id)?
            } else {
                sigil::oidc::dev_issuer_token(&issuer)?
            };
            if print_token {
                println!("{token}");
                return Ok(());
            }
            let claims = sigil::oidc::unverified_claims(&token)?;
            let p = sigil::oidc::store_token(&token)?;
            println!(
                "Logged in as {} (token stored in {})",
                sigil::oidc::challenge_claim(&claims)?,
                p.display()
            );
            Ok(())
        }
        Cmd::SignBlob {
            file,
            bundle,
            key,
            token,
            log,
            trust,
        } => {
            let data = read(&file)?;
            let (signer, svc) = signer(key.as_deref(), &token, &trust, &log.versions())?;
            let signed = sign::sign_blob(&signer, &data, &svc.target())?;
            self_check(&signed.bundle, &Artifact::Bytes(&data), &trust, &signer)?;
            write_bundle(&bundle, &signed.bundle)?;
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
            println!("Wrote bundle to {}", bundle.display());
            println!("Log index: {}", signed.log_index);
            println!("Entry UUID: {}", signed.uuid);
            Ok(())
        }
        Cmd::GenerateKeyPair { output_key_prefix } => {
            let pw = sign::password()?;
            let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
            let (kp, pp) = (
                format!("{output_key_prefix}.key"),
                format!("{output_key_prefix}.pub"),
            );
            for p in [&kp, &pp] {
                if Path::new(p).exists() {
                    bail!("{p} exists; refusing to overwrite");
                }
            }
            std::fs::write(&kp, key.to_encrypted_pkcs8_pem(&pw)?)?;
            std::fs::write(&pp, key.public_key().to_pem())?;
            println!("Private key written to {kp}\nPublic key written to {pp}");
            Ok(())
        }
        Cmd::VerifyBlob {
            file,
            bundle,
            identity,
            output,
            trust,
        } => {
            let b = load_bundle(&bundle)?;
            let policy = identity.policy()?;
            let artifact = sigil::artifact::load(&file, &b, &policy)
                .with_context(|| format!("reading {}", file.display()))?;
            let v = verify_with(&b, &artifact.as_artifact(), &policy, &trust)?;
            report(&v, output);
            Ok(())
        }
        Cmd::Attest {
            file,
            predicate,
            r#type,
            statement,
            bundle,
            key,
            token,
            log,
            trust,
        } => {
            let stmt = match (statement, predicate, file) {
                (Some(s), _, _) => read(&s)?,
                (None, Some(p), Some(f)) => {
                    let pred: Value =
                        serde_json::from_slice(&read(&p)?).context("predicate is not JSON")?;
                    let name = f
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    serde_json::to_vec(&json!({
                        "_type": "https://in-toto.io/Statement/v1",
                        "subject": [{"name": name, "digest": {"sha256": hex::encode(sha256(&read(&f)?))}}],
                        "predicateType": r#type,
                        "predicate": pred,
                    }))?
                }
                _ => bail!("pass --statement, or FILE with --predicate"),
            };
            let (signer, svc) = signer(key.as_deref(), &token, &trust, &log.versions())?;
            let signed = sign::sign_dsse(&signer, IN_TOTO_PAYLOAD_TYPE, &stmt, &svc.target())?;
            self_check(&signed.bundle, &Artifact::None, &trust, &signer)?;
            write_bundle(&bundle, &signed.bundle)?;
            println!("Wrote bundle to {}", bundle.display());
            println!("Log index: {}", signed.log_index);
            println!("Entry UUID: {}", signed.uuid);
            Ok(())
        }
        Cmd::VerifyAttestation {
            file,
            bundle,
            r#type,
            identity,
            output,
            trust,
        } => {
            let b = load_bundle(&bundle)?;
            let policy = identity.policy()?;
            let loaded = match &file {
                Some(f) => Some(
                    sigil::artifact::load(f, &b, &policy)
                        .with_context(|| format!("reading {}", f.display()))?,
                ),
                None => None,
            };
            let artifact = loaded.as_ref().map_or(Artifact::None, |a| a.as_artifact());
            let v = verify_with(&b, &artifact, &policy, &trust)?;
            if v.payload_type.as_deref() != Some(IN_TOTO_PAYLOAD_TYPE) {
                bail!("bundle is not an in-toto attestation");
            }
            if let Some(t) = r#type {
                let got = v
                    .statement
                    .as_ref()
                    .and_then(|s| s.get("predicateType"))
                    .and_then(Value::as_str);
                if got != Some(t.as_str()) {
                    bail!("predicate type mismatch: expected {t:?}, statement has {got:?}");
                }
            }
            report(&v, output);
            Ok(())
        }
        Cmd::Log { cmd } => log_cmd(cmd),
        Cmd::SignBundle {
            staging: _,
            in_toto,
            identity_token,
            bundle,
            trust,
            file,
        } => {
            let data = read(&file)?;
            let token = TokenArgs {
                identity_token: Some(identity_token),
                sign_in: Default::default(),
            };
            let (signer, svc) = signer(None, &token, &trust, sign::REKOR_VERSIONS)?;
            let signed = if in_toto {
                sign::sign_dsse(&signer, IN_TOTO_PAYLOAD_TYPE, &data, &svc.target())?
            } else {
                sign::sign_blob(&signer, &data, &svc.target())?
            };
            write_bundle(&bundle, &signed.bundle)
        }
        Cmd::VerifyBundle {
            staging: _,
            bundle,
            identity,
            trust,
            file,
        } => {
            let data;
            let artifact = if let Some(h) = file.strip_prefix("sha256:") {
                Artifact::Digest {
                    algorithm: DigestAlgorithm::Sha256,
                    digest: hex::decode(h).context("sha256:<hex>")?,
                }
            } else {
                data = read(Path::new(&file))?;
                Artifact::Bytes(&data)
            };
            let b = load_bundle(&bundle)?;
            // In-toto bundles are checked against their subjects; a file that is the statement itself is not a subject.
            let artifact = match (&b.dsse_envelope, &artifact) {
                (Some(env), Artifact::Bytes(d)) if env.payload == *d => Artifact::None,
                _ => artifact,
            };
            verify_loaded(&b, &artifact, &identity, &trust)?;
            println!("Verified OK");
            Ok(())
        }
    }
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

fn load_bundle(p: &Path) -> Result<Bundle> {
    Bundle::from_json(&read(p)?).with_context(|| format!("bundle {}", p.display()))
}

fn write_bundle(p: &Path, b: &Bundle) -> Result<()> {
    std::fs::write(p, b.to_json()?).with_context(|| format!("writing {}", p.display()))
}

fn services(c: &SigningConfig) -> Result<Services> {
    Services::from_signing_config(c, now())
}

fn signer(
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

fn verify_loaded(
    b: &Bundle,
    artifact: &Artifact<'_>,
    identity: &IdentityArgs,
    trust: &TrustArgs,
) -> Result<Verified> {
    verify_with(b, artifact, &identity.policy()?, trust)
}

fn verify_with(
    b: &Bundle,
    artifact: &Artifact<'_>,
    policy: &Policy,
    trust: &TrustArgs,
) -> Result<Verified> {
    let root: TrustedRoot = trust.sources().trusted_root()?;
    verify_bundle(b, artifact, &root, policy, &Options::default())
        .map_err(|e| anyhow!("verification failed: {e}"))
}

fn report(v: &Verified, output: Output) {
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
                    format!("integrated {}", sigil::x509::fmt_time(e.integrated_time))
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

fn fingerprint(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha256(b)))
}

fn trust_cmd(cmd: TrustCmd) -> Result<()> {
    let dir = config_dir()?;
    match cmd {
        TrustCmd::Init {
            url,
            root_digest,
            from,
        } => {
            let (root, signing) = match (&url, &from) {
                (_, Some(d)) => (
                    read(&d.join("trusted_root.json"))?,
                    read(&d.join("signing_config.json"))?,
                ),
                (Some(u), None) => {
                    let base = u.trim_end_matches('/');
                    let get = |name: &str| -> Result<Vec<u8>> {
                        let url = format!("{base}/api/v1/trust/{name}");
                        let r = sign::http()?
                            .get(&url)
                            .send()
                            .with_context(|| format!("GET {url}"))?;
                        if !r.status().is_success() {
                            bail!("GET {url} answered {}", r.status());
                        }
                        Ok(r.bytes()?.to_vec())
                    };
                    (get("trusted_root.json")?, get("signing_config.json")?)
                }
                (None, None) => bail!("pass --url <sigil server> or --from <dir>"),
            };
            if from.is_some() && root_digest.is_none() {
                bail!("--from needs --root-digest sha256:<hex> to pin the copied trusted root");
            }
            TrustedRoot::from_json(&root).context("the fetched trusted root is invalid")?;
            SigningConfig::from_json(&signing).context("the fetched signing config is invalid")?;
            // Servers may pin the document as served or its pretty-printed form; accept either.
            let pretty = serde_json::from_slice::<Value>(&root)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .map(|p| fingerprint(format!("{p}\n").as_bytes()));
            let mut fp = fingerprint(&root);
            if let Some(want) = &root_digest {
                let want = format!(
                    "sha256:{}",
                    want.trim()
                        .trim_start_matches("sha256:")
                        .to_ascii_lowercase()
                );
                if pretty.as_deref() == Some(want.as_str()) {
                    fp = want;
                } else if want != fp {
                    bail!("trusted root digest mismatch: expected {want}, got {fp}");
                }
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(dir.join("trusted_root.json"), &root)?;
            std::fs::write(dir.join("signing_config.json"), &signing)?;
            println!("Trusted root fingerprint: {fp}");
            println!("Stored trust files in {}", dir.display());
            if root_digest.is_none() {
                println!(
                    "Compare the fingerprint with the server operator's (`--root-digest` pins it)."
                );
            }
            Ok(())
        }
        TrustCmd::Show => {
            for name in ["trusted_root.json", "signing_config.json"] {
                let p = dir.join(name);
                match std::fs::read(&p) {
                    Ok(b) => println!("{}: {}", p.display(), fingerprint(&b)),
                    Err(_) => println!("{}: (missing)", p.display()),
                }
            }
            Ok(())
        }
    }
}

fn log_key_for(root: &TrustedRoot, log_id: &[u8]) -> Result<PublicKey> {
    let log = root
        .tlogs_by_id(log_id)
        .next()
        .ok_or_else(|| anyhow!("log {} is not in the trusted root", hex::encode(log_id)))?;
    Ok(PublicKey::from_spki_der(&log.public_key.raw_bytes)?)
}

fn log_cmd(cmd: LogCmd) -> Result<()> {
    match cmd {
        LogCmd::Get {
            index,
            uuid: _,
            output,
            rekor_version: 2,
            trust,
        } => {
            let svc = Services::select(&trust.sources().signing_config()?, now(), &[2])?;
            let root = trust.sources().trusted_root()?;
            let Some(index) = index else {
                bail!("a Rekor v2 log has no lookup by UUID; pass --index (printed by sign-blob)");
            };
            let e = sigil::log_v2::get_entry(&svc.rekor, index, &root)?;
            let body: Value = serde_json::from_slice(&e.body)?;
            let uuid = hex::encode(sigil_core::merkle::leaf_hash(&e.body));
            if output == Output::Json {
                let j = json!({"uuid": uuid, "logIndex": e.index, "logID": hex::encode(&e.log_id),
                    "treeSize": e.tree_size, "body": body, "inclusionProofVerified": true});
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                println!("LogID: {}", hex::encode(&e.log_id));
                println!("Index: {}", e.index);
                println!("UUID: {uuid}");
                println!(
                    "Inclusion proof: verified against checkpoint of size {} (root {}), from the log's tiles",
                    e.tree_size,
                    hex::encode(e.root_hash)
                );
                println!("Body: {}", serde_json::to_string_pretty(&body)?);
            }
            Ok(())
        }
        LogCmd::Get {
            index,
            uuid,
            output,
            rekor_version: _,
            trust,
        } => {
            let svc = services(&trust.sources().signing_config()?)?;
            let root = trust.sources().trusted_root()?;
            let (id, entry) = match (index, uuid) {
                (Some(i), _) => sign::get_entry_by_index(&svc.rekor, i)?,
                (None, Some(u)) => sign::get_entry_by_uuid(&svc.rekor, &u)?,
                _ => bail!("pass --index or --uuid"),
            };
            let tlog = sign::tlog_entry_from_rekor(&entry, "", "")?;
            let key = log_key_for(&root, &tlog.log_id.key_id)?;
            let proof = tlog
                .inclusion_proof
                .as_ref()
                .ok_or_else(|| anyhow!("entry has no inclusion proof"))?;
            let leaf = sigil_core::merkle::leaf_hash(&tlog.canonicalized_body);
            let hashes: Vec<[u8; 32]> = proof
                .hashes
                .iter()
                .map(|h| h.as_slice().try_into())
                .collect::<Result<_, _>>()
                .context("proof hash length")?;
            let root_hash = sigil_core::merkle::root_from_inclusion_proof(
                &leaf,
                u64::try_from(proof.log_index)?,
                u64::try_from(proof.tree_size)?,
                &hashes,
            )?;
            let cp = proof
                .checkpoint
                .as_ref()
                .ok_or_else(|| anyhow!("inclusion proof has no checkpoint"))?;
            let (size, cp_root) = sigil::verify::verify_checkpoint(cp.envelope.as_bytes(), &key)?;
            if cp_root != root_hash || i64::try_from(size)? != proof.tree_size {
                bail!("inclusion proof does not lead to the signed checkpoint");
            }
            let body: Value = serde_json::from_slice(&tlog.canonicalized_body)?;
            if output == Output::Json {
                let j = json!({"uuid": id, "logIndex": tlog.log_index, "integratedTime": tlog.integrated_time,
                    "logID": hex::encode(&tlog.log_id.key_id), "body": body, "inclusionProofVerified": true});
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                println!("LogID: {}", hex::encode(&tlog.log_id.key_id));
                println!("Index: {}", tlog.log_index);
                println!(
                    "IntegratedTime: {}",
                    sigil::x509::fmt_time(tlog.integrated_time)
                );
                println!("UUID: {id}");
                println!("Inclusion proof: verified against checkpoint of size {size}");
                println!("Body: {}", serde_json::to_string_pretty(&body)?);
            }
            Ok(())
        }
        LogCmd::Search {
            artifact,
            sha256: hexd,
            identity,
            trust,
        } => {
            let svc = services(&trust.sources().signing_config()?)?;
            let query = match (artifact, hexd, identity) {
                (Some(f), _, _) => {
                    json!({"hash": format!("sha256:{}", hex::encode(sha256(&read(&f)?)))})
                }
                (None, Some(h), _) => {
                    json!({"hash": format!("sha256:{}", h.trim_start_matches("sha256:").to_lowercase())})
                }
                (None, None, Some(e)) => json!({"email": e}),
                _ => bail!("pass --artifact, --sha256 or --identity"),
            };
            let url = format!("{}/api/v1/index/retrieve", svc.rekor.trim_end_matches('/'));
            let resp = sign::http()?
                .post(&url)
                .json(&query)
                .send()
                .with_context(|| format!("POST {url}"))?;
            let status = resp.status();
            let text = resp.text()?;
            if !status.is_success() {
                bail!("{url} answered {status}: {text}");
            }
            let uuids: Vec<String> =
                serde_json::from_str(&text).with_context(|| format!("{url}: {text}"))?;
            if uuids.is_empty() {
                println!("No entries found");
            }
            for u in uuids {
                println!("{u}");
            }
            Ok(())
        }
        LogCmd::Verify {
            rekor_version,
            trust,
        } => {
            let svc =
                Services::select(&trust.sources().signing_config()?, now(), &[rekor_version])?;
            let root = trust.sources().trusted_root()?;
            let base = svc.rekor.trim_end_matches('/');
            let (size, root_hash) = if rekor_version == 2 {
                sigil::log_v2::verified_head(base, &root)?
            } else {
                let info: Value = sign::http()?
                    .get(format!("{base}/api/v1/log"))
                    .send()?
                    .error_for_status()?
                    .json()?;
                let sth = info
                    .get("signedTreeHead")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("no signedTreeHead"))?;
                // The log is the trusted root's entry whose key signs this checkpoint.
                root.tlogs
                    .iter()
                    .filter_map(|l| PublicKey::from_spki_der(&l.public_key.raw_bytes).ok())
                    .find_map(|k| sigil::verify::verify_checkpoint(sth.as_bytes(), &k).ok())
                    .ok_or_else(|| {
                        anyhow!("the log's checkpoint is not signed by a trusted log key")
                    })?
            };
            // v1 and v2 logs may share a base URL: each has its own last-seen checkpoint.
            let suffix = if rekor_version == 2 { "-v2" } else { "" };
            let state = config_dir()?.join(format!(
                "checkpoint-{}{suffix}.json",
                hex::encode(sha256(base.as_bytes()))
            ));
            if let Ok(prev) = std::fs::read(&state) {
                let prev: Value = serde_json::from_slice(&prev)?;
                let old_size = prev.get("size").and_then(Value::as_u64).unwrap_or(0);
                let old_root: [u8; 32] =
                    hex::decode(prev.get("root").and_then(Value::as_str).unwrap_or(""))?
                        .try_into()
                        .map_err(|_| anyhow!("stored checkpoint root is not 32 bytes"))?;
                if old_size > size {
                    bail!("the log shrank: last seen size {old_size}, now {size}");
                }
                if old_size > 0 && old_size < size {
                    // Rekor v2 serves no proofs: it is computed from the tiles.
                    let hashes: Vec<[u8; 32]> = if rekor_version == 2 {
                        sigil::log_v2::consistency_proof(base, old_size, size)?
                    } else {
                        let p: Value = sign::http()?
                            .get(format!(
                                "{base}/api/v1/log/proof?firstSize={old_size}&lastSize={size}"
                            ))
                            .send()?
                            .error_for_status()?
                            .json()?;
                        p.get("hashes")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    sigil_core::merkle::verify_consistency(
                        old_size, size, &old_root, &root_hash, &hashes,
                    )
                    .map_err(|e| {
                        anyhow!(
                            "checkpoint {size} is not consistent with the last seen {old_size}: {e}"
                        )
                    })?;
                } else if old_size == size && old_root != root_hash {
                    bail!("same tree size {size} with a different root hash: the log forked");
                }
                println!("Consistent with the last seen checkpoint (size {old_size})");
            }
            std::fs::create_dir_all(config_dir()?)?;
            std::fs::write(
                &state,
                serde_json::to_vec(&json!({"size": size, "root": hex::encode(root_hash)}))?,
            )?;
            println!(
                "Verified checkpoint: size {size}, root {}",
                hex::encode(root_hash)
            );
            Ok(())
        }
    }
}
