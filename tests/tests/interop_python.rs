//! sigstore-python (pinned in tests/python/requirements.txt) against a private Sigil stack:
//! it signs with a token from an independent OpenID Provider and verifies with a client trust
//! config served by Sigil; wrong identities, issuers and files are refused.

// Helpers of this test crate fail the test on a broken step, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use sigil_tests::{
    CmdResult, ExtraIssuer, OidcProvider, SigilStack, StackOptions, record_interop, run, venv_tool,
};

const PEER: &str = "sigstore-python 4.5.1";
const TIMEOUT: Duration = Duration::from_secs(120);
/// A minimal SLSA provenance v1 predicate (sigstore-python validates its shape).
const SLSA_V1_PREDICATE: &[u8] = br#"{"buildDefinition":{"buildType":"https://example.com/t","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/builder"}}}"#;

/// Collects expectation failures so every operation is recorded before the test fails.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn expect(&mut self, operation: &str, result: &CmdResult, should_succeed: bool) {
        // A rejection must be a verification failure, not a usage error (exit status 2 for
        // both argparse and clap), which would make a negative check pass for nothing.
        let ok = if should_succeed {
            result.success()
        } else {
            !result.success() && result.output.status.code() != Some(2)
        };
        record_interop(PEER, operation, ok);
        if !ok {
            let want = if should_succeed { "succeed" } else { "fail" };
            self.failures
                .push(format!("{operation}: expected to {want}\n{result}"));
        }
    }

    fn finish(self, stack: &SigilStack) {
        assert!(
            self.failures.is_empty(),
            "{}\n\nserver output:\n{}",
            self.failures.join("\n\n"),
            stack.output()
        );
    }
}

fn sigstore(trust_config: &Path) -> tokio::process::Command {
    let bin = venv_tool("sigstore").expect("sigstore-python");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--trust-config").arg(trust_config);
    cmd
}

async fn sign(trust: &Path, token: &str, bundle: &Path, file: &Path) -> CmdResult {
    let mut cmd = sigstore(trust);
    cmd.args(["sign", "--identity-token", token, "--bundle"])
        .arg(bundle)
        .arg(file);
    run(cmd, TIMEOUT).await.expect("run sigstore sign")
}

async fn verify(
    trust: &Path,
    bundle: &Path,
    identity: &str,
    issuer: &str,
    file: &Path,
) -> CmdResult {
    let mut cmd = sigstore(trust);
    cmd.args(["verify", "identity", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity, "--cert-oidc-issuer", issuer])
        .arg(file);
    run(cmd, TIMEOUT).await.expect("run sigstore verify")
}

#[tokio::test]
async fn sigstore_python_signs_and_verifies_with_an_independent_idp() {
    venv_tool("sigstore").expect("sigstore-python");
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let file = dir.join("artifact.txt");
    std::fs::write(&file, b"hello from sigstore-python\n").unwrap();
    let bundle = dir.join("artifact.sigstore.json");
    let identity = "alice@example.com";
    let token = idp.token("alice", Some(identity)).await.unwrap();

    let mut checks = Checks::default();
    let signed = sign(&trust.client_trust_config, &token, &bundle, &file).await;
    checks.expect("sign (oidc-provider token)", &signed, true);
    if signed.success() {
        let ctc = &trust.client_trust_config;
        let r = verify(ctc, &bundle, identity, idp.issuer(), &file).await;
        checks.expect("verify identity", &r, true);
        let r = verify(ctc, &bundle, "mallory@example.com", idp.issuer(), &file).await;
        checks.expect("verify rejects wrong identity", &r, false);
        let r = verify(
            ctc,
            &bundle,
            identity,
            "https://accounts.example.com",
            &file,
        )
        .await;
        checks.expect("verify rejects wrong issuer", &r, false);
        let modified = dir.join("modified.txt");
        std::fs::write(&modified, b"hello from sigstore-python!\n").unwrap();
        let r = verify(ctc, &bundle, identity, idp.issuer(), &modified).await;
        checks.expect("verify rejects modified file", &r, false);
    }
    checks.finish(&stack);
}

#[tokio::test]
async fn sigstore_python_signs_with_the_dev_issuer() {
    venv_tool("sigstore").expect("sigstore-python");
    let stack = SigilStack::up().await.expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let file = dir.join("artifact.bin");
    std::fs::write(&file, (0u8..=255).collect::<Vec<_>>()).unwrap();
    let bundle = dir.join("artifact.sigstore.json");
    let (token, identity) = stack.dev_token().await.expect("dev token");

    let mut checks = Checks::default();
    let signed = sign(&trust.client_trust_config, &token, &bundle, &file).await;
    checks.expect("sign (dev issuer token)", &signed, true);
    if signed.success() {
        let r = verify(
            &trust.client_trust_config,
            &bundle,
            &identity,
            &stack.dev_issuer(),
            &file,
        )
        .await;
        checks.expect("verify identity (dev issuer)", &r, true);
    }
    checks.finish(&stack);
}

#[tokio::test]
async fn sigil_ca_follows_an_idp_key_rotation() {
    venv_tool("sigstore").expect("sigstore-python");
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let file = dir.join("artifact.txt");
    std::fs::write(&file, b"rotate me\n").unwrap();
    let identity = "bob@example.com";

    let mut checks = Checks::default();
    // First signature: the CA fetches and caches the provider's JWKS.
    let token = idp.token("bob", Some(identity)).await.unwrap();
    let before = dir.join("before.sigstore.json");
    let r = sign(&trust.client_trust_config, &token, &before, &file).await;
    checks.expect("sign before IdP key rotation", &r, true);

    // The provider now signs with a new kid and no longer publishes the old key. The CA
    // refetches a JWKS on an unknown kid at most every `jwks_refresh_min_secs` (5 s by default,
    // against floods of bogus kids): a real rotation comes long after the last fetch.
    idp.rotate_keys(false).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let token = idp.token("bob", Some(identity)).await.unwrap();
    let after = dir.join("after.sigstore.json");
    let r = sign(&trust.client_trust_config, &token, &after, &file).await;
    checks.expect("sign after IdP key rotation (new kid)", &r, true);
    if r.success() {
        let r = verify(
            &trust.client_trust_config,
            &after,
            identity,
            idp.issuer(),
            &file,
        )
        .await;
        checks.expect("verify after IdP key rotation", &r, true);
    }
    checks.finish(&stack);
}

/// `sigil <subcommand> --trust-config <file>`; callers add the rest.
fn sigil(stack: &SigilStack, subcommand: &str, trust_config: &Path) -> tokio::process::Command {
    let bin = sigil_tests::workspace_bin("sigil").expect("sigil binary");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg(subcommand).arg("--trust-config").arg(trust_config);
    // Keep the client's stored state (tokens, trust) inside the test's scratch dir.
    cmd.env("HOME", stack.scratch())
        .env("XDG_CONFIG_HOME", stack.scratch().join("config"))
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("SIGIL_TRUSTED_ROOT")
        .env_remove("SIGIL_SIGNING_CONFIG")
        .env_remove("SIGIL_TRUST_CONFIG");
    cmd
}

#[tokio::test]
async fn bundles_cross_verify_between_sigstore_python_and_sigil() {
    venv_tool("sigstore").expect("sigstore-python");
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let ctc = &trust.client_trust_config;
    let identity = "dave@example.com";
    let issuer = idp.issuer().to_string();
    let file = dir.join("release.txt");
    std::fs::write(&file, b"cross-verified release\n").unwrap();
    let mut checks = Checks::default();

    // sigstore-python signs, sigil verifies.
    let py_bundle = dir.join("py.sigstore.json");
    let token = idp.token("dave", Some(identity)).await.unwrap();
    let r = sign(ctc, &token, &py_bundle, &file).await;
    checks.expect("sign (for sigil verify-blob)", &r, true);
    if r.success() {
        let mut cmd = sigil(&stack, "verify-blob", ctc);
        cmd.arg(&file).arg("--bundle").arg(&py_bundle);
        cmd.args([
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            &issuer,
        ]);
        let r = run(cmd, TIMEOUT).await.unwrap();
        checks.expect("bundle verifies with sigil verify-blob", &r, true);
        let mut cmd = sigil(&stack, "verify-blob", ctc);
        cmd.arg(&file).arg("--bundle").arg(&py_bundle);
        cmd.args([
            "--certificate-identity",
            "x@example.com",
            "--certificate-oidc-issuer",
            &issuer,
        ]);
        let r = run(cmd, TIMEOUT).await.unwrap();
        checks.expect("sigil verify-blob rejects wrong identity", &r, false);
    }

    // sigil signs, sigstore-python verifies: by default through Rekor v2 + the TSA (the newest
    // log the signing config lists), and through Rekor v1 when asked.
    for (version, label) in [(None, "Rekor v2 + TSA"), (Some("1"), "Rekor v1")] {
        let sigil_bundle = dir.join(format!("sigil-{}.sigstore.json", version.unwrap_or("2")));
        let token = idp.token("dave", Some(identity)).await.unwrap();
        let mut cmd = sigil(&stack, "sign-blob", ctc);
        cmd.arg(&file).arg("--bundle").arg(&sigil_bundle);
        cmd.args(["--identity-token", &token]);
        if let Some(v) = version {
            cmd.args(["--rekor-version", v]);
        }
        let signed = run(cmd, TIMEOUT).await.unwrap();
        assert!(
            signed.success(),
            "sigil sign-blob ({label}) failed\n{signed}\n{}",
            stack.output()
        );
        let b: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sigil_bundle).unwrap()).unwrap();
        let want = if version.is_some() { "0.0.1" } else { "0.0.2" };
        assert_eq!(
            b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"], want,
            "{label}: {b}"
        );
        let r = verify(ctc, &sigil_bundle, identity, &issuer, &file).await;
        checks.expect(
            &format!("verify identity of a sigil sign-blob bundle ({label})"),
            &r,
            true,
        );
    }

    // sigil attests (DSSE), sigstore-python verifies the statement's subject.
    let predicate = dir.join("predicate.json");
    std::fs::write(&predicate, SLSA_V1_PREDICATE).unwrap();
    let att_bundle = dir.join("sigil.att.sigstore.json");
    let token = idp.token("dave", Some(identity)).await.unwrap();
    let mut cmd = sigil(&stack, "attest", ctc);
    cmd.arg(&file).arg("--predicate").arg(&predicate);
    cmd.args([
        "--type",
        "https://slsa.dev/provenance/v1",
        "--identity-token",
        &token,
    ]);
    cmd.arg("--bundle").arg(&att_bundle);
    let attested = run(cmd, TIMEOUT).await.unwrap();
    assert!(
        attested.success(),
        "sigil attest failed\n{attested}\n{}",
        stack.output()
    );
    let r = verify(ctc, &att_bundle, identity, &issuer, &file).await;
    checks.expect("verify identity of a sigil attest (DSSE) bundle", &r, true);

    checks.finish(&stack);
}

/// sigstore-python attests (DSSE) with the given Rekor API version; `sigil verify-attestation`
/// must accept its bundle. With Rekor v2, sigstore-python logs the envelope as a hashedrekord
/// 0.0.2 over the DSSE PAE (Rekor v2 has no dsse type).
async fn python_attestation_verifies_with_sigil(rekor_version: &str) {
    venv_tool("sigstore").expect("sigstore-python");
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let ctc = &trust.client_trust_config;
    let identity = "erin@example.com";
    let issuer = idp.issuer().to_string();
    let file = dir.join("release.txt");
    std::fs::write(&file, b"attested release\n").unwrap();
    let predicate = dir.join("predicate.json");
    std::fs::write(&predicate, SLSA_V1_PREDICATE).unwrap();
    let mut checks = Checks::default();

    let bundle = dir.join("py.att.sigstore.json");
    let token = idp.token("erin", Some(identity)).await.unwrap();
    let mut cmd = sigstore(ctc);
    cmd.args(["attest", "--rekor-version", rekor_version])
        .args([
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
            "--predicate",
        ])
        .arg(&predicate)
        .args(["--identity-token", &token, "--bundle"])
        .arg(&bundle)
        .arg(&file);
    let r = run(cmd, TIMEOUT).await.unwrap();
    checks.expect(&format!("attest (DSSE, Rekor v{rekor_version})"), &r, true);
    if r.success() {
        let r = verify(ctc, &bundle, identity, &issuer, &file).await;
        checks.expect(
            &format!("verify identity of its attestation (Rekor v{rekor_version})"),
            &r,
            true,
        );
        let mut cmd = sigil(&stack, "verify-attestation", ctc);
        cmd.arg(&file).arg("--bundle").arg(&bundle);
        cmd.args(["--type", "https://slsa.dev/provenance/v1"]);
        cmd.args([
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            &issuer,
        ]);
        let r = run(cmd, TIMEOUT).await.unwrap();
        checks.expect(
            &format!("attestation (Rekor v{rekor_version}) verifies with sigil verify-attestation"),
            &r,
            true,
        );
    }
    checks.finish(&stack);
}

#[tokio::test]
async fn sigstore_python_rekor_v1_attestation_verifies_with_sigil() {
    python_attestation_verifies_with_sigil("1").await;
}

#[tokio::test]
async fn sigstore_python_rekor_v2_attestation_verifies_with_sigil() {
    python_attestation_verifies_with_sigil("2").await;
}
