//! The user journey on `sigil-server up`: the commands `up` prints, run as printed, sign and verify
//! a file; metrics move; and the same with the log and the CA as separate processes on PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sigil_tests::{OidcProvider, Postgres, ServerProcess, free_port, workspace_bin};

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

/// Split a printed command line into words (the banner quotes nothing that needs a shell).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// The banner's placeholders: FILE and FILE.sigstore.json.
fn substitute(word: &str, dir: &Path, file: &Path) -> String {
    match word {
        "FILE" => file.display().to_string(),
        "FILE.sigstore.json" => dir.join("FILE.sigstore.json").display().to_string(),
        other => other.to_string(),
    }
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
    let home = dir.path().join("home");
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

    let file = dir.path().join("FILE");
    std::fs::write(&file, b"an artifact to sign\n").unwrap();
    let certs_before = metric_sum(&base, "sigil_ca_certificates_issued_total").await;
    // `up`'s signing config lists Rekor v2 and the TSA, so `sigil sign-blob` logs there.
    let size_before = metric_sum(&base, "sigil_log_tree_size{log=\"rekor-v2\"}").await;

    let commands: Vec<Vec<String>> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sigil "))
        .map(words)
        .collect();
    assert!(
        commands.len() >= 3,
        "banner lacks sigil commands:\n{banner}"
    );
    let mut verified = false;
    for cmd in &commands {
        let args: Vec<String> = cmd
            .iter()
            .skip(1)
            .map(|w| substitute(w, dir.path(), &file))
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = sigil(&home, &refs);
        assert!(
            ok,
            "`sigil {}` failed:\n{out}\nserver:\n{}",
            refs.join(" "),
            server.output()
        );
        if refs.first() == Some(&"verify-blob") {
            assert!(out.contains("Verified OK"), "{out}");
            verified = true;
        }
    }
    assert!(
        verified,
        "the banner printed no verify-blob command:\n{banner}"
    );

    // A modified file must not verify with the same printed command.
    std::fs::write(&file, b"tampered\n").unwrap();
    let verify = commands
        .iter()
        .find(|c| c.get(1).map(String::as_str) == Some("verify-blob"))
        .unwrap();
    let args: Vec<String> = verify
        .iter()
        .skip(1)
        .map(|w| substitute(w, dir.path(), &file))
        .collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = sigil(&home, &refs);
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
