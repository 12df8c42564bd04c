//! The CA's key policy against Fulcio's default `client-signing-algorithms` (ECDSA P-256/SHA-256,
//! P-384/SHA-384, P-521/SHA-512, RSA PKCS#1 v1.5 2048/3072/4096, Ed25519): each accepted key
//! gets a certificate for its own public key, by proof of possession and by CSR; keys outside
//! the policy get a 400 naming what is accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_tests::ca as support;

use der::Decode;
use serde_json::Value;
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_server::ca::{CaConfig, IssuerType};
use support::*;
use x509_cert::Certificate;

/// The public key of the issued leaf.
fn leaf_key(body: &Value) -> PublicKey {
    let chain = chain_from_response(body);
    let leaf = Certificate::from_der(&chain[0]).unwrap();
    let spki = der::Encode::to_der(&leaf.tbs_certificate.subject_public_key_info).unwrap();
    PublicKey::from_spki_der(&spki).unwrap()
}

#[tokio::test]
async fn fulcio_default_signing_algorithms_are_accepted() {
    let idp_key = TestKey::new("ec-1", KeyAlgorithm::EcdsaP256);
    let idp = MockIdp::start(&[&idp_key]).await;
    let config = CaConfig {
        issuers: vec![issuer(&idp, "accounts", IssuerType::Email)],
        ..CaConfig::default()
    };
    let ca = TestCa::start(config, false).await;
    let email = "alice@example.com";
    let token = idp_key.sign(&email_claims(&idp.issuer("accounts"), email));

    // (key algorithm, upstream's PublicKeyDetails name)
    let table = [
        (KeyAlgorithm::EcdsaP256, "PKIX_ECDSA_P256_SHA_256"),
        (KeyAlgorithm::EcdsaP384, "PKIX_ECDSA_P384_SHA_384"),
        (KeyAlgorithm::EcdsaP521, "PKIX_ECDSA_P521_SHA_512"),
        (
            KeyAlgorithm::Rsa { bits: 2048 },
            "PKIX_RSA_PKCS1V15_2048_SHA256",
        ),
        (
            KeyAlgorithm::Rsa { bits: 3072 },
            "PKIX_RSA_PKCS1V15_3072_SHA256",
        ),
        (
            KeyAlgorithm::Rsa { bits: 4096 },
            "PKIX_RSA_PKCS1V15_4096_SHA256",
        ),
        (KeyAlgorithm::Ed25519, "PKIX_ED25519"),
    ];
    for (alg, details) in table {
        let key = SigningKey::generate(alg).unwrap();
        assert_eq!(alg.key_details(), details);

        let (status, body) = ca.request_pop(&token, &key, email).await;
        assert_eq!(status, 200, "{alg} by proof of possession: {body}");
        assert_eq!(leaf_key(&body), key.public_key(), "{alg}: leaf key");

        let (status, body) = ca.request_csr(&token, &csr_pem(&key, &key)).await;
        assert_eq!(status, 200, "{alg} by CSR: {body}");
        assert_eq!(leaf_key(&body), key.public_key(), "{alg}: leaf key (CSR)");
    }
}

#[tokio::test]
async fn keys_outside_the_policy_are_refused_with_what_is_accepted() {
    let idp_key = TestKey::new("ec-1", KeyAlgorithm::EcdsaP256);
    let idp = MockIdp::start(&[&idp_key]).await;
    let config = CaConfig {
        issuers: vec![issuer(&idp, "accounts", IssuerType::Email)],
        ..CaConfig::default()
    };
    let ca = TestCa::start(config, false).await;
    let email = "alice@example.com";
    let token = idp_key.sign(&email_claims(&idp.issuer("accounts"), email));

    // secp256k1 (made with `openssl ecparam -name secp256k1`): not in the policy.
    let k1 = include_str!("../../core/tests/golden/keys/secp256k1.pub.pem");
    // RSA-5120: larger than Fulcio's 4096.
    let rsa5k = include_str!("../../core/tests/golden/keys/rsa5120.pub.pem");
    for (what, pem, needle) in [("secp256k1", k1, "P-521"), ("RSA-5120", rsa5k, "4096")] {
        let (status, body) = ca
            .post_v2(serde_json::json!({
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {
                    "publicKey": {"content": pem},
                    "proofOfPossession": "AAAA",
                }
            }))
            .await;
        assert_eq!(status, 400, "{what}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should mention {needle}"
        );
    }
}
