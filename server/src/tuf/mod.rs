//! The TUF repository that distributes the trust root: served at `/tuf/` (metadata) and
//! `/tuf/targets/` (target files, consistent snapshots), carrying `trusted_root.json` and
//! `signing_config.v0.2.json` under the names Sigstore clients look up.

pub mod metadata;
pub mod repository;
pub mod root;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};

use crate::config::{Config, resolve};
use crate::error::AppError;
use crate::routes::Api;
use crate::trust::{TrustInputs, pretty};
use repository::{Expiry, OnlineKeys, Repository};
use root::OnlinePublicKeys;

/// Target names, as sigstore-python and sigstore-js look them up.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
pub const SIGNING_CONFIG_TARGET: &str = "signing_config.v0.2.json";

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn repo_dir(cfg: &Config, data_dir: &Path) -> PathBuf {
    resolve(data_dir, &cfg.tuf.dir)
}

/// Where new root versions wait for signatures.
pub fn staging_dir(cfg: &Config, data_dir: &Path) -> PathBuf {
    let repo = repo_dir(cfg, data_dir);
    let name = repo
        .file_name()
        .map(|n| format!("{}-staging", n.to_string_lossy()))
        .unwrap_or_else(|| "tuf-staging".into());
    repo.with_file_name(name)
}

fn expiry(cfg: &Config) -> Expiry {
    let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    Expiry {
        root: secs(cfg.tuf.root_expiry_secs),
        targets: secs(cfg.tuf.targets_expiry_secs),
        snapshot: secs(cfg.tuf.snapshot_expiry_secs),
        timestamp: secs(cfg.tuf.timestamp_expiry_secs),
    }
}

fn ensure_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        return crate::keyfile::read_key(path);
    }
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    crate::keyfile::write_new(path, &key.to_pkcs8_pem()?, true)?;
    Ok(key)
}

fn online_keys(cfg: &Config, data_dir: &Path) -> anyhow::Result<OnlineKeys> {
    Ok(OnlineKeys {
        targets: crate::keyfile::read_key(&resolve(data_dir, &cfg.tuf.targets_key))?,
        snapshot: crate::keyfile::read_key(&resolve(data_dir, &cfg.tuf.snapshot_key))?,
        timestamp: crate::keyfile::read_key(&resolve(data_dir, &cfg.tuf.timestamp_key))?,
    })
}

/// The public keys of the configured online keys.
pub fn online_public_keys(cfg: &Config, data_dir: &Path) -> anyhow::Result<OnlinePublicKeys> {
    let k = online_keys(cfg, data_dir)?;
    Ok(OnlinePublicKeys {
        targets: k.targets.public_key(),
        snapshot: k.snapshot.public_key(),
        timestamp: k.timestamp.public_key(),
    })
}

/// `init`'s part: the four keys and `1.root.json`, unless present. The root key is read only
/// when there is no root yet, so it can live offline afterwards.
pub fn ensure(cfg: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let online = OnlinePublicKeys {
        targets: ensure_key(&resolve(data_dir, &cfg.tuf.targets_key))?.public_key(),
        snapshot: ensure_key(&resolve(data_dir, &cfg.tuf.snapshot_key))?.public_key(),
        timestamp: ensure_key(&resolve(data_dir, &cfg.tuf.timestamp_key))?.public_key(),
    };
    let repo = repo_dir(cfg, data_dir);
    if !metadata::root_versions(&repo)?.is_empty() {
        return Ok(());
    }
    let root_key = ensure_key(&resolve(data_dir, &cfg.tuf.root_key))?;
    root::ensure_first_root(&repo, &root_key, &online, expiry(cfg).root, now())?;
    Ok(())
}

/// The repository with the configured online keys.
pub fn open(cfg: &Config, data_dir: &Path) -> anyhow::Result<Repository> {
    let dir = repo_dir(cfg, data_dir);
    metadata::latest_root(&dir).context("tuf.enabled is set but the repository has no root (run `sigil-server init`, or set tuf.enabled = false)")?;
    Ok(Repository::new(
        dir,
        online_keys(cfg, data_dir)?,
        expiry(cfg),
    ))
}

/// The target files for a trust state: the same bytes `/api/v1/trust/*` serves.
pub fn targets(trust: &TrustInputs) -> [(&'static str, Vec<u8>); 2] {
    [
        (TRUSTED_ROOT_TARGET, pretty(&trust.trusted_root())),
        (SIGNING_CONFIG_TARGET, pretty(&trust.signing_config())),
    ]
}

/// Publishes the trust state's targets (a new targets version when they changed) and signs
/// whatever else is due.
pub fn publish(repo: &Repository, trust: &TrustInputs) -> anyhow::Result<repository::Signed3> {
    let t = targets(trust);
    let list: Vec<(&str, &[u8])> = t.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let done = repo.update(Some(&list), now())?;
    record(repo, &done);
    Ok(done)
}

fn record(repo: &Repository, done: &repository::Signed3) {
    for (role, v) in [
        ("targets", done.targets),
        ("snapshot", done.snapshot),
        ("timestamp", done.timestamp),
    ] {
        if let Some(v) = v {
            crate::metrics::tuf_signed(role);
            tracing::info!(role, version = v, "TUF metadata signed");
        }
    }
    if let Ok(list) = repo.expiries() {
        for (role, unix) in list {
            crate::metrics::set_tuf_expiry(&role.to_string(), unix);
        }
    }
}

/// Copies the repository's files (not its lock file) into `out`, which then serves as the
/// same repository from any static web server or as `file://` URL. Returns the file count.
pub fn export(repo: &Repository, out: &Path) -> anyhow::Result<usize> {
    fn copy(from: &Path, to: &Path, n: &mut usize) -> anyhow::Result<()> {
        std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
        for entry in
            std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let target = to.join(&name);
            if entry.file_type()?.is_dir() {
                copy(&entry.path(), &target, n)?;
            } else {
                let bytes = std::fs::read(entry.path())?;
                metadata::write_atomic(&target, &bytes)?;
                *n += 1;
            }
        }
        Ok(())
    }
    let mut n = 0;
    copy(repo.dir(), out, &mut n)?;
    Ok(n)
}

/// How often the background task looks for metadata to re-sign: a quarter of the shortest
/// lifetime (so a role is re-signed with at least a quarter of its lifetime left), at most a
/// minute.
fn check_interval(e: Expiry) -> Duration {
    let shortest = e.timestamp.min(e.snapshot).min(e.targets);
    Duration::from_millis(u64::try_from(shortest.saturating_mul(250)).unwrap_or(1000))
        .clamp(Duration::from_millis(500), Duration::from_secs(60))
}

/// Re-signs timestamp, snapshot and targets before they expire, for as long as the process
/// runs. Failures are logged and counted (`sigil_tuf_resign_failures_total`) and retried.
pub fn spawn_resigner(repo: Arc<Repository>) -> tokio::task::JoinHandle<()> {
    let interval = check_interval(repo.expiry());
    tokio::spawn(async move {
        let mut warned_root = false;
        loop {
            tokio::time::sleep(interval).await;
            let r = repo.clone();
            let result = tokio::task::spawn_blocking(move || {
                let done = r.update(None, now());
                if let Ok(d) = &done {
                    record(&r, d);
                }
                done
            })
            .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    crate::metrics::tuf_failure("sign");
                    tracing::error!(error = %format!("{e:#}"), "cannot re-sign TUF metadata");
                }
                Err(e) => {
                    crate::metrics::tuf_failure("task");
                    tracing::error!(error = %e, "TUF re-signing task failed");
                }
            }
            // The root is signed offline: say so well before it expires.
            if let Ok(list) = repo.expiries()
                && let Some((_, root_expires)) = list
                    .iter()
                    .find(|(r, _)| *r == tough::schema::RoleType::Root)
            {
                let left = root_expires - now();
                if left < 30 * 86_400 && !warned_root {
                    warned_root = true;
                    tracing::warn!(
                        seconds_left = left,
                        "the TUF root expires soon: sign a new one offline (`sigil-server tuf rotate-root`)"
                    );
                }
            }
        }
    })
}

/// `GET /tuf/{file}` and `GET /tuf/targets/{file}`: the repository's files as they are on disk.
pub fn router(dir: PathBuf) -> Api {
    Api::new()
        .get("/tuf/{file}", metadata_file)
        .get("/tuf/targets/{file}", target_file)
        .with_state(Arc::new(dir))
}

/// A file name the repository can hold: no path separators, no leading dot.
fn safe_name(name: &str) -> Result<&str, AppError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(name)
    } else {
        Err(AppError::bad_request(format!(
            "{name:?} is not a TUF repository file name (letters, digits, '.', '_', '-')"
        )))
    }
}

async fn serve_file(path: PathBuf, name: &str, content_type: &'static str) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            // timestamp.json changes in place; every other file is immutable once written.
            let cache = if name == "timestamp.json" {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || path.is_dir() => {
            AppError::not_found(format!("no such TUF repository file: {name}")).into_response()
        }
        Err(e) => AppError::internal(format!("reading {}: {e}", path.display())).into_response(),
    }
}

async fn metadata_file(
    State(dir): State<Arc<PathBuf>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    match safe_name(&file) {
        Ok(name) => serve_file(dir.join(name), name, "application/json").await,
        Err(e) => e.into_response(),
    }
}

async fn target_file(State(dir): State<Arc<PathBuf>>, UrlPath(file): UrlPath<String>) -> Response {
    match safe_name(&file) {
        Ok(name) => {
            serve_file(
                dir.join("targets").join(name),
                name,
                "application/octet-stream",
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_leave_the_repository() {
        for bad in ["", ".lock", "..", "../keys", "a/b", "a\\b", "%2e%2e"] {
            assert!(safe_name(bad).is_err(), "{bad}");
        }
        for good in ["1.root.json", "timestamp.json", "ab12.trusted_root.json"] {
            assert!(safe_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn checks_are_frequent_enough_for_short_lifetimes() {
        let e = |ts| Expiry {
            root: 1000,
            targets: 1000,
            snapshot: 1000,
            timestamp: ts,
        };
        assert_eq!(check_interval(e(5)), Duration::from_millis(1250));
        assert_eq!(check_interval(e(86_400)), Duration::from_secs(60));
    }
}
