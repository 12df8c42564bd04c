//! End to end over HTTP against a real, independent OpenID Provider (npm `oidc-provider`) and
//! the CT log: a CSR request and a public-key + proof-of-possession request each return a chain
//! whose leaf has Fulcio's exact profile, an embedded SCT that verifies against the CT log key,
//! and whose precertificate is in the CT log (checked with get-proof-by-hash against a signed
//! tree head). Also: detached-SCT mode, the legacy v1 API, trust bundle and configuration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_tests::ca as support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey, sha256};
use sigil_core::oid;
use sigil_core::sct::{self, LogEntry, SctJson, SignedCertificateTimestamp};
use sigil_server::ca::{CaConfig, IssuerConfig, IssuerType, SctMode};
use sigil_tests::OidcProvider;
use support::*;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};

async fn provider() -> OidcProvider {
    OidcProvider::start()
        .await
        .unwrap_or_else(|e| panic!("the test OpenID Provider must start: {e:#}"))
}

fn config(iss: &str, mode: SctMode) -> CaConfig {
    CaConfig {
        issuers: vec![IssuerConfig::exact(iss, IssuerType::Email)],
        sct_mode: mode,
        jwks_refresh_min_secs: 0,
        ..CaConfig::default()
    }
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

/// Fulcio's leaf profile, checked field by field.
fn check_profile(chain: &[Vec<u8>], key: &PublicKey, email: &str, iss: &str) {
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    let leaf = Certificate::from_der(&chain[0]).unwrap();
    let int = Certificate::from_der(&chain[1]).unwrap();
    let root = Certificate::from_der(&chain[2]).unwrap();
    verify_signed_by(&leaf, &int);
    verify_signed_by(&int, &root);
    verify_signed_by(&root, &root);

    let tbs = &leaf.tbs_certificate;
    assert_eq!(tbs.version, x509_cert::certificate::Version::V3);
    assert!(tbs.subject.0.is_empty(), "empty subject");
    assert_eq!(
        spki_of(&leaf),
        key.spki_der(),
        "certified key is the requester's"
    );
    let serial = tbs.serial_number.as_bytes();
    assert_eq!(serial.len(), 20, "20-byte serial");
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0, "positive, minimal");
    let nb = tbs.validity.not_before.to_unix_duration().as_secs();
    let na = tbs.validity.not_after.to_unix_duration().as_secs();
    assert_eq!(na - nb, 600, "10-minute validity");
    assert!(nb.abs_diff(now()) < 60, "issued now");
    // RFC 5280: UTCTime through 2049 (sigstore-python rejects GeneralizedTime there).
    assert!(matches!(
        tbs.validity.not_before,
        x509_cert::time::Time::UtcTime(_)
    ));
    assert!(matches!(
        tbs.validity.not_after,
        x509_cert::time::Time::UtcTime(_)
    ));

    let (crit, ku) = tbs.get::<KeyUsage>().unwrap().unwrap();
    assert!(crit, "KeyUsage critical");
    assert_eq!(
        ku.0,
        der::flagset::FlagSet::from(KeyUsages::DigitalSignature),
        "digitalSignature only"
    );
    let (crit, eku) = tbs.get::<ExtendedKeyUsage>().unwrap().unwrap();
    assert!(!crit);
    assert_eq!(eku.0, vec![oid::KP_CODE_SIGNING]);
    let (_, ski) = tbs.get::<SubjectKeyIdentifier>().unwrap().unwrap();
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
    assert_eq!(
        ski.0.as_bytes(),
        &sha256(spki.subject_public_key.raw_bytes())[..20]
    );
    let (_, aki) = tbs.get::<AuthorityKeyIdentifier>().unwrap().unwrap();
    let (_, int_ski) = int
        .tbs_certificate
        .get::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap().as_bytes(), int_ski.0.as_bytes());
    let (crit, _) = ext(&leaf, &oid::SUBJECT_ALT_NAME).unwrap();
    assert!(crit, "SAN critical");
    assert_eq!(sans(&leaf), vec![("email".to_string(), email.to_string())]);
    assert!(
        tbs.get::<BasicConstraints>()
            .unwrap()
            .is_none_or(|(_, bc)| !bc.ca)
    );
    assert_eq!(ext(&leaf, &oid::ISSUER_V1).unwrap().1, iss.as_bytes());
    assert_eq!(ext_str(&leaf, &oid::ISSUER_V2).unwrap(), iss);
    assert!(
        ext(&leaf, &oid::CT_PRECERT_POISON).is_none(),
        "no poison in the final cert"
    );

    // Intermediate: CA, pathlen 0, codeSigning EKU; root: CA, self-signed P-384.
    let (_, bc) = int
        .tbs_certificate
        .get::<BasicConstraints>()
        .unwrap()
        .unwrap();
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let (_, eku) = int
        .tbs_certificate
        .get::<ExtendedKeyUsage>()
        .unwrap()
        .unwrap();
    assert_eq!(eku.0, vec![oid::KP_CODE_SIGNING]);
    assert_eq!(
        PublicKey::from_spki_der(&spki_of(&root))
            .unwrap()
            .algorithm(),
        KeyAlgorithm::EcdsaP384
    );
}

/// The embedded SCT verifies with the CT key, and its precertificate entry is in the CT log.
async fn check_embedded_sct(ca: &TestCa, chain: &[Vec<u8>]) {
    let ct = ca.ct.as_ref().unwrap();
    let int = Certificate::from_der(&chain[1]).unwrap();
    let int_spki = spki_of(&int);
    let scts = sct::verify_embedded_scts(&chain[0], &int_spki, &ct.public_key())
        .expect("embedded SCT verifies with the CT log key");
    assert_eq!(scts.len(), 1);
    let s = &scts[0];
    assert_eq!(s.log_id, ct.public_key().key_id());
    // A certificate altered after issuance no longer matches its SCT.
    let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert!(
        sct::verify_embedded_scts(&chain[0], other.public_key().spki_der(), &ct.public_key())
            .is_err()
    );

    let (tbs, _) = sct::precert_tbs_from_cert(&chain[0]).unwrap();
    let leaf_input = sct::merkle_tree_leaf_precert(
        s.timestamp_ms,
        &sct::issuer_key_hash(&int_spki),
        &tbs,
        &s.extensions,
    )
    .unwrap();
    let leaf_hash = sigil_core::merkle::leaf_hash(&leaf_input);

    let http = reqwest::Client::new();
    let sth: Value = http
        .get(format!("{}/ct/v1/get-sth", ct.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let size = sth["tree_size"].as_u64().unwrap();
    let root: [u8; 32] = STANDARD
        .decode(sth["sha256_root_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = sct::decode_digitally_signed(
        &STANDARD
            .decode(sth["tree_head_signature"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    ct.public_key()
        .verify(
            &sct::tree_head_signed_data(sth["timestamp"].as_u64().unwrap(), size, &root),
            &sig.signature,
        )
        .expect("STH signed by the CT key");
    let proof: Value = http
        .get(format!("{}/ct/v1/get-proof-by-hash", ct.url))
        .query(&[
            ("hash", STANDARD.encode(leaf_hash)),
            ("tree_size", size.to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let index = proof["leaf_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("precert not in the CT log: {proof}"));
    let path: Vec<[u8; 32]> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    sigil_core::merkle::verify_inclusion(&leaf_hash, index, size, &path, &root)
        .expect("inclusion proof of the precertificate verifies");
}

#[tokio::test]
async fn csr_and_pop_requests_get_an_embedded_sct_logged_in_ct() {
    let idp = provider().await;
    let ca = TestCa::start(config(idp.issuer(), SctMode::Embedded), true).await;
    let email = "alice@example.com";

    // CSR, token as Bearer, Accept: PEM chain (what sigstore-python sends); answer is JSON.
    let token = idp.token("alice", Some(email)).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (status, body) = ca.request_csr(&token, &csr_pem(&key, &key)).await;
    assert_eq!(status, 200, "{body}");
    let chain = chain_from_response(&body);
    check_profile(&chain, &key.public_key(), email, idp.issuer());
    check_embedded_sct(&ca, &chain).await;

    // Public key + proof of possession over the e-mail (what sigstore-js sends).
    let token = idp.token("alice", Some(email)).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let (status, body) = ca.request_pop(&token, &key, email).await;
    assert_eq!(status, 200, "{body}");
    let chain = chain_from_response(&body);
    check_profile(&chain, &key.public_key(), email, idp.issuer());
    check_embedded_sct(&ca, &chain).await;

    // An unverified e-mail from the real provider is refused.
    let resp = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer()))
        .form(&[
            ("grant_type", sigil_tests::ID_TOKEN_GRANT),
            ("client_id", "sigstore"),
            ("subject", "bob"),
            ("email", "bob@example.com"),
            ("email_verified", "false"),
        ])
        .send()
        .await
        .unwrap();
    let unverified = resp.json::<Value>().await.unwrap()["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = ca.request_pop(&unverified, &key, "bob@example.com").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not verified"));
}

#[tokio::test]
async fn provider_key_rotation_is_followed() {
    let idp = provider().await;
    let ca = TestCa::start(config(idp.issuer(), SctMode::Embedded), true).await;
    let email = "carol@example.com";
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let token = idp.token("carol", Some(email)).await.unwrap();
    assert_eq!(ca.request_pop(&token, &key, email).await.0, 200);
    let kid = idp.rotate_keys(false).await.unwrap();
    let token = idp.token("carol", Some(email)).await.unwrap();
    let (header, _) = sigil_tests::jwt_parts(&token).unwrap();
    assert_eq!(
        header["kid"],
        json!(kid),
        "the provider signs with the new key"
    );
    let (status, body) = ca.request_pop(&token, &key, email).await;
    assert_eq!(status, 200, "token signed by the rotated key: {body}");
    let chain = chain_from_response(&body);
    check_embedded_sct(&ca, &chain).await;
}

#[tokio::test]
async fn detached_sct_mode() {
    let idp = provider().await;
    let ca = TestCa::start(config(idp.issuer(), SctMode::Detached), true).await;
    let email = "dave@example.com";
    let token = idp.token("dave", Some(email)).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    let (status, body) = ca.request_pop(&token, &key, email).await;
    assert_eq!(status, 200, "{body}");
    let chain = chain_from_response(&body);
    let leaf = Certificate::from_der(&chain[0]).unwrap();
    assert!(ext(&leaf, &oid::CT_PRECERT_SCTS).is_none());
    let sct_json: SctJson = serde_json::from_slice(
        &STANDARD
            .decode(
                body["signedCertificateDetachedSct"]["signedCertificateTimestamp"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let s = SignedCertificateTimestamp::from_json(&sct_json).unwrap();
    sct::verify_sct(
        &s,
        &LogEntry::X509 {
            cert_der: chain[0].clone(),
        },
        &ca.ct.as_ref().unwrap().public_key(),
    )
    .expect("detached SCT covers the final certificate");
}

#[tokio::test]
async fn legacy_v1_api_trust_bundle_and_configuration() {
    let idp = provider().await;
    let ca = TestCa::start(config(idp.issuer(), SctMode::Embedded), true).await;
    let email = "erin@example.com";
    let token = idp.token("erin", Some(email)).await.unwrap();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let resp = ca
        .http
        .post(format!("{}/api/v1/signingCert", ca.url))
        .bearer_auth(&token)
        .json(&json!({
            "publicKey": {"content": STANDARD.encode(key.public_key().to_pem()), "algorithm": "ecdsa"},
            "signedEmailAddress": STANDARD.encode(key.sign(email.as_bytes()).unwrap()),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        resp.headers()["content-type"],
        "application/pem-certificate-chain"
    );
    let text = resp.text().await.unwrap();
    let certs = sigil_core::certs::parse_pem_certificates(text.as_bytes()).unwrap();
    let chain: Vec<Vec<u8>> = certs.into_iter().map(|(d, _)| d).collect();
    check_profile(&chain, &key.public_key(), email, idp.issuer());
    check_embedded_sct(&ca, &chain).await;

    let root_pem = ca
        .http
        .get(format!("{}/api/v1/rootCert", ca.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let roots = sigil_core::certs::parse_pem_certificates(root_pem.as_bytes()).unwrap();
    assert_eq!(
        roots.into_iter().map(|(d, _)| d).collect::<Vec<_>>(),
        ca.ca.ca_chain_der()
    );
    let bundle: Value = ca
        .http
        .get(format!("{}/api/v2/trustBundle", ca.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bundle["chains"][0]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let conf: Value = ca
        .http
        .get(format!("{}/api/v2/configuration", ca.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        conf["issuers"][0],
        json!({"issuerUrl": idp.issuer(), "audience": "sigstore", "challengeClaim": "email", "issuerType": "email"})
    );
}
