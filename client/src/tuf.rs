//! Trust through TUF: `sigil trust init --tuf URL --tuf-root ROOT` bootstraps from a root
//! metadata file (no trust on first use); afterwards every command that reads the stored trust
//! files refreshes them through tough (the TUF client), so rotations reach users with no action.
//! `SIGIL_TUF_OFFLINE=1` uses the last verified files without asking the network.
//!
//! In the config dir: `tuf/url` (the metadata base URL), `tuf/root.json` (the newest trusted
//! root, rewritten as the client follows rotations), `tuf/datastore/` (tough's record of the
//! newest timestamp/snapshot, against rollback), and the targets written where `sigil` always
//! reads them: `trusted_root.json`, `signing_config.json`.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tough::{
    IntoVec, RepositoryLoader, TargetName, Transport, TransportError, TransportErrorKind,
    TransportStream,
};
use url::Url;

const TRUSTED_ROOT: &str = "trusted_root.json";
const SIGNING_CONFIG: &str = "signing_config.v0.2.json";

/// Fetches `http(s)` URLs with reqwest (aws-lc-rs TLS) and `file` URLs from disk.
#[derive(Clone, Debug)]
struct Fetcher {
    http: reqwest::Client,
}

#[tough::async_trait]
impl Transport for Fetcher {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let bytes = match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url.as_str())
                })?;
                tokio::fs::read(&path).await.map_err(|e| {
                    let kind = if e.kind() == std::io::ErrorKind::NotFound {
                        TransportErrorKind::FileNotFound
                    } else {
                        TransportErrorKind::Other
                    };
                    TransportError::new_with_cause(kind, url.as_str(), e)
                })?
            }
            "http" | "https" => {
                let resp = self.http.get(url.clone()).send().await.map_err(|e| {
                    TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e)
                })?;
                let status = resp.status();
                if status == reqwest::StatusCode::NOT_FOUND {
                    // tough asks for N+1.root.json until there is none.
                    return Err(TransportError::new(
                        TransportErrorKind::FileNotFound,
                        url.as_str(),
                    ));
                }
                if !status.is_success() {
                    return Err(TransportError::new_with_cause(
                        TransportErrorKind::Other,
                        url.as_str(),
                        format!("answered {status}"),
                    ));
                }
                resp.bytes()
                    .await
                    .map_err(|e| {
                        TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e)
                    })?
                    .to_vec()
            }
            _ => {
                return Err(TransportError::new(
                    TransportErrorKind::UnsupportedUrlScheme,
                    url.as_str(),
                ));
            }
        };
        let stream = futures_util::stream::once(async move { Ok(tough::Bytes::from(bytes)) });
        Ok(Box::pin(stream))
    }
}

fn base_url(url: &str) -> Result<Url> {
    let with_slash = format!("{}/", url.trim_end_matches('/'));
    Url::parse(&with_slash).map_err(|e| {
        crate::exit::usage(format!(
            "--tuf {url:?} is not a URL (http(s)://… or file:///…): {e}"
        ))
    })
}

/// `--tuf` value as a URL: `file://DIR` with a relative DIR is made absolute.
pub fn normalise(url: &str) -> Result<String> {
    if let Some(rest) = url.strip_prefix("file://")
        && !rest.starts_with('/')
    {
        let abs = std::path::absolute(rest).with_context(|| format!("resolving {rest}"))?;
        return Ok(format!("file://{}", abs.display()));
    }
    Ok(url.to_string())
}

/// Refreshes through TUF from `url`, trusting `root` (bytes of a root metadata file), and
/// writes the verified targets and the newest root into `dir`.
pub fn refresh_with(dir: &Path, url: &str, root: &[u8]) -> Result<()> {
    let tuf = dir.join("tuf");
    std::fs::create_dir_all(tuf.join("datastore"))
        .with_context(|| format!("creating {}", tuf.display()))?;
    let base = base_url(url)?;
    let targets_url = base.join("targets/")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting an async runtime for the TUF client")?;
    let (trusted_root, signing_config, newest_root) = runtime.block_on(async {
        let http = crate::http::async_builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let repo = RepositoryLoader::new(&root, base.clone(), targets_url)
            .transport(Fetcher { http })
            .datastore(tuf.join("datastore"))
            .load()
            .await
            .map_err(|e| anyhow!("TUF refresh from {url} failed: {e}"))?;
        let get = async |name: &str| -> Result<Vec<u8>> {
            let t = TargetName::new(name).map_err(|e| anyhow!("{e}"))?;
            let stream = repo
                .read_target(&t)
                .await
                .map_err(|e| anyhow!("TUF target {name}: {e}"))?
                .ok_or_else(|| anyhow!("the TUF repository at {url} has no target {name}"))?;
            stream
                .into_vec()
                .await
                .map_err(|e| anyhow!("TUF target {name}: {e}"))
        };
        let tr = get(TRUSTED_ROOT).await?;
        let sc = get(SIGNING_CONFIG).await?;
        let newest = serde_json::to_vec_pretty(repo.root())?;
        anyhow::Ok((tr, sc, newest))
    })?;
    sigil_core::trust::TrustedRoot::from_json(&trusted_root)
        .context("the trusted root from TUF is invalid")?;
    sigil_core::trust::SigningConfig::from_json(&signing_config)
        .context("the signing config from TUF is invalid")?;
    std::fs::write(tuf.join("url"), url)?;
    std::fs::write(tuf.join("root.json"), newest_root)?;
    std::fs::write(dir.join("trusted_root.json"), trusted_root)?;
    std::fs::write(dir.join("signing_config.json"), signing_config)?;
    Ok(())
}

/// Before a command reads the stored trust files: refresh them when `trust init --tuf` set
/// them up (once per process), unless `SIGIL_TUF_OFFLINE` is set.
pub fn refresh_stored(dir: &Path) -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let url_file = dir.join("tuf").join("url");
    if !url_file.exists() {
        return Ok(());
    }
    if std::env::var_os("SIGIL_TUF_OFFLINE").is_some_and(|v| !v.is_empty() && v != "0") {
        return Ok(());
    }
    DONE.get_or_init(|| {
        let run = || -> Result<()> {
            let url = std::fs::read_to_string(&url_file)?;
            let root = std::fs::read(dir.join("tuf").join("root.json"))?;
            refresh_with(dir, url.trim(), &root)
        };
        run().map_err(|e| {
            format!("{e:#} (set SIGIL_TUF_OFFLINE=1 to use the trust files verified last time)")
        })
    })
    .clone()
    .map_err(crate::exit::network)
}
