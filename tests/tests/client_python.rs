//! `sigil` and sigstore-python against the same Sigil stack: each verifies the other's bundles
//! (sigstore-python signs through Rekor v2 with an RFC 3161 timestamp when the signing config
//! lists them), and `sigil verify-blob` is timed against `sigstore verify` on the same bundle.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sigil_tests::{ServerProcess, free_port, venv_tool, workspace_bin};

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigil_and_sigstore_python_verify_each_other() {
    let sigstore = venv_tool("sigstore").unwrap();
    let dir = tempfile::Builder::new()
        .prefix("sigil-client-py-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = d.join("data");
    let mut server = ServerProcess::spawn(
        &workspace_bin("sigil-server").unwrap(),
        [
            "up".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            format!("127.0.0.1:{port}").as_ref(),
        ],
        &[("RUST_LOG", "warn")],
    )
    .unwrap();
    server
        .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
        .await
        .unwrap();
    let sigil = |args: &[&str]| -> Output {
        run(Command::new(workspace_bin("sigil").unwrap())
            .args(args)
            .env("SIGIL_HOME", d.join("home"))
            .current_dir(d))
    };
    let issuer = format!("{url}/oidc");
    let id = "developer@sigil.localhost";
    let tc = data.join("trust").join("client_trust_config.json");
    let tc = tc.to_str().unwrap();
    check(
        &sigil(&["trust", "init", "--url", &url]),
        "sigil trust init",
    );
    check(&sigil(&["login", "--issuer", &issuer]), "sigil login");
    let token = std::fs::read_to_string(d.join("home").join("id_token")).unwrap();

    std::fs::write(d.join("a.txt"), b"signed by sigil\n").unwrap();
    std::fs::write(d.join("p.txt"), b"signed by sigstore-python\n").unwrap();
    check(
        &sigil(&["sign-blob", "a.txt", "--bundle", "a.sigstore.json"]),
        "sigil sign-blob",
    );

    let py_verify = |bundle: &str, file: &str| -> Output {
        run(Command::new(&sigstore)
            .args([
                "--trust-config",
                tc,
                "verify",
                "identity",
                "--bundle",
                bundle,
                "--cert-identity",
                id,
            ])
            .args(["--cert-oidc-issuer", &issuer, file])
            .current_dir(d))
    };
    check(
        &py_verify("a.sigstore.json", "a.txt"),
        "sigstore verify of a sigil bundle",
    );

    let out = run(Command::new(&sigstore)
        .args([
            "--trust-config",
            tc,
            "sign",
            "--identity-token",
            token.trim(),
            "--bundle",
            "p.sigstore.json",
            "p.txt",
        ])
        .current_dir(d));
    check(&out, "sigstore sign");
    let verify_args = [
        "verify-blob",
        "p.txt",
        "--bundle",
        "p.sigstore.json",
        "--certificate-identity",
        id,
        "--certificate-oidc-issuer",
        &issuer,
    ];
    check(
        &sigil(&verify_args),
        "sigil verify-blob of a sigstore-python bundle",
    );
    let out = sigil(&[
        "verify-blob",
        "a.txt",
        "--bundle",
        "p.sigstore.json",
        "--certificate-identity",
        id,
        "--certificate-oidc-issuer",
        &issuer,
    ]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("digest mismatch")
    );

    // Timing on the same bundle, offline for sigil (server stopped).
    drop(server);
    let time = |n: u32, f: &dyn Fn() -> Output| {
        let start = Instant::now();
        for _ in 0..n {
            check(&f(), "timed verification");
        }
        start.elapsed() / n
    };
    let sigil_t = time(20, &|| {
        sigil(&[
            "verify-blob",
            "a.txt",
            "--bundle",
            "a.sigstore.json",
            "--trust-config",
            tc,
            "--certificate-identity",
            id,
            "--certificate-oidc-issuer",
            &issuer,
        ])
    });
    let py_t = time(3, &|| py_verify("a.sigstore.json", "a.txt"));
    eprintln!(
        "verification time on the same bundle: sigil verify-blob {sigil_t:?}, sigstore verify {py_t:?} ({:.0}x)",
        py_t.as_secs_f64() / sigil_t.as_secs_f64()
    );
    assert!(Path::new(tc).exists());
}
