//! `sigil-server backup DIR` and `sigil-server restore DIR`: a consistent snapshot of the
//! database (SQLite `VACUUM INTO`, or `pg_dump` of PostgreSQL, both taken while the server
//! runs) and the data dir's keys, config and trust files. The checkpoint journal is never part
//! of a backup: it is what tells a restored database that is behind what clients hold from a
//! current one (see `log::engine::journal`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What a backup directory holds besides the files.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// RFC 3339.
    pub created: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    /// Each log's size when the snapshot began (the snapshot holds at least these).
    pub logs: Vec<LogHead>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LogHead {
    pub name: String,
    pub size: u64,
}

const FORMAT: &str = "sigil-backup-1";
const MANIFEST: &str = "backup.json";
const SQLITE_FILE: &str = "sigil.db";
const PG_FILE: &str = "database.pgdump";
const FILES: &str = "data";

/// The file of an SQLite URL (`sqlite://path?options`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Writes a backup of the data dir and its database into `dest` (new or empty).
pub async fn backup(cfg: &Config, data_dir: &Path, db_url: &str, dest: &Path) -> Result<Manifest> {
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            dest.display()
        );
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let store = crate::storage::connect_existing(db_url)
        .await
        .with_context(|| format!("cannot open {}", crate::app::redact(db_url)))?;
    let mut logs = Vec::new();
    for name in store.log_names().await? {
        if let Some(row) = store.load_log(&name).await? {
            logs.push(LogHead {
                name,
                size: row.tree_size,
            });
        }
    }
    let database = if is_postgres(db_url) {
        let out = Command::new(pg_tool("pg_dump")?)
            .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(dest.join(PG_FILE))
            .arg("--dbname")
            .arg(db_url)
            .output()
            .context("running pg_dump")?;
        if !out.status.success() {
            bail!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        "postgres"
    } else {
        let file = dest.join(SQLITE_FILE);
        let target = file
            .to_str()
            .context("the backup path is not UTF-8")?
            .replace('\'', "''");
        sqlx::query(&format!("VACUUM INTO '{target}'"))
            .execute(&sqlite_pool(db_url).await?)
            .await
            .context("VACUUM INTO (SQLite online backup)")?;
        "sqlite"
    };
    // Everything else of the data dir but the database files and the journal.
    let skip = skipped(cfg, data_dir, db_url);
    copy_tree(data_dir, &dest.join(FILES), &skip)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created: sigil_core::trust::format_rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        ),
        database: database.into(),
        logs,
    };
    std::fs::write(dest.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    sync_dir(dest)?;
    Ok(manifest)
}

/// Restores a backup into `data_dir` and its database: the files are written over the data
/// dir's (the journal is left as it is), the database is replaced.
pub async fn restore(src: &Path, data_dir: &Path, db_url: &str) -> Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(src.join(MANIFEST))
            .with_context(|| format!("{} is not a backup (no {MANIFEST})", src.display()))?,
    )
    .with_context(|| format!("reading {}", src.join(MANIFEST).display()))?;
    if manifest.format != FORMAT {
        bail!("unknown backup format {:?}", manifest.format);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    match (manifest.database.as_str(), is_postgres(db_url)) {
        ("postgres", true) => {
            let out = Command::new(pg_tool("pg_restore")?)
                .args([
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--dbname",
                ])
                .arg(db_url)
                .arg(src.join(PG_FILE))
                .output()
                .context("running pg_restore")?;
            if !out.status.success() {
                bail!(
                    "pg_restore failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        ("sqlite", false) => {
            let path =
                sqlite_path(db_url).with_context(|| format!("{db_url} names no SQLite file"))?;
            for ext in ["-wal", "-shm"] {
                let side = PathBuf::from(format!("{}{ext}", path.display()));
                if side.exists() {
                    std::fs::remove_file(&side)
                        .with_context(|| format!("removing {}", side.display()))?;
                }
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("restoring");
            std::fs::copy(src.join(SQLITE_FILE), &tmp)
                .with_context(|| format!("copying the database to {}", tmp.display()))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        (kind, _) => bail!(
            "the backup holds a {kind} database, but the configured database is {}",
            crate::app::redact(db_url)
        ),
    }
    copy_tree(&src.join(FILES), data_dir, &[])?;
    sync_dir(data_dir)?;
    Ok(manifest)
}

/// Paths of the data dir a backup leaves out: the SQLite files and the journal.
fn skipped(cfg: &Config, data_dir: &Path, db_url: &str) -> Vec<PathBuf> {
    let mut skip = Vec::new();
    if let Some(db) = sqlite_path(db_url) {
        for ext in ["", "-wal", "-shm", "-journal"] {
            skip.push(PathBuf::from(format!("{}{ext}", db.display())));
        }
    }
    if let Some(j) = crate::log::setup::journal_dir(cfg, data_dir) {
        skip.push(j);
    }
    skip
}

fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        if skip.iter().any(|s| same_path(s, &path)) {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&path, &target, skip)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

async fn sqlite_pool(url: &str) -> Result<sqlx::SqlitePool> {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.create_if_missing(false);
    Ok(sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?)
}

/// A PostgreSQL client tool: on `PATH`, else in the newest `/usr/lib/postgresql/<v>/bin`.
fn pg_tool(name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }) {
        return Ok(p);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((v, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).with_context(|| {
        format!("{name} not found: install the PostgreSQL client tools (apt-get install postgresql-client)")
    })
}
