//! Backup and restore can never fork the log, with `sigil-server log` as a real process on
//! PostgreSQL (`pg_dump`/`pg_restore`) and on SQLite (online backup): a backup taken under
//! write load, more writes, the old backup restored → the server refuses to start, saying why
//! and how to recover → `sigil-server recover` re-appends the missing entries from the
//! checkpoint journal → every checkpoint handed out before, to every client, is consistent with
//! the recovered log, and every acknowledged entry is where it was acknowledged.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;
use sigil_tests::{Postgres, free_port, workspace_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_backup_restored_is_refused_then_recovered_on_postgres() {
    let pg = Postgres::start().await.unwrap();
    run(&pg.url()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_backup_restored_is_refused_then_recovered_on_sqlite() {
    run("sqlite://sigil.db").await.unwrap();
}

fn server(args: &[&str], data: &std::path::Path, db_url: &str) -> Result<Output> {
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

fn entries(n: usize, tag: &str) -> Result<Vec<Value>> {
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    (0..n)
        .map(|i| {
            signer
                .hashedrekord(format!("{tag} {i}").as_bytes())
                .map(|(e, _)| e)
        })
        .collect()
}

/// What clients were told: every acknowledged entry (with the checkpoint it came with).
#[derive(Default)]
struct Told {
    acked: Vec<Checked>,
}

/// `clients` tasks append `work` until it runs out or `stop` is set.
async fn write(
    c: &LogClient,
    work: Vec<Value>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Result<Told> {
    let work = Arc::new(work);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (c, work, next, stop) = (c.clone(), work.clone(), next.clone(), stop.clone());
        tasks.spawn(async move {
            let mut acked = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = work.get(i) else { break };
                match c.append(e).await? {
                    Ok(checked) => acked.push(checked),
                    Err(a) => bail!("append: {} {}", a.status, a.text),
                }
            }
            Ok(acked)
        });
    }
    let mut told = Told::default();
    while let Some(r) = tasks.join_next().await {
        told.acked.extend(r??);
    }
    Ok(told)
}

async fn run(db_url: &str) -> Result<()> {
    let port = free_port();
    let dir = LogProcess::init(port)?;
    let data = dir.path();
    let backup = tempfile::Builder::new().prefix("sigil-backup-").tempdir()?;
    let backup_dir = backup.path().join("b1");
    let mut p = LogProcess::start(data, db_url, port).await?;
    let http = http_client(16)?;
    let log = LogIdentity::fetch(&http, &p.url).await?;
    let c = LogClient {
        url: p.url.clone(),
        http: http.clone(),
        log: log.clone(),
    };

    // A backup in the middle of a write load.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move { write(&c, entries(20_000, "under load")?, 8, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = {
        let (data, db, dest) = (data.to_path_buf(), db_url.to_string(), backup_dir.clone());
        tokio::task::spawn_blocking(move || {
            server(&["backup", dest.to_str().unwrap_or_default()], &data, &db)
        })
        .await??
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut told = load.await??;
    ensure!(
        b.status.success(),
        "backup under load failed:\n{}",
        text(&b)
    );
    eprintln!("backup: {}", text(&b).trim());
    ensure!(
        !backup_dir.join("data").join("journal").exists(),
        "the backup holds the journal"
    );
    // More writes after the backup.
    told.acked.extend(
        write(
            &c,
            entries(300, "after the backup")?,
            4,
            Arc::new(AtomicBool::new(false)),
        )
        .await?
        .acked,
    );
    let (size_before, root_before, _) = c.tree().await?;
    eprintln!(
        "{} entries acknowledged; the log is at {size_before}",
        told.acked.len()
    );

    // Stop, restore the old backup: the server refuses to start.
    p.process.signal("TERM")?;
    p.process.wait_exit(Duration::from_secs(30)).await?;
    let r = server(
        &["restore", backup_dir.to_str().unwrap_or_default()],
        data,
        db_url,
    )?;
    ensure!(r.status.success(), "restore failed:\n{}", text(&r));
    let refused = start_expecting_refusal(data, db_url, port).await?;
    for want in [
        "is behind what clients may hold",
        "sigil-server recover",
        "would fork the log",
    ] {
        ensure!(
            refused.contains(want),
            "the refusal does not say {want:?}:\n{refused}"
        );
    }
    eprintln!("refused: {}", refused.lines().last().unwrap_or_default());

    // Recover from the journal, then start.
    let rec = server(&["recover"], data, db_url)?;
    ensure!(rec.status.success(), "recover failed:\n{}", text(&rec));
    let out = text(&rec);
    let line = out
        .lines()
        .find(|l| l.starts_with("rekor:"))
        .ok_or_else(|| anyhow!("recover names no rekor log:\n{out}"))?;
    let added: u64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("unexpected recover output {line:?}"))?;
    ensure!(added > 0, "recover re-appended nothing: {line}");
    eprintln!("recover: {}", out.trim());
    let p = LogProcess::start(data, db_url, port).await?;
    let c = LogClient {
        url: p.url.clone(),
        http,
        log,
    };
    let (size, root, _) = c.tree().await?;
    ensure!(
        (size, root) == (size_before, root_before),
        "after recovery the log is at {size}, it was at {size_before} (or another root)"
    );

    // Every checkpoint handed out is consistent with the recovered log, and every acknowledged
    // entry is where it was acknowledged.
    let mut heads: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    for a in &told.acked {
        if let Some(r) = heads.insert(a.tree_size, a.root) {
            ensure!(
                r == a.root,
                "two roots were handed out for size {}",
                a.tree_size
            );
        }
    }
    for (s, r) in &heads {
        c.check_consistency((*s, *r), (size, root)).await?;
    }
    let stored = read_all(&c, size).await?;
    for a in &told.acked {
        let e = stored
            .get(a.index as usize)
            .ok_or_else(|| anyhow!("entry {} is gone", a.index))?;
        ensure!(
            e.leaf == a.leaf,
            "entry {} is not the acknowledged one",
            a.index
        );
    }
    eprintln!(
        "{} checkpoints handed out are consistent with the recovered log; {} acknowledged entries in place",
        heads.len(),
        told.acked.len()
    );
    let f = server(&["fsck"], data, db_url)?;
    ensure!(f.status.success(), "fsck after recovery:\n{}", text(&f));
    // And it takes writes again.
    c.append(&entries(1, "after recovery")?[0])
        .await?
        .map_err(|a| anyhow!("append after recovery: {} {}", a.status, a.text))?;
    Ok(())
}

/// Starts `sigil-server log`, which must exit with an error within 60 s; its output.
async fn start_expecting_refusal(
    data: &std::path::Path,
    db_url: &str,
    port: u16,
) -> Result<String> {
    let mut child = Command::new(workspace_bin("sigil-server")?)
        .args(["log", "--data-dir"])
        .arg(data)
        .env("SIGIL_DATABASE_URL", db_url)
        .env("SIGIL_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let since = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            let text = text(&out);
            ensure!(!status.success(), "the server exited 0:\n{text}");
            return Ok(text);
        }
        if since.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            let out = child.wait_with_output()?;
            bail!(
                "the server started on a database restored from an old backup:\n{}",
                text(&out)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
