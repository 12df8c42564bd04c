//! Sigstore clients that take their trust from Sigil's TUF repository and nothing else:
//! sigstore-python 4.5.1 (`--instance <url>/tuf` after `trust-instance 1.root.json`, no
//! `--trust-config`) signs and verifies against `sigil-server up`; sigstore-js (`sigstore`
//! 4.1.1's own `verify`, with `tufMirrorURL` + `tufRootPath`) verifies a bundle.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use sigil_tests::{CmdResult, SigilStack, js_dir, record_interop, run, venv_tool};

const PY: &str = "sigstore-python 4.5.1";
const JS: &str = "sigstore-js sigstore 4.1.1";
const TIMEOUT: Duration = Duration::from_secs(120);

/// sigstore-python with its TUF data and cache dirs inside the test's scratch dir.
fn sigstore(scratch: &Path, instance: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(venv_tool("sigstore").unwrap());
    cmd.env("XDG_DATA_HOME", scratch.join("xdg-data"))
        .env("XDG_CACHE_HOME", scratch.join("xdg-cache"))
        .args(["--instance", instance]);
    cmd
}

fn js_verify(
    scratch: &Path,
    instance: &str,
    root: &Path,
    bundle: &Path,
    artifact: &Path,
    identity: &str,
    issuer: &str,
) -> tokio::process::Command {
    let dir = js_dir().unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("sigstore-js.mjs"))
        .arg("verify-tuf")
        .arg("--bundle")
        .arg(bundle)
        .arg("--artifact")
        .arg(artifact)
        .args(["--tuf-mirror", instance])
        .arg("--tuf-root")
        .arg(root)
        .arg("--tuf-cache")
        .arg(scratch.join("js-tuf-cache"))
        .args(["--identity", identity, "--issuer", issuer])
        .current_dir(dir);
    cmd
}

fn check(
    peer: &str,
    operation: &str,
    r: &CmdResult,
    want_success: bool,
    failures: &mut Vec<String>,
) {
    let ok = r.success() == want_success;
    record_interop(peer, operation, ok);
    if !ok {
        failures.push(format!("{peer}: {operation}:\n{r}"));
    }
}

#[tokio::test]
async fn sigstore_python_and_sigstore_js_take_their_trust_from_sigils_tuf_repository() {
    let stack = SigilStack::up().await.expect("sigil-server up");
    let scratch = stack.scratch().to_path_buf();
    let instance = format!("{}/tuf", stack.url());
    let root = stack.data_dir().join("tuf/1.root.json");
    let issuer = stack.dev_issuer();
    let mut failures = Vec::new();

    let mut cmd = sigstore(&scratch, &instance);
    cmd.arg("trust-instance").arg(&root);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check(
        PY,
        "`--instance <url>/tuf trust-instance 1.root.json`",
        &r,
        true,
        &mut failures,
    );

    let artifact = scratch.join("release.txt");
    std::fs::write(&artifact, b"signed with trust from TUF\n").unwrap();
    let bundle = scratch.join("release.txt.sigstore.json");
    let (token, identity) = stack.dev_token().await.unwrap();
    let mut cmd = sigstore(&scratch, &instance);
    cmd.args(["sign", "--identity-token", &token, "--bundle"])
        .arg(&bundle)
        .arg(&artifact);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check(
        PY,
        "`--instance` sign (signing config from TUF)",
        &r,
        true,
        &mut failures,
    );

    let verify = |id: &str| {
        let mut cmd = sigstore(&scratch, &instance);
        cmd.args(["verify", "identity", "--bundle"])
            .arg(&bundle)
            .args(["--cert-identity", id, "--cert-oidc-issuer", &issuer])
            .arg(&artifact);
        cmd
    };
    let r = run(verify(&identity), TIMEOUT).await.unwrap();
    check(
        PY,
        "`--instance` verify identity (trusted root from TUF)",
        &r,
        true,
        &mut failures,
    );
    let r = run(verify("mallory@example.com"), TIMEOUT).await.unwrap();
    check(
        PY,
        "`--instance` verify identity refuses another identity",
        &r,
        false,
        &mut failures,
    );

    // sigstore-js: its own `verify`, trust from the TUF mirror, on a Rekor v1 bundle of its
    // own (Rekor v2 bundles are verified by sigstore-js in `interop_js`).
    let js_bundle = scratch.join("release.txt.js.sigstore.json");
    let dir = js_dir().unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("sigstore-js.mjs"))
        .arg("sign")
        .args(["--fulcio-url", stack.url(), "--rekor-url", stack.url()])
        .args(["--token", &stack.dev_token().await.unwrap().0])
        .arg("--artifact")
        .arg(&artifact)
        .arg("--out")
        .arg(&js_bundle)
        .current_dir(&dir);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check(JS, "sign a blob (Rekor v1)", &r, true, &mut failures);
    let r = run(
        js_verify(
            &scratch, &instance, &root, &js_bundle, &artifact, &identity, &issuer,
        ),
        TIMEOUT,
    )
    .await
    .unwrap();
    check(
        JS,
        "verifies with `tufMirrorURL` + `tufRootPath` pointing at Sigil's TUF repository",
        &r,
        true,
        &mut failures,
    );
    let r = run(
        js_verify(
            &scratch,
            &instance,
            &root,
            &js_bundle,
            &artifact,
            "mallory@example.com",
            &issuer,
        ),
        TIMEOUT,
    )
    .await
    .unwrap();
    check(
        JS,
        "`tufMirrorURL` verify refuses another identity",
        &r,
        false,
        &mut failures,
    );

    assert!(
        failures.is_empty(),
        "{}\n\nserver output:\n{}",
        failures.join("\n\n"),
        stack.output()
    );
}
