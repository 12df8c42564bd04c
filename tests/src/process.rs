//! Binaries of the workspace and the processes tests start from them.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    crate::install_crypto_provider();
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        // Binding port 0 on loopback only fails on a broken host; a fixed high port then makes
        // the test fail later with an "address in use" that points at the real problem.
        .unwrap_or(47_000)
}

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    crate::install_crypto_provider();
    // CARGO_MANIFEST_DIR is tests/ at compile time of this crate.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `target/<profile>/<name>` of the workspace binaries, found from the running test executable
/// (`target/<profile>/deps/<test>-<hash>`).
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    crate::install_crypto_provider();
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut candidates = Vec::new();
    // target/<profile>/deps/<exe> → target/<profile>; also tolerate target/<profile>/<exe>.
    for ancestor in exe.ancestors().skip(1).take(2) {
        candidates.push(ancestor.join(name));
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "binary `{name}` not found (looked at {}): run `cargo build --workspace --bins` first \
         (scripts/test does)",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A child process whose stdout and stderr go to files in its own temp dir; killed on drop.
pub struct ServerProcess {
    name: String,
    child: Child,
    dir: TempDir,
    exited: Option<ExitStatus>,
}

impl ServerProcess {
    /// Spawns `program` with `args` and extra `env` variables.
    pub fn spawn<I, S>(program: &Path, args: I, env: &[(&str, &str)]) -> Result<ServerProcess>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn_command(cmd)
    }

    /// Spawns a prepared command (its stdin is closed, stdout/stderr are captured).
    pub fn spawn_command(mut cmd: Command) -> Result<ServerProcess> {
        crate::install_crypto_provider();
        let name = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sigil-proc-{name}-"))
            .tempdir()
            .context("creating a temp dir for process output")?;
        let stdout = File::create(dir.path().join("stdout.log"))?;
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(ServerProcess {
            name,
            child,
            dir,
            exited: None,
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Both outputs, labelled, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some(status);
        }
        self.exited
    }

    /// Waits until a line of stdout or stderr contains `needle`; returns that line. Fails if the
    /// process exits first or `timeout` passes, with the process output in the error.
    pub async fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            for text in [self.stdout(), self.stderr()] {
                if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                    return Ok(line.to_string());
                }
            }
            if let Some(status) = self.poll_exit() {
                bail!(
                    "{} exited ({status}) before printing {needle:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not print {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `url` answers an HTTP GET with a 2xx status.
    pub async fn wait_for_url(&mut self, url: &str, timeout: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            let last = match client.get(url).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => e.to_string(),
            };
            if let Some(status) = self.poll_exit() {
                bail!(
                    "{} exited ({status}) before {url} answered\n{}",
                    self.name,
                    self.output()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{url} did not answer 2xx within {timeout:?} (last: {last})\n{}",
                    self.output(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal by name (`INT`, `TERM`, `KILL`, ...) with the system `kill`.
    pub fn signal(&mut self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.pid());
        }
        Ok(())
    }

    /// Kills with SIGKILL (a crash: no cleanup in the process) and reaps it.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        self.child.kill().context("SIGKILL")?;
        let status = self.child.wait().context("reaping killed process")?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Waits for the process to exit by itself (e.g. after [`signal`](Self::signal)).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "{} still running after {timeout:?}\n{}",
                    self.name,
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
