//! `sigil-bench scale`: a PostgreSQL log filled through the API, decade by decade (10^4, 10^5,
//! … up to `--target`), measured at each: the append rate of the fill, entry + inclusion proof
//! reads (random indexes, many clients: reads/s, p50, p99), consistency-proof latency, the
//! server's resident memory and the database's bytes per entry. Before reading, the entries
//! table and its primary key are read into the OS page cache (`pg_prewarm`), so reads measure
//! a warm server rather than the disk.
//!
//! Everything lives in `--dir` (the PostgreSQL cluster, the server's data dir, the results so
//! far), so a run that stops, or is stopped, resumes where it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey};
use sigil_tests::log::{metrics_text, sample};
use sigil_tests::{KeptPostgres, ServerProcess, free_port, workspace_bin};
use sqlx::Connection;

#[derive(Args, Clone)]
pub struct ScaleArgs {
    /// Fill the log up to this many entries, measuring at every power of ten from 10^4.
    #[arg(long, default_value_t = 10_000_000)]
    target: u64,
    /// Where the PostgreSQL cluster, the server's data dir and the results are kept (a run
    /// resumes from it).
    #[arg(long, default_value = "target/sigil-bench-scale")]
    dir: PathBuf,
    /// Concurrent writers while filling.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Concurrent readers at each decade.
    #[arg(long, default_value_t = 64)]
    read_clients: usize,
    /// Seconds of reading at each decade.
    #[arg(long, default_value_t = 10)]
    read_secs: u64,
    /// The server's `database.pool_size` (its default when not given).
    #[arg(long)]
    pool_size: Option<u32>,
}

/// One decade's measurements.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    size: u64,
    /// Appends/s of the fill up to this decade (of its last resumed part).
    append_rate: f64,
    reads_per_sec: f64,
    read_p50_ms: f64,
    read_p99_ms: f64,
    consistency_p50_ms: f64,
    rss_mib: f64,
    db_bytes_per_entry: f64,
    /// `GET /healthz`/s with the same clients: what this machine's HTTP round trip allows
    /// the load generator and the server together, with no log work at all.
    #[serde(default)]
    http_ceiling: f64,
}

pub async fn bench_scale(args: ScaleArgs) -> Result<()> {
    let bin = workspace_bin("sigil-server")
        .context("build it first: cargo build --release -p sigil-server -p sigil-bench")?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let pg = KeptPostgres::start(&dir.join("pg"), "sigil")
        .await
        .context("starting PostgreSQL")?;
    let data = dir.join("data");
    // One port for the life of the log: its URL names it in checkpoints.
    let port_file = dir.join("port");
    let port: u16 = match std::fs::read_to_string(&port_file) {
        Ok(p) => p.trim().parse()?,
        Err(_) => {
            let p = free_port();
            std::fs::write(&port_file, p.to_string())?;
            p
        }
    };
    let url = format!("http://127.0.0.1:{port}");
    if !data.join("sigil.toml").exists() {
        let out = std::process::Command::new(&bin)
            .args(["init", "--data-dir"])
            .arg(&data)
            .args(["--public-url", &url])
            .output()?;
        if !out.status.success() {
            bail!(
                "sigil-server init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let listen = format!("127.0.0.1:{port}");
    let db = pg.url();
    let data_str = data.to_str().ok_or_else(|| anyhow!("non-UTF-8 dir"))?;
    // The journal keeps checkpoints only here: with entries it would hold the log a second
    // time on this machine's disk.
    let pool = args.pool_size.map(|p| p.to_string());
    let mut env = vec![
        ("SIGIL_DATABASE_URL", db.as_str()),
        ("SIGIL_SERVER_LISTEN", listen.as_str()),
        ("SIGIL_LOG_JOURNAL_ENTRIES", "false"),
        ("RUST_LOG", "warn"),
    ];
    if let Some(p) = &pool {
        env.push(("SIGIL_DATABASE_POOL_SIZE", p.as_str()));
    }
    let mut server = ServerProcess::spawn(&bin, ["log", "--data-dir", data_str], &env)?;
    server
        .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(600))
        .await?;
    let pid = server.pid();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(args.read_clients))
        .timeout(Duration::from_secs(120))
        .build()?;
    let results_file = dir.join("results.json");
    let mut results: BTreeMap<u64, Row> = std::fs::read(&results_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    eprintln!(
        "sigil-server log (pid {pid}) at {url} on {} (load average {})",
        dir.join("pg").display(),
        crate::load_average()
    );

    let key = Arc::new(SigningKey::generate(KeyAlgorithm::EcdsaP256)?);
    let mut decade = 10_000u64;
    while decade <= args.target {
        let size = tree_size(&http, &url).await?;
        let mut append_rate = results.get(&decade).map_or(0.0, |r| r.append_rate);
        if size < decade {
            append_rate = fill(&http, &url, &key, size, decade, args.clients).await?;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = results.entry(decade) {
            eprintln!("measuring at {decade} entries");
            slot.insert(measure(&http, &url, &db, pid, decade, append_rate, &args).await?);
            std::fs::write(&results_file, serde_json::to_vec_pretty(&results)?)?;
        }
        decade = decade.saturating_mul(10);
    }
    print_table(&results);
    Ok(())
}

/// Waits until the server holds the proof summaries of every full tile (what it loads in the
/// background after a start), so that reads are measured as a running server serves them.
async fn wait_for_summaries(http: &reqwest::Client, url: &str, size: u64) -> Result<()> {
    let want = size / 256;
    let started = Instant::now();
    loop {
        let text = metrics_text(http, url).await?;
        let have = sample(&text, "sigil_log_summarised_tiles{log=\"rekor\"}").unwrap_or(0.0) as u64;
        if have >= want {
            if started.elapsed() > Duration::from_secs(1) {
                eprintln!(
                    "  proof summaries of {want} tiles loaded in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the server summarised {have} of {want} full tiles in 600 s");
        }
        eprintln!("  waiting for the server's proof summaries: {have} of {want} tiles");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn tree_size(http: &reqwest::Client, url: &str) -> Result<u64> {
    let v: Value = http
        .get(format!("{url}/api/v1/log"))
        .send()
        .await?
        .json()
        .await?;
    v.get("treeSize")
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no treeSize in {v}"))
}

/// Appends until the log holds `goal` entries; returns the append rate.
async fn fill(
    http: &reqwest::Client,
    url: &str,
    key: &Arc<SigningKey>,
    from: u64,
    goal: u64,
    clients: usize,
) -> Result<f64> {
    let pem = Arc::new(B64.encode(key.public_key().to_pem()));
    let run = crate::rand_tag();
    let next = Arc::new(AtomicU64::new(from));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, key, pem, next, done) = (
            http.clone(),
            key.clone(),
            pem.clone(),
            next.clone(),
            done.clone(),
        );
        let endpoint = format!("{url}/api/v1/log/entries");
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= goal {
                    return Ok::<_, anyhow::Error>(());
                }
                let digest = DigestAlgorithm::Sha256
                    .digest(format!("sigil-bench scale {run} {i}").as_bytes());
                let sig = key.sign_prehashed(DigestAlgorithm::Sha256, &digest)?;
                let body = serde_json::to_vec(&json!({
                    "apiVersion": "0.0.1",
                    "kind": "hashedrekord",
                    "spec": {
                        "data": {"hash": {"algorithm": "sha256", "value": hex::encode(&digest)}},
                        "signature": {"content": B64.encode(&sig), "publicKey": {"content": &*pem}}
                    }
                }))?;
                // 503 (queue full) is retried; anything else but 201 stops the run.
                loop {
                    let status = crate::post(&http, &endpoint, body.clone()).await;
                    match status {
                        201 => break,
                        503 | 0 => tokio::time::sleep(Duration::from_millis(50)).await,
                        s => bail!("append answered HTTP {s}"),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let total = goal - from;
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / start.elapsed().as_secs_f64();
                let eta = (total.saturating_sub(n)) as f64 / rate.max(1.0);
                eprintln!(
                    "  {} of {goal} entries ({rate:.0}/s, {:.0} s to go)",
                    from + n,
                    eta
                );
            }
        })
    };
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
            result = Err(e);
        }
    }
    progress.abort();
    result?;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    eprintln!("filled to {goal} at {rate:.0} appends/s");
    Ok(rate)
}

async fn measure(
    http: &reqwest::Client,
    url: &str,
    db: &str,
    pid: u32,
    decade: u64,
    append_rate: f64,
    args: &ScaleArgs,
) -> Result<Row> {
    let size = tree_size(http, url).await?;
    wait_for_summaries(http, url, size).await?;
    warm_cache(db).await?;
    // Entry + inclusion proof reads at random indexes, `read_clients` at once.
    let deadline = Instant::now() + Duration::from_secs(args.read_secs);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.read_clients {
        let mut conn = crate::raw_http::Conn::open(url).await?;
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1) ^ crate::rand_tag() as u64;
            let mut path = String::new();
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = x % size;
                path.clear();
                std::fmt::Write::write_fmt(
                    &mut path,
                    format_args!("/api/v1/log/entries?logIndex={i}"),
                )?;
                let t = Instant::now();
                let (status, body) = conn.get(&path).await?;
                if status != 200 {
                    bail!("entry {i}: HTTP {status}");
                }
                if !body.windows(14).any(|w| w == b"inclusionProof") {
                    bail!("entry {i} came without its inclusion proof");
                }
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let reads_per_sec = lat.len() as f64 / elapsed;
    // Consistency proofs from random earlier sizes to the current one, one at a time.
    let http_ceiling = ceiling(url, args.read_clients).await?;
    let mut cons = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let first = 1 + x % (size - 1).max(1);
        let t = Instant::now();
        let r = http
            .get(format!(
                "{url}/api/v1/log/proof?firstSize={first}&lastSize={size}"
            ))
            .send()
            .await?;
        if r.status() != 200 {
            bail!("consistency {first}→{size}: HTTP {}", r.status());
        }
        let _ = r.bytes().await?;
        cons.push(t.elapsed());
    }
    cons.sort();
    let mut conn = sqlx::PgConnection::connect(db).await?;
    let db_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await?;
    let row = Row {
        size,
        append_rate,
        reads_per_sec,
        read_p50_ms: ms(pct(&lat, 0.50)),
        read_p99_ms: ms(pct(&lat, 0.99)),
        consistency_p50_ms: ms(pct(&cons, 0.50)),
        rss_mib: rss_kib(pid).unwrap_or(0.0) / 1024.0,
        db_bytes_per_entry: db_bytes as f64 / size as f64,
        http_ceiling,
    };
    eprintln!("  {decade}: {row:?}");
    Ok(row)
}

/// Reads the log's tables and indexes once, so the reads measure a server whose database is in
/// memory (what the OS page cache gives a long-running server that has room for it), not the
/// disk: right after a fill or a restart, random reads at 10^7 entries were disk-bound and
/// varied threefold between runs.
async fn warm_cache(db: &str) -> Result<()> {
    let started = Instant::now();
    let mut conn = sqlx::PgConnection::connect(db).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        .execute(&mut conn)
        .await
        .context("pg_prewarm (PostgreSQL's contrib package) is needed to warm the cache")?;
    let mut blocks = 0i64;
    for rel in ["entries", "entries_pkey"] {
        let n: i64 = sqlx::query_scalar("SELECT pg_prewarm($1::regclass, 'read')")
            .bind(rel)
            .fetch_one(&mut conn)
            .await?;
        blocks += n;
    }
    eprintln!(
        "  read {} MiB of the entries table and index into the page cache in {:.1} s",
        blocks * 8 / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Requests/s of `GET /healthz` from `clients` at once for 5 s.
async fn ceiling(url: &str, clients: usize) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let mut conn = crate::raw_http::Conn::open(url).await?;
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let (status, _) = conn.get("/healthz").await?;
                if !(200..300).contains(&status) {
                    bail!("/healthz: HTTP {status}");
                }
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        n += r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let n = sorted.len();
    if n == 0 {
        return Duration::ZERO;
    }
    let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> Option<f64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn print_table(results: &BTreeMap<u64, Row>) {
    let Some(base) = results.values().next() else {
        return;
    };
    println!();
    println!(
        "| entries | appends/s | entry+proof reads/s | ÷ `/healthz`/s | read p50 | read p99 | p50 ÷ first | consistency p50 | server RSS | DB bytes/entry |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in results.values() {
        println!(
            "| {} | {:.0} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.2}x | {:.2} ms | {:.0} MiB | {:.0} |",
            r.size,
            r.append_rate,
            r.reads_per_sec,
            if r.http_ceiling > 0.0 {
                format!(
                    "{:.2} (of {:.0})",
                    r.reads_per_sec / r.http_ceiling,
                    r.http_ceiling
                )
            } else {
                "–".into()
            },
            r.read_p50_ms,
            r.read_p99_ms,
            r.read_p50_ms / base.read_p50_ms.max(f64::MIN_POSITIVE),
            r.consistency_p50_ms,
            r.rss_mib,
            r.db_bytes_per_entry
        );
    }
    println!("load average after: {}", crate::load_average());
}
