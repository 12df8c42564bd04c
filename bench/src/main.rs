//! `sigil-bench`: load generators that print a table.
//!
//! `sigil-bench log` measures durable hashedrekord appends against `sigil-server log` on
//! PostgreSQL: entries are signed before the clock starts (the server's work is measured, not the
//! generator's), N keep-alive clients post them, and the same run measures the ECDSA P-256
//! verify rate of this machine as the ceiling the log is compared with. `sigil-bench verify`
//! compares `sigil verify-blob` with sigstore-python on the same bundles (see `verify.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Parser, Subcommand};

mod raw_http;
mod scale;
mod verify;
use serde_json::json;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey};
use sigil_tests::log::batch_stats;
use sigil_tests::{Postgres, ServerProcess, free_port, workspace_bin};

#[derive(Parser)]
#[command(name = "sigil-bench", about = "Sigil benchmarks; each prints a table")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append rate and latency of the transparency log on PostgreSQL.
    Log(LogArgs),
    /// `sigil verify-blob` vs `sigstore verify identity` on the same bundle, per artifact size.
    Verify(verify::VerifyArgs),
    /// A PostgreSQL log filled to 10^7 entries through the API (resumable), measured at each
    /// power of ten: append rate, entry + proof reads, consistency proofs, RSS, bytes/entry.
    Scale(scale::ScaleArgs),
}

#[derive(Args, Clone)]
struct LogArgs {
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Entries appended in the measured closed-loop run.
    #[arg(long, default_value_t = 30_000)]
    entries: usize,
    /// Entries appended before measuring (connections, caches, JIT-free but warm pools).
    #[arg(long, default_value_t = 3_000)]
    warmup: usize,
    /// Then an open-loop run at this many entries/s, for latency at a fixed rate (0: skip).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Duration of the open-loop run in seconds.
    #[arg(long, default_value_t = 5)]
    rate_secs: u64,
    /// Use an already running log at this base URL instead of starting PostgreSQL and
    /// `target/release/sigil-server log` (DATABASE_URL, when set, is used for the database).
    #[arg(long)]
    url: Option<String>,
    /// Sequencer batch limit passed to the server (SIGIL_LOG_MAX_BATCH).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Sequencer wait passed to the server (SIGIL_LOG_MAX_WAIT_MS).
    #[arg(long)]
    max_wait_ms: Option<u64>,
    /// Seconds of the single-core ECDSA verify loop.
    #[arg(long, default_value_t = 3)]
    verify_secs: u64,
}

fn main() -> std::process::ExitCode {
    // reqwest has no TLS provider of its own: aws-lc-rs, as in the rest of the workspace.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    sigil_tests::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Log(args) => bench_log(args).await,
            Command::Verify(args) => verify::bench_verify(args).await,
            Command::Scale(args) => scale::bench_scale(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Signed hashedrekord entries, serialised: the generator only sends bytes.
fn signed_entries(n: usize) -> Result<Vec<Vec<u8>>> {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let pem = B64.encode(key.public_key().to_pem());
    let run = rand_tag();
    (0..n)
        .map(|i| {
            let digest =
                DigestAlgorithm::Sha256.digest(format!("sigil-bench {run} {i}").as_bytes());
            let sig = key.sign_prehashed(DigestAlgorithm::Sha256, &digest)?;
            Ok(serde_json::to_vec(&json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(&digest)}},
                    "signature": {"content": B64.encode(&sig), "publicKey": {"content": pem}}
                }
            }))?)
        })
        .collect()
}

pub(crate) fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// ECDSA P-256 verifications per second on one core with aws-lc-rs: the server verifies one
/// signature per entry, so this is the ceiling of a one-core log.
fn verify_ceiling(secs: u64) -> Result<f64> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow!("P-256 key generation failed"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow!("P-256 key rejected"))?;
    let msg = b"sigil-bench verify ceiling";
    let sig = key.sign(&rng, msg).map_err(|_| anyhow!("signing failed"))?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        for _ in 0..64 {
            public
                .verify(msg, sig.as_ref())
                .map_err(|_| anyhow!("verify failed"))?;
        }
        n += 64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// A log server this benchmark started (kept alive until dropped).
struct Started {
    url: String,
    process: ServerProcess,
    _pg: Postgres,
    _dir: tempfile::TempDir,
}

async fn start_server(args: &LogArgs) -> Result<Started> {
    let bin = workspace_bin("sigil-server")
        .context("build it first: cargo build --release -p sigil-server -p sigil-bench")?;
    let pg = Postgres::start().await.context("starting PostgreSQL")?;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::Builder::new().prefix("sigil-bench-").tempdir()?;
    let out = std::process::Command::new(&bin)
        .arg("init")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--public-url")
        .arg(&url)
        .output()
        .context("sigil-server init")?;
    if !out.status.success() {
        bail!(
            "sigil-server init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let data = dir
        .path()
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 temp dir"))?;
    let listen = format!("127.0.0.1:{port}");
    let db = pg.url();
    let max_batch = args.max_batch.map(|n| n.to_string());
    let max_wait = args.max_wait_ms.map(|n| n.to_string());
    let mut env: Vec<(&str, &str)> = vec![
        ("SIGIL_DATABASE_URL", &db),
        ("SIGIL_SERVER_LISTEN", &listen),
        ("RUST_LOG", "warn"),
    ];
    if let Some(b) = &max_batch {
        env.push(("SIGIL_LOG_MAX_BATCH", b));
    }
    if let Some(w) = &max_wait {
        env.push(("SIGIL_LOG_MAX_WAIT_MS", w));
    }
    let mut process = ServerProcess::spawn(&bin, ["log", "--data-dir", data], &env)?;
    process
        .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
        .await?;
    Ok(Started {
        url,
        process,
        _pg: pg,
        _dir: dir,
    })
}

/// Results of one run.
struct Run {
    created: usize,
    conflicts: usize,
    unavailable: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Closed loop: `clients` tasks each post the next entry as soon as their previous one is answered.
async fn closed_loop(
    http: &reqwest::Client,
    url: &str,
    entries: Arc<Vec<Vec<u8>>>,
    clients: usize,
) -> Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, entries, next) = (http.clone(), entries.clone(), next.clone());
        let endpoint = format!("{url}/api/v1/log/entries");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = entries.get(i) else { break };
                let t = Instant::now();
                let status = post(&http, &endpoint, body.clone()).await;
                lat.push(t.elapsed());
                *codes.entry(status).or_default() += 1;
            }
            (lat, codes)
        }));
    }
    let mut run = Run {
        created: 0,
        conflicts: 0,
        unavailable: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(entries.len()),
    };
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (lat, c) = t.await?;
        run.latencies.extend(lat);
        for (k, v) in c {
            *codes.entry(k).or_default() += v;
        }
    }
    run.elapsed = start.elapsed();
    tally(&mut run, &codes);
    run.latencies.sort();
    Ok(run)
}

/// Open loop: one request every 1/rate s whatever the answers, for `secs` seconds.
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    entries: Arc<Vec<Vec<u8>>>,
    rate: u64,
    secs: u64,
) -> Result<Run> {
    let total = usize::try_from(rate * secs)
        .unwrap_or(usize::MAX)
        .min(entries.len());
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let endpoint = format!("{url}/api/v1/log/entries");
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        ticker.tick().await;
        let Some(body) = entries.get(i).cloned() else {
            break;
        };
        let (http, endpoint) = (http.clone(), endpoint.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let status = post(&http, &endpoint, body).await;
            (t.elapsed(), status)
        }));
    }
    let mut run = Run {
        created: 0,
        conflicts: 0,
        unavailable: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(total),
    };
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (lat, status) = t.await?;
        run.latencies.push(lat);
        *codes.entry(status).or_default() += 1;
    }
    run.elapsed = start.elapsed();
    tally(&mut run, &codes);
    run.latencies.sort();
    Ok(run)
}

pub(crate) async fn post(http: &reqwest::Client, endpoint: &str, body: Vec<u8>) -> u16 {
    match http
        .post(endpoint)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

fn tally(run: &mut Run, codes: &BTreeMap<u16, usize>) {
    for (code, n) in codes {
        match code {
            201 => run.created += n,
            409 => run.conflicts += n,
            503 => run.unavailable += n,
            _ => run.errors += n,
        }
    }
    if run.errors > 0 {
        eprintln!("warning: unexpected answers {codes:?}");
    }
}

/// The 1-minute load average: on a shared machine, how much else wanted the cores.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds (user + system) so far of: the server process, every `postgres` process, and us.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    postgres: f64,
    generator: f64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_cpu(pid_dir: &Path, ticks: f64) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(pid_dir.join("stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / ticks))
}

fn cpu_now(server_pid: Option<u32>, ticks: f64) -> Cpu {
    let mut cpu = Cpu::default();
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return cpu;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some((comm, secs)) = proc_cpu(&entry.path(), ticks) else {
            continue;
        };
        if Some(pid) == server_pid {
            cpu.server += secs;
        } else if pid == me {
            cpu.generator += secs;
        } else if comm == "postgres" {
            cpu.postgres += secs;
        }
    }
    cpu
}

async fn bench_log(args: LogArgs) -> Result<()> {
    let rate_entries = usize::try_from(args.rate * args.rate_secs).unwrap_or(0);
    let total = args.warmup + args.entries + rate_entries;
    eprintln!("signing {total} hashedrekord entries (before the clock starts)...");
    let mut all = signed_entries(total)?;
    let rate_set = Arc::new(all.split_off(args.warmup + args.entries));
    let main_set = Arc::new(all.split_off(args.warmup));
    let warm_set = Arc::new(all);

    eprintln!(
        "measuring the ECDSA P-256 verify ceiling ({} s, one core)...",
        args.verify_secs
    );
    let verify_rate = verify_ceiling(args.verify_secs)?;

    let started = match &args.url {
        Some(_) => None,
        None => Some(start_server(&args).await?),
    };
    let (url, server_pid) = match (&args.url, &started) {
        (Some(u), _) => (u.trim_end_matches('/').to_string(), None),
        (None, Some(s)) => (s.url.clone(), Some(s.process.pid())),
        (None, None) => bail!("no server"),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(1))
        .timeout(Duration::from_secs(60))
        .build()?;

    eprintln!("warm-up: {} entries...", warm_set.len());
    let warm = closed_loop(&http, &url, warm_set, args.clients).await?;
    if warm.created == 0 {
        bail!("the log accepted nothing during warm-up: is {url} a Sigil log?");
    }

    let ticks = clock_ticks();
    let load_before = load_average();
    let (b0, s0) = batch_stats(&http, &url).await?;
    let cpu0 = cpu_now(server_pid, ticks);
    eprintln!(
        "measured run: {} entries, {} clients...",
        main_set.len(),
        args.clients
    );
    let run = closed_loop(&http, &url, main_set, args.clients).await?;
    let cpu1 = cpu_now(server_pid, ticks);
    let load_after = load_average();
    let (b1, s1) = batch_stats(&http, &url).await?;

    let at_rate = if rate_entries > 0 {
        eprintln!(
            "open loop: {} entries/s for {} s...",
            args.rate, args.rate_secs
        );
        Some(open_loop(&http, &url, rate_set, args.rate, args.rate_secs).await?)
    } else {
        None
    };

    let throughput = run.created as f64 / run.elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let batches = b1 - b0;
    let mean_batch = if batches > 0.0 {
        (s1 - s0) / batches
    } else {
        0.0
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let wall = run.elapsed.as_secs_f64();

    println!();
    println!(
        "sigil-bench log: hashedrekord appends, durable on PostgreSQL, {} clients",
        args.clients
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| entries appended (201) | {} of {} ({} 409, {} 503, {} other) |",
        run.created,
        run.latencies.len(),
        run.conflicts,
        run.unavailable,
        run.errors
    );
    println!("| wall time | {:.2} s |", wall);
    println!("| **append rate** | **{throughput:.0} entries/s** |");
    println!(
        "| latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        ms(run.percentile(0.50)),
        ms(run.percentile(0.99)),
        ms(run.percentile(1.0))
    );
    println!("| sequencer batches / mean size | {batches:.0} / {mean_batch:.1} entries |");
    println!(
        "| ECDSA P-256 verify, aws-lc-rs, 1 core (ceiling) | {verify_rate:.0} /s ({:.0} /s on {cores} cores) |",
        verify_rate * cores as f64
    );
    println!(
        "| **append rate / 1-core verify ceiling** | **{:.2}** ({:.2} of all cores) |",
        throughput / verify_rate,
        throughput / (verify_rate * cores as f64)
    );
    if server_pid.is_some() {
        let (sv, pg, gen_) = (
            cpu1.server - cpu0.server,
            cpu1.postgres - cpu0.postgres,
            cpu1.generator - cpu0.generator,
        );
        println!(
            "| CPU: server / PostgreSQL / generator | {sv:.1} / {pg:.1} / {gen_:.1} s ({:.0}% / {:.0}% / {:.0}% of {cores} cores) |",
            100.0 * sv / (wall * cores as f64),
            100.0 * pg / (wall * cores as f64),
            100.0 * gen_ / (wall * cores as f64)
        );
        println!(
            "| CPU per entry: server / PostgreSQL | {:.0} / {:.0} µs |",
            1e6 * sv / run.created.max(1) as f64,
            1e6 * pg / run.created.max(1) as f64
        );
    }
    println!(
        "| machine load (1-min load average, {cores} cores) before / after | {load_before} / {load_after} |"
    );
    if let Some(r) = &at_rate {
        println!(
            "| open loop at {} entries/s: achieved | {:.0} entries/s ({} of {} created) |",
            args.rate,
            r.created as f64 / r.elapsed.as_secs_f64(),
            r.created,
            r.latencies.len()
        );
        println!(
            "| open loop latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
            ms(r.percentile(0.50)),
            ms(r.percentile(0.99)),
            ms(r.percentile(1.0))
        );
    }
    drop(started);
    Ok(())
}
