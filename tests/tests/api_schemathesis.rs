//! Property-based test of the whole HTTP API: schemathesis (pinned in
//! tests/python/requirements.txt) reads `/api/openapi.json` from `sigil-server up` and sends
//! generated requests to every operation (its coverage and fuzzing phases), checking that none
//! gets a 5xx, and that every answer's status code, content type and body are the ones the
//! document describes. Bounded by `--max-examples` to well under a minute of requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey};
use sigil_tests::{SigilStack, record_interop, run, venv_tool};

/// Generated examples per operation and phase.
const MAX_EXAMPLES: &str = "100";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// The number after `label` in schemathesis' summary, e.g. `Tested: 36`.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `N generated, M passed[, F failed][, S skipped]` from the `Test cases:` summary line.
fn case_counts(text: &str) -> (u64, u64, u64) {
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or_default();
    let count = |what: &str| {
        line.split(',')
            .find(|part| part.trim().ends_with(what))
            .and_then(|part| part.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (count("generated"), count("passed"), count("failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers() {
    let schemathesis = venv_tool("schemathesis").unwrap();
    let stack = SigilStack::up().await.unwrap();
    let url = stack.url().to_string();

    // One Rekor v1 entry, so that reads of index 0 and tree size 1 reach real data.
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let digest = DigestAlgorithm::Sha256.digest(b"schemathesis seed entry");
    let sig = key
        .sign_prehashed(DigestAlgorithm::Sha256, &digest)
        .unwrap();
    let entry = json!({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hex::encode(&digest)}},
        "signature": {"content": B64.encode(&sig), "publicKey": {"content": B64.encode(key.public_key().to_pem())}}
    }});
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v1/log/entries"))
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    let report = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&schemathesis);
    cmd.args(["run", &format!("{url}/api/openapi.json")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args([
            "--max-redirects",
            "0",
            "--request-timeout",
            "30",
            // One worker: with two, Hypothesis parses lambda sources from two threads at once,
            // and CPython 3.11's AST constructor then fails now and then under load ("AST
            // constructor recursion depth mismatch"), a runtime error in the tool itself.
            "--workers",
            "1",
        ])
        .args(["--report", "junit", "--report-dir"])
        .arg(report.path())
        .arg("--no-color")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its caches (.hypothesis, .schemathesis) go to the temp dir, not the checkout.
        .current_dir(report.path());
    // A failing run prints its seed; SIGIL_SCHEMATHESIS_SEED=<seed> replays it.
    if let Ok(seed) = std::env::var("SIGIL_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = run(cmd, Duration::from_secs(600)).await.unwrap();
    let text = out.stdout();
    // Schemathesis counts a path with and without its trailing slash as one operation.
    let documented = sigil_server::openapi::operations()
        .unwrap()
        .into_iter()
        .map(|(method, path)| (method, path.trim_end_matches('/').to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    let tested = number_after(&text, "Tested:").unwrap_or(0);
    let (generated, passed, failed) = case_counts(&text);
    let seed = text
        .lines()
        .find(|l| l.starts_with("Seed:"))
        .unwrap_or("Seed: ?");
    println!(
        "schemathesis: {tested}/{documented} operations, {generated} generated requests, \
         {passed} passed, {failed} failed (server errors, status code, content type or \
         schema violations); {seed}"
    );
    let server_log = stack.output();
    let ok = out.success() && failed == 0 && generated > 0 && tested == documented;
    record_interop(
        "schemathesis 4.32.5",
        "generated requests against /api/openapi.json: no 5xx, documented status, content type and schema",
        ok,
    );
    if !ok {
        // The whole report: the error's details come before the summary.
        println!("{text}");
    }
    assert!(ok, "{out}");
    assert!(
        !server_log.contains("panicked"),
        "the server panicked:\n{server_log}"
    );
}
