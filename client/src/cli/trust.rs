//! Trust set-up: `trust init|show` (the trusted root and signing config, stored and pinned) and
//! `login` (an identity token for later commands).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sigil_core::crypto::sha256;
use sigil_core::trust::{SigningConfig, TrustedRoot};

use super::args::{Output, TrustArgs, print_json, read};
use crate::config::{config_dir, now};
use crate::exit;
use crate::sign::Services;

#[derive(Subcommand, Clone, Debug)]
pub enum TrustCmd {
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

#[derive(Args, Clone, Debug)]
pub struct LoginArgs {
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
}

/// `login`.
pub fn login(a: LoginArgs) -> Result<()> {
    let issuer = match a.issuer {
        Some(i) => i,
        None => Services::from_signing_config(&a.trust.sources().signing_config()?, now())?
            .oidc
            .ok_or_else(|| anyhow!("the signing config lists no OIDC issuer; pass --issuer"))?,
    };
    let token = if a.browser {
        crate::browser_login::browser_login(&crate::browser_login::BrowserLogin {
            issuer: &issuer,
            client_id: &a.client_id,
            launch_browser: !a.no_launch_browser,
            timeout: std::time::Duration::from_secs(a.timeout),
        })?
    } else if a.device {
        crate::oidc::device_flow(&issuer, &a.client_id)?
    } else {
        crate::oidc::dev_issuer_token(&issuer)?
    };
    if a.print_token {
        println!("{token}");
        return Ok(());
    }
    let claims = crate::oidc::unverified_claims(&token)?;
    let p = crate::oidc::store_token(&token)?;
    let who = crate::oidc::challenge_claim(&claims)?;
    if a.output == Output::Json {
        return print_json(&json!({"identity": who, "tokenFile": p}));
    }
    println!("Logged in as {who} (token stored in {})", p.display());
    Ok(())
}

fn fingerprint(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha256(b)))
}

/// `trust init|show`.
pub fn run(cmd: TrustCmd) -> Result<()> {
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
                let tuf_url = crate::tuf::normalise(tuf_url)?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                // A new bootstrap replaces what an earlier one recorded.
                let _ = std::fs::remove_dir_all(dir.join("tuf"));
                crate::tuf::refresh_with(&dir, &tuf_url, &root)?;
                let fp = fingerprint(&std::fs::read(dir.join("trusted_root.json"))?);
                match output {
                    Output::Json => println!(
                        "{}",
                        json!({"tuf": tuf_url, "trusted_root_sha256": fp, "dir": dir})
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
                        let r = crate::http::http()?
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
                    return Err(exit::usage("pass --url <sigil server> or --from <dir>"));
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
