//! sigstore-python against `sigil-server up` with the served signing config, which lists Sigil's
//! Rekor v2 URL (`majorApiVersion: 2`) and TSA: it signs through the v2 log with an RFC 3161
//! timestamp and verifies the bundle; a v1 signature still works when forced.

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigil_tests::{
    CmdResult, ExtraIssuer, OidcProvider, SigilStack, StackOptions, record_interop, run, venv_tool,
};

const PEER: &str = "sigstore-python 4.5.1";
const TIMEOUT: Duration = Duration::from_secs(120);

fn sigstore(trust_config: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(venv_tool("sigstore").unwrap());
    cmd.arg("--trust-config").arg(trust_config);
    cmd
}

fn check(operation: &str, r: &CmdResult, stack: &SigilStack) {
    record_interop(PEER, operation, r.success());
    assert!(
        r.success(),
        "{operation}:\n{r}\n\nserver output:\n{}",
        stack.output()
    );
}

#[tokio::test]
async fn sigstore_python_signs_with_rekor_v2_and_the_tsa_and_verifies() {
    venv_tool("sigstore").unwrap();
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let identity = "carol@example.com";
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.unwrap();

    // The served signing config lists the v2 log and the TSA; the trusted root the TSA chain.
    let ctc: Value =
        serde_json::from_slice(&std::fs::read(&trust.client_trust_config).unwrap()).unwrap();
    let sc = &ctc["signingConfig"];
    let versions: Vec<u64> = sc["rekorTlogUrls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["majorApiVersion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2], "{sc}");
    assert_eq!(
        sc["tsaUrls"][0]["url"],
        format!("{}/api/v1/timestamp", stack.url())
    );
    let tsa = &ctc["trustedRoot"]["timestampAuthorities"][0];
    assert_eq!(
        tsa["certChain"]["certificates"].as_array().unwrap().len(),
        2,
        "{tsa}"
    );
    assert_eq!(ctc["trustedRoot"]["tlogs"].as_array().unwrap().len(), 2);

    let file = dir.join("artifact.txt");
    std::fs::write(&file, b"signed through Rekor v2\n").unwrap();
    let bundle = dir.join("artifact.sigstore.json");
    let token = idp.token("carol", Some(identity)).await.unwrap();
    let mut cmd = sigstore(&trust.client_trust_config);
    cmd.args(["sign", "--identity-token", &token, "--bundle"])
        .arg(&bundle)
        .arg(&file);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check("sign (Rekor v2 + TSA)", &r, &stack);

    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let vm = &b["verificationMaterial"];
    let entry = &vm["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["version"], "0.0.2", "{entry}");
    assert!(entry.get("inclusionPromise").is_none(), "{entry}");
    let v2_key = STANDARD.encode(sigil_core::crypto::sha256(
        &STANDARD
            .decode(
                ctc["trustedRoot"]["tlogs"][1]["publicKey"]["rawBytes"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
    ));
    assert_eq!(entry["logId"]["keyId"], v2_key, "logged in the v2 log");
    let stamps = vm["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .unwrap();
    assert_eq!(stamps.len(), 1, "{vm}");

    let mut cmd = sigstore(&trust.client_trust_config);
    cmd.args(["verify", "identity", "--bundle"])
        .arg(&bundle)
        .args([
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            idp.issuer(),
        ])
        .arg(&file);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check("verify (Rekor v2 entry, RFC 3161 time)", &r, &stack);

    // Sigil's verifier accepts the same bundle: v2 checkpoint + proof, time from the TSA.
    let mut cmd = tokio::process::Command::new(sigil_tests::workspace_bin("sigil").unwrap());
    cmd.arg("verify-blob")
        .arg(&file)
        .arg("--bundle")
        .arg(&bundle)
        .args([
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            idp.issuer(),
        ])
        .arg("--trust-config")
        .arg(&trust.client_trust_config);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check(
        "its Rekor v2 + TSA bundle verifies with sigil verify-blob",
        &r,
        &stack,
    );

    // A modified file fails verification.
    let other = dir.join("other.txt");
    std::fs::write(&other, b"signed through Rekor v2!\n").unwrap();
    let mut cmd = sigstore(&trust.client_trust_config);
    cmd.args(["verify", "identity", "--bundle"])
        .arg(&bundle)
        .args([
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            idp.issuer(),
        ])
        .arg(&other);
    let r = run(cmd, TIMEOUT).await.unwrap();
    record_interop(
        PEER,
        "verify rejects modified file (Rekor v2)",
        !r.success(),
    );
    assert!(!r.success(), "{r}");

    // The same trust config still serves v1 when the client asks for it.
    let v1_bundle = dir.join("v1.sigstore.json");
    let token = idp.token("carol", Some(identity)).await.unwrap();
    let mut cmd = sigstore(&trust.client_trust_config);
    cmd.args([
        "sign",
        "--rekor-version",
        "1",
        "--identity-token",
        &token,
        "--bundle",
    ])
    .arg(&v1_bundle)
    .arg(&file);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check("sign (--rekor-version 1, with TSA)", &r, &stack);
    let b: Value = serde_json::from_slice(&std::fs::read(&v1_bundle).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.1"
    );
    let mut cmd = sigstore(&trust.client_trust_config);
    cmd.args(["verify", "identity", "--bundle"])
        .arg(&v1_bundle)
        .args([
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            idp.issuer(),
        ])
        .arg(&file);
    let r = run(cmd, TIMEOUT).await.unwrap();
    check("verify (Rekor v1 entry with TSA)", &r, &stack);
}
