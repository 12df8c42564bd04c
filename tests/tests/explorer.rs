//! The log explorer in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`tests/js/explorer.mjs`) against `sigil-server up` after `sigil sign-blob` has written to
//! Rekor v1 and Rekor v2 (and the CA to the CT log). Searched by artifact SHA-256 (typed, and
//! from a file hashed in the browser), entry UUID, log index and identity; every entry page
//! opened (Rekor v1, Rekor v2 from its tiles, CT) shows "verified", with its certificate
//! decoded; a test double that alters one inclusion-proof hash makes the page say "failed" and
//! why. The page makes no request outside the server (every other request is refused and
//! counted), has no inline script (a strict CSP header), works by keyboard and fits a phone's
//! width. Screenshots go to `target/test-artifacts/explorer/`; the first render of an entry
//! page is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sigil_tests::{SigilStack, workspace_bin, workspace_root};

fn sigil(home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn step<'a>(out: &'a Value, name: &str) -> Vec<&'a Value> {
    out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_searches_and_verifies_entries_in_the_browser() {
    let js = workspace_root().join("tests").join("js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/js: run `scripts/test --setup-only` or \
         `npm ci --prefix tests/js`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} not found: apt-get install chromium (scripts/test installs it)"
    );

    let stack = SigilStack::up().await.unwrap();
    let url = stack.url().to_owned();
    let d = stack.scratch().to_path_buf();
    let home = d.join("home");
    assert!(
        sigil(&home, &d, &["trust", "init", "--url", &url])
            .status
            .success()
    );
    assert!(
        sigil(&home, &d, &["login", "--issuer", &stack.dev_issuer()])
            .status
            .success()
    );
    let (_, identity) = stack.dev_token().await.unwrap();
    // Other entries first, so that the artifact's proofs have hashes in them.
    for i in 0..3 {
        let other = d.join(format!("other-{i}.txt"));
        std::fs::write(&other, format!("another artifact {i}")).unwrap();
        for v in ["1", "2"] {
            let out = sigil(
                &home,
                &d,
                &[
                    "sign-blob",
                    other.to_str().unwrap(),
                    "--bundle",
                    &format!("other-{i}-v{v}.json"),
                    "--rekor-version",
                    v,
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // A checkpoint from before the artifact: the page checks the log grew from it.
    let earlier = stack.get_json("/api/v1/log").await.unwrap()["signedTreeHead"]
        .as_str()
        .unwrap()
        .to_owned();
    let artifact = d.join("release.tar.gz");
    std::fs::write(&artifact, b"a release the explorer will find").unwrap();
    let digest = hex::encode(sigil_core::crypto::sha256(
        &std::fs::read(&artifact).unwrap(),
    ));
    for v in ["1", "2"] {
        let out = sigil(
            &home,
            &d,
            &[
                "sign-blob",
                artifact.to_str().unwrap(),
                "--bundle",
                &format!("bundle-v{v}.json"),
                "--rekor-version",
                v,
            ],
        );
        assert!(
            out.status.success(),
            "sign-blob v{v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The page and its headers: a strict CSP, no inline script or style.
    let r = reqwest::get(format!("{url}/ui/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.unwrap();
    for bad in ["<script>", "style=", "onclick", "http://", "https://"] {
        assert!(!html.contains(bad), "the page holds {bad:?}");
    }

    let shots = workspace_root().join("target/test-artifacts/explorer");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let run = Command::new("node")
        .arg(js.join("explorer.mjs"))
        .arg(&url)
        .arg(&shots)
        .arg(&artifact)
        .arg(&digest)
        .arg(&identity)
        .arg(&earlier)
        .env("CHROMIUM", &chromium)
        .current_dir(&js)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "explorer.mjs: {stdout}\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("explorer.mjs printed no JSON ({e}): {stdout}\n{stderr}"));
    let all = serde_json::to_string_pretty(&out).unwrap();
    assert!(out.get("error").is_none(), "the browser run failed: {all}");

    // Air-gapped: nothing requested elsewhere; no script error, no CSP violation.
    assert_eq!(out["external"], serde_json::json!([]), "{all}");
    // (Chromium logs every 404 as an error; a search for a digest that is not a UUID gets one.)
    let errors: Vec<&Value> = out["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap().contains("status of 404"))
        .collect();
    assert!(errors.is_empty(), "{all}");

    // The log page: `/` redirected to it; all three logs' checkpoints verified.
    let home_page = step(&out, "home")[0];
    assert!(
        home_page["url"].as_str().unwrap().ends_with("/ui/"),
        "{all}"
    );
    let cards = home_page["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 3, "Rekor v1, Rekor v2 and CT: {all}");
    for c in cards {
        assert!(c["error"].is_null(), "{all}");
        assert!(
            c["text"].as_str().unwrap().contains("checkpoint signed by"),
            "{all}"
        );
        assert!(!c["entries"].as_array().unwrap().is_empty(), "{all}");
    }
    assert!(
        step(&out, "home again")[0]["text"]
            .as_str()
            .unwrap()
            .contains("consistent with the checkpoint seen before"),
        "{all}"
    );

    // An earlier checkpoint pasted into the log page: consistent; the same with its root
    // altered: refused.
    let pasted = step(&out, "pasted checkpoint")[0];
    assert_eq!(pasted["genuine"]["verified"], "true", "{all}");
    assert!(
        pasted["genuine"]["text"]
            .as_str()
            .unwrap()
            .contains("is a prefix of the current size"),
        "{all}"
    );
    assert_eq!(pasted["altered"]["verified"], "false", "{all}");

    // Search by SHA-256 finds the artifact in both Rekor logs; so does the uploaded file.
    let by_sha: Vec<String> = step(&out, "search sha256")[0]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["href"].as_str().unwrap().to_owned())
        .collect();
    assert!(by_sha.iter().any(|h| h.starts_with("#/v1/")), "{by_sha:?}");
    assert!(by_sha.iter().any(|h| h.starts_with("#/v2/")), "{by_sha:?}");
    let upload = step(&out, "search upload")[0];
    assert_eq!(upload["query"], digest.as_str(), "hashed in the browser");
    assert_eq!(upload["links"].as_array().unwrap().len(), by_sha.len());

    // Every entry opened is verified, with the signer's certificate decoded.
    let entries = step(&out, "entry");
    assert_eq!(entries.len(), by_sha.len(), "{all}");
    for e in &entries {
        assert_eq!(e["verified"], "true", "{all}");
        let certs = e["certs"].as_array().unwrap();
        assert!(
            certs
                .iter()
                .any(|c| c.as_str().unwrap().contains(identity.as_str())),
            "the certificate's identity is shown: {all}"
        );
        let checks = e["checks"].as_array().unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c.as_str().unwrap().contains("inclusion proof")),
            "{all}"
        );
    }
    for (name, expect) in [
        ("search uuid", "#/v1/"),
        ("search index", "#/v1/"),
        ("search identity", "#/v1/"),
    ] {
        let links = step(&out, name)[0]["links"].as_array().unwrap();
        assert!(
            links
                .iter()
                .any(|l| l["href"].as_str().unwrap().starts_with(expect)),
            "{name}: {all}"
        );
    }
    let ct = step(&out, "ct entry");
    assert_eq!(ct.len(), 1, "{all}");
    assert_eq!(ct[0]["verified"], "true", "{all}");

    // The altered proof: failed, and why.
    let t = step(&out, "tampered")[0];
    assert_eq!(t["verified"], "false", "{all}");
    assert!(
        t["text"].as_str().unwrap().contains("leads to root"),
        "{all}"
    );

    assert_eq!(step(&out, "keyboard")[0]["focused"], "q", "{all}");
    assert!(step(&out, "keyboard")[0]["links"].as_u64().unwrap() >= 1);
    let phone = step(&out, "phone")[0];
    assert!(
        phone["scrollWidth"].as_u64().unwrap() <= phone["width"].as_u64().unwrap(),
        "wider than a phone: {all}"
    );

    let times: Vec<u64> = step(&out, "first render")[0]["ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    println!(
        "entry page, navigation to verified (ms): {times:?}; median {} ms",
        sorted[sorted.len() / 2]
    );
    println!("tampered proof: {}", t["text"].as_str().unwrap());
    println!("screenshots: {}", shots.display());
    for f in [
        "home",
        "entry-v1",
        "entry-v2",
        "entry-ct",
        "entry-tampered",
        "phone",
    ] {
        assert!(shots.join(format!("{f}.png")).is_file(), "{f}.png");
    }
}

/// With authenticated reads, the page is served but reads nothing without a credential: it
/// says one is needed, and reads the logs once a reader token is typed into it.
#[tokio::test(flavor = "multi_thread")]
async fn with_authenticated_reads_the_explorer_asks_for_a_credential() {
    sigil_tests::install_crypto_provider();
    let js = workspace_root().join("tests").join("js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/js: run `scripts/test --setup-only`"
    );
    let token = "reader-explorer-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    sigil_server::init::init(dir.path(), &url, true).unwrap();
    std::fs::write(dir.path().join("readers.txt"), format!("{token}\n")).unwrap();
    let mut cfg = sigil_server::config::Config::load(Some(&dir.path().join("sigil.toml"))).unwrap();
    cfg.log.enabled = true;
    cfg.ct.enabled = true;
    cfg.rekor_v2.enabled = true;
    cfg.read_access.enabled = true;
    cfg.read_access.readers.tokens_file = "readers.txt".into();
    cfg.validate().unwrap();
    let service = sigil_server::app::build(&cfg, dir.path()).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, service.router).await;
    });
    let shots = workspace_root().join("target/test-artifacts/explorer-reader");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let (script, shots_arg) = (js.join("explorer.mjs"), shots.clone());
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(["--reader-token", token, &url])
            .arg(shots_arg)
            .current_dir(&js)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let out: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or_default())
        .unwrap_or_else(|e| {
            panic!(
                "explorer.mjs printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
        });
    assert!(out.get("error").is_none(), "{out:#}");
    let without = out["without"].as_array().unwrap();
    assert_eq!(without.len(), 3, "every log refused the page: {out:#}");
    assert!(
        without
            .iter()
            .all(|e| e.as_str().unwrap().contains("reader credential")),
        "{out:#}"
    );
    assert_eq!(out["credentialOpen"], true, "{out:#}");
    let with = out["with"].as_array().unwrap();
    assert!(
        with.iter()
            .all(|c| c.as_str().unwrap().contains("checkpoint signed by")),
        "{out:#}"
    );
}
