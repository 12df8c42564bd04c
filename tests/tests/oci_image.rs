//! Container-image signing against a real registry (Debian's `docker-registry`, Distribution
//! 2.8, on loopback) with test images pushed by `skopeo`: `sigil sign` → `sigil verify`, the
//! failures that must be clear (unsigned, re-tagged, transplanted or tampered signatures, wrong
//! identity), key-based signing, attestations, the Kyverno policy, and the pushed signature read
//! and checked by an independent implementation of cosign's format (the `sigstore` crate).

// Test helpers outside #[test] functions fail loudly by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::Digest;
use sigil_tests::{DockerRegistry, SigilStack, TrustFiles, workspace_bin};
use tempfile::TempDir;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A `docker-registry` on a free loopback port (see the harness) and a client to inspect it.
struct Registry {
    inner: DockerRegistry,
    host: String,
    http: reqwest::Client,
}

impl Registry {
    async fn start() -> Registry {
        let inner = DockerRegistry::start().await.unwrap();
        Registry {
            host: inner.host.clone(),
            inner,
            http: reqwest::Client::new(),
        }
    }

    fn push_image(&self, repo: &str, tag: &str, content: &str) {
        self.inner.push_image(repo, tag, content).unwrap();
    }

    /// The manifest at `reference`: (bytes, digest of the bytes).
    async fn manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String)> {
        let resp = self
            .http
            .get(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host
            ))
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        if resp.status() == 404 {
            return None;
        }
        assert!(resp.status().is_success(), "{}", resp.status());
        let b = resp.bytes().await.unwrap().to_vec();
        let d = format!("sha256:{}", sha256_hex(&b));
        Some((b, d))
    }

    async fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("http://{}/v2/{repo}/blobs/{digest}", self.host))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        resp.bytes().await.unwrap().to_vec()
    }

    async fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        let resp = self
            .http
            .post(format!("http://{}/v2/{repo}/blobs/uploads/", self.host))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{}{loc}", self.host)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let resp = self
            .http
            .put(format!("{loc}{sep}digest={digest}"))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        digest
    }

    async fn put_manifest(&self, repo: &str, reference: &str, bytes: &[u8]) {
        let resp = self
            .http
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host
            ))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Runs `sigil` with a clean config dir.
fn sigil(home: &Path, args: &[&str]) -> Output {
    let bin = workspace_bin("sigil").unwrap();
    Command::new(bin)
        .args(args)
        .env("SIGIL_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("HOME", home)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "expected success:\n{}", text(&o));
    o
}

fn fails(o: Output, needle: &str) -> String {
    let t = text(&o);
    assert!(
        !o.status.success(),
        "expected failure containing {needle:?}:\n{t}"
    );
    assert!(t.contains(needle), "expected {needle:?} in:\n{t}");
    t
}

struct Env {
    reg: Registry,
    stack: SigilStack,
    trust: TrustFiles,
    home: TempDir,
}

impl Env {
    async fn new() -> Env {
        let reg = Registry::start().await;
        let stack = SigilStack::up().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let trust = stack.fetch_trust_files(home.path()).await.unwrap();
        Env {
            reg,
            stack,
            trust,
            home,
        }
    }

    fn ctc(&self) -> &str {
        self.trust.client_trust_config.to_str().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--trust-config", self.ctc()]);
        sigil(self.home.path(), &all)
    }

    fn image(&self, rest: &str) -> String {
        format!("{}/{rest}", self.reg.host)
    }
}

/// The signature the registry holds for `digest`, read and checked by sigstore-rs's cosign client.
async fn oracle_check(env: &Env, image: &str, digest: &str, identity: &str, issuer: &str) {
    use rustls_pki_types::CertificateDer;
    use sigstore::cosign::verification_constraint::cert_subject_email_verifier::StringVerifier;
    use sigstore::cosign::verification_constraint::{
        CertSubjectEmailVerifier, CertSubjectUrlVerifier, VerificationConstraint,
    };
    use sigstore::cosign::{ClientBuilder, CosignCapabilities, verify_constraints};
    use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
    use sigstore::trust::ManualTrustRoot;

    let root: Value =
        serde_json::from_slice(&std::fs::read(&env.trust.trusted_root).unwrap()).unwrap();
    let b64 = |v: &Value| STANDARD.decode(v.as_str().unwrap()).unwrap();
    let mut trust = ManualTrustRoot::default();
    for ca in root["certificateAuthorities"].as_array().unwrap() {
        for c in ca["certChain"]["certificates"].as_array().unwrap() {
            trust
                .fulcio_certs
                .push(CertificateDer::from(b64(&c["rawBytes"])));
        }
    }
    for t in root["tlogs"].as_array().unwrap() {
        trust.rekor_keys.insert(
            hex::encode(b64(&t["logId"]["keyId"])),
            b64(&t["publicKey"]["rawBytes"]),
        );
    }
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .with_trust_repository(&trust)
        .unwrap()
        .build()
        .unwrap();
    let reference: OciReference = image.parse().unwrap();
    let (cosign_image, source_digest) = client
        .triangulate(&reference, &Auth::Anonymous)
        .await
        .unwrap();
    assert_eq!(
        source_digest, digest,
        "sigstore-rs resolves the tag to the same digest"
    );
    assert!(
        cosign_image.to_string().ends_with(&sig_tag(digest)),
        "{cosign_image}"
    );
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &source_digest, &cosign_image)
        .await
        .unwrap();
    assert_eq!(layers.len(), 1, "one signature layer");
    let layer = &layers[0];
    let name = image.rsplit_once(':').unwrap().0;
    assert_eq!(
        layer.simple_signing.critical.image.docker_manifest_digest,
        digest
    );
    assert_eq!(
        layer.simple_signing.critical.identity.docker_reference,
        name
    );
    assert_eq!(
        layer.simple_signing.critical.type_name,
        "cosign container image signature"
    );
    let bundle = layer
        .bundle
        .as_ref()
        .expect("Rekor bundle verified by sigstore-rs");
    assert!(bundle.payload.integrated_time > 0);
    let cert = layer.certificate_signature.as_ref().expect(
        "sigstore-rs trusts the embedded certificate (chain to the CA, valid at integratedTime)",
    );
    assert_eq!(cert.issuer.as_deref(), Some(issuer));
    let constraint: Box<dyn VerificationConstraint> = match &cert.subject {
        sigstore::cosign::signature_layers::CertificateSubject::Email(e) => {
            assert_eq!(e, identity);
            Box::new(CertSubjectEmailVerifier {
                email: StringVerifier::ExactMatch(identity.into()),
                issuer: Some(StringVerifier::ExactMatch(issuer.into())),
            })
        }
        sigstore::cosign::signature_layers::CertificateSubject::Uri(u) => {
            assert_eq!(u, identity);
            Box::new(CertSubjectUrlVerifier {
                url: identity.into(),
                issuer: issuer.into(),
            })
        }
    };
    verify_constraints(&layers, [constraint].iter()).unwrap();
    // Same for a wrong identity: the oracle rejects it too.
    let wrong: Box<dyn VerificationConstraint> = Box::new(CertSubjectEmailVerifier {
        email: StringVerifier::ExactMatch("someone-else@example.com".into()),
        issuer: None,
    });
    assert!(verify_constraints(&layers, [wrong].iter()).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_sign_and_verify_in_a_real_registry() {
    let env = Env::new().await;
    env.reg.push_image("team/app", "v1", "image A");
    env.reg.push_image("team/app", "unsigned", "image C");
    let (_, digest_a) = env.reg.manifest("team/app", "v1").await.unwrap();
    let (token, identity) = env.stack.dev_token().await.unwrap();
    let issuer = env.stack.dev_issuer();
    let image = env.image("team/app:v1");

    // Sign: the tag is resolved and the digest signed; the log index is printed.
    let out = ok(env.run(&["sign", &image, "--identity-token", &token]));
    let t = text(&out);
    assert!(
        t.contains(&format!(
            "Resolved tag v1 of {} to {digest_a}",
            env.image("team/app")
        )),
        "{t}"
    );
    assert!(t.contains("tlog entry created with index:"), "{t}");
    assert!(
        t.contains("Bundle referrer: none"),
        "Distribution 2.8 has no referrers API: {t}"
    );

    // The signature image is cosign's: tag, media type, annotations.
    let (sig_manifest, _) = env
        .reg
        .manifest("team/app", &sig_tag(&digest_a))
        .await
        .unwrap();
    let m: Value = serde_json::from_slice(&sig_manifest).unwrap();
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = &layers[0];
    assert_eq!(layer["mediaType"], SIMPLESIGNING);
    let ann = layer["annotations"].as_object().unwrap();
    for k in [
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
    ] {
        assert!(
            ann.get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty()),
            "annotation {k}: {ann:?}"
        );
    }
    let payload = env
        .reg
        .blob("team/app", layer["digest"].as_str().unwrap())
        .await;
    let p: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        p["critical"]["image"]["docker-manifest-digest"],
        digest_a.as_str()
    );
    assert_eq!(
        p["critical"]["identity"]["docker-reference"],
        env.image("team/app")
    );
    let rekor: Value =
        serde_json::from_str(ann["dev.sigstore.cosign/bundle"].as_str().unwrap()).unwrap();
    let body: Value = serde_json::from_slice(
        &STANDARD
            .decode(rekor["Payload"]["body"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "hashedrekord");
    assert_eq!(body["spec"]["data"]["hash"]["value"], sha256_hex(&payload));

    // An independent implementation reads and checks it.
    oracle_check(&env, &image, &digest_a, &identity, &issuer).await;

    // Verify: by tag and by digest, human and JSON (cosign's shape).
    let id_args = [
        "--certificate-identity",
        &identity,
        "--certificate-oidc-issuer",
        &issuer,
    ];
    let mut args = vec!["verify", &image];
    args.extend(id_args);
    let out = ok(env.run(&args));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{}",
        text(&out)
    );
    let pinned = env.image(&format!("team/app@{digest_a}"));
    let mut args = vec!["verify", &pinned, "--output", "json"];
    args.extend(id_args);
    let out = ok(env.run(&args));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sigs = j.as_array().unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(
        sigs[0]["critical"]["image"]["docker-manifest-digest"],
        digest_a.as_str()
    );
    assert_eq!(
        sigs[0]["critical"]["type"],
        "cosign container image signature"
    );
    assert_eq!(sigs[0]["optional"]["Issuer"], issuer.as_str());
    assert_eq!(sigs[0]["optional"]["Subject"], identity.as_str());
    assert_eq!(
        sigs[0]["optional"]["Bundle"]["Payload"]["logIndex"],
        rekor["Payload"]["logIndex"]
    );
    // Identity by regular expression.
    let out = ok(env.run(&[
        "verify",
        &image,
        "--certificate-identity-regexp",
        ".+",
        "--certificate-oidc-issuer-regexp",
        "^http://127\\.0\\.0\\.1:[0-9]+/oidc$",
    ]));
    assert!(out.status.success());

    // Wrong identity and wrong issuer fail, naming what differs.
    let t = fails(
        env.run(&[
            "verify",
            &image,
            "--certificate-identity",
            "mallory@example.com",
            "--certificate-oidc-issuer",
            &issuer,
        ]),
        "identity mismatch",
    );
    assert!(t.contains("mallory@example.com"), "{t}");
    fails(
        env.run(&[
            "verify",
            &image,
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            "https://accounts.example.com",
        ]),
        "issuer mismatch",
    );

    // An unsigned tag: its own error.
    let unsigned = env.image("team/app:unsigned");
    let mut args = vec!["verify", &unsigned];
    args.extend(id_args);
    fails(env.run(&args), "no signatures found");

    // A tag re-pointed at a different image: that image has no signature.
    env.reg.push_image("team/app", "v1", "image B (different)");
    let (_, digest_b) = env.reg.manifest("team/app", "v1").await.unwrap();
    assert_ne!(digest_a, digest_b);
    let mut args = vec!["verify", &image];
    args.extend(id_args);
    fails(env.run(&args), "no signatures found");
    // ...and image A's signature copied onto image B does not carry over.
    env.reg
        .put_manifest("team/app", &sig_tag(&digest_b), &sig_manifest)
        .await;
    let t = fails(env.run(&args), "belongs to another image");
    assert!(t.contains(&digest_a) && t.contains(&digest_b), "{t}");

    // A tampered signature layer: the payload rewritten (a consistent manifest, new digest).
    let mut tampered: Value = p.clone();
    tampered["optional"] = json!({"note": "tampered"});
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let tampered_digest = env.reg.put_blob("team/app", &tampered).await;
    let mut m2 = m.clone();
    m2["layers"][0]["digest"] = json!(tampered_digest);
    m2["layers"][0]["size"] = json!(tampered.len());
    env.reg
        .put_manifest(
            "team/app",
            &sig_tag(&digest_a),
            &serde_json::to_vec(&m2).unwrap(),
        )
        .await;
    let mut args = vec!["verify", &pinned];
    args.extend(id_args);
    let t = fails(env.run(&args), "none of the 1 signature(s)");
    assert!(
        t.contains("tlog entry body mismatch") || t.contains("signature"),
        "{t}"
    );
    // A tampered signature annotation.
    let mut m3 = m.clone();
    let sig = STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let mut bad = sig.clone();
    *bad.last_mut().unwrap() ^= 1;
    m3["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] =
        json!(STANDARD.encode(&bad));
    env.reg
        .put_manifest(
            "team/app",
            &sig_tag(&digest_a),
            &serde_json::to_vec(&m3).unwrap(),
        )
        .await;
    fails(env.run(&args), "none of the 1 signature(s)");
    // Restored, it verifies again.
    env.reg
        .put_manifest("team/app", &sig_tag(&digest_a), &sig_manifest)
        .await;
    ok(env.run(&args));
}

#[tokio::test(flavor = "multi_thread")]
async fn key_signing_attestations_and_kyverno_policy() {
    let env = Env::new().await;
    env.reg.push_image("keyed/app", "v2", "image K");
    let (_, digest) = env.reg.manifest("keyed/app", "v2").await.unwrap();
    let image = env.image("keyed/app:v2");
    let home = env.home.path();

    // Key pair (encrypted private key), sign by digest, verify with the public key.
    let prefix = home.join("cosign");
    let bin = workspace_bin("sigil").unwrap();
    let out = Command::new(&bin)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .env("SIGIL_PASSWORD", "test-password")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let key = format!("{}.key", prefix.display());
    let pubkey = format!("{}.pub", prefix.display());
    let pinned = env.image(&format!("keyed/app@{digest}"));
    let out = Command::new(&bin)
        .args([
            "sign",
            &pinned,
            "--key",
            &key,
            "--trust-config",
            env.ctc(),
            "-a",
            "build=42",
        ])
        .env("SIGIL_PASSWORD", "test-password")
        .env("SIGIL_HOME", home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("Signing pinned digest {digest}")),
        "{}",
        text(&out)
    );
    let (sig_manifest, _) = env
        .reg
        .manifest("keyed/app", &sig_tag(&digest))
        .await
        .unwrap();
    let m: Value = serde_json::from_slice(&sig_manifest).unwrap();
    let ann = m["layers"][0]["annotations"].as_object().unwrap();
    assert!(
        !ann.contains_key("dev.sigstore.cosign/certificate"),
        "key signatures carry no certificate"
    );
    let out = ok(env.run(&["verify", &image, "--key", &pubkey, "--output", "json"]));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j[0]["optional"]["build"], "42");
    // The wrong key fails; an identity policy does not accept a key signature.
    let other = home.join("other");
    let out = Command::new(&bin)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            other.to_str().unwrap(),
        ])
        .env("SIGIL_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_pub = format!("{}.pub", other.display());
    fails(
        env.run(&["verify", &image, "--key", &other_pub]),
        "none of the 1 signature(s)",
    );
    let (token, identity) = env.stack.dev_token().await.unwrap();
    let issuer = env.stack.dev_issuer();
    fails(
        env.run(&[
            "verify",
            &image,
            "--certificate-identity",
            &identity,
            "--certificate-oidc-issuer",
            &issuer,
        ]),
        "requires a certificate identity",
    );

    // Attestation (keyless) at the .att tag; verify-attestation with and without --type.
    let predicate = home.join("provenance.json");
    std::fs::write(
        &predicate,
        r#"{"builder":{"id":"https://ci.example/builder"},"buildType":"test"}"#,
    )
    .unwrap();
    let out = ok(env.run(&[
        "attest",
        &image,
        "--predicate",
        predicate.to_str().unwrap(),
        "--type",
        "slsaprovenance",
        "--identity-token",
        &token,
    ]));
    assert!(
        text(&out).contains("https://slsa.dev/provenance/v0.2"),
        "{}",
        text(&out)
    );
    let att_tag = format!("{}.att", digest.replacen(':', "-", 1));
    let (att, _) = env.reg.manifest("keyed/app", &att_tag).await.unwrap();
    let att: Value = serde_json::from_slice(&att).unwrap();
    assert_eq!(
        att["layers"][0]["mediaType"],
        "application/vnd.dsse.envelope.v1+json"
    );
    assert_eq!(
        att["layers"][0]["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    let id_args = [
        "--certificate-identity",
        identity.as_str(),
        "--certificate-oidc-issuer",
        issuer.as_str(),
    ];
    let mut args = vec![
        "verify-attestation",
        &image,
        "--type",
        "slsaprovenance",
        "--output",
        "json",
    ];
    args.extend(id_args);
    let out = ok(env.run(&args));
    let env_json: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(env_json["payloadType"], "application/vnd.in-toto+json");
    let stmt: Value = serde_json::from_slice(
        &STANDARD
            .decode(env_json["payload"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        stmt["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(stmt["predicate"]["buildType"], "test");
    let mut args = vec!["verify-attestation", &image, "--type", "cyclonedx"];
    args.extend(id_args);
    fails(
        env.run(&args),
        "has predicate type https://cyclonedx.org/bom",
    );
    let missing = env.image(&format!("keyed/app@sha256:{}", "0".repeat(64)));
    let mut args = vec!["verify-attestation", &missing];
    args.extend(id_args);
    fails(env.run(&args), "not found");
    // The blob form of `attest` is still the blob command.
    let t = text(&sigil(
        home,
        &[
            "attest",
            predicate.to_str().unwrap(),
            "--predicate",
            predicate.to_str().unwrap(),
        ],
    ));
    assert!(
        t.contains("--bundle"),
        "a file subject goes to the blob command: {t}"
    );

    // Kyverno policy: parses as YAML with the documented keyless attestor fields.
    let out = ok(env.run(&[
        "policy",
        "kyverno",
        "--image",
        &format!("{}/keyed/*", env.reg.host),
        "--subject",
        &identity,
        "--issuer",
        &issuer,
    ]));
    let y: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(y["apiVersion"].as_str(), Some("kyverno.io/v1"));
    assert_eq!(y["kind"].as_str(), Some("ClusterPolicy"));
    let rule = &y["spec"]["rules"][0];
    let vi = &rule["verifyImages"][0];
    assert_eq!(
        vi["imageReferences"][0].as_str(),
        Some(format!("{}/keyed/*", env.reg.host).as_str())
    );
    let keyless = &vi["attestors"][0]["entries"][0]["keyless"];
    assert_eq!(keyless["subject"].as_str(), Some(identity.as_str()));
    assert_eq!(keyless["issuer"].as_str(), Some(issuer.as_str()));
    let root: Value =
        serde_json::from_slice(&std::fs::read(&env.trust.trusted_root).unwrap()).unwrap();
    assert_eq!(
        keyless["rekor"]["url"].as_str(),
        root["tlogs"][0]["baseUrl"].as_str()
    );
    let pem_body = |p: &str| -> Vec<u8> {
        STANDARD
            .decode(
                p.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap()
    };
    // The Rekor v1 log's key, as the log itself serves it (the root also lists a v2 log).
    let served = reqwest::get(format!("{}/api/v1/log/publicKey", env.stack.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        pem_body(keyless["rekor"]["pubkey"].as_str().unwrap()),
        pem_body(&served)
    );
    assert_eq!(
        pem_body(keyless["ctlog"]["pubkey"].as_str().unwrap()),
        STANDARD
            .decode(root["ctlogs"][0]["publicKey"]["rawBytes"].as_str().unwrap())
            .unwrap()
    );
    let chain = root["certificateAuthorities"][0]["certChain"]["certificates"]
        .as_array()
        .unwrap();
    let ca_root = STANDARD
        .decode(chain.last().unwrap()["rawBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(pem_body(keyless["roots"].as_str().unwrap()), ca_root);
    let mut seen = BTreeMap::new();
    for k in ["subject", "issuer", "roots", "rekor", "ctlog"] {
        seen.insert(k, !keyless[k].is_null());
    }
    assert!(seen.values().all(|v| *v), "{seen:?}");

    // --output json prints the same document as JSON.
    let out = ok(env.run(&[
        "policy",
        "kyverno",
        "--image",
        &format!("{}/keyed/*", env.reg.host),
        "--subject",
        &identity,
        "--issuer",
        &issuer,
        "--output",
        "json",
    ]));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let as_json: Value = serde_json::to_value(&y).unwrap();
    assert_eq!(j, as_json, "the JSON and YAML forms differ");
}
