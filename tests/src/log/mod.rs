//! Shared helpers of the transparency-log end-to-end tests: log servers (in-process on PostgreSQL
//! or SQLite, or `sigil-server log` processes), entry builders for every kind, and the checks every
//! returned entry goes through — once with `sigil-core`, once with an independent oracle written
//! here from RFC 6962 / RFC 9162 and a plain aws-lc-rs ECDSA verify.
// Test helpers: a panic is a test failure with its message.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod client;
pub use client::*;
mod entries;
pub use entries::*;
pub mod oracle;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Postgres, ServerProcess, free_port, temp_sqlite, workspace_bin};
use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_core::checkpoint::open_checkpoint;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, RsaPadding, SigningKey};
use sigil_core::merkle;
use sigil_core::note::{EcdsaNoteKey, NoteVerifier};
use sigil_core::rekor;
use tempfile::TempDir;

pub type Hash = [u8; 32];

// ---------------------------------------------------------------------------------------------
// Databases and servers
// ---------------------------------------------------------------------------------------------

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database for one test; keeps the cluster / temp dir alive.
pub enum TestDb {
    Postgres(Postgres),
    Sqlite(TempDir, String),
}

impl TestDb {
    pub async fn start(backend: Backend) -> Result<TestDb> {
        Ok(match backend {
            Backend::Postgres => TestDb::Postgres(Postgres::start().await?),
            Backend::Sqlite => {
                let (dir, url) = temp_sqlite()?;
                TestDb::Sqlite(dir, url)
            }
        })
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Postgres(pg) => pg.url(),
            TestDb::Sqlite(_, url) => url.clone(),
        }
    }
}

/// A data dir initialised by `init::init` (keys, CA, config) for a server at `public_url`.
pub fn init_data_dir(public_url: &str) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("sigil-log-test-")
        .tempdir()?;
    sigil_server::init::init(dir.path(), public_url, false)?;
    Ok(dir)
}

/// The log-only config of a data dir, on `db_url`.
pub fn log_config(data_dir: &Path, db_url: &str) -> Result<sigil_server::config::Config> {
    let mut cfg = sigil_server::config::Config::load(Some(&data_dir.join("sigil.toml")))?;
    cfg.database.url = db_url.to_string();
    cfg.ca.enabled = false;
    cfg.dev_oidc.enabled = false;
    Ok(cfg)
}

/// A log server running in this process (axum on a random loopback port).
pub struct LogServer {
    pub url: String,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    pub db: TestDb,
    pub log: LogIdentity,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LogServer {
    pub async fn start(backend: Backend) -> Result<LogServer> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`start`](Self::start), with a hook to adjust the config.
    pub async fn start_with(
        backend: Backend,
        adjust: impl FnOnce(&mut sigil_server::config::Config),
    ) -> Result<LogServer> {
        let db = TestDb::start(backend).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let data_dir = init_data_dir(&url)?;
        let mut cfg = log_config(data_dir.path(), &db.url())?;
        adjust(&mut cfg);
        let service = sigil_server::app::build(&cfg, data_dir.path()).await?;
        let router = service.router;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = http_client(64)?;
        let log = LogIdentity::fetch(&http, &url).await?;
        Ok(LogServer {
            url,
            http,
            data_dir,
            db,
            log,
            task,
        })
    }

    pub fn client(&self) -> LogClient {
        LogClient {
            url: self.url.clone(),
            http: self.http.clone(),
            log: self.log.clone(),
        }
    }
}

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// `sigil-server log` as a process on a data dir and a database.
pub struct LogProcess {
    pub url: String,
    pub process: ServerProcess,
}

impl LogProcess {
    /// `sigil-server init` of a fresh data dir for `port` (the caller keeps the dir).
    pub fn init(port: u16) -> Result<TempDir> {
        let dir = tempfile::Builder::new()
            .prefix("sigil-log-proc-")
            .tempdir()?;
        let bin = workspace_bin("sigil-server")?;
        let out = std::process::Command::new(&bin)
            .arg("init")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--public-url")
            .arg(format!("http://127.0.0.1:{port}"))
            .output()
            .context("running sigil-server init")?;
        ensure!(
            out.status.success(),
            "sigil-server init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(dir)
    }

    /// Starts `sigil-server log` on `port` and waits for `/healthz`.
    pub async fn start(data_dir: &Path, db_url: &str, port: u16) -> Result<LogProcess> {
        Self::start_with_env(data_dir, db_url, port, &[]).await
    }

    /// Like [`start`](Self::start), with more `SIGIL_*` settings.
    pub async fn start_with_env(
        data_dir: &Path,
        db_url: &str,
        port: u16,
        extra: &[(&str, &str)],
    ) -> Result<LogProcess> {
        let bin = workspace_bin("sigil-server")?;
        let listen = format!("127.0.0.1:{port}");
        let data = data_dir
            .to_str()
            .ok_or_else(|| anyhow!("non-UTF-8 data dir"))?;
        let mut env = vec![
            ("SIGIL_DATABASE_URL", db_url),
            ("SIGIL_SERVER_LISTEN", listen.as_str()),
            ("RUST_LOG", "warn"),
        ];
        env.extend_from_slice(extra);
        let mut process = ServerProcess::spawn(&bin, ["log", "--data-dir", data], &env)?;
        let url = format!("http://{listen}");
        process
            .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
            .await?;
        Ok(LogProcess { url, process })
    }
}

pub fn free_port_u16() -> u16 {
    free_port()
}

/// A server's `/metrics` text.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> Result<String> {
    Ok(http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

/// The value of one series (`name{labels}`, as the text spells it) in a metrics text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The `sigil_sequencer_batch_size` histogram of a server's /metrics: (count, sum).
pub async fn batch_stats(http: &reqwest::Client, url: &str) -> Result<(f64, f64)> {
    let text = metrics_text(http, url).await?;
    let get = |series| sample(&text, series).unwrap_or(0.0);
    Ok((
        get("sigil_sequencer_batch_size_count{log=\"rekor\"}"),
        get("sigil_sequencer_batch_size_sum{log=\"rekor\"}"),
    ))
}

pub fn data_path(dir: &TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

#[cfg(test)]
mod metric_tests {
    #[test]
    fn a_sample_is_found_by_its_whole_series() {
        let text = "# HELP x\nsigil_x{log=\"rekor\"} 12\nsigil_x{log=\"rekor-2\"} 5\nsigil_xy{log=\"rekor\"} 7\n";
        assert_eq!(super::sample(text, "sigil_x{log=\"rekor\"}"), Some(12.0));
        assert_eq!(super::sample(text, "sigil_x{log=\"rekor-2\"}"), Some(5.0));
        assert_eq!(super::sample(text, "sigil_x{log=\"ct\"}"), None);
    }
}
