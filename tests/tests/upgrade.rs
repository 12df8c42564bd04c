//! Upgrades: a database written by the first schema (the `tests/fixtures/schema-1` deployment,
//! SQLite and PostgreSQL) is migrated by `sigil-server migrate`, opened by the current server,
//! serves what it held with valid proofs, takes new entries on top, and checks out with `fsck`;
//! the identities its search index held in plaintext are keyed hashes after the first start,
//! and a search by e-mail still finds them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, anyhow, ensure};
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;
use sigil_tests::{Postgres, free_port, workspace_bin, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_sqlite_deployment_is_migrated_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = server(
        &["restore", fixture().to_str().unwrap()],
        &data,
        "sqlite://sigil.db",
    )
    .unwrap();
    assert!(out.status.success(), "restore: {}", text(&out));
    go_on(&data, "sqlite://sigil.db", 4).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_postgres_deployment_is_migrated_and_goes_on() {
    let pg = Postgres::start().await.unwrap();
    let out = Command::new(psql().unwrap())
        .args(["--quiet", "--set", "ON_ERROR_STOP=1", "--file"])
        .arg(fixture().join("postgres.sql"))
        .arg("--dbname")
        .arg(pg.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "loading the dump: {}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixture().join("data"), &data).unwrap();
    go_on(&data, &pg.url(), 3).await.unwrap();
}

fn fixture() -> PathBuf {
    workspace_root().join("tests/fixtures/schema-1")
}

fn server(args: &[&str], data: &Path, db_url: &str) -> Result<Output> {
    Command::new(workspace_bin("sigil-server")?)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("SIGIL_DATABASE_URL", db_url)
        .output()
        .with_context(|| format!("running sigil-server {}", args.join(" ")))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `migrate`, start, read the old entries with proofs, append, `fsck`.
async fn go_on(data: &Path, db_url: &str, rekor_entries: u64) -> Result<()> {
    let m = server(&["migrate"], data, db_url)?;
    ensure!(m.status.success(), "migrate: {}", text(&m));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let p = LogProcess::start_with_env(data, db_url, port, &[("SIGIL_SERVER_PUBLIC_URL", &url)])
        .await?;
    let http = http_client(4)?;
    let mut log = LogIdentity::fetch(&http, &p.url).await?;
    // The fixture's config names its logs (`[log] origin`), whatever the URL.
    log.name = "sigil-fixture".into();
    let c = LogClient {
        url: p.url.clone(),
        http,
        log,
    };
    let (size, root, _) = c.tree().await?;
    ensure!(
        size == rekor_entries,
        "the Rekor log holds {size} entries, the fixture {rekor_entries}"
    );
    // Every old entry, checked as a client checks it (signature, proof, checkpoint).
    let old = read_all(&c, size).await?;
    ensure!(old.len() as u64 == size);
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    for i in 0..3 {
        let (e, _) = signer.hashedrekord(format!("after the upgrade {i}").as_bytes())?;
        let got = c
            .append(&e)
            .await?
            .map_err(|a| anyhow!("append after the upgrade: {} {}", a.status, a.text))?;
        ensure!(
            got.index == size + i,
            "new entry at {}, want {}",
            got.index,
            size + i
        );
    }
    let (new_size, new_root, _) = c.tree().await?;
    c.check_consistency((size, root), (new_size, new_root))
        .await?;
    // The fixture's index held identities in plaintext; the first start rewrote them as keyed
    // hashes, and a search by e-mail still finds every entry of that signer.
    let found = c
        .post(
            "/api/v1/index/retrieve",
            &serde_json::json!({"email": "developer@sigil.localhost"}),
        )
        .await?;
    ensure!(
        found.status == 200 && found.body.as_array().map(Vec::len) == Some(rekor_entries as usize),
        "search by e-mail after the upgrade: {} {}",
        found.status,
        found.text
    );
    let db = if db_url.starts_with("sqlite") {
        format!("sqlite://{}?mode=ro", data.join("sigil.db").display())
    } else {
        db_url.to_string()
    };
    let plain = index_keys(&db)
        .await?
        .into_iter()
        .filter(|k| k.contains('@'))
        .collect::<Vec<_>>();
    ensure!(plain.is_empty(), "identities left in plaintext: {plain:?}");
    let f = server(&["fsck"], data, db_url)?;
    ensure!(f.status.success(), "fsck: {}", text(&f));
    eprintln!("{}", text(&f).trim());
    Ok(())
}

/// Every key of the search index.
async fn index_keys(db_url: &str) -> Result<Vec<String>> {
    use sqlx::{Connection, Row};
    let sql = "SELECT key FROM search_index";
    Ok(if db_url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(db_url).await?;
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(db_url).await?;
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
}

/// `psql` on PATH, else the newest `/usr/lib/postgresql/<v>/bin/psql`.
fn psql() -> Result<PathBuf> {
    if let Ok(out) = Command::new("sh").args(["-c", "command -v psql"]).output()
        && out.status.success()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return Ok(PathBuf::from(p));
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        anyhow!("psql not found: install postgresql-client (apt-get install postgresql)")
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}
