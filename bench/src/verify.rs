//! `sigil-bench verify`: `sigil verify-blob` against `sigstore verify identity` (sigstore-python)
//! on the same Rekor v2 + RFC 3161 bundle, in the same run, for artifacts of several sizes; and
//! the large-file rate as a fraction of this machine's SHA-256 rate (`openssl speed sha256`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use sigil_tests::{SigilStack, venv_tool, workspace_bin};

#[derive(Args, Clone)]
pub struct VerifyArgs {
    /// Artifact sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64 << 10, 1 << 20, 1 << 30])]
    sizes: Vec<u64>,
    /// `sigil verify-blob` runs per size (the median is reported; at most 3 above 64 MiB).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// `sigstore verify identity` runs per size (each starts a Python interpreter).
    #[arg(long, default_value_t = 5)]
    peer_runs: usize,
}

struct Row {
    size: u64,
    sigil: Duration,
    peer: Duration,
}

pub async fn bench_verify(args: VerifyArgs) -> Result<()> {
    let sigil = workspace_bin("sigil")?;
    let sigstore = venv_tool("sigstore")?;
    let stack = SigilStack::up().await.context("starting sigil-server up")?;
    let dir = stack.scratch().to_path_buf();
    let trust = stack.fetch_trust_files(&dir).await?;
    let (token, identity) = stack.dev_token().await?;
    let issuer = stack.dev_issuer();
    eprintln!(
        "sigil {} against sigstore {} (load average {})",
        sigil.display(),
        sigstore.display(),
        crate::load_average()
    );

    let mut rows = Vec::new();
    for &size in &args.sizes {
        let file = dir.join(format!("artifact-{size}"));
        write_artifact(&file, size)?;
        let bundle = dir.join(format!("artifact-{size}.sigstore.json"));
        let out = Command::new(&sigil)
            .arg("sign-blob")
            .arg(&file)
            .arg("--bundle")
            .arg(&bundle)
            .args(["--identity-token", &token])
            .arg("--trust-config")
            .arg(&trust.client_trust_config)
            .output()?;
        if !out.status.success() {
            bail!(
                "sigil sign-blob failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut sigil_cmd = Command::new(&sigil);
        sigil_cmd
            .arg("verify-blob")
            .arg(&file)
            .arg("--bundle")
            .arg(&bundle)
            .args(["--certificate-identity", &identity])
            .args(["--certificate-oidc-issuer", &issuer])
            .arg("--trust-config")
            .arg(&trust.client_trust_config);
        let mut peer_cmd = Command::new(&sigstore);
        peer_cmd
            .arg("--trust-config")
            .arg(&trust.client_trust_config)
            .args(["verify", "identity", "--bundle"])
            .arg(&bundle)
            .args(["--cert-identity", &identity])
            .args(["--cert-oidc-issuer", &issuer])
            .arg(&file);
        let runs = if size > 64 << 20 {
            args.runs.min(3)
        } else {
            args.runs
        };
        let sigil_t = median_time(&mut sigil_cmd, runs)?;
        let peer_t = median_time(&mut peer_cmd, args.peer_runs.max(1))?;
        eprintln!(
            "{}: sigil {:.2} ms, sigstore-python {:.1} ms",
            human(size),
            ms(sigil_t),
            ms(peer_t)
        );
        rows.push(Row {
            size,
            sigil: sigil_t,
            peer: peer_t,
        });
        if size > 64 << 20 {
            std::fs::remove_file(&file).ok();
        }
    }

    let sha = openssl_sha256_rate()?;
    println!();
    println!(
        "| artifact | sigil verify-blob (median) | sigstore verify identity (median) | ratio | sigil MB/s | ÷ openssl SHA-256 ({:.0} MB/s) |",
        sha / 1e6
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let rate = r.size as f64 / r.sigil.as_secs_f64();
        println!(
            "| {} | {:.2} ms | {:.1} ms | **{:.0}x** | {:.0} | {:.2} |",
            human(r.size),
            ms(r.sigil),
            ms(r.peer),
            r.peer.as_secs_f64() / r.sigil.as_secs_f64(),
            rate / 1e6,
            rate / sha
        );
    }
    println!("load average after: {}", crate::load_average());
    Ok(())
}

/// A file of `size` bytes of a repeating non-trivial pattern, written in pieces.
fn write_artifact(path: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let block: Vec<u8> = (0..(1u32 << 16))
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64);
        f.write_all(block.get(..n as usize).unwrap_or_default())?;
        left -= n;
    }
    f.flush()?;
    Ok(())
}

/// Median wall time of `runs` runs of `cmd`, each required to succeed.
fn median_time(cmd: &mut Command, runs: usize) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = cmd.output()?;
        let el = t.elapsed();
        if !out.status.success() {
            bail!(
                "{:?} failed: {}{}",
                cmd.get_program(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        times.push(el);
    }
    times.sort();
    times
        .get(times.len() / 2)
        .copied()
        .context("no runs measured")
}

/// SHA-256 bytes per second on 16 KiB blocks, from `openssl speed` on this machine.
fn openssl_sha256_rate() -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "2", "-bytes", "16384", "sha256"])
        .output()
        .context("running openssl speed (install the openssl package)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line: `sha256  <rate>k` (thousands of bytes per second).
    let rate = text
        .lines()
        .rev()
        .find(|l| l.starts_with("sha256"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.trim_end_matches('k').parse::<f64>().ok())
        .context("could not read the rate from openssl speed")?;
    Ok(rate * 1000.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn human(size: u64) -> String {
    match size {
        s if s >= 1 << 30 && s % (1 << 30) == 0 => format!("{} GiB", s >> 30),
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}
