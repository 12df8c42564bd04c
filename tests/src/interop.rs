//! Running independent Sigstore clients (sigstore-python, sigstore-js) and recording a
//! compatibility table.

use std::io::Write;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::workspace_root;

const SETUP_HINT: &str = "run `scripts/test --setup-only` (installs the pinned peers)";

/// A program from the project's Python venv (`.venv/bin/<name>`), e.g. `sigstore`.
pub fn venv_tool(name: &str) -> Result<PathBuf> {
    let path = workspace_root().join(".venv").join("bin").join(name);
    if !path.is_file() {
        bail!(
            "{} not found: the Python venv with tests/python/requirements.txt is missing; {SETUP_HINT}",
            path.display()
        );
    }
    Ok(path)
}

/// `tests/js`, with its npm packages installed (sigstore-js).
pub fn js_dir() -> Result<PathBuf> {
    let dir = workspace_root().join("tests").join("js");
    for pkg in ["sigstore", "@sigstore/cli", "@sigstore/verify"] {
        if !dir.join("node_modules").join(pkg).is_dir() {
            bail!(
                "npm package {pkg} is not installed in {}: {SETUP_HINT} or `npm ci --prefix tests/js`",
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// The outcome of a peer command.
pub struct CmdResult {
    pub command: String,
    pub output: Output,
}

impl CmdResult {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

impl std::fmt::Display for CmdResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The end of a traceback says what went wrong; keep failure messages readable.
        write!(
            f,
            "$ {}\n({})\n--- stdout ---\n{}--- stderr (last {TAIL_LINES} lines) ---\n{}",
            self.command,
            self.output.status,
            tail(&self.stdout()),
            tail(&self.stderr())
        )
    }
}

const TAIL_LINES: usize = 40;

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines
        .get(start..)
        .unwrap_or_default()
        .iter()
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// Runs a command to completion (killing it after `timeout`), capturing its output.
pub async fn run(mut cmd: tokio::process::Command, timeout: Duration) -> Result<CmdResult> {
    let std_cmd = cmd.as_std();
    let command = std::iter::once(std_cmd.get_program())
        .chain(std_cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{command}: still running after {timeout:?}"))?
        .with_context(|| format!("starting {command}"))?;
    Ok(CmdResult { command, output })
}

/// Appends one row (peer × operation × result) to the compatibility results that
/// `scripts/test` prints as a table (`$SIGIL_INTEROP_RESULTS`, default
/// `target/interop/results.jsonl`).
pub fn record_interop(peer: &str, operation: &str, passed: bool) {
    let path = std::env::var_os("SIGIL_INTEROP_RESULTS").map_or_else(
        || {
            workspace_root()
                .join("target")
                .join("interop")
                .join("results.jsonl")
        },
        PathBuf::from,
    );
    let line = serde_json::json!({
        "peer": peer,
        "operation": operation,
        "result": if passed { "pass" } else { "FAIL" },
    });
    // Recording is a report, not a test outcome: an unwritable file must not fail the test.
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{line}");
    }
}
