//! sigstore-js (pinned in tests/js/package.json) against a private Sigil stack: `@sigstore/cli
//! attest` asks Sigil's CA with publicKeyRequest + proof of possession and logs an intoto 0.0.2
//! entry; the `sigstore` library signs a blob; `@sigstore/verify` checks both bundles against the
//! trusted root Sigil serves, and refuses wrong identities and modified artifacts.

// Helpers of this test crate fail the test on a broken step, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use sigil_tests::{
    CmdResult, ExtraIssuer, OidcProvider, SigilStack, StackOptions, js_dir, record_interop, run,
};

const CLI: &str = "sigstore-js @sigstore/cli 0.8.1";
const LIB: &str = "sigstore-js sigstore 4.1.1";
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn expect(&mut self, peer: &str, operation: &str, result: &CmdResult, should_succeed: bool) {
        // A rejection must come from verification, not from a usage error (exit status 2).
        let ok = if should_succeed {
            result.success()
        } else {
            !result.success() && result.output.status.code() != Some(2)
        };
        record_interop(peer, operation, ok);
        if !ok {
            let want = if should_succeed { "succeed" } else { "fail" };
            self.failures
                .push(format!("{peer}: {operation}: expected to {want}\n{result}"));
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

fn node_script(args: &[&str]) -> tokio::process::Command {
    let dir = js_dir().expect("sigstore-js");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("sigstore-js.mjs"))
        .args(args)
        .current_dir(dir);
    cmd
}

async fn verify(
    bundle: &Path,
    trusted_root: &Path,
    identity: &str,
    issuer: &str,
    artifact: Option<&Path>,
) -> CmdResult {
    let mut cmd = node_script(&["verify"]);
    cmd.arg("--bundle").arg(bundle);
    cmd.arg("--trusted-root").arg(trusted_root);
    cmd.args(["--identity", identity, "--issuer", issuer]);
    // Sigil's log entries carry integrated times; no TSA is needed.
    cmd.args(["--timestamp-threshold", "0"]);
    if let Some(a) = artifact {
        cmd.arg("--artifact").arg(a);
    }
    run(cmd, TIMEOUT).await.expect("run sigstore-js verify")
}

#[tokio::test]
async fn sigstore_js_attests_and_signs_and_verifies_against_sigil() {
    let js = js_dir().expect("sigstore-js");
    let idp = OidcProvider::start().await.expect("OIDC provider");
    let stack = SigilStack::up_with(StackOptions {
        extra_issuers: vec![ExtraIssuer::email(idp.issuer())],
        ..StackOptions::default()
    })
    .await
    .expect("sigil-server up");
    let dir = stack.scratch();
    let trust = stack.fetch_trust_files(dir).await.expect("trust files");
    let identity = "carol@example.com";
    let issuer = idp.issuer().to_string();
    let mut checks = Checks::default();

    // An in-toto statement about an artifact, attested with the CLI (DSSE, intoto 0.0.2).
    let artifact = dir.join("app.tar");
    std::fs::write(&artifact, b"pretend this is a release tarball\n").unwrap();
    let digest = sha256_hex(&std::fs::read(&artifact).unwrap());
    let statement = dir.join("statement.json");
    std::fs::write(
        &statement,
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app.tar", "digest": {"sha256": digest}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://example.com/test"}}
        }))
        .unwrap(),
    )
    .unwrap();
    let attestation = dir.join("statement.sigstore.json");
    let token = idp.token("carol", Some(identity)).await.unwrap();
    let mut cmd = tokio::process::Command::new(js.join("node_modules/.bin/sigstore"));
    cmd.arg("attest")
        .arg(&statement)
        .args(["--fulcio-url", stack.url(), "--rekor-url", stack.url()])
        .args(["--timeout", "30", "--output-file"])
        .arg(&attestation)
        .env("CI", "true")
        .env("SIGSTORE_ID_TOKEN", &token);
    let attested = run(cmd, TIMEOUT).await.expect("run sigstore attest");
    checks.expect(
        CLI,
        "attest (publicKeyRequest + PoP, intoto 0.0.2)",
        &attested,
        true,
    );
    if attested.success() {
        let r = verify(&attestation, &trust.trusted_root, identity, &issuer, None).await;
        checks.expect(
            LIB,
            "verify DSSE attestation (custom trusted root)",
            &r,
            true,
        );
        let r = verify(
            &attestation,
            &trust.trusted_root,
            "eve@example.com",
            &issuer,
            None,
        )
        .await;
        checks.expect(LIB, "verify rejects wrong identity", &r, false);
        // The same attestation through Sigil's own verifier, offline, with the file as a subject.
        let mut cmd = tokio::process::Command::new(
            sigil_tests::workspace_bin("sigil").expect("sigil binary"),
        );
        cmd.arg("verify-attestation")
            .arg(&artifact)
            .arg("--bundle")
            .arg(&attestation)
            .args([
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                &issuer,
            ])
            .arg("--trusted-root")
            .arg(&trust.trusted_root);
        let r = run(cmd, TIMEOUT)
            .await
            .expect("run sigil verify-attestation");
        checks.expect(
            CLI,
            "attestation verifies with sigil verify-attestation",
            &r,
            true,
        );
    }

    // A blob signed with the library (messageSignature, hashedrekord).
    let blob = dir.join("blob.txt");
    std::fs::write(&blob, b"signed by sigstore-js\n").unwrap();
    let bundle = dir.join("blob.sigstore.json");
    let token = idp.token("carol", Some(identity)).await.unwrap();
    let mut cmd = node_script(&[
        "sign",
        "--fulcio-url",
        stack.url(),
        "--rekor-url",
        stack.url(),
    ]);
    cmd.args(["--token", &token]);
    cmd.arg("--artifact").arg(&blob).arg("--out").arg(&bundle);
    let signed = run(cmd, TIMEOUT).await.expect("run sigstore-js sign");
    checks.expect(LIB, "sign blob (hashedrekord)", &signed, true);
    if signed.success() {
        let r = verify(&bundle, &trust.trusted_root, identity, &issuer, Some(&blob)).await;
        checks.expect(LIB, "verify blob bundle (custom trusted root)", &r, true);
        let modified = dir.join("modified.txt");
        std::fs::write(&modified, b"signed by sigstore-js?\n").unwrap();
        let r = verify(
            &bundle,
            &trust.trusted_root,
            identity,
            &issuer,
            Some(&modified),
        )
        .await;
        checks.expect(LIB, "verify rejects modified blob", &r, false);
    }
    // sigil signs with its defaults (Rekor v2 + the TSA), sigstore-js verifies: it looks the
    // checkpoint's key name up in the log's URL, so the v2 log must be named after it.
    let sigil_bundle = dir.join("sigil-v2.sigstore.json");
    let token = idp.token("carol", Some(identity)).await.unwrap();
    let mut cmd =
        tokio::process::Command::new(sigil_tests::workspace_bin("sigil").expect("sigil binary"));
    cmd.arg("sign-blob")
        .arg(&blob)
        .arg("--bundle")
        .arg(&sigil_bundle)
        .arg("--trust-config")
        .arg(&trust.client_trust_config)
        .args(["--identity-token", &token])
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env_remove("SIGSTORE_ID_TOKEN");
    let r = run(cmd, TIMEOUT).await.expect("run sigil sign-blob");
    assert!(
        r.success(),
        "sigil sign-blob failed\n{r}\n{}",
        stack.output()
    );
    {
        let b: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sigil_bundle).unwrap()).unwrap();
        assert_eq!(
            b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"], "0.0.2",
            "the default is Rekor v2: {b}"
        );
        let r = verify(
            &sigil_bundle,
            &trust.trusted_root,
            identity,
            &issuer,
            Some(&blob),
        )
        .await;
        checks.expect(LIB, "verify a sigil Rekor v2 + TSA bundle", &r, true);
    }
    checks.finish(&stack);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
