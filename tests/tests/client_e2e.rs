//! End-to-end: the `sigil` CLI against a running `sigil-server up` (CA + CT log + Rekor v1 log +
//! dev OIDC issuer): keyless and key-based sign-blob → verify-blob, every tampering caught by the
//! specific check, offline verification, attestations and the conformance subcommands.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigil_tests::{ServerProcess, free_port, workspace_bin};

struct Stack {
    server: Option<ServerProcess>,
    url: String,
    dir: tempfile::TempDir,
}

impl Stack {
    /// `sigil-server up` on a fresh data dir: first run enables the development OIDC issuer.
    async fn up() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("sigil-client-e2e-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let bin = workspace_bin("sigil-server").unwrap();
        let data = dir.path().join("data");
        let mut server = ServerProcess::spawn(
            &bin,
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
        Stack {
            server: Some(server),
            url,
            dir,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sigil(&self, args: &[&str]) -> Output {
        let bin = workspace_bin("sigil").unwrap();
        Command::new(bin)
            .args(args)
            .env("SIGIL_HOME", self.home())
            .env("SIGIL_PASSWORD", "correct horse")
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("SIGIL_TRUSTED_ROOT")
            .env_remove("SIGIL_SIGNING_CONFIG")
            .env_remove("SIGIL_TRUST_CONFIG")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.sigil(args);
        let (so, se) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "sigil {args:?} failed:\n{so}\n{se}\nserver:\n{}",
            self.server_output()
        );
        so.into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.sigil(args);
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "sigil {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        se
    }

    fn server_output(&self) -> String {
        self.server.as_ref().map(|s| s.output()).unwrap_or_default()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Reads a bundle, applies `f` to its JSON, writes it to `out`.
fn tamper(src: &Path, out: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(src).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn flip_b64(v: &mut Value, at: usize) {
    let mut b = STANDARD.decode(v.as_str().unwrap()).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 1;
    *v = Value::String(STANDARD.encode(b));
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_and_key_based_sign_and_verify() {
    let mut st = Stack::up().await;
    let url = st.url.clone();
    let issuer = format!("{url}/oidc");
    const ID: &str = "developer@sigil.localhost";

    let out = st.ok(&["trust", "init", "--url", &url]);
    assert!(out.contains("Trusted root fingerprint: sha256:"), "{out}");
    let out = st.ok(&["login", "--issuer", &issuer]);
    assert!(out.contains(ID), "{out}");

    let a = st.path("a.txt");
    std::fs::write(&a, b"hello sigil\n").unwrap();
    let bundle = st.path("a.sigstore.json");
    // Rekor v1 here (entries with a SET); the default, Rekor v2 + TSA, is tested below.
    let out = st.ok(&[
        "sign-blob",
        s(&a),
        "--bundle",
        s(&bundle),
        "--rekor-version",
        "1",
    ]);
    assert!(
        out.contains("Log index: ") && out.contains("Entry UUID: "),
        "{out}"
    );
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert!(b["verificationMaterial"]["certificate"]["rawBytes"].is_string());

    let verify = |bundle: &Path, file: &Path, id: &str, iss: &str| -> Vec<String> {
        vec![
            "verify-blob".into(),
            s(file).into(),
            "--bundle".into(),
            s(bundle).into(),
            "--certificate-identity".into(),
            id.into(),
            "--certificate-oidc-issuer".into(),
            iss.into(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let good = verify(&bundle, &a, ID, &issuer);
    let out = st.ok(&args(&good));
    assert!(out.contains("Verified OK"), "{out}");

    // --output json
    let mut j = good.clone();
    j.extend(["--output".into(), "json".into()]);
    let v: Value = serde_json::from_str(&st.ok(&args(&j))).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["result"]["certificate"]["subjectAlternativeNames"][0], ID);
    assert_eq!(v["result"]["certificate"]["issuer"], issuer.as_str());

    // Regexp matchers.
    let out = st.ok(&[
        "verify-blob",
        s(&a),
        "--bundle",
        s(&bundle),
        "--certificate-identity-regexp",
        "@sigil\\.localhost$",
        "--certificate-oidc-issuer-regexp",
        "^http://127\\.0\\.0\\.1:[0-9]+/oidc$",
    ]);
    assert!(out.contains("Verified OK"));

    // A modified file.
    let m = st.path("modified.txt");
    std::fs::write(&m, b"hello sigil!\n").unwrap();
    let err = st.fails(&args(&verify(&bundle, &m, ID, &issuer)));
    assert!(err.contains("artifact digest mismatch"), "{err}");

    // Wrong identity, wrong issuer: the error names both values.
    let err = st.fails(&args(&verify(&bundle, &a, "mallory@example.com", &issuer)));
    assert!(
        err.contains("identity mismatch")
            && err.contains("mallory@example.com")
            && err.contains(ID),
        "{err}"
    );
    let err = st.fails(&args(&verify(
        &bundle,
        &a,
        ID,
        "https://accounts.google.com",
    )));
    assert!(
        err.contains("issuer mismatch") && err.contains(&issuer),
        "{err}"
    );

    // Altered tlog entry body, inclusion proof, checkpoint, SET.
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>, &str)> = vec![
        (
            "body",
            Box::new(|v: &mut Value| {
                let body = &mut v["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"];
                let mut j: Value =
                    serde_json::from_slice(&STANDARD.decode(body.as_str().unwrap()).unwrap())
                        .unwrap();
                j["spec"]["data"]["hash"]["value"] = Value::String("00".repeat(32));
                *body = Value::String(STANDARD.encode(serde_json::to_vec(&j).unwrap()));
            }),
            "tlog entry body mismatch in spec.data.hash.value",
        ),
        (
            "proof",
            Box::new(|v: &mut Value| {
                let p = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
                p["rootHash"] = Value::String(STANDARD.encode([7u8; 32]));
            }),
            "inclusion proof",
        ),
        (
            "checkpoint",
            Box::new(|v: &mut Value| {
                let c = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
                    ["envelope"];
                let text = c.as_str().unwrap().to_owned();
                // Re-sign nothing: change the tree size line.
                let mut lines: Vec<&str> = text.split('\n').collect();
                let bumped = format!("{}9", lines[1]);
                lines[1] = &bumped;
                *c = Value::String(lines.join("\n"));
            }),
            "checkpoint",
        ),
        (
            "set",
            Box::new(|v: &mut Value| {
                flip_b64(
                    &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
                    12,
                );
            }),
            "signed entry timestamp (SET)",
        ),
        (
            "integrated-time",
            Box::new(|v: &mut Value| {
                let t = &mut v["verificationMaterial"]["tlogEntries"][0]["integratedTime"];
                let n: i64 = t.as_str().unwrap().parse().unwrap();
                *t = Value::String((n + 1).to_string());
            }),
            "signed entry timestamp (SET)",
        ),
        (
            "certificate",
            Box::new(|v: &mut Value| {
                let c = &mut v["verificationMaterial"]["certificate"]["rawBytes"];
                let n = STANDARD.decode(c.as_str().unwrap()).unwrap().len();
                flip_b64(c, n - 10);
            }),
            "untrusted certificate",
        ),
        (
            "signature",
            Box::new(|v: &mut Value| flip_b64(&mut v["messageSignature"]["signature"], 20)),
            // The TSA's message imprint is over the signature: checked first.
            "is not the sha256 of the bundle's signature",
        ),
        (
            "signature, no timestamp",
            Box::new(|v: &mut Value| {
                flip_b64(&mut v["messageSignature"]["signature"], 20);
                v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
                    Value::Array(vec![]);
            }),
            "tlog entry body mismatch in spec.signature.content",
        ),
    ];
    for (name, f, want) in cases {
        let t = st.path(&format!("tampered-{}.json", name.replace([' ', ','], "-")));
        tamper(&bundle, &t, f);
        let err = st.fails(&args(&verify(&t, &a, ID, &issuer)));
        assert!(err.contains(want), "{name}: expected {want:?} in {err}");
    }

    // The SCT: embedded in the certificate, so altering it breaks the CA signature; a trusted
    // root whose CT log key is not the one that signed shows the SCT check itself.
    let root: Value =
        serde_json::from_slice(&std::fs::read(st.home().join("trusted_root.json")).unwrap())
            .unwrap();
    let mut other_ct = root.clone();
    let fake_key =
        sigil_core::crypto::SigningKey::generate(sigil_core::crypto::KeyAlgorithm::EcdsaP256)
            .unwrap();
    let spki = fake_key.public_key().spki_der().to_vec();
    other_ct["ctlogs"][0]["publicKey"]["rawBytes"] = Value::String(STANDARD.encode(&spki));
    other_ct["ctlogs"][0]["logId"]["keyId"] =
        Value::String(STANDARD.encode(sigil_core::crypto::sha256(&spki)));
    let other_ct_path = st.path("root-other-ct.json");
    std::fs::write(&other_ct_path, serde_json::to_vec(&other_ct).unwrap()).unwrap();
    let mut v = good.clone();
    v.extend(["--trusted-root".into(), s(&other_ct_path).into()]);
    let err = st.fails(&args(&v));
    assert!(err.contains("SCT:"), "{err}");

    // A trusted root without the CA.
    let mut no_ca = root.clone();
    no_ca["certificateAuthorities"] = Value::Array(vec![]);
    let no_ca_path = st.path("root-no-ca.json");
    std::fs::write(&no_ca_path, serde_json::to_vec(&no_ca).unwrap()).unwrap();
    let mut v = good.clone();
    v.extend(["--trusted-root".into(), s(&no_ca_path).into()]);
    let err = st.fails(&args(&v));
    assert!(err.contains("untrusted certificate"), "{err}");

    // Key-based.
    st.ok(&["generate-key-pair", "--output-key-prefix", "k"]);
    let key_bundle = st.path("k.sigstore.json");
    st.ok(&[
        "sign-blob",
        s(&a),
        "--bundle",
        s(&key_bundle),
        "--key",
        "k.key",
        "--rekor-version",
        "1",
    ]);
    let out = st.ok(&[
        "verify-blob",
        s(&a),
        "--bundle",
        s(&key_bundle),
        "--key",
        "k.pub",
    ]);
    assert!(out.contains("Verified OK"));
    let err = st.fails(&[
        "verify-blob",
        s(&m),
        "--bundle",
        s(&key_bundle),
        "--key",
        "k.pub",
    ]);
    assert!(err.contains("artifact digest mismatch"), "{err}");
    st.ok(&["generate-key-pair", "--output-key-prefix", "other"]);
    let err = st.fails(&[
        "verify-blob",
        s(&a),
        "--bundle",
        s(&key_bundle),
        "--key",
        "other.pub",
    ]);
    assert!(
        err.contains("tlog entry body mismatch in spec.signature.publicKey.content"),
        "{err}"
    );
    let t = st.path("k-tampered.json");
    tamper(&key_bundle, &t, |v| {
        flip_b64(
            &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
            12,
        )
    });
    let err = st.fails(&["verify-blob", s(&a), "--bundle", s(&t), "--key", "k.pub"]);
    assert!(err.contains("signed entry timestamp (SET)"), "{err}");
    // A keyless bundle with --key of another key.
    let err = st.fails(&[
        "verify-blob",
        s(&a),
        "--bundle",
        s(&bundle),
        "--key",
        "k.pub",
    ]);
    assert!(err.contains("not the given key"), "{err}");

    // Attestations (DSSE, in-toto).
    let pred = st.path("pred.json");
    std::fs::write(&pred, br#"{"buildType": "https://example.com/build"}"#).unwrap();
    let att = st.path("a.att.json");
    st.ok(&[
        "attest",
        s(&a),
        "--predicate",
        s(&pred),
        "--type",
        "https://example.com/predicate/v1",
        "--bundle",
        s(&att),
        "--rekor-version",
        "1",
    ]);
    let out = st.ok(&[
        "verify-attestation",
        s(&a),
        "--bundle",
        s(&att),
        "--type",
        "https://example.com/predicate/v1",
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        &issuer,
    ]);
    assert!(out.contains("Verified OK"));
    let err = st.fails(&[
        "verify-attestation",
        s(&m),
        "--bundle",
        s(&att),
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        &issuer,
    ]);
    assert!(err.contains("artifact digest mismatch"), "{err}");

    // Conformance protocol.
    let token = std::fs::read_to_string(st.home().join("id_token")).unwrap();
    let tr = st.home().join("trusted_root.json");
    let sc = st.home().join("signing_config.json");
    let cb = st.path("conf.sigstore.json");
    st.ok(&[
        "sign-bundle",
        "--identity-token",
        token.trim(),
        "--bundle",
        s(&cb),
        "--trusted-root",
        s(&tr),
        "--signing-config",
        s(&sc),
        s(&a),
    ]);
    st.ok(&[
        "verify-bundle",
        "--bundle",
        s(&cb),
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        &issuer,
        "--trusted-root",
        s(&tr),
        s(&a),
    ]);
    let digest = format!(
        "sha256:{}",
        hex::encode(sigil_core::crypto::sha256(&std::fs::read(&a).unwrap()))
    );
    let out = st.ok(&[
        "verify-bundle",
        "--bundle",
        s(&cb),
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        &issuer,
        "--trusted-root",
        s(&tr),
        "--output",
        "json",
        &digest,
    ]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verified"], true, "{out}");
    assert!(
        j["result"]["certificate"]["subjectAlternativeNames"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == ID)),
        "{out}"
    );
    let out = st.sigil(&[
        "verify-bundle",
        "--bundle",
        s(&cb),
        "--certificate-identity",
        "x@y",
        "--certificate-oidc-issuer",
        &issuer,
        "--trusted-root",
        s(&tr),
        s(&a),
    ]);
    assert!(!out.status.success());
    sigil_tests::record_interop(
        "sigil (conformance protocol)",
        "sign-bundle + verify-bundle (file, sha256: digest, wrong identity refused)",
        true,
    );

    // Log commands.
    let out = st.ok(&["log", "get", "--index", "0"]);
    assert!(out.contains("Inclusion proof: verified"), "{out}");
    let out = st.ok(&["log", "search", "--artifact", s(&a)]);
    assert!(out.lines().count() >= 2, "{out}");
    st.ok(&["log", "verify"]);
    let out = st.ok(&["log", "verify"]);
    assert!(
        out.contains("Consistent with the last seen checkpoint"),
        "{out}"
    );

    // Verification is offline: stop the server, verify again.
    drop(st.server.take());
    let start = Instant::now();
    let n = 20;
    for _ in 0..n {
        let out = st.ok(&args(&good));
        assert!(out.contains("Verified OK"));
    }
    eprintln!(
        "sigil verify-blob (offline): {:?} per verification",
        start.elapsed() / n
    );
}

/// The signing config of `up` lists Rekor v1 and v2 and the TSA: `sigil sign-blob` picks v2 (as
/// other Sigstore clients do), timestamps the signature, and the bundle verifies from the RFC 3161
/// time; every part of that evidence is checked.
#[tokio::test(flavor = "multi_thread")]
async fn sign_blob_picks_rekor_v2_and_the_tsa_from_the_signing_config() {
    let st = Stack::up().await;
    let url = st.url.clone();
    let issuer = format!("{url}/oidc");
    const ID: &str = "developer@sigil.localhost";
    st.ok(&["trust", "init", "--url", &url]);
    st.ok(&["login", "--issuer", &issuer]);

    let a = st.path("v2.txt");
    std::fs::write(&a, b"logged in Rekor v2\n").unwrap();
    let bundle = st.path("v2.sigstore.json");
    let out = st.ok(&["sign-blob", s(&a), "--bundle", s(&bundle)]);
    assert!(out.contains("Log index: "), "{out}");
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let e = &b["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(e["kindVersion"]["kind"], "hashedrekord", "{e}");
    assert_eq!(e["kindVersion"]["version"], "0.0.2", "{e}");
    assert!(e.get("inclusionPromise").is_none(), "v2 has no SET: {e}");
    assert!(
        e["inclusionProof"]["checkpoint"]["envelope"].is_string(),
        "{e}"
    );
    let ts = &b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
    assert_eq!(ts.as_array().map(Vec::len), Some(1), "{b}");
    // The v2 log's own checkpoint covers the entry.
    let cp = reqwest::get(format!("{url}/api/v2/checkpoint"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let size: u64 = cp.lines().nth(1).unwrap().parse().unwrap();
    let index: u64 = e["logIndex"].as_str().unwrap().parse().unwrap();
    assert!(index < size, "index {index}, v2 tree size {size}");

    let verify = |bundle: &Path| -> Vec<String> {
        [
            "verify-blob",
            s(&a),
            "--bundle",
            s(bundle),
            "--certificate-identity",
            ID,
            "--certificate-oidc-issuer",
            &issuer,
        ]
        .map(String::from)
        .to_vec()
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let out = st.ok(&args(&verify(&bundle)));
    assert!(out.contains("Verified OK"), "{out}");

    // The entry read back from the v2 log's tiles, its proof checked against the checkpoint.
    let idx = index.to_string();
    let out = st.ok(&["log", "get", "--rekor-version", "2", "--index", &idx]);
    assert!(out.contains("Inclusion proof: verified"), "{out}");
    let body = STANDARD
        .decode(e["canonicalizedBody"].as_str().unwrap())
        .unwrap();
    let uuid = hex::encode(sigil_core::merkle::leaf_hash(&body));
    assert!(out.contains(&uuid), "{out}");
    let out = st.ok(&[
        "log",
        "get",
        "--rekor-version",
        "2",
        "--index",
        &idx,
        "--output",
        "json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        j[0]["body"],
        serde_json::from_slice::<Value>(&body).unwrap()
    );
    assert_eq!(j[0]["log"]["rekorVersion"], 2);
    // The v2 checkpoint is remembered; later ones must be consistent with it (tile proofs).
    let out = st.ok(&["log", "verify", "--rekor-version", "2"]);
    assert!(out.contains("Verified checkpoint: size 1"), "{out}");
    let err = st.fails(&["log", "get", "--rekor-version", "2", "--index", "999999"]);
    assert!(err.contains("has an entry at index 999999"), "{err}");
    // Sigil's index of the v2 log finds the entry by UUID.
    let out = st.ok(&["log", "get", "--rekor-version", "2", "--uuid", &uuid]);
    assert!(out.contains(&format!("UUID: {uuid}")), "{out}");

    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>, &str)> = vec![
        (
            "timestamp signature",
            Box::new(|v: &mut Value| {
                let t = &mut v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
                    [0]["signedTimestamp"];
                let n = STANDARD.decode(t.as_str().unwrap()).unwrap().len();
                flip_b64(t, n - 20);
            }),
            "timestamp",
        ),
        (
            "no timestamp",
            Box::new(|v: &mut Value| {
                v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
                    Value::Array(vec![]);
            }),
            "no signed entry timestamp and the bundle no RFC 3161 timestamp",
        ),
        (
            "proof",
            Box::new(|v: &mut Value| {
                let p = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
                p["rootHash"] = Value::String(STANDARD.encode([7u8; 32]));
            }),
            "inclusion proof",
        ),
        (
            "signature",
            Box::new(|v: &mut Value| flip_b64(&mut v["messageSignature"]["signature"], 20)),
            "is not the sha256 of the bundle's signature",
        ),
    ];
    for (name, f, want) in cases {
        let t = st.path(&format!("v2-tampered-{}.json", name.replace(' ', "-")));
        tamper(&bundle, &t, f);
        let err = st.fails(&args(&verify(&t)));
        assert!(err.contains(want), "{name}: expected {want:?} in {err}");
    }
    // A trusted root without the TSA cannot date the signature.
    let mut root: Value =
        serde_json::from_slice(&std::fs::read(st.home().join("trusted_root.json")).unwrap())
            .unwrap();
    root["timestampAuthorities"] = Value::Array(vec![]);
    let no_tsa = st.path("root-no-tsa.json");
    std::fs::write(&no_tsa, serde_json::to_vec(&root).unwrap()).unwrap();
    let mut v = verify(&bundle);
    v.extend(["--trusted-root".into(), s(&no_tsa).into()]);
    let err = st.fails(&args(&v));
    assert!(err.contains("timestamp authority"), "{err}");

    // Key-based signing and attestations go through v2 as well.
    st.ok(&["generate-key-pair", "--output-key-prefix", "k2"]);
    let kb = st.path("k2.sigstore.json");
    st.ok(&["sign-blob", s(&a), "--bundle", s(&kb), "--key", "k2.key"]);
    let k: Value = serde_json::from_slice(&std::fs::read(&kb).unwrap()).unwrap();
    assert_eq!(
        k["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.2"
    );
    let out = st.ok(&["verify-blob", s(&a), "--bundle", s(&kb), "--key", "k2.pub"]);
    assert!(out.contains("Verified OK"), "{out}");
    let pred = st.path("pred.json");
    std::fs::write(&pred, br#"{"buildType": "https://example.com/build"}"#).unwrap();
    let att = st.path("v2.att.json");
    st.ok(&[
        "attest",
        s(&a),
        "--predicate",
        s(&pred),
        "--bundle",
        s(&att),
    ]);
    let out = st.ok(&[
        "verify-attestation",
        s(&a),
        "--bundle",
        s(&att),
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        &issuer,
    ]);
    assert!(out.contains("Verified OK"), "{out}");
    let out = st.ok(&["log", "verify", "--rekor-version", "2"]);
    assert!(
        out.contains("Consistent with the last seen checkpoint (size 1)")
            && out.contains("Verified checkpoint: size 3"),
        "{out}"
    );
    // A forged last-seen checkpoint (same size, other root) is reported as a fork.
    let state = std::fs::read_dir(st.home())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-v2.json"))
        .expect("stored v2 checkpoint");
    std::fs::write(
        &state,
        format!(r#"{{"size": 3, "root": "{}"}}"#, "ab".repeat(32)),
    )
    .unwrap();
    let err = st.fails(&["log", "verify", "--rekor-version", "2"]);
    assert!(err.contains("the log forked"), "{err}");
    std::fs::write(
        &state,
        format!(r#"{{"size": 2, "root": "{}"}}"#, "ab".repeat(32)),
    )
    .unwrap();
    let err = st.fails(&["log", "verify", "--rekor-version", "2"]);
    assert!(
        err.contains("is not consistent with the last seen 2"),
        "{err}"
    );
    // With three entries in the v2 log, the first one's proof has real hashes.
    let out = st.ok(&["log", "get", "--rekor-version", "2", "--index", "0"]);
    assert!(
        out.contains("Inclusion proof: verified against checkpoint of size 3"),
        "{out}"
    );

    // Without a TSA the v2 log is unusable: asked for explicitly, it is refused with what to
    // do; by default the client falls back to the v1 log.
    let mut sc: Value =
        serde_json::from_slice(&std::fs::read(st.home().join("signing_config.json")).unwrap())
            .unwrap();
    sc["tsaUrls"] = Value::Array(vec![]);
    let sc_path = st.path("sc-no-tsa.json");
    std::fs::write(&sc_path, serde_json::to_vec(&sc).unwrap()).unwrap();
    let b2 = st.path("no-tsa.sigstore.json");
    let err = st.fails(&[
        "sign-blob",
        s(&a),
        "--bundle",
        s(&b2),
        "--signing-config",
        s(&sc_path),
        "--rekor-version",
        "2",
    ]);
    assert!(
        err.contains("tsaUrls") && err.contains("--rekor-version 1"),
        "{err}"
    );
    st.ok(&[
        "sign-blob",
        s(&a),
        "--bundle",
        s(&b2),
        "--signing-config",
        s(&sc_path),
    ]);
    let v1: Value = serde_json::from_slice(&std::fs::read(&b2).unwrap()).unwrap();
    assert_eq!(
        v1["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.1"
    );
    assert!(
        v1["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"]
            .is_string()
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is not installed ({e}): apt-get install openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pem_to_der_b64(pem: &Path) -> String {
    let text = std::fs::read_to_string(pem).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.encode(STANDARD.decode(b64).unwrap())
}

/// A timestamp from another RFC 3161 implementation: OpenSSL's TSA with an RSA-4096 key that
/// signs SHA-512 (as some public TSAs do), trusted through the trusted root, dates a Sigil
/// bundle; with the TSA missing from the trusted root the same bundle is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_timestamped_by_openssl_rsa_4096_tsa_verifies() {
    let st = Stack::up().await;
    let url = st.url.clone();
    let issuer = format!("{url}/oidc");
    const ID: &str = "developer@sigil.localhost";
    st.ok(&["trust", "init", "--url", &url]);
    st.ok(&["login", "--issuer", &issuer]);
    let a = st.path("ts.txt");
    std::fs::write(&a, b"timestamped elsewhere\n").unwrap();
    let bundle = st.path("ts.sigstore.json");
    st.ok(&["sign-blob", s(&a), "--bundle", s(&bundle)]);

    // An OpenSSL TSA: RSA-4096 root and time-stamping certificate, SHA-512 signer digest.
    let d = st.path("openssl-tsa");
    std::fs::create_dir_all(&d).unwrap();
    openssl(
        &d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-subj",
            "/O=Elsewhere/CN=Elsewhere TSA Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        &d,
        &[
            "req",
            "-newkey",
            "rsa:4096",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/O=Elsewhere/CN=Elsewhere TSA",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "tsa.pem",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
        ],
    );
    std::fs::write(
        d.join("tsa.cnf"),
        format!(
            "[tsa]\ndefault_tsa = t\n[t]\ndir = {}\nserial = $dir/serial\nsigner_digest = sha512\n\
             default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\naccuracy = secs:1\n\
             ess_cert_id_alg = sha256\ncrypto_device = builtin\n",
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(d.join("serial"), "01\n").unwrap();
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let sig = STANDARD
        .decode(b["messageSignature"]["signature"].as_str().unwrap())
        .unwrap();
    std::fs::write(d.join("sig.bin"), &sig).unwrap();
    openssl(
        &d,
        &[
            "ts", "-query", "-data", "sig.bin", "-sha256", "-cert", "-out", "q.tsq",
        ],
    );
    openssl(
        &d,
        &[
            "ts",
            "-reply",
            "-config",
            "tsa.cnf",
            "-queryfile",
            "q.tsq",
            "-signer",
            "tsa.pem",
            "-inkey",
            "tsa.key",
            "-chain",
            "root.pem",
            "-out",
            "r.tsr",
        ],
    );
    let reply = std::fs::read(d.join("r.tsr")).unwrap();

    let stamped = st.path("ts-openssl.sigstore.json");
    tamper(&bundle, &stamped, |v| {
        v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
            serde_json::json!([{"signedTimestamp": STANDARD.encode(&reply)}]);
    });
    let mut root: Value =
        serde_json::from_slice(&std::fs::read(st.home().join("trusted_root.json")).unwrap())
            .unwrap();
    let elsewhere = serde_json::json!({
        "subject": {"organization": "Elsewhere", "commonName": "Elsewhere TSA"},
        "uri": "https://tsa.elsewhere.test",
        "certChain": {"certificates": [
            {"rawBytes": pem_to_der_b64(&d.join("tsa.pem"))},
            {"rawBytes": pem_to_der_b64(&d.join("root.pem"))},
        ]},
        "validFor": {"start": "2020-01-01T00:00:00Z"},
    });
    let without = st.path("root-without-elsewhere.json");
    std::fs::write(&without, serde_json::to_vec(&root).unwrap()).unwrap();
    root["timestampAuthorities"]
        .as_array_mut()
        .unwrap()
        .push(elsewhere);
    let with = st.path("root-with-elsewhere.json");
    std::fs::write(&with, serde_json::to_vec(&root).unwrap()).unwrap();

    let verify = |root: &Path| {
        vec![
            "verify-blob".to_owned(),
            s(&a).into(),
            "--bundle".into(),
            s(&stamped).into(),
            "--certificate-identity".into(),
            ID.into(),
            "--certificate-oidc-issuer".into(),
            issuer.clone(),
            "--trusted-root".into(),
            s(root).into(),
        ]
    };
    let args = verify(&with);
    let out = st.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("Verified OK"), "{out}");
    let args = verify(&without);
    let err = st.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("timestamp authority"), "{err}");
}
