//! A private Sigil stack for end-to-end and interop tests: `sigil-server up` on a fresh data dir,
//! on a free loopback port, optionally trusting extra OIDC issuers and using PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{ServerProcess, free_port, workspace_bin};

/// An extra OIDC issuer the CA should trust (a `[[ca.issuers]]` entry).
#[derive(Clone, Debug)]
pub struct ExtraIssuer {
    pub issuer_url: String,
    /// Identity type, e.g. `email` or `uri`.
    pub issuer_type: String,
    pub client_id: String,
}

impl ExtraIssuer {
    /// An e-mail issuer with audience `sigstore` (what Sigstore clients ask for).
    pub fn email(issuer_url: &str) -> ExtraIssuer {
        ExtraIssuer {
            issuer_url: issuer_url.to_string(),
            issuer_type: "email".into(),
            client_id: "sigstore".into(),
        }
    }
}

/// How to bring the stack up.
#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    pub extra_issuers: Vec<ExtraIssuer>,
    /// `[database] url`; default: the SQLite database in the data dir.
    pub database_url: Option<String>,
    /// Turn the development OIDC issuer off (`up` has it on).
    pub disable_dev_oidc: bool,
    /// Further `sigil.toml` settings: (section, key, value), e.g. `("tuf",
    /// "timestamp_expiry_secs", 5.into())`; a dotted section is a nested table
    /// (`log.admission`), and `{url}` in a string value is the stack's URL.
    pub config: Vec<(&'static str, &'static str, toml::Value)>,
}

/// Paths of the trust files fetched from a running stack.
#[derive(Clone, Debug)]
pub struct TrustFiles {
    pub trusted_root: PathBuf,
    pub signing_config: PathBuf,
    pub client_trust_config: PathBuf,
}

/// A running `sigil-server up`; killed on drop, data dir removed.
pub struct SigilStack {
    process: ServerProcess,
    url: String,
    port: u16,
    dir: TempDir,
    http: reqwest::Client,
}

impl SigilStack {
    /// `sigil-server up` with defaults (SQLite, dev OIDC issuer).
    pub async fn up() -> Result<SigilStack> {
        Self::up_with(StackOptions::default()).await
    }

    /// `sigil-server init` on a fresh data dir, the options written into its `sigil.toml`, then
    /// `sigil-server up`; returns once `/healthz` answers.
    pub async fn up_with(options: StackOptions) -> Result<SigilStack> {
        let bin = workspace_bin("sigil-server")?;
        let dir = tempfile::Builder::new()
            .prefix("sigil-stack-")
            .tempdir()
            .context("creating a data dir")?;
        let data = dir.path().join("data");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let out = Command::new(&bin)
            .arg("init")
            .arg("--data-dir")
            .arg(&data)
            .arg("--public-url")
            .arg(&url)
            .output()
            .context("running sigil-server init")?;
        if !out.status.success() {
            bail!(
                "sigil-server init failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        edit_config(&data.join("sigil.toml"), &options, &url)?;
        let process = start_up(&data, port, &url).await?;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(SigilStack {
            process,
            url,
            port,
            dir,
            http,
        })
    }

    /// Stops the server (SIGTERM, as an operator would) and starts `up` again on the same data
    /// dir and port: what follows an offline change such as a key rotation.
    pub async fn restart(&mut self) -> Result<()> {
        self.process.signal("TERM")?;
        self.process.wait_exit(Duration::from_secs(30)).await?;
        self.process = start_up(&self.data_dir(), self.port, &self.url).await?;
        Ok(())
    }

    /// Runs `sigil-server <args> --data-dir <data dir>` to completion (offline commands).
    pub fn server_command(&self, args: &[&str]) -> Result<std::process::Output> {
        let bin = workspace_bin("sigil-server")?;
        Command::new(&bin)
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .with_context(|| format!("running sigil-server {}", args.join(" ")))
    }

    /// GETs a path and returns the body's bytes (error unless 2xx).
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.url);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await?.to_vec();
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch dir removed with the stack.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The server process (output, signals).
    pub fn process(&mut self) -> &mut ServerProcess {
        &mut self.process
    }

    /// The server's output, for failure messages.
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// The development OIDC issuer's URL.
    pub fn dev_issuer(&self) -> String {
        format!("{}/oidc", self.url)
    }

    /// An ID token from the development issuer, and the identity (`sub`/`email`) it carries.
    pub async fn dev_token(&self) -> Result<(String, String)> {
        let resp = self
            .http
            .post(format!("{}/token", self.dev_issuer()))
            .send()
            .await
            .context("dev issuer token request")?;
        let status = resp.status();
        let body: Value = resp.json().await.context("dev issuer token: not JSON")?;
        if !status.is_success() {
            bail!("dev issuer token answered {status}: {body}");
        }
        let token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no id_token in {body}"))?
            .to_string();
        let (_, claims) = crate::oidc::jwt_parts(&token)?;
        let identity = claims
            .get("email")
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("dev token has neither email nor sub: {claims}"))?
            .to_string();
        Ok((token, identity))
    }

    /// GETs a JSON document from the server (e.g. `/api/v1/trust/trusted_root.json`).
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {url} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))
    }

    /// Downloads the served trust files into `dir`.
    pub async fn fetch_trust_files(&self, dir: &Path) -> Result<TrustFiles> {
        let mut paths = Vec::new();
        for name in [
            "trusted_root.json",
            "signing_config.json",
            "client_trust_config.json",
        ] {
            let value = self.get_json(&format!("/api/v1/trust/{name}")).await?;
            let path = dir.join(name);
            std::fs::write(&path, serde_json::to_vec_pretty(&value)?)
                .with_context(|| format!("writing {}", path.display()))?;
            paths.push(path);
        }
        let mut it = paths.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(trusted_root), Some(signing_config), Some(client_trust_config)) => {
                Ok(TrustFiles {
                    trusted_root,
                    signing_config,
                    client_trust_config,
                })
            }
            _ => bail!("trust files missing"),
        }
    }
}

async fn start_up(data: &Path, port: u16, url: &str) -> Result<ServerProcess> {
    let bin = workspace_bin("sigil-server")?;
    let mut process = ServerProcess::spawn(
        &bin,
        [
            "up".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            format!("127.0.0.1:{port}").as_ref(),
        ],
        &[("RUST_LOG", "info,sqlx=warn")],
    )?;
    process
        .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
        .await?;
    Ok(process)
}

/// Writes the options (dev issuer, extra issuers, database URL) into the `sigil.toml` that
/// `init` wrote.
fn edit_config(path: &Path, options: &StackOptions, url: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    // `init` writes the dev issuer off; `up` on a fresh dir would have it on.
    table(&mut doc, "dev_oidc")?.insert(
        "enabled".into(),
        toml::Value::Boolean(!options.disable_dev_oidc),
    );
    if let Some(url) = &options.database_url {
        let db = table(&mut doc, "database")?;
        db.insert("url".into(), toml::Value::String(url.clone()));
    }
    if !options.extra_issuers.is_empty() {
        let ca = table(&mut doc, "ca")?;
        let issuers = ca
            .entry("issuers")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        let list = issuers
            .as_array_mut()
            .ok_or_else(|| anyhow!("ca.issuers is not an array"))?;
        for iss in &options.extra_issuers {
            let mut t = toml::Table::new();
            t.insert("issuer_url".into(), iss.issuer_url.clone().into());
            t.insert("type".into(), iss.issuer_type.clone().into());
            t.insert("client_id".into(), iss.client_id.clone().into());
            list.push(toml::Value::Table(t));
        }
    }
    for (section, key, value) in &options.config {
        table(&mut doc, section)?.insert((*key).into(), with_url(value, url));
    }
    std::fs::write(path, toml::to_string(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The table `name` (dotted for nested tables: `log.admission`), created when missing.
fn table<'a>(doc: &'a mut toml::Table, name: &str) -> Result<&'a mut toml::Table> {
    let mut t = doc;
    for part in name.split('.') {
        t = t
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("[{name}] is not a table"))?;
    }
    Ok(t)
}

/// `{url}` in a string setting (or in the strings of an array) becomes the stack's URL.
fn with_url(value: &toml::Value, url: &str) -> toml::Value {
    match value {
        toml::Value::String(s) => toml::Value::String(s.replace("{url}", url)),
        toml::Value::Array(a) => toml::Value::Array(a.iter().map(|v| with_url(v, url)).collect()),
        other => other.clone(),
    }
}
