//! `sigil monitor` against `sigil-server up`: with a watch list, one entry signed as the
//! watched identity gives exactly one finding among 10,000 entries signed by other keys; a
//! second pass reports nothing new; killed with SIGKILL in the middle of a pass and run again,
//! it neither misses nor repeats a finding; and a copy of the log that took a different entry
//! at the same index (a fork) is reported as a split view, with a non-zero exit, both against
//! the log's own URL and against the checkpoint a witness cosigned. The monitor's
//! read rate is printed beside the log's append rate measured in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_tests::log::Signer;
use sigil_tests::{ServerProcess, SigilStack, free_port, workspace_bin};

fn sigil(home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn lines(o: &Output, kind: &str) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Appends `n` hashedrekord entries signed by fresh keys, 16 at a time; returns entries/s.
async fn append(url: &str, n: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let url = format!("{url}/api/v1/log/entries");
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let signer = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
            for i in (t..n).step_by(16) {
                let (entry, _) = signer
                    .hashedrekord(format!("other entry {i} {}", rand_suffix()).as_bytes())
                    .unwrap();
                let r = http.post(&url).json(&entry).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_reports_watched_identities_once_and_detects_a_fork() {
    let stack = SigilStack::up().await.unwrap();
    let url = stack.url().to_owned();
    let d = stack.scratch().to_path_buf();
    let home = d.join("home");
    let state = d.join("monitor.json");
    let state_s = state.to_str().unwrap().to_owned();
    assert!(
        sigil(&home, &d, &["trust", "init", "--url", &url])
            .status
            .success()
    );
    let sign_watched = |name: &str| {
        std::fs::write(d.join(name), name.as_bytes()).unwrap();
        let out = sigil(
            &home,
            &d,
            &[
                "sign-blob",
                name,
                "--bundle",
                &format!("{name}.json"),
                "--rekor-version",
                "1",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert!(
        sigil(&home, &d, &["login", "--issuer", &stack.dev_issuer()])
            .status
            .success(),
        "sigil login"
    );

    let appended_rate = append(&url, 5_000).await;
    sign_watched("watched-1.txt");
    let appended_rate = (appended_rate + append(&url, 5_000).await) / 2.0;
    let monitor = |extra: &[&str]| {
        let mut args = vec![
            "monitor",
            "--log",
            &url,
            "--state",
            &state_s,
            "--watch-identity",
            "developer@*",
            "--watch-issuer",
            "https://nowhere.example/*",
        ];
        args.extend_from_slice(extra);
        sigil(&home, &d, &args)
    };
    // Findings go to a webhook too.
    let hooked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = hooked.clone();
    let hook = sigil_tests::ca::serve(axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    ))
    .await;
    let hook_url = format!("{hook}/hook");
    let start = Instant::now();
    let out = monitor(&["--once", "--webhook", &hook_url]);
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = lines(&out, "finding");
    assert_eq!(
        findings.len(),
        1,
        "exactly one finding among 10,001 entries: {findings:?}"
    );
    assert_eq!(findings[0]["identities"][0], "developer@sigil.localhost");
    assert_eq!(
        *hooked.lock().unwrap(),
        findings,
        "the webhook got the same finding"
    );
    let cp = lines(&out, "checkpoint");
    let read = cp[0]["entriesRead"].as_u64().unwrap();
    assert!(read >= 10_001, "{cp:?}");
    println!(
        "monitor read {read} entries in {secs:.2} s: {:.0} entries/s, vs {appended_rate:.0} appended/s ({:.2}x)",
        read as f64 / secs,
        read as f64 / secs / appended_rate
    );
    let again = monitor(&["--once"]);
    assert!(again.status.success());
    assert!(
        lines(&again, "finding").is_empty(),
        "a second pass reports nothing new"
    );

    // The Rekor v2 log, read from its tiles: the one watched entry signed to it is reported.
    std::fs::write(d.join("watched-v2.txt"), b"v2 watched").unwrap();
    let out = sigil(
        &home,
        &d,
        &[
            "sign-blob",
            "watched-v2.txt",
            "--bundle",
            "watched-v2.json",
            "--rekor-version",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state_v2 = d.join("monitor-v2.json");
    let out = sigil(
        &home,
        &d,
        &[
            "monitor",
            "--log-v2",
            &url,
            "--state",
            state_v2.to_str().unwrap(),
            "--once",
            "--watch-identity",
            "developer@*",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v2_findings = lines(&out, "finding");
    assert_eq!(v2_findings.len(), 1, "{v2_findings:?}");
    assert_eq!(v2_findings[0]["identities"][0], "developer@sigil.localhost");
    assert!(lines(&out, "checkpoint")[0]["size"].as_u64().unwrap() >= 1);

    // Killed in the middle of a pass, then resumed: the new watched entry is reported once.
    append(&url, 2_000).await;
    sign_watched("watched-2.txt");
    append(&url, 2_000).await;
    let mut first = ServerProcess::spawn_command({
        let mut c = Command::new(workspace_bin("sigil").unwrap());
        c.args([
            "monitor",
            "--log",
            &url,
            "--state",
            &state_s,
            "--watch-identity",
            "developer@*",
            "--interval",
            "1",
        ])
        .env("SIGIL_HOME", &home)
        .current_dir(&d);
        c
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.kill9().unwrap();
    let before = first
        .stdout()
        .lines()
        .filter(|l| l.contains("\"finding\""))
        .count();
    let out = monitor(&["--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = lines(&out, "finding").len();
    assert_eq!(
        before + after,
        1,
        "killed after {before} finding(s), resumed with {after}: one in all"
    );

    // A fork: a copy of the log (backup, restore into another data dir, another server) takes
    // a different entry at the same index.
    let backup = d.join("backup");
    let out = stack
        .server_command(&["backup", backup.to_str().unwrap()])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = d.join("copy");
    let out = Command::new(workspace_bin("sigil-server").unwrap())
        .args([
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
            copy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut fork = ServerProcess::spawn(
        &workspace_bin("sigil-server").unwrap(),
        [
            "up",
            "--data-dir",
            copy.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        // The same log: its origin is the first server's, whatever address the copy listens on.
        &[
            ("RUST_LOG", "warn"),
            ("SIGIL_LOG_ORIGIN", url.trim_start_matches("http://")),
        ],
    )
    .unwrap();
    let fork_url = format!("http://127.0.0.1:{port}");
    fork.wait_for_url(&format!("{fork_url}/healthz"), Duration::from_secs(60))
        .await
        .unwrap();
    append(&url, 3).await;
    append(&fork_url, 5).await;
    let out = monitor(&["--once", "--compare", &fork_url]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = lines(&out, "inconsistency");
    assert_eq!(split.len(), 1, "{split:?}");
    assert_eq!(split[0]["reason"], "split view");
    assert!(
        split[0]["detail"]
            .as_str()
            .unwrap()
            .contains("is not a prefix of size"),
        "{split:?}"
    );
    println!("fork reported: {}", split[0]);

    // A witness as the second vantage point: it cosigns what the log showed it; the log agrees
    // with it, the fork does not.
    let origin = stack.get_json("/api/v1/log").await.unwrap()["signedTreeHead"]
        .as_str()
        .unwrap()
        .to_owned();
    let wdir = d.join("witness");
    std::fs::create_dir_all(&wdir).unwrap();
    let pem = std::fs::read_to_string(stack.data_dir().join("keys/log.pem")).unwrap();
    let public = SigningKey::from_pkcs8_pem(&pem)
        .unwrap()
        .public_key()
        .to_pem();
    std::fs::write(wdir.join("log.pub"), public).unwrap();
    std::fs::write(
        wdir.join("sigil.toml"),
        format!(
            "[witness]\nname = \"witness.example/w\"\n[[witness.logs]]\norigin = \"{}\"\n\
             public_key = \"log.pub\"\n",
            origin.lines().next().unwrap()
        ),
    )
    .unwrap();
    let wport = free_port();
    let mut witness = ServerProcess::spawn(
        &workspace_bin("sigil-server").unwrap(),
        [
            "witness",
            "--data-dir",
            wdir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{wport}"),
        ],
        &[("RUST_LOG", "warn")],
    )
    .unwrap();
    let wurl = format!("http://127.0.0.1:{wport}");
    witness
        .wait_for_url(&format!("{wurl}/healthz"), Duration::from_secs(60))
        .await
        .unwrap();
    let vkey = witness
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("witness verifier key: ").map(str::to_owned))
        .unwrap();
    // Before it has cosigned anything, there is nothing to compare.
    let out = monitor(&["--once", "--compare-witness", &wurl, "--witness-key", &vkey]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&out, "vantage")[0]["status"],
        "the witness has cosigned nothing of this log"
    );
    let r = reqwest::Client::new()
        .post(format!("{wurl}/add-checkpoint"))
        .body(format!("old 0\n\n{origin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    append(&url, 2).await;
    let out = monitor(&["--once", "--compare-witness", &wurl, "--witness-key", &vkey]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = lines(&out, "vantage");
    assert_eq!(seen[0]["status"], "consistent", "{seen:?}");
    assert_eq!(
        seen[0]["witness_size"].as_u64().unwrap() + 2,
        seen[0]["log_size"].as_u64().unwrap()
    );
    // The wrong witness key: the cosignature does not verify, and that is an error.
    let other_key = vkey.replacen("witness.example/w", "witness.example/x", 1);
    let out = monitor(&[
        "--once",
        "--compare-witness",
        &wurl,
        "--witness-key",
        &other_key,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cosignature"),
        "{err}"
    );
    let fork_state = d.join("monitor-fork.json");
    let out = sigil(
        &home,
        &d,
        &[
            "monitor",
            "--once",
            "--log",
            &fork_url,
            "--state",
            fork_state.to_str().unwrap(),
            "--compare-witness",
            &wurl,
            "--witness-key",
            &vkey,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = lines(&out, "inconsistency");
    assert_eq!(split.len(), 1, "{split:?}");
    assert_eq!(split[0]["witness"], wurl.as_str());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("split view between"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("the witness's view disagrees with the fork: {}", split[0]);
}
