//! The user journey: the README's quickstart on a fresh clone with every command `up` prints and
//! every command of the README's journey pasted as written; the commands `up` prints sign and
//! verify a file and metrics move; and the log and the CA as separate processes on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sigil_tests::{
    OidcProvider, Postgres, ServerProcess, free_port, workspace_bin, workspace_root,
};

const START: Duration = Duration::from_secs(60);

fn sigil(home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUST_CONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Where a user pastes commands: a shell in `cwd`, with a `sigil` home of its own and the
/// sigstore-python venv's tools on PATH.
struct Shell {
    cwd: PathBuf,
    home: PathBuf,
    path: String,
    /// Variable assignments pasted so far (`TOKEN=$(...)`, `export X=...`): a terminal keeps
    /// them, so each later command runs after them.
    assignments: std::cell::RefCell<Vec<String>>,
}

impl Shell {
    fn new(cwd: &Path, extra_path: &[PathBuf]) -> Shell {
        std::fs::create_dir_all(cwd).unwrap();
        let venv = sigil_tests::venv_tool("sigstore")
            .unwrap_or_else(|e| panic!("{e:#}"))
            .parent()
            .unwrap()
            .to_path_buf();
        let mut dirs: Vec<PathBuf> = extra_path.to_vec();
        dirs.push(venv);
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        Shell {
            cwd: cwd.to_path_buf(),
            home: cwd.join(".sigil-home"),
            path: std::env::join_paths(dirs)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            assignments: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Runs a pasted command line; (success, stdout + stderr).
    fn paste(&self, line: &str) -> (bool, String) {
        let mut script = self.assignments.borrow().join("\n");
        script.push('\n');
        script.push_str(line);
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(&self.cwd)
            .env("PATH", &self.path)
            .env("SIGIL_HOME", &self.home)
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("SIGIL_TRUST_CONFIG")
            .env_remove("SIGIL_REKOR_VERSION")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let first = line.split_whitespace().next().unwrap_or("");
        let assignment = line.starts_with("export ")
            || (first.contains('=') && !line.contains("&&") && !first.starts_with('-'));
        if out.status.success() && assignment && !line.contains(" sigil ") {
            self.assignments.borrow_mut().push(line.to_string());
        }
        (out.status.success(), text)
    }
}

/// The command lines of the banner's "paste" sections, in order.
fn banner_commands(banner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in banner.lines() {
        if line.starts_with("Sign and verify a file with sigil")
            || line.starts_with("With sigstore-python")
        {
            in_section = true;
        } else if line.trim().is_empty() {
            in_section = false;
        } else if in_section {
            out.push(line.trim().to_string());
        }
    }
    out
}

fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("banner has no {label:?} line:\n{banner}"))
        .to_string()
}

/// Pastes every command the banner printed, in order; each must succeed. Returns when the first
/// signature was verified.
fn paste_banner(shell: &Shell, banner: &str, server: &ServerProcess) -> Instant {
    let commands = banner_commands(banner);
    assert!(
        commands.iter().any(|c| c.contains(" sign-blob "))
            && commands.iter().any(|c| c.starts_with("sigstore ")),
        "the banner lacks sigil or sigstore-python commands:\n{banner}"
    );
    let mut first_verified = None;
    for cmd in &commands {
        let (ok, out) = shell.paste(cmd);
        assert!(ok, "`{cmd}` failed:\n{out}\nserver:\n{}", server.output());
        if cmd.contains(" verify-blob ") {
            assert!(out.contains("Verified OK"), "{out}");
            first_verified.get_or_insert_with(Instant::now);
        }
    }
    first_verified.unwrap_or_else(|| panic!("the banner printed no verify-blob command:\n{banner}"))
}

async fn metric_sum(base: &str, family: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(family) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn commands_printed_by_up_sign_and_verify_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bin = workspace_bin("sigil-server").unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut server = ServerProcess::spawn(
        &bin,
        [
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[],
    )
    .unwrap();
    server.wait_for_line("listening on", START).await.unwrap();
    server
        .wait_for_url(&format!("{base}/readyz"), START)
        .await
        .unwrap();
    let banner = server.stdout();
    // The client the banner names is the one built beside the server, by its absolute path.
    let client = workspace_bin("sigil").unwrap();
    assert!(
        banner.contains(&format!("  {} sign-blob ", client.display())),
        "{banner}"
    );

    let certs_before = metric_sum(&base, "sigil_ca_certificates_issued_total").await;
    // `up`'s signing config lists Rekor v2 and the TSA, so `sigil sign-blob` logs there.
    let size_before = metric_sum(&base, "sigil_log_tree_size{log=\"rekor-v2\"}").await;
    let shell = Shell::new(&dir.path().join("work"), &[]);
    paste_banner(&shell, &banner, &server);

    // A modified file must not verify with the same printed command.
    std::fs::write(shell.cwd.join("sigil-demo.txt"), b"tampered\n").unwrap();
    let verify = banner_commands(&banner)
        .into_iter()
        .find(|c| c.contains(" verify-blob "))
        .unwrap();
    let (ok, out) = shell.paste(&verify);
    assert!(!ok, "a modified file verified:\n{out}");

    // Metrics moved with the signing.
    assert!(metric_sum(&base, "sigil_ca_certificates_issued_total").await > certs_before);
    assert!(metric_sum(&base, "sigil_log_tree_size{log=\"rekor-v2\"}").await > size_before);
    assert!(metric_sum(&base, "sigil_http_requests_total").await > 0.0);
    // A rejected request counts as an error by category.
    let errors_before = metric_sum(&base, "sigil_errors_total").await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/log/entries"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(metric_sum(&base, "sigil_errors_total").await > errors_before);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "sigil_http_request_duration_seconds",
        "sigil_sequencer_batch_size",
        "sigil_sequencer_queue_depth",
        "sigil_errors_total",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}");
    }
}

/// The first ```sh block after `heading` in the README, continuation lines joined.
fn readme_commands(readme: &str, heading: &str) -> Vec<String> {
    let section = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no sh block under {heading:?}"))
        .0;
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                out.push(std::mem::take(&mut pending).trim().to_string());
            }
        }
    }
    out.retain(|l| !l.is_empty());
    out
}

/// A command line without its trailing comment.
fn without_comment(line: &str) -> &str {
    line.split_once("  #").map_or(line, |(c, _)| c).trim()
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's quickstart on a fresh clone, exactly as written: `scripts/up` builds both
/// binaries and starts `up`; every command `up` prints and every command of the README's user
/// journey is pasted in order and must succeed.
///
/// The clone builds as a user's does: the release profile, into its own empty target dir (only
/// cargo's registry cache is shared), so the time printed is a clean release build of the
/// quickstart. What differs from a user's first run: the server listens on a free port rather
/// than 3000 (`SIGIL_SERVER_LISTEN`/`SIGIL_SERVER_PUBLIC_URL`), so the journey's
/// `http://127.0.0.1:3000` and `localhost:5000` (a registry the test starts, holding `app:v1`)
/// are replaced by the real addresses, and `<fingerprint printed by up>` by the fingerprint `up`
/// printed. `scripts/test`, the quickstart's second command, is what runs this test.
#[tokio::test(flavor = "multi_thread")]
async fn readme_quickstart_on_a_fresh_clone() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quickstart: Vec<String> = readme_commands(&readme, "## Quickstart")
        .iter()
        .map(|l| without_comment(l).to_string())
        .collect();
    assert_eq!(
        quickstart,
        ["scripts/up", "scripts/test"],
        "the README's quickstart keeps exactly two set-up commands"
    );
    let journey = readme_commands(&readme, "## The user journey on Sigil");

    // A fresh clone of this commit.
    let tmp = tempfile::Builder::new()
        .prefix("sigil-quickstart-")
        .tempdir()
        .unwrap();
    let clone = tmp.path().join("sigil");
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&root)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    run_checked(
        Command::new("git")
            .args(["clone", "--quiet", "--no-checkout"])
            .arg(&root)
            .arg(&clone),
        "git clone",
    );
    run_checked(
        Command::new("git")
            .args(["checkout", "--quiet", &head])
            .current_dir(&clone),
        "git checkout",
    );

    // Its own target dir: nothing compiled is shared.
    let target = tmp.path().join("target");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let target_s = target.display().to_string();
    let build_started = Instant::now();
    // At the lowest CPU priority: the build shares two cores with the rest of the suite, whose
    // servers have start-up deadlines; the build has none that matters.
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19", "bash", "-c", &quickstart[0]])
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", &target_s)
        .env("SIGIL_SERVER_LISTEN", &listen)
        .env("SIGIL_SERVER_PUBLIC_URL", &base)
        .env("CARGO_TERM_COLOR", "never");
    let mut up = ServerProcess::spawn_command(cmd).unwrap();
    // A clean release build: ~8 minutes on a quiet 2-core machine, more beside other tests.
    up.wait_for_line("listening on", Duration::from_secs(45 * 60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", up.output()));
    up.wait_for_url(&format!("{base}/readyz"), START)
        .await
        .unwrap();
    let ready = Instant::now();
    eprintln!(
        "scripts/up: clean release build and ready in {:.1?}",
        ready - build_started
    );
    let banner = up.stdout();
    assert!(banner.contains(&base), "{banner}");
    let client_dir = target.join("release");
    assert!(
        banner.contains(&format!("{} sign-blob", client_dir.join("sigil").display())),
        "the banner names the client scripts/up built:\n{banner}"
    );

    // Every command up printed, pasted.
    let shell = Shell::new(&tmp.path().join("user"), std::slice::from_ref(&client_dir));
    let verified = paste_banner(&shell, &banner, &up);
    eprintln!(
        "from `up` ready to the first verified signature: {:.1?} (pasting the banner's commands)",
        verified - ready
    );

    // The README's user journey, in order.
    let registry = sigil_tests::DockerRegistry::start().await.unwrap();
    registry
        .push_image("app", "v1", "quickstart image")
        .unwrap();
    let fingerprint = banner_value(&banner, "trust-root fingerprint");
    let journey_shell = Shell::new(&tmp.path().join("journey"), &[client_dir]);
    let mut outputs = Vec::new();
    for line in &journey {
        let cmd = line
            .replace("<fingerprint printed by up>", &fingerprint)
            .replace("http://127.0.0.1:3000", &base)
            .replace("localhost:5000", &registry.host);
        let (ok, out) = journey_shell.paste(&cmd);
        assert!(
            ok,
            "README journey: `{cmd}` failed:\n{out}\nserver:\n{}",
            up.output()
        );
        outputs.push((line.clone(), out));
    }
    let output_of = |prefix: &str| -> &str {
        outputs
            .iter()
            .find(|(l, _)| l.starts_with(prefix))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("the README journey has no `{prefix}`"))
    };
    // The entry sign-blob made (Rekor v2) and the one `sign` made (Rekor v1) are both found
    // without naming a log.
    let search = output_of("sigil log search --artifact f");
    assert!(search.contains(&format!("Rekor v2 log {base}")), "{search}");
    let get = output_of("sigil log get --index 0");
    assert!(
        get.contains(&format!("Found in the Rekor v2 log {base}"))
            && get.contains(&format!("Found in the Rekor v1 log {base}")),
        "{get}"
    );
    assert!(output_of("sigil verify-blob").contains("Verified OK"));
    let and = output_of("sigil log search --email");
    assert_eq!(
        and.lines().filter(|l| l.contains("Rekor v")).count(),
        1,
        "{and}"
    );
}

#[tokio::test]
async fn separate_log_and_ca_processes_on_postgres() {
    let pg = Postgres::start().await.unwrap();
    let oidc = OidcProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let (log_port, ca_port) = (free_port(), free_port());
    let log_url = format!("http://127.0.0.1:{log_port}");
    let ca_url = format!("http://127.0.0.1:{ca_port}");
    let bin = workspace_bin("sigil-server").unwrap();
    let out = Command::new(&bin)
        .args(["init", "--data-dir", d, "--public-url", &log_url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let db = pg.url();
    let log_listen = format!("127.0.0.1:{log_port}");
    let mut log = ServerProcess::spawn(
        &bin,
        ["log", "--data-dir", d],
        &[
            ("SIGIL_DATABASE_URL", &db),
            ("SIGIL_SERVER_LISTEN", &log_listen),
            ("SIGIL_SERVER_PUBLIC_URL", &log_url),
        ],
    )
    .unwrap();
    log.wait_for_url(&format!("{log_url}/readyz"), START)
        .await
        .unwrap();

    let issuers = format!(
        "[{{ issuer_url = \"{}\", type = \"email\" }}]",
        oidc.issuer()
    );
    let ca_listen = format!("127.0.0.1:{ca_port}");
    let mut ca = ServerProcess::spawn(
        &bin,
        ["ca", "--data-dir", d],
        &[
            ("SIGIL_DATABASE_URL", &db),
            ("SIGIL_SERVER_LISTEN", &ca_listen),
            ("SIGIL_SERVER_PUBLIC_URL", &ca_url),
            ("SIGIL_CA_CT_LOG_URL", &log_url),
            ("SIGIL_CA_ISSUERS", &issuers),
            ("SIGIL_TRUST_LOG_URL", &log_url),
            ("SIGIL_TRUST_CA_URL", &ca_url),
        ],
    )
    .unwrap();
    ca.wait_for_url(&format!("{ca_url}/readyz"), START)
        .await
        .unwrap();

    // The CA's process serves trust files naming both services.
    let trust = dir.path().join("trust.json");
    let body = reqwest::get(format!("{ca_url}/api/v1/trust/client_trust_config.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(&trust, &body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["signingConfig"]["caUrls"][0]["url"], ca_url.as_str());
    assert_eq!(
        v["signingConfig"]["rekorTlogUrls"][0]["url"],
        log_url.as_str()
    );
    // The `log` role runs the TSA too: the CA's trust files point there, not at the CA.
    assert_eq!(
        v["signingConfig"]["tsaUrls"][0]["url"],
        format!("{log_url}/api/v1/timestamp")
    );

    let email = "alice@example.com";
    let token = oidc.token("alice", Some(email)).await.unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("artifact");
    std::fs::write(&file, b"two-role artifact\n").unwrap();
    let bundle = dir.path().join("artifact.sigstore.json");
    let (f, b, t) = (
        file.to_str().unwrap(),
        bundle.to_str().unwrap(),
        trust.to_str().unwrap(),
    );
    let (ok, out) = sigil(
        &home,
        &[
            "sign-blob",
            f,
            "--bundle",
            b,
            "--identity-token",
            &token,
            "--trust-config",
            t,
        ],
    );
    assert!(
        ok,
        "sign-blob failed:\n{out}\nlog:\n{}\nca:\n{}",
        log.output(),
        ca.output()
    );
    let (ok, out) = sigil(
        &home,
        &[
            "verify-blob",
            f,
            "--bundle",
            b,
            "--trust-config",
            t,
            "--certificate-identity",
            email,
            "--certificate-oidc-issuer",
            oidc.issuer(),
        ],
    );
    assert!(ok && out.contains("Verified OK"), "{out}");
    let (ok, _) = sigil(
        &home,
        &[
            "verify-blob",
            f,
            "--bundle",
            b,
            "--trust-config",
            t,
            "--certificate-identity",
            "mallory@example.com",
            "--certificate-oidc-issuer",
            oidc.issuer(),
        ],
    );
    assert!(!ok, "a wrong identity verified");
}

#[test]
fn docker_compose_file_validates() {
    let root = sigil_tests::workspace_root();
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--quiet"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("docker-compose is not installed ({e}): apt-get install docker-compose (scripts/test does)"));
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The compose services run the same subcommands and config keys the tests exercise.
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    for needle in [
        "[\"log\"]",
        "[\"ca\"]",
        "SIGIL_DATABASE_URL",
        "SIGIL_CA_CT_LOG_URL",
        "SIGIL_SERVER_LISTEN",
    ] {
        assert!(text.contains(needle), "docker-compose.yml lacks {needle}");
    }
}
