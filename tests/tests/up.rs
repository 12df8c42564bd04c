//! `sigil-server up`: the README's main job on a fresh data dir, restarts, trust files, metrics,
//! and start-up failures that must be one clear line.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;
use sigil_tests::{ServerProcess, free_port, workspace_bin};

const START: Duration = Duration::from_secs(60);

async fn start_up(data_dir: &Path, port: u16) -> ServerProcess {
    let bin = workspace_bin("sigil-server").unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut p = ServerProcess::spawn(
        &bin,
        [
            "up",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[],
    )
    .unwrap();
    p.wait_for_line("listening on", START).await.unwrap();
    p.wait_for_url(&format!("http://{listen}/readyz"), START)
        .await
        .unwrap();
    p
}

fn banner_value(out: &str, label: &str) -> String {
    out.lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("banner has no {label:?} line:\n{out}"))
        .to_string()
}

async fn get_json(url: &str) -> Value {
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap()
}

#[tokio::test]
async fn up_serves_every_role_and_restarts_with_the_same_trust_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut p = start_up(&data, port).await;
    let out = p.stdout();
    let fingerprint = banner_value(&out, "trust-root fingerprint");
    assert_eq!(fingerprint.len(), 64, "{out}");
    assert!(out.contains(&format!("{base}/api/v1/log")), "{out}");
    assert!(out.contains("sigil sign-blob"), "{out}");
    assert!(out.contains("sigstore --trust-config"), "{out}");
    assert!(p.stderr().contains("development OIDC issuer is ON"));

    // Trust files: served == written, formats as clients expect.
    let served = get_json(&format!("{base}/api/v1/trust/trusted_root.json")).await;
    let written: Value =
        serde_json::from_slice(&std::fs::read(data.join("trust/trusted_root.json")).unwrap())
            .unwrap();
    assert_eq!(served, written);
    assert_eq!(
        served["mediaType"],
        "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    );
    assert_eq!(served["tlogs"][0]["baseUrl"], base.as_str());
    assert_eq!(served["ctlogs"].as_array().unwrap().len(), 1);
    assert_eq!(
        served["certificateAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let written_bytes = std::fs::read(data.join("trust/trusted_root.json")).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&written_bytes)),
        fingerprint
    );
    let ctc = get_json(&format!("{base}/api/v1/trust/client_trust_config.json")).await;
    assert_eq!(ctc["trustedRoot"], served);
    assert_eq!(
        ctc["signingConfig"]["rekorTlogUrls"][0]["majorApiVersion"],
        1
    );
    assert_eq!(
        ctc["signingConfig"]["oidcUrls"][0]["url"],
        format!("{base}/oidc")
    );

    // Dev issuer hands out tokens; the log answers; metrics are exposed.
    let token: Value = reqwest::Client::new()
        .post(format!("{base}/oidc/token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(token["id_token"].as_str().unwrap().split('.').count() == 3);
    let log = get_json(&format!("{base}/api/v1/log")).await;
    let tree_id = log["treeID"].as_str().unwrap().to_string();
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sigil_http_requests_total"), "{metrics}");

    // Graceful stop, restart: same keys, same trust root, same log.
    p.signal("TERM").unwrap();
    let status = p.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "exit {status:?}: {}", p.output());
    let p2 = start_up(&data, port).await;
    assert_eq!(
        banner_value(&p2.stdout(), "trust-root fingerprint"),
        fingerprint
    );
    let log2 = get_json(&format!("{base}/api/v1/log")).await;
    assert_eq!(log2["treeID"].as_str().unwrap(), tree_id);
}

/// Runs `sigil-server` expecting a start-up failure; returns stderr.
async fn expect_failure(args: &[&str], env: &[(&str, &str)]) -> String {
    let bin = workspace_bin("sigil-server").unwrap();
    let mut p = ServerProcess::spawn(&bin, args, env).unwrap();
    let status = p.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert!(
        !status.success(),
        "expected failure for {args:?}: {}",
        p.output()
    );
    let err = p.stderr();
    let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        error_lines.len(),
        1,
        "one clear error line expected:\n{err}"
    );
    err
}

#[tokio::test]
async fn bad_configurations_fail_at_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    // Initialise once so the data dir is complete.
    let bin = workspace_bin("sigil-server").unwrap();
    let out = std::process::Command::new(&bin)
        .args(["init", "--data-dir", d])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let err = expect_failure(
        &["serve", "--data-dir", d],
        &[("SIGIL_SERVER_PUBLIC_URL", "not a url")],
    )
    .await;
    assert!(err.contains("server.public_url"), "{err}");

    let err = expect_failure(
        &["serve", "--data-dir", d],
        &[("SIGIL_DATABASE_URL", "mysql://x")],
    )
    .await;
    assert!(err.contains("database.url"), "{err}");

    let err = expect_failure(
        &["serve", "--data-dir", d],
        &[("SIGIL_LOG_KEY", "keys/missing.pem")],
    )
    .await;
    assert!(err.contains("missing.pem"), "{err}");

    let err = expect_failure(
        &["serve", "--data-dir", d],
        &[("SIGIL_SERVER_LISTEN", "127.0.0.1:99999")],
    )
    .await;
    assert!(err.contains("server.listen"), "{err}");

    // Port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = expect_failure(
        &["serve", "--data-dir", d],
        &[("SIGIL_SERVER_LISTEN", &addr)],
    )
    .await;
    assert!(
        err.contains("cannot listen") && err.contains(&addr),
        "{err}"
    );

    // Unknown key in the config file names the key.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[server]\nlisen = \"x\"\n").unwrap();
    let err = expect_failure(
        &["serve", "--data-dir", d, "--config", cfg.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(err.contains("lisen"), "{err}");

    // An encrypted CA key with the wrong passphrase.
    let enc = dir.path().join("enc");
    let e = enc.to_str().unwrap();
    let out = std::process::Command::new(&bin)
        .args(["init", "--data-dir", e])
        .env("SIGIL_CA_KEY_PASSPHRASE_ENV", "SIGIL_TEST_CA_PASS")
        .env("SIGIL_TEST_CA_PASS", "correct horse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_to_string(enc.join("keys/ca-intermediate.pem")).unwrap();
    assert!(key.contains("ENCRYPTED PRIVATE KEY"), "{key}");
    let err = expect_failure(
        &["serve", "--data-dir", e],
        &[
            ("SIGIL_CA_KEY_PASSPHRASE_ENV", "SIGIL_TEST_CA_PASS"),
            ("SIGIL_TEST_CA_PASS", "wrong"),
        ],
    )
    .await;
    assert!(err.contains("CA keys"), "{err}");

    // A data dir that cannot be created.
    let err = expect_failure(&["up", "--data-dir", "/proc/sigil-cannot-exist/d"], &[]).await;
    assert!(err.contains("cannot create data dir"), "{err}");
}
