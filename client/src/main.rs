//! `sigil`: sign and verify artifacts with a private Sigstore.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sigil::config::{TrustSources, config_dir, now};
use sigil::sign::{self, Services, Signer};
use sigil::verify::{Artifact, Options, Policy, Verified, verify_bundle};
use sigil::verify::{CertificatePolicy, Claim, StringMatcher};
use sigil_core::bundle::{Bundle, IN_TOTO_PAYLOAD_TYPE};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, SigningKey, sha256};
use sigil_core::trust::{SigningConfig, TrustedRoot};

/// sigil: sign and verify artifacts with a private Sigstore.
#[derive(Parser)]
#[command(name = "sigil", version, after_help = sigil::exit::HELP)]
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
    /// Read and check the deployment's transparency logs (Rekor v1 and v2) as one.
    Log {
        #[command(subcommand)]
        cmd: sigil::log_cli::LogCmd,
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
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
        /// A TUF repository (`<server>/tuf`, or `file://DIR` from `sigil-server trust export
        /// --tuf DIR`): trust comes from it, refreshed before later commands.
        #[arg(long, requires = "tuf_root", conflicts_with_all = ["url", "from", "root_digest"])]
        tuf: Option<String>,
        /// The TUF root metadata to bootstrap from (e.g. the server's tuf/1.root.json).
        #[arg(long, requires = "tuf")]
        tuf_root: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show the stored trust files and their fingerprints.
    Show {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
    let verifying = verifies(&cli.cmd);
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => sigil::exit::report(&e, verifying),
    }
}

/// Whether the command checks evidence: then a failure that is neither a usage nor a network
/// error means the evidence did not verify (exit code 1).
fn verifies(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::VerifyBlob { .. } | Cmd::VerifyAttestation { .. } | Cmd::VerifyBundle { .. } => true,
        Cmd::Image(c) => c.verifies(),
        _ => false,
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
            output,
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
            let who = sigil::oidc::challenge_claim(&claims)?;
            if output == Output::Json {
                return print_json(&json!({"identity": who, "tokenFile": p}));
            }
            println!("Logged in as {who} (token stored in {})", p.display());
            Ok(())
        }
        Cmd::SignBlob {
            file,
            bundle,
            key,
            output,
            token,
            log,
            trust,
        } => {
            let data = sigil::progress::read_file(&file)?;
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
            print_signed(&bundle, &signed, &svc, output)
        }
        Cmd::GenerateKeyPair {
            output_key_prefix,
            output,
        } => {
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
            if output == Output::Json {
                return print_json(&json!({"privateKey": kp, "publicKey": pp}));
            }
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
            let artifact = sigil::verify::artifact::load(&file, &b, &policy)
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
            output,
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
                _ => {
                    return Err(sigil::exit::usage(
                        "pass --statement, or FILE with --predicate",
                    ));
                }
            };
            let (signer, svc) = signer(key.as_deref(), &token, &trust, &log.versions())?;
            let signed = sign::sign_dsse(&signer, IN_TOTO_PAYLOAD_TYPE, &stmt, &svc.target())?;
            self_check(&signed.bundle, &Artifact::None, &trust, &signer)?;
            write_bundle(&bundle, &signed.bundle)?;
            print_signed(&bundle, &signed, &svc, output)
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
                    sigil::verify::artifact::load(f, &b, &policy)
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
        Cmd::Log { cmd } => sigil::log_cli::run(cmd),
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
            output,
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
            let v = verify_loaded(&b, &artifact, &identity, &trust)?;
            report(&v, output);
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
                    format!(
                        "integrated {}",
                        sigil::verify::x509::fmt_time(e.integrated_time)
                    )
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

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
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
            tuf,
            tuf_root,
            output,
        } => {
            if let (Some(tuf_url), Some(root_path)) = (&tuf, &tuf_root) {
                let root = read(root_path)?;
                let tuf_url = sigil::tuf::normalise(tuf_url)?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                // A new bootstrap replaces what an earlier one recorded.
                let _ = std::fs::remove_dir_all(dir.join("tuf"));
                sigil::tuf::refresh_with(&dir, &tuf_url, &root)?;
                let fp = fingerprint(&std::fs::read(dir.join("trusted_root.json"))?);
                match output {
                    Output::Json => println!(
                        "{}",
                        serde_json::json!({"tuf": tuf_url, "trusted_root_sha256": fp, "dir": dir})
                    ),
                    Output::Text => println!(
                        "trust initialised from the TUF repository {tuf_url} ({fp}); later commands refresh it"
                    ),
                }
                return Ok(());
            }
            // Trust set up by hand replaces a TUF setup.
            let _ = std::fs::remove_dir_all(dir.join("tuf"));
            let (root, signing) = match (&url, &from) {
                (_, Some(d)) => (
                    read(&d.join("trusted_root.json"))?,
                    read(&d.join("signing_config.json"))?,
                ),
                (Some(u), None) => {
                    let base = u.trim_end_matches('/');
                    let get = |name: &str| -> Result<Vec<u8>> {
                        let url = format!("{base}/api/v1/trust/{name}");
                        let r = sigil::http::http()?
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
                (None, None) => {
                    return Err(sigil::exit::usage(
                        "pass --url <sigil server> or --from <dir>",
                    ));
                }
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
            if output == Output::Json {
                return print_json(&json!({"fingerprint": fp, "directory": dir,
                    "pinned": root_digest.is_some()}));
            }
            println!("Trusted root fingerprint: {fp}");
            println!("Stored trust files in {}", dir.display());
            if root_digest.is_none() {
                println!(
                    "Compare the fingerprint with the server operator's (`--root-digest` pins it)."
                );
            }
            Ok(())
        }
        TrustCmd::Show { output } => {
            let mut files = serde_json::Map::new();
            for name in ["trusted_root.json", "signing_config.json"] {
                let p = dir.join(name);
                let fp = std::fs::read(&p).ok().map(|b| fingerprint(&b));
                if output == Output::Text {
                    println!("{}: {}", p.display(), fp.as_deref().unwrap_or("(missing)"));
                }
                files.insert(p.display().to_string(), json!(fp));
            }
            if output == Output::Json {
                return print_json(&Value::Object(files));
            }
            Ok(())
        }
    }
}
