//! The `pkcs11` CA backend against a real SoftHSM2 token: `sigil-server init` generates the
//! intermediate key pair inside an empty token and certifies it with the root, `sigil-server up`
//! issues certificates over HTTP for tokens of an independent OpenID Provider with that key, and
//! the chain verifies (leaf by the token key, read back with OpenSC's pkcs11-tool; intermediate
//! by the root). Start-up errors say what to fix (wrong PIN, missing key label, unknown token,
//! missing module, unsupported key type, no PIN). The signer itself: every key type the token
//! makes signs verifiable certificates, concurrently, and logs in again after the token logged
//! it out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_server::ca::CaSigner;
use sigil_server::ca::pkcs11::{AuthPin, Pkcs11Signer, TokenConfig};
use sigil_tests::{OidcProvider, ServerProcess, free_port, workspace_bin};
use tempfile::TempDir;
use x509_cert::Certificate;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "pin-7319";
const TOKEN: &str = "sigil-ca";
const KEY_LABEL: &str = "ca-intermediate";

fn install_hint(what: &str) -> String {
    format!(
        "{what}: install SoftHSM2 and OpenSC (`apt-get install softhsm2 opensc`; scripts/test \
         installs them)"
    )
}

/// A SoftHSM2 configuration and token directory of its own, with one initialised token.
struct SoftHsm {
    dir: TempDir,
}

impl SoftHsm {
    fn new() -> SoftHsm {
        assert!(
            Path::new(MODULE).is_file(),
            "{}",
            install_hint(&format!("the SoftHSM2 PKCS#11 module {MODULE} is missing"))
        );
        let dir = tempfile::Builder::new()
            .prefix("sigil-softhsm-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm { dir };
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--pin", PIN, "--so-pin", "so-pin-5521"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .unwrap_or_else(|e| panic!("{}", install_hint(&format!("softhsm2-util: {e}"))));
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        hsm
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// The token's public key labelled `label`, as DER SPKI, from the EC_POINT and EC_PARAMS
    /// that OpenSC's pkcs11-tool (an implementation independent of Sigil's) lists (its
    /// `--read-object` export fails on P-384 and Ed25519 keys with this OpenSSL); RSA keys it
    /// exports.
    fn public_key_spki(&self, label: &str, alg: KeyAlgorithm) -> Vec<u8> {
        if let KeyAlgorithm::Rsa { .. } = alg {
            return self.read_public_key(label);
        }
        let out = Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", TOKEN])
            .args(["--list-objects", "--type", "pubkey", "--label", label])
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| panic!("{}", install_hint(&format!("pkcs11-tool: {e}"))));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            let v = listing
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} listed: {listing}"));
            hex::decode(v.split_whitespace().next().unwrap()).unwrap()
        };
        let point = der::asn1::OctetString::from_der(&field("EC_POINT:"))
            .unwrap()
            .into_bytes();
        let curve = der::asn1::ObjectIdentifier::from_der(&field("EC_PARAMS:")).unwrap();
        let (oid, parameters) = if alg == KeyAlgorithm::Ed25519 {
            assert_eq!(curve, sigil_core::oid::ED25519);
            (sigil_core::oid::ED25519, None)
        } else {
            (
                sigil_core::oid::EC_PUBLIC_KEY,
                Some(der::Any::encode_from(&curve).unwrap()),
            )
        };
        x509_cert::spki::SubjectPublicKeyInfoOwned {
            algorithm: x509_cert::spki::AlgorithmIdentifierOwned { oid, parameters },
            subject_public_key: der::asn1::BitString::from_bytes(&point).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    /// `pkcs11-tool --read-object` exports a public key as DER SPKI (fine for RSA keys).
    fn read_public_key(&self, label: &str) -> Vec<u8> {
        let out_file = self.dir.path().join(format!("{label}.pub.der"));
        let out = Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", TOKEN])
            .args(["--read-object", "--type", "pubkey", "--label", label])
            .arg("--output-file")
            .arg(&out_file)
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| panic!("{}", install_hint(&format!("pkcs11-tool: {e}"))));
        assert!(
            out.status.success(),
            "pkcs11-tool --read-object failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(out_file).unwrap()
    }

    /// The token's private keys as pkcs11-tool lists them.
    fn private_key_listing(&self) -> String {
        let out = Command::new("pkcs11-tool")
            .args([
                "--module",
                MODULE,
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
            ])
            .args(["--list-objects", "--type", "privkey"])
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .unwrap_or_else(|e| panic!("{}", install_hint(&format!("pkcs11-tool: {e}"))));
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Environment of every `sigil-server` run against the token (the PIN is added separately).
fn token_env(hsm: &SoftHsm, key_type: &str) -> Vec<(String, String)> {
    [
        ("SOFTHSM2_CONF", hsm.conf().display().to_string()),
        ("SIGIL_CA_BACKEND", "pkcs11".into()),
        ("SIGIL_CA_PKCS11_MODULE", MODULE.into()),
        ("SIGIL_CA_PKCS11_TOKEN_LABEL", TOKEN.into()),
        ("SIGIL_CA_PKCS11_KEY_LABEL", KEY_LABEL.into()),
        ("SIGIL_CA_PKCS11_KEY_TYPE", key_type.into()),
        ("RUST_LOG", "info,sqlx=warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `sigil-server init` on a fresh data dir with the pkcs11 backend; trusts `issuer`.
fn init(hsm: &SoftHsm, key_type: &str, issuer: &str) -> (TempDir, PathBuf, String) {
    let dir = tempfile::Builder::new()
        .prefix("sigil-pkcs11-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let out = Command::new(workspace_bin("sigil-server").unwrap())
        .args(["init", "--data-dir"])
        .arg(&data)
        .envs(token_env(hsm, key_type))
        .env("SIGIL_PKCS11_PIN", PIN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "init failed: {stderr}");
    // Trust the independent provider, as an operator would in sigil.toml.
    let cfg_path = data.join("sigil.toml");
    let mut cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("backend = \"pkcs11\""), "{cfg}");
    assert!(
        !cfg.contains(PIN),
        "the PIN must never be written to the config"
    );
    let mut doc: toml::Table = cfg.parse().unwrap();
    let mut iss = toml::Table::new();
    iss.insert("issuer_url".into(), issuer.into());
    iss.insert("type".into(), "email".into());
    iss.insert("client_id".into(), "sigstore".into());
    doc["ca"]["issuers"]
        .as_array_mut()
        .unwrap()
        .push(toml::Value::Table(iss));
    cfg = toml::to_string(&doc).unwrap();
    std::fs::write(&cfg_path, cfg).unwrap();
    (dir, data, stderr)
}

/// `sigil-server up` on `data`; extra environment on top of the token's.
fn up(hsm: &SoftHsm, data: &Path, port: u16, env: &[(&str, &str)]) -> ServerProcess {
    let mut cmd = Command::new(workspace_bin("sigil-server").unwrap());
    cmd.args(["up", "--no-dev-oidc", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(token_env(hsm, "ecdsa-p256"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    ServerProcess::spawn_command(cmd).unwrap()
}

fn spki_of(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap()
}

fn verify_signed_by(child: &Certificate, parent: &Certificate) {
    let key = PublicKey::from_spki_der(&spki_of(parent)).unwrap();
    key.verify(
        &child.tbs_certificate.to_der().unwrap(),
        child.signature.raw_bytes(),
    )
    .expect("certificate signed by its issuer");
    assert_eq!(child.tbs_certificate.issuer, parent.tbs_certificate.subject);
}

fn chain_from_response(v: &Value) -> Vec<Certificate> {
    v.pointer("/signedCertificateEmbeddedSct/chain/certificates")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no chain in response: {v}"))
        .iter()
        .map(|c| {
            let parsed =
                sigil_core::certs::parse_pem_certificates(c.as_str().unwrap().as_bytes()).unwrap();
            Certificate::from_der(&parsed[0].0).unwrap()
        })
        .collect()
}

async fn request_pop(url: &str, token: &str, key: &SigningKey, email: &str) -> (u16, Value) {
    let proof = key.sign(email.as_bytes()).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/v2/signingCert"))
        .json(&json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": key.public_key().to_pem()},
                "proofOfPossession": STANDARD.encode(proof),
            }
        }))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Issues one certificate over HTTP and checks the chain against the token and the root file.
async fn issue_and_verify(
    hsm: &SoftHsm,
    data: &Path,
    oidc: &OidcProvider,
    expected: KeyAlgorithm,
    pin_env: &[(&str, &str)],
) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = up(hsm, data, port, pin_env);
    server
        .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e:#}\n{}", server.output()));

    let email = "alice@example.com";
    let token = oidc.token("alice", Some(email)).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (status, body) = request_pop(&url, &token, &key, email).await;
    assert_eq!(status, 200, "{body}\n{}", server.output());
    let chain = chain_from_response(&body);
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    let (leaf, int, root) = (&chain[0], &chain[1], &chain[2]);
    assert_eq!(spki_of(leaf), key.public_key().spki_der());

    // The intermediate certifies the key inside the token, which signed the leaf.
    let token_spki = hsm.public_key_spki(KEY_LABEL, expected);
    let token_key = PublicKey::from_spki_der(&token_spki).unwrap();
    assert_eq!(token_key.algorithm(), expected);
    assert_eq!(
        spki_of(int),
        token_key.spki_der(),
        "intermediate = token key"
    );
    verify_signed_by(leaf, int);
    verify_signed_by(int, root);
    verify_signed_by(root, root);
    // The root is the one `init` wrote, and no intermediate key file exists: the key is only
    // in the token.
    let root_file = std::fs::read(data.join("keys/ca-root.crt.pem")).unwrap();
    let root_der = &sigil_core::certs::parse_pem_certificates(&root_file).unwrap()[0].0;
    assert_eq!(&root.to_der().unwrap(), root_der);
    assert!(!data.join("keys/ca-intermediate.pem").exists());
    // The leaf carries an embedded SCT from the CT log (the issuance path is the usual one).
    assert!(
        leaf.tbs_certificate
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.extn_id == sigil_core::oid::CT_PRECERT_SCTS)
    );
    assert!(
        !server.output().contains(PIN),
        "the PIN must never be logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_generates_the_key_in_the_token_and_up_issues_with_it() {
    let hsm = SoftHsm::new();
    let oidc = OidcProvider::start().await.unwrap();
    let (_dir, data, init_out) = init(&hsm, "ecdsa-p256", oidc.issuer());
    assert!(
        init_out.contains("PKCS#11 token sigil-ca: generated an ECDSA P-256 key pair"),
        "{init_out}"
    );
    let listing = hsm.private_key_listing();
    assert!(listing.contains(KEY_LABEL), "{listing}");
    let access = listing
        .lines()
        .find(|l| l.trim_start().starts_with("Access:"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(access.contains("sensitive"), "{listing}");
    assert!(access.contains("never extractable"), "{listing}");
    let usage = listing
        .lines()
        .find(|l| l.trim_start().starts_with("Usage:"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert_eq!(
        usage.trim(),
        "Usage:      sign",
        "a signing-only key: {listing}"
    );
    issue_and_verify(
        &hsm,
        &data,
        &oidc,
        KeyAlgorithm::EcdsaP256,
        &[("SIGIL_PKCS11_PIN", PIN)],
    )
    .await;

    // A second init leaves the certified key alone.
    let out = Command::new(workspace_bin("sigil-server").unwrap())
        .args(["init", "--data-dir"])
        .arg(&data)
        .envs(token_env(&hsm, "ecdsa-p256"))
        .env("SIGIL_PKCS11_PIN", PIN)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("generated"));
}

/// `rotate ca` with the token backend: the old chain is retired (and stays in the trusted root,
/// closed), a new root certifies the token key the configuration names, and the CA issues under
/// the new chain after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn rotate_ca_certifies_the_token_key_under_a_new_root() {
    let hsm = SoftHsm::new();
    let oidc = OidcProvider::start().await.unwrap();
    let (_dir, data, _) = init(&hsm, "ecdsa-p256", oidc.issuer());
    let old_root = std::fs::read(data.join("keys/ca-root.crt.pem")).unwrap();
    let old_int = std::fs::read(data.join("keys/ca-intermediate.crt.pem")).unwrap();
    let out = Command::new(workspace_bin("sigil-server").unwrap())
        .args(["rotate", "ca", "--data-dir"])
        .arg(&data)
        .envs(token_env(&hsm, "ecdsa-p256"))
        .env("SIGIL_PKCS11_PIN", PIN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rotated ca"), "{text}");
    assert!(!text.contains(PIN), "the PIN must never be printed");
    let new_root = std::fs::read(data.join("keys/ca-root.crt.pem")).unwrap();
    assert_ne!(old_root, new_root, "a new root");
    assert_ne!(
        old_int,
        std::fs::read(data.join("keys/ca-intermediate.crt.pem")).unwrap()
    );
    // The retired chain is kept for the trusted root, its window closed.
    let history: Value =
        serde_json::from_slice(&std::fs::read(data.join("trust-history.json")).unwrap()).unwrap();
    let retired = history["retired"].as_array().unwrap();
    assert_eq!(retired.len(), 1, "{history}");
    assert_eq!(retired[0]["role"], "ca");
    assert!(retired[0]["end"].is_string());
    // Issues with the token key under the new root (checked against the root file).
    issue_and_verify(
        &hsm,
        &data,
        &oidc,
        KeyAlgorithm::EcdsaP256,
        &[("SIGIL_PKCS11_PIN", PIN)],
    )
    .await;
}

/// The documented migration: a CA made with the file backend moves its issuing key into a
/// token (the root stays), then re-running init certifies the token's existing key.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_backend_ca_moves_into_the_token() {
    let hsm = SoftHsm::new();
    let oidc = OidcProvider::start().await.unwrap();
    let dir = tempfile::Builder::new()
        .prefix("sigil-pkcs11-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let bin = workspace_bin("sigil-server").unwrap();
    let out = Command::new(&bin)
        .args(["init", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let keys = data.join("keys");
    let root_before = std::fs::read(keys.join("ca-root.crt.pem")).unwrap();

    let cfg_path = data.join("sigil.toml");
    let mut doc: toml::Table = std::fs::read_to_string(&cfg_path).unwrap().parse().unwrap();
    let ca = doc["ca"].as_table_mut().unwrap();
    for (k, v) in [
        ("backend", "pkcs11"),
        ("pkcs11_module", MODULE),
        ("pkcs11_token_label", TOKEN),
        ("pkcs11_key_label", KEY_LABEL),
    ] {
        ca.insert(k.into(), v.into());
    }
    let mut iss = toml::Table::new();
    iss.insert("issuer_url".into(), oidc.issuer().into());
    iss.insert("type".into(), "email".into());
    iss.insert("client_id".into(), "sigstore".into());
    ca["issuers"]
        .as_array_mut()
        .unwrap()
        .push(toml::Value::Table(iss));
    std::fs::write(&cfg_path, toml::to_string(&doc).unwrap()).unwrap();
    let moved = dir.path().join("old");
    std::fs::create_dir(&moved).unwrap();
    for f in ["ca-intermediate.crt.pem", "ca-intermediate.pem"] {
        std::fs::rename(keys.join(f), moved.join(f)).unwrap();
    }

    let init = |expect: &str| {
        let out = Command::new(&bin)
            .args(["init", "--data-dir"])
            .arg(&data)
            .env("SOFTHSM2_CONF", hsm.conf())
            .env("SIGIL_PKCS11_PIN", PIN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        std::fs::read(keys.join("ca-intermediate.crt.pem")).unwrap()
    };
    let first = init("PKCS#11 token sigil-ca: generated an ECDSA P-256 key pair");
    assert_eq!(
        std::fs::read(keys.join("ca-root.crt.pem")).unwrap(),
        root_before,
        "the root stays"
    );
    issue_and_verify(
        &hsm,
        &data,
        &oidc,
        KeyAlgorithm::EcdsaP256,
        &[("SIGIL_PKCS11_PIN", PIN)],
    )
    .await;

    // Certificate lost (or renewed): init certifies the key already in the token.
    std::fs::remove_file(keys.join("ca-intermediate.crt.pem")).unwrap();
    let second = init("PKCS#11 token sigil-ca: certifying its existing ECDSA P-256 key");
    let spki = |pem: &[u8]| {
        let der = &sigil_core::certs::parse_pem_certificates(pem).unwrap()[0].0;
        spki_of(&Certificate::from_der(der).unwrap())
    };
    assert_ne!(first, second, "a new certificate");
    assert_eq!(spki(&first), spki(&second), "for the same token key");
    issue_and_verify(
        &hsm,
        &data,
        &oidc,
        KeyAlgorithm::EcdsaP256,
        &[("SIGIL_PKCS11_PIN", PIN)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn p384_ed25519_and_rsa_token_keys_issue_over_http() {
    let oidc = OidcProvider::start().await.unwrap();
    for (ty, alg) in [
        ("ecdsa-p384", KeyAlgorithm::EcdsaP384),
        ("ed25519", KeyAlgorithm::Ed25519),
        ("rsa-2048", KeyAlgorithm::Rsa { bits: 2048 }),
    ] {
        let hsm = SoftHsm::new();
        let (dir, data, _) = init(&hsm, ty, oidc.issuer());
        if ty == "rsa-2048" {
            // The PIN from a file (trailing newline and all) instead of the environment.
            let pin_file = dir.path().join("pin");
            std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
            let pin_file = pin_file.display().to_string();
            issue_and_verify(
                &hsm,
                &data,
                &oidc,
                alg,
                &[("SIGIL_CA_PKCS11_PIN_FILE", &pin_file)],
            )
            .await;
        } else {
            issue_and_verify(&hsm, &data, &oidc, alg, &[("SIGIL_PKCS11_PIN", PIN)]).await;
        }
    }
}

/// Runs `up` expecting it to stop at start-up; returns its output.
async fn startup_error(hsm: &SoftHsm, data: &Path, env: &[(&str, &str)]) -> String {
    let mut server = up(hsm, data, free_port(), env);
    let status = server
        .wait_exit(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("server should have stopped: {e:#}\n{}", server.output()));
    assert!(!status.success(), "{}", server.output());
    server.output()
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_errors_say_what_to_fix() {
    let hsm = SoftHsm::new();
    let (_dir, data, _) = init(&hsm, "ecdsa-p256", "https://issuer.invalid");

    let out = startup_error(&hsm, &data, &[("SIGIL_PKCS11_PIN", "wrong-pin-0000")]).await;
    assert!(
        out.contains("wrong PIN for PKCS#11 token \"sigil-ca\": fix the PIN in the environment variable SIGIL_PKCS11_PIN"),
        "{out}"
    );
    assert!(
        !out.contains("wrong-pin-0000"),
        "the PIN must never be printed"
    );

    let out = startup_error(
        &hsm,
        &data,
        &[
            ("SIGIL_PKCS11_PIN", PIN),
            ("SIGIL_CA_PKCS11_KEY_LABEL", "no-such-key"),
        ],
    )
    .await;
    assert!(
        out.contains("no private key labelled \"no-such-key\" in PKCS#11 token \"sigil-ca\""),
        "{out}"
    );
    assert!(out.contains("ca.pkcs11_key_label"), "{out}");

    let out = startup_error(
        &hsm,
        &data,
        &[
            ("SIGIL_PKCS11_PIN", PIN),
            ("SIGIL_CA_PKCS11_TOKEN_LABEL", "other-token"),
        ],
    )
    .await;
    assert!(
        out.contains("no PKCS#11 token labelled \"other-token\"")
            && out.contains("tokens present: \"sigil-ca\""),
        "{out}"
    );

    let out = startup_error(
        &hsm,
        &data,
        &[
            ("SIGIL_PKCS11_PIN", PIN),
            ("SIGIL_CA_PKCS11_MODULE", "/nonexistent/libpkcs11.so"),
        ],
    )
    .await;
    assert!(
        out.contains("PKCS#11 module /nonexistent/libpkcs11.so not found"),
        "{out}"
    );

    // A key the CA cannot use: secp256k1, made by another tool.
    let out = Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            PIN,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:secp256k1",
            "--label",
            "k1-key",
        ])
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .unwrap_or_else(|e| panic!("{}", install_hint(&format!("pkcs11-tool: {e}"))));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = startup_error(
        &hsm,
        &data,
        &[
            ("SIGIL_PKCS11_PIN", PIN),
            ("SIGIL_CA_PKCS11_KEY_LABEL", "k1-key"),
        ],
    )
    .await;
    assert!(
        out.contains("the PKCS#11 key is on curve 1.3.132.0.10: use an ECDSA P-256 or P-384"),
        "{out}"
    );

    let mut server = up(&hsm, &data, free_port(), &[]);
    let status = server.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert!(!status.success());
    assert!(
        server.output().contains(
            "the PKCS#11 token PIN is not set: put it in the environment variable SIGIL_PKCS11_PIN"
        ),
        "{}",
        server.output()
    );
}

const CHILD: &str = "SIGIL_TEST_PKCS11_SIGNER_CHILD";

/// The signer in this process: SoftHSM2 reads SOFTHSM2_CONF when the module initialises, so the
/// checks run in a child of this test binary started with the token's configuration.
#[test]
fn signer_key_types_concurrency_and_relogin() {
    if std::env::var_os(CHILD).is_some() {
        return signer_checks();
    }
    let hsm = SoftHsm::new();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "signer_key_types_concurrency_and_relogin",
            "--nocapture",
        ])
        .env("SOFTHSM2_CONF", hsm.conf())
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("signer checks passed for 4 key types"),
        "{text}"
    );
    if let Some(rate) = text.lines().find(|l| l.starts_with("SoftHSM2 ECDSA")) {
        println!("{rate}");
    }
}

fn token_config(label: &str) -> TokenConfig {
    TokenConfig {
        module: MODULE.into(),
        token_label: Some(TOKEN.into()),
        slot: None,
        pin: AuthPin::from(PIN.to_string()),
        pin_source: "the test".into(),
        key_label: Some(label.into()),
        key_id: None,
        max_sessions: 2,
    }
}

fn signer_checks() {
    let algs = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa { bits: 2048 },
        KeyAlgorithm::Ed25519,
    ];
    for alg in algs {
        let label = format!("key-{alg}").replace(' ', "-");
        let cfg = token_config(&label);
        assert!(sigil_server::ca::pkcs11::find_key(&cfg).unwrap().is_none());
        let public = sigil_server::ca::pkcs11::generate_key(&cfg, alg).unwrap();
        assert_eq!(public.algorithm(), alg);
        // A second generation under the same label is refused.
        assert!(sigil_server::ca::pkcs11::generate_key(&cfg, alg).is_err());

        let signer = Arc::new(Pkcs11Signer::open(cfg, None).unwrap());
        assert_eq!(signer.public_key(), &public);
        // Concurrent signatures share the pool (more threads than pooled sessions).
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let s = Arc::clone(&signer);
                std::thread::spawn(move || {
                    let msg = format!("tbs {i}");
                    let sig = s.sign(msg.as_bytes()).unwrap();
                    s.public_key().verify(msg.as_bytes(), &sig).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The token forgets the login: the next signature logs in again.
        assert!(signer.is_logged_in().unwrap());
        signer.logout().unwrap();
        assert!(!signer.is_logged_in().unwrap(), "logout took effect");
        let sig = signer.sign(b"after logout").unwrap();
        public.verify(b"after logout", &sig).unwrap();
        assert!(signer.is_logged_in().unwrap());
    }

    // A wrong PIN and an unknown label fail with what to fix.
    let mut bad = token_config("key-ECDSA-P-256");
    bad.pin = AuthPin::from("000000".to_string());
    let err = Pkcs11Signer::open(bad, None).unwrap_err().to_string();
    assert!(err.contains("wrong PIN"), "{err}");
    let err = Pkcs11Signer::open(token_config("nope"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no private key labelled \"nope\""), "{err}");
    // Throughput of the token signer (a figure, not a check): 4 threads, 4 pooled sessions.
    let mut cfg = token_config("key-ECDSA-P-256");
    cfg.max_sessions = 4;
    let signer = Arc::new(Pkcs11Signer::open(cfg, None).unwrap());
    let start = std::time::Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&signer);
            std::thread::spawn(move || {
                for i in 0..250 {
                    s.sign(format!("tbs {i}").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "SoftHSM2 ECDSA P-256 signatures: {:.0}/s (1000 over 4 threads)",
        1000.0 / start.elapsed().as_secs_f64()
    );
    println!("signer checks passed for {} key types", algs.len());
}
