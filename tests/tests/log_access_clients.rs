//! Private-log access with unmodified clients and real `sigil-server up` processes.
//!
//! Admission: a stack whose logs (Rekor v1 and v2) admit only its own CA's certificates and an
//! allow-listed key. sigstore-python and sigstore-js sign against it; a signature whose
//! certificate comes from a second Sigil instance's CA is refused with 403 and the reason
//! reaches the user; `sigil sign-blob --key` works with the allow-listed key only.
//!
//! Authenticated reads: a stack whose logs need a reader (ID tokens of its own issuer for the
//! developer identity, or a static token). Without a credential the logs answer 401;
//! `sigil log get/search/verify` work after `sigil login` and with `--log-token`;
//! sigstore-python still verifies a bundle offline; the server's output never holds a token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use sigil_tests::{
    SigilStack, StackOptions, js_dir, record_interop, run, venv_tool, workspace_bin,
};

const DEV_ID: &str = "developer@sigil.localhost";
const READ_TOKEN: &str = "read-token-5f1d2c3b4a5f6e7d8c9b";

fn sigil(home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("sigil").unwrap())
        .args(args)
        .env("SIGIL_HOME", home)
        .env("SIGIL_PASSWORD", "access-test")
        .env_remove("SIGIL_LOG_TOKEN")
        .env_remove("SIGSTORE_ID_TOKEN")
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}", text(&o));
    text(&o)
}

#[track_caller]
fn fails(o: Output, what: &str) -> String {
    assert!(
        !o.status.success(),
        "{what} should have failed: {}",
        text(&o)
    );
    text(&o)
}

/// The client trust config of `ca_stack`, with every transparency log URL pointing at
/// `log_url` (a client that gets its certificate from one deployment and logs to another).
fn mixed_trust_config(ca_stack_config: &Path, log_url: &str, ca_url: &str, out: &Path) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(ca_stack_config).unwrap()).unwrap();
    let text = serde_json::to_string(&v["signingConfig"]["rekorTlogUrls"]).unwrap();
    v["signingConfig"]["rekorTlogUrls"] =
        serde_json::from_str(&text.replace(ca_url, log_url)).unwrap();
    std::fs::write(out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_this_deployments_signers_are_admitted() {
    let sigstore = venv_tool("sigstore").unwrap();
    let js = js_dir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let d = scratch.path();
    let home = d.join("home");

    // The allow-listed key exists before the stack starts.
    ok(
        sigil(
            &home,
            d,
            &["generate-key-pair", "--output-key-prefix", "allowed"],
        ),
        "generate-key-pair",
    );
    ok(
        sigil(
            &home,
            d,
            &["generate-key-pair", "--output-key-prefix", "stranger"],
        ),
        "generate-key-pair",
    );
    let allowed = d.join("allowed.pub").to_str().unwrap().to_owned();
    let a = SigilStack::up_with(StackOptions {
        config: vec![
            ("log.admission", "enabled", true.into()),
            ("log.admission", "allowed_keys", allowed.clone().into()),
            ("rekor_v2.admission", "enabled", true.into()),
            ("rekor_v2.admission", "allowed_keys", allowed.into()),
        ],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let b = SigilStack::up().await.unwrap();
    let trust_a = a
        .fetch_trust_files(&std::fs::canonicalize(d).unwrap())
        .await
        .unwrap();
    let b_dir = d.join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let trust_b = b.fetch_trust_files(&b_dir).await.unwrap();
    std::fs::write(d.join("f.txt"), b"admitted or not\n").unwrap();

    // sigstore-python with this deployment's certificate: admitted.
    let (token_a, _) = a.dev_token().await.unwrap();
    let py = |tc: &Path, token: &str, bundle: &str| {
        Command::new(&sigstore)
            .arg("--trust-config")
            .arg(tc)
            .args([
                "sign",
                "--identity-token",
                token,
                "--bundle",
                bundle,
                "f.txt",
            ])
            .current_dir(d)
            .output()
            .unwrap()
    };
    let out = py(&trust_a.client_trust_config, &token_a, "py-a.sigstore.json");
    record_interop(
        "sigstore-python",
        "sign with an admission-controlled log",
        out.status.success(),
    );
    ok(
        out,
        "sigstore-python sign against a log that admits this CA",
    );

    // sigstore-python with a certificate of the second instance, logging to the first: 403.
    let mixed = d.join("mixed.json");
    mixed_trust_config(&trust_b.client_trust_config, a.url(), b.url(), &mixed);
    let (token_b, _) = b.dev_token().await.unwrap();
    let out = py(&mixed, &token_b, "py-b.sigstore.json");
    let msg = fails(out, "sigstore-python sign with another CA's certificate");
    assert!(
        msg.contains("403") || msg.contains("Forbidden") || msg.contains("admission"),
        "the refusal is not visible to the user: {msg}"
    );
    assert!(
        msg.contains("not issued by this deployment's CA"),
        "the reason is not visible to the user: {msg}"
    );
    let told = |all: &str| {
        all.lines()
            .find(|l| l.contains("admission"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    println!("sigstore-python was told: {}", told(&msg));
    record_interop(
        "sigstore-python",
        "refused: certificate of another CA (403)",
        true,
    );

    // sigstore-js: admitted with this CA, refused with the other's.
    let node = |fulcio: &str, token: &str, out: &str| {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(js.join("sigstore-js.mjs"))
            .args(["sign", "--fulcio-url", fulcio, "--rekor-url", a.url()])
            .args(["--token", token, "--out"])
            .arg(d.join(out))
            .arg("--artifact")
            .arg(d.join("f.txt"))
            .current_dir(&js);
        cmd
    };
    let (token_a, _) = a.dev_token().await.unwrap();
    let r = run(
        node(a.url(), &token_a, "js-a.json"),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    record_interop(
        "sigstore-js",
        "sign with an admission-controlled log",
        r.success(),
    );
    assert!(
        r.success(),
        "sigstore-js sign against its own CA: {}{}",
        r.stdout(),
        r.stderr()
    );
    let (token_b, _) = b.dev_token().await.unwrap();
    let r = run(
        node(b.url(), &token_b, "js-b.json"),
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    assert!(
        !r.success(),
        "sigstore-js with another CA's certificate was admitted"
    );
    let all = format!("{}{}", r.stdout(), r.stderr());
    assert!(all.contains("403") || all.contains("admission"), "{all}");
    println!("sigstore-js was told: {}", told(&all));
    record_interop(
        "sigstore-js",
        "refused: certificate of another CA (403)",
        true,
    );

    // Key-based signing: the allow-listed key only, on both logs.
    ok(
        sigil(&home, d, &["trust", "init", "--url", a.url()]),
        "trust init",
    );
    for version in ["1", "2"] {
        let bundle = format!("k{version}.sigstore.json");
        ok(
            sigil(
                &home,
                d,
                &[
                    "sign-blob",
                    "f.txt",
                    "--key",
                    "allowed.key",
                    "--bundle",
                    &bundle,
                    "--rekor-version",
                    version,
                ],
            ),
            "sign-blob with the allow-listed key",
        );
        let bundle = format!("s{version}.sigstore.json");
        let err = fails(
            sigil(
                &home,
                d,
                &[
                    "sign-blob",
                    "f.txt",
                    "--key",
                    "stranger.key",
                    "--bundle",
                    &bundle,
                    "--rekor-version",
                    version,
                ],
            ),
            "sign-blob with a key not on the list",
        );
        assert!(
            err.contains("403") && err.contains("not in the allow list"),
            "{err}"
        );
    }
    let out = a.output();
    assert!(out.contains("entry refused"), "refusals are logged: {out}");
    assert!(
        !out.contains(&token_b) && !out.contains(&token_a),
        "a token reached the log output"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_with_authenticated_reads_serve_only_readers() {
    let sigstore = venv_tool("sigstore").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let d = scratch.path();
    std::fs::write(d.join("readers.txt"), format!("{READ_TOKEN}\n")).unwrap();
    let readers = d.join("readers.txt").to_str().unwrap().to_owned();
    let stack = SigilStack::up_with(StackOptions {
        config: vec![
            ("read_access", "enabled", true.into()),
            ("read_access.readers", "tokens_file", readers.into()),
            ("read_access.readers", "oidc_issuer", "{url}/oidc".into()),
            (
                "read_access.readers",
                "claim_values",
                toml::Value::Array(vec![DEV_ID.into()]),
            ),
        ],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let url = stack.url().to_owned();
    let home = d.join("home");
    let stranger = d.join("stranger-home");
    std::fs::write(d.join("f.txt"), b"read me if you may\n").unwrap();

    // Writes stay open; signing needs no reader credential.
    ok(
        sigil(&home, d, &["trust", "init", "--url", &url]),
        "trust init",
    );
    ok(
        sigil(&stranger, d, &["trust", "init", "--url", &url]),
        "trust init",
    );
    let (token, _) = stack.dev_token().await.unwrap();
    let signed = sigil(
        &home,
        d,
        &[
            "sign-blob",
            "f.txt",
            "--identity-token",
            &token,
            "--bundle",
            "f.sigstore.json",
            "--rekor-version",
            "1",
            "--output",
            "json",
        ],
    );
    assert!(signed.status.success(), "sign-blob: {}", text(&signed));
    let signed: Value = serde_json::from_slice(&signed.stdout).unwrap();
    let uuid = signed["uuid"].as_str().unwrap().to_owned();

    // Without a credential: 401, and the CLI says what to pass.
    let http = reqwest::Client::new();
    for path in [
        "/api/v1/log",
        "/api/v2/checkpoint",
        "/ct/v1/get-sth",
        "/api/v1/log/entries?logIndex=0",
    ] {
        let r = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let err = fails(
        sigil(&stranger, d, &["log", "get", "--index", "0"]),
        "log get without a credential",
    );
    assert!(err.contains("401") && err.contains("--log-token"), "{err}");
    println!("sigil without a credential: {}", err.trim());

    // After `sigil login` (the stored token is sent once the log asks for it).
    ok(
        sigil(&home, d, &["login", "--issuer", &format!("{url}/oidc")]),
        "sigil login",
    );
    let got = ok(
        sigil(&home, d, &["log", "get", "--index", "0"]),
        "log get after login",
    );
    assert!(
        got.contains("inclusion") || got.contains("Inclusion") || got.contains("index"),
        "{got}"
    );
    ok(
        sigil(&home, d, &["log", "search", "--artifact", "f.txt"]),
        "log search after login",
    );
    ok(
        sigil(
            &home,
            d,
            &["log", "verify", "--artifact", "f.txt", "--uuid", &uuid],
        ),
        "log verify after login",
    );

    // With a static token, and with a bad one.
    ok(
        sigil(
            &stranger,
            d,
            &[
                "--log-token",
                READ_TOKEN,
                "log",
                "search",
                "--email",
                DEV_ID,
            ],
        ),
        "log search with --log-token",
    );
    let err = fails(
        sigil(
            &stranger,
            d,
            &[
                "--log-token",
                "read-token-wrong-0000000000",
                "log",
                "get",
                "--index",
                "0",
            ],
        ),
        "log get with a wrong --log-token",
    );
    assert!(err.contains("--log-token given was not accepted"), "{err}");

    // Offline verification needs no credential.
    let tc = stack
        .data_dir()
        .join("trust")
        .join("client_trust_config.json");
    let out = Command::new(&sigstore)
        .arg("--trust-config")
        .arg(&tc)
        .args([
            "verify",
            "identity",
            "--offline",
            "--bundle",
            "f.sigstore.json",
        ])
        .args([
            "--cert-identity",
            DEV_ID,
            "--cert-oidc-issuer",
            &format!("{url}/oidc"),
            "f.txt",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    record_interop(
        "sigstore-python",
        "offline verify with authenticated log reads",
        out.status.success(),
    );
    ok(out, "sigstore-python offline verify");
    ok(
        sigil(
            &stranger,
            d,
            &[
                "verify-blob",
                "f.txt",
                "--bundle",
                "f.sigstore.json",
                "--certificate-identity",
                DEV_ID,
                "--certificate-oidc-issuer",
                &format!("{url}/oidc"),
            ],
        ),
        "sigil verify-blob (offline) without a credential",
    );

    let output = stack.output();
    assert!(output.contains("read refused"), "refusals are logged");
    assert!(
        !output.contains(READ_TOKEN) && !output.contains(&token),
        "a token reached the server's output"
    );
}
