//! Reads from a real PostgreSQL streaming standby (a second cluster made with `pg_basebackup
//! -R` from the system binaries), with `sigil-server log` as a process configured with
//! `database.read_url`: reads are served from the standby (entries and proofs with the primary
//! stopped; a checkpoint the primary has already passed) and say so in `X-Sigil-Read-Source`; with replay paused, once the
//! standby is more than the lag bound behind, reads come from the primary, or get a 503 when
//! falling back is turned off; resumed, the standby serves again.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use serde_json::Value;
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;
use sigil_tests::{Postgres, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_a_streaming_standby_within_the_lag_bound() {
    run().await.unwrap();
}

/// GET /api/v1/log: (HTTP status, read source header, tree size).
async fn log_info(http: &reqwest::Client, url: &str) -> Result<(u16, String, u64, Value)> {
    let r = http.get(format!("{url}/api/v1/log")).send().await?;
    let status = r.status().as_u16();
    let source = r
        .headers()
        .get("x-sigil-read-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = r.json().await?;
    let size = body.get("treeSize").and_then(Value::as_u64).unwrap_or(0);
    Ok((status, source, size, body))
}

/// Polls until `want` holds for the answer, or fails after `within`.
async fn until(
    http: &reqwest::Client,
    url: &str,
    within: Duration,
    what: &str,
    want: impl Fn(u16, &str, u64) -> bool,
) -> Result<Duration> {
    let since = Instant::now();
    loop {
        let (status, source, size, body) = log_info(http, url).await?;
        if want(status, &source, size) {
            return Ok(since.elapsed());
        }
        ensure!(
            since.elapsed() < within,
            "{what}: still {status} from {source:?} at size {size} after {} ms: {body}",
            since.elapsed().as_millis()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn append(c: &LogClient, signer: &Signer, n: usize, tag: &str) -> Result<u64> {
    let mut size = 0;
    for i in 0..n {
        let (e, _) = signer.hashedrekord(format!("{tag} {i}").as_bytes())?;
        let got = c
            .append(&e)
            .await?
            .map_err(|a| anyhow!("append: {} {}", a.status, a.text))?;
        size = size.max(got.tree_size);
    }
    Ok(size)
}

async fn run() -> Result<()> {
    let pg = Postgres::start_dedicated().await?;
    let standby = pg.start_standby().await?;
    let (port_a, port_b) = (free_port(), free_port());
    let dir = LogProcess::init(port_a)?;
    let read_url = standby.url();
    let a = LogProcess::start_with_env(
        dir.path(),
        &pg.url(),
        port_a,
        &[
            ("SIGIL_DATABASE_READ_URL", &read_url),
            ("SIGIL_DATABASE_REPLICA_MAX_LAG_MS", "1000"),
        ],
    )
    .await?;
    // A second process that answers 503 rather than read the primary.
    let b = LogProcess::start_with_env(
        dir.path(),
        &pg.url(),
        port_b,
        &[
            ("SIGIL_DATABASE_READ_URL", &read_url),
            ("SIGIL_DATABASE_REPLICA_MAX_LAG_MS", "1000"),
            ("SIGIL_DATABASE_REPLICA_FALLBACK", "false"),
        ],
    )
    .await?;
    let http = http_client(4)?;
    let log = LogIdentity::fetch(&http, &a.url).await?;
    let c = LogClient {
        url: a.url.clone(),
        http: http.clone(),
        log,
    };
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;

    // Written through the primary, read from the standby once it has replayed them.
    let size = append(&c, &signer, 300, "first").await?;
    let t = until(
        &http,
        &a.url,
        Duration::from_secs(10),
        "caught up",
        |s, src, n| s == 200 && src == "replica" && n == size,
    )
    .await?;
    eprintln!(
        "the standby served size {size} {} ms after the last write",
        t.as_millis()
    );
    // Entries and proofs too, from the standby alone: with the primary stopped, every entry is
    // still read, with its proof, and the answers say the standby served them.
    pg.stop_server()?;
    let all = read_all(&c, size).await?;
    ensure!(all.len() as u64 == size);
    let (status, source, _, body) = log_info(&http, &a.url).await?;
    ensure!(
        status == 200 && source == "replica",
        "with the primary stopped: {status} from {source:?}: {body}"
    );
    pg.start_server()?;

    // Replay paused: the primary moves on, the standby serves its old checkpoint (proof that
    // reads come from it) until it is more than a second behind, then the primary serves.
    standby.pause_replay().await?;
    let paused_at = size;
    let first_write = Instant::now();
    let size = append(&c, &signer, 5, "while paused").await?;
    let (status, source, seen, _) = log_info(&http, &a.url).await?;
    ensure!(
        status == 200 && source == "replica" && seen == paused_at,
        "right after the write: {status} from {source:?} at size {seen}, want the standby's {paused_at}"
    );
    until(
        &http,
        &a.url,
        Duration::from_secs(5),
        "fallback",
        |s, src, n| s == 200 && src == "primary" && n == size,
    )
    .await?;
    // The standby is behind from the first write after the pause at the earliest.
    let t = first_write.elapsed();
    eprintln!(
        "replay paused: the primary served size {size} {} ms after the first write the standby lacks (bound 1000 ms)",
        t.as_millis()
    );
    ensure!(
        t >= Duration::from_millis(1000),
        "the primary took over {} ms after the first write, before the 1000 ms bound",
        t.as_millis()
    );
    // Without fallback: 503, saying why.
    let t = until(&http, &b.url, Duration::from_secs(5), "503", |s, _, _| {
        s == 503
    })
    .await?;
    let r = http
        .get(format!("{}/api/v1/log/proof?firstSize=1&lastSize=2", b.url))
        .send()
        .await?;
    ensure!(r.status().as_u16() == 503, "a proof from B: {}", r.status());
    let body: Value = r.json().await?;
    let msg = body.get("message").and_then(Value::as_str).unwrap_or("");
    ensure!(
        msg.contains("behind the primary"),
        "the 503 does not say why: {body}"
    );
    eprintln!("without fallback: 503 after {} ms: {msg}", t.as_millis());
    let metrics = http
        .get(format!("{}/metrics", a.url))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains("sigil_log_reads_total{source=\"primary\"}")
            && metrics.contains("sigil_log_reads_total{source=\"replica\"}"),
        "the read metrics do not count both sources"
    );

    // Replay resumed: the standby catches up and serves again.
    standby.resume_replay().await?;
    until(
        &http,
        &a.url,
        Duration::from_secs(10),
        "resumed",
        |s, src, n| s == 200 && src == "replica" && n == size,
    )
    .await?;
    until(
        &http,
        &b.url,
        Duration::from_secs(10),
        "resumed B",
        |s, src, n| s == 200 && src == "replica" && n == size,
    )
    .await?;
    Ok(())
}
