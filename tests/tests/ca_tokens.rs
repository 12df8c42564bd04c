//! The CA refuses every bad token and bad key proof with a clear 4xx in Fulcio's JSON shape
//! `{code, message}`, and accepts good ones (several signature algorithms, JWKS rotation,
//! meta-issuers). Tokens come from a mock provider whose keys the test holds, so each attack
//! can be forged exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_tests::ca as support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_server::ca::{CaConfig, IssuerConfig, IssuerType};
use support::*;

const RSA_1024: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0D1VY+Kmqguu0irL3jmKAy9Yp
Dl2TJTyqKLNZ5yJEVZaHR0ZMU15HV8neoZ4/RXHi4pHZ3XfL3eQcsvuN7tA2t5Eu
Vv9ShSwB0XTDrZtvRsXtwzOhHANAnGJKlofYWkIraRMR1e2C0J42W2LeITJiBxA6
KryXQvUGrlHkLaKQIQIDAQAB
-----END PUBLIC KEY-----
";
const SECP256K1: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE0Fha8bA2FD/u58bOoCSHanb9Kc6WT+iD
Iv7jB/JfRmWWOi391KjONC9yiJRyqY0psjfy/NBDr+AB3ZN73R12CA==
-----END PUBLIC KEY-----
";

struct Fixture {
    idp: MockIdp,
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    ca: TestCa,
    email_iss: String,
}

async fn fixture(refresh_min_secs: u64) -> Fixture {
    let rsa = TestKey::new("rsa-1", KeyAlgorithm::Rsa { bits: 2048 });
    let ec = TestKey::new("ec-1", KeyAlgorithm::EcdsaP256);
    let ed = TestKey::new("ed-1", KeyAlgorithm::Ed25519);
    let idp = MockIdp::start(&[&rsa, &ec, &ed]).await;
    let mut meta = IssuerConfig::exact("x", IssuerType::Email);
    meta.issuer_url = None;
    meta.wildcard_issuer_url = Some("https://oidc.eks.*.amazonaws.com/id/*".into());
    let mut local_meta = IssuerConfig::exact("x", IssuerType::Email);
    local_meta.issuer_url = None;
    local_meta.wildcard_issuer_url = Some(format!("{}/eks-*", idp.base));
    let config = CaConfig {
        issuers: vec![
            issuer(&idp, "accounts", IssuerType::Email),
            issuer(&idp, "ci", IssuerType::GithubWorkflow),
            meta,
            local_meta,
        ],
        jwks_refresh_min_secs: refresh_min_secs,
        ..CaConfig::default()
    };
    let ca = TestCa::start(config, false).await;
    let email_iss = idp.issuer("accounts");
    Fixture {
        idp,
        rsa,
        ec,
        ed,
        ca,
        email_iss,
    }
}

/// Asserts a Fulcio-shaped error: HTTP status, gRPC code, and a message containing `needle`.
fn assert_error(resp: &(u16, Value), status: u16, code: u64, needle: &str) {
    assert_eq!(resp.0, status, "status for {:?}", resp.1);
    assert_eq!(resp.1["code"], json!(code), "gRPC code in {:?}", resp.1);
    let msg = resp.1["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
}

async fn pop(f: &Fixture, token: &str) -> (u16, Value) {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    f.ca.request_pop(token, &key, "alice@example.com").await
}

#[tokio::test]
async fn accepts_rs256_es256_and_eddsa_tokens() {
    let f = fixture(5).await;
    for k in [&f.rsa, &f.ec, &f.ed] {
        let token = k.sign(&email_claims(&f.email_iss, "alice@example.com"));
        let resp = pop(&f, &token).await;
        assert_eq!(resp.0, 200, "{:?} token: {:?}", k.alg, resp.1);
        let chain = chain_from_response(&resp.1);
        assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    }
}

#[tokio::test]
async fn rejects_expired_and_not_yet_valid_tokens() {
    let f = fixture(5).await;
    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c["iat"] = json!(now() - 7200);
    c["nbf"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "expired");

    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c["nbf"] = json!(now() + 3600);
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "not yet valid");

    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c["iat"] = json!(now() + 3600);
    assert_error(
        &pop(&f, &f.rsa.sign(&c)).await,
        400,
        3,
        "issued in the future",
    );

    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c.as_object_mut().unwrap().remove("exp");
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "`exp`");
}

#[tokio::test]
async fn rejects_wrong_audience() {
    let f = fixture(5).await;
    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c["aud"] = json!("someone-else");
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "audience");
    c["aud"] = json!(["someone-else", "sigstore"]);
    assert_eq!(
        pop(&f, &f.rsa.sign(&c)).await.0,
        200,
        "aud array containing sigstore"
    );
}

#[tokio::test]
async fn rejects_unknown_issuers_and_non_matching_patterns_without_fetching() {
    let f = fixture(5).await;
    let before = f.idp.jwks_fetches();
    let c = email_claims(&f.idp.issuer("unconfigured"), "alice@example.com");
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "not trusted");
    for evil in [
        "https://evil.com/x.amazonaws.com",
        "https://oidc.eks.us-east-1.amazonaws.com.evil.com/id/x",
        "https://oidc.eks.a/b.amazonaws.com/id/x",
    ] {
        let c = email_claims(evil, "alice@example.com");
        assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "not trusted");
    }
    assert_eq!(
        f.idp.jwks_fetches(),
        before,
        "no fetch for untrusted issuers"
    );
    // A concrete issuer matching the local meta-issuer pattern is accepted.
    let c = email_claims(&f.idp.issuer("eks-west-2"), "alice@example.com");
    let resp = pop(&f, &f.rsa.sign(&c)).await;
    assert_eq!(resp.0, 200, "{:?}", resp.1);
}

#[tokio::test]
async fn rejects_alg_none_and_hmac_with_the_public_key() {
    let f = fixture(5).await;
    let c = email_claims(&f.email_iss, "alice@example.com");
    let none = raw_jwt(&json!({"alg": "none", "typ": "JWT"}), &c, b"");
    assert_error(&pop(&f, &none).await, 400, 3, "alg: none");
    let none_no_sig = format!("{}.", none.trim_end_matches('.'));
    assert_error(&pop(&f, &none_no_sig).await, 400, 3, "alg: none");

    // HS256 keyed with the issuer's public key (the classic algorithm-confusion attack).
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(f.rsa.kid.clone());
    let hs = jsonwebtoken::encode(
        &h,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(f.rsa.public_pem().as_bytes()),
    )
    .unwrap();
    assert_error(&pop(&f, &hs).await, 400, 3, "HMAC");
    // RS256 header on an HMAC signature made with the public key must not verify either.
    let parts: Vec<&str> = hs.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": f.rsa.kid}).to_string()),
        parts[1],
        parts[2]
    );
    assert_error(&pop(&f, &forged).await, 400, 3, "signature does not verify");
}

#[tokio::test]
async fn rejects_unknown_kid_after_one_refresh() {
    let f = fixture(2).await;
    let warm = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    assert_eq!(pop(&f, &warm).await.0, 200);
    let fetched = f.idp.jwks_fetches();
    // Within the rate limit of the first fetch, an unknown kid fetches nothing.
    let ghost = TestKey::new("ghost", KeyAlgorithm::Rsa { bits: 2048 });
    let c = email_claims(&f.email_iss, "alice@example.com");
    assert_error(&pop(&f, &ghost.sign(&c)).await, 400, 3, "\"ghost\"");
    assert_eq!(f.idp.jwks_fetches(), fetched, "refresh is rate-limited");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_error(&pop(&f, &ghost.sign(&c)).await, 400, 3, "\"ghost\"");
    assert_eq!(
        f.idp.jwks_fetches(),
        fetched + 1,
        "one refresh on an unknown kid"
    );
    // Rate-limited: a second unknown kid right after does not fetch again.
    assert_error(&pop(&f, &ghost.sign(&c)).await, 400, 3, "kid");
    assert_eq!(f.idp.jwks_fetches(), fetched + 1, "refresh is rate-limited");
}

#[tokio::test]
async fn rotated_issuer_key_is_picked_up() {
    let f = fixture(0).await;
    let old = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    assert_eq!(pop(&f, &old).await.0, 200);
    let fresh = TestKey::new("rsa-2", KeyAlgorithm::Rsa { bits: 2048 });
    f.idp.set_keys(&[&fresh]);
    let new = fresh.sign(&email_claims(&f.email_iss, "alice@example.com"));
    let resp = pop(&f, &new).await;
    assert_eq!(resp.0, 200, "{:?}", resp.1);
    // The retired key's tokens are refused once the JWKS no longer lists it.
    let retired = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    assert_error(&pop(&f, &retired).await, 400, 3, "\"rsa-1\"");
}

#[tokio::test]
async fn rejects_tampered_payload() {
    let f = fixture(5).await;
    let token = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    let parts: Vec<&str> = token.split('.').collect();
    let evil = email_claims(&f.email_iss, "mallory@example.com");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    assert_error(
        &pop(&f, &tampered).await,
        400,
        3,
        "signature does not verify",
    );
    assert_error(&pop(&f, "not-a-jwt").await, 400, 3, "not a JWT");
}

#[tokio::test]
async fn rejects_missing_or_unverified_email() {
    let f = fixture(5).await;
    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c.as_object_mut().unwrap().remove("email");
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "`email`");
    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c["email_verified"] = json!(false);
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "not verified");
    let mut c = email_claims(&f.email_iss, "alice@example.com");
    c.as_object_mut().unwrap().remove("email_verified");
    assert_error(&pop(&f, &f.rsa.sign(&c)).await, 400, 3, "not verified");
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let f = fixture(5).await;
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let resp =
        f.ca.post_v2(json!({"publicKeyRequest": {
            "publicKey": {"content": key.public_key().to_pem()},
            "proofOfPossession": STANDARD.encode(key.sign(b"x").unwrap()),
        }}))
        .await;
    assert_error(&resp, 401, 16, "no identity token");
}

#[tokio::test]
async fn rejects_proofs_by_another_key() {
    let f = fixture(5).await;
    let token = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    let mine = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    // PoP over the right challenge, signed by another key.
    let resp =
        f.ca.post_v2(json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"content": mine.public_key().to_pem()},
                "proofOfPossession": STANDARD.encode(other.sign(b"alice@example.com").unwrap()),
            }
        }))
        .await;
    assert_error(&resp, 400, 3, "proof of possession does not verify");
    // PoP by the right key over the wrong challenge.
    let resp = f.ca.request_pop(&token, &mine, "bob@example.com").await;
    assert_error(&resp, 400, 3, "`email` claim");
    // CSR for one key signed by another.
    let resp = f.ca.request_csr(&token, &csr_pem(&mine, &other)).await;
    assert_error(&resp, 400, 3, "signature does not verify");
    // The same CSR signed properly is accepted.
    let resp = f.ca.request_csr(&token, &csr_pem(&mine, &mine)).await;
    assert_eq!(resp.0, 200, "{:?}", resp.1);
}

#[tokio::test]
async fn rejects_weak_and_unsupported_keys() {
    let f = fixture(5).await;
    let token = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    for (pem, needle) in [
        (RSA_1024, "1024 bits is too small"),
        (SECP256K1, "P-256, P-384"),
    ] {
        let resp =
            f.ca.post_v2(json!({
                "credentials": {"oidcIdentityToken": token},
                "publicKeyRequest": {
                    "publicKey": {"content": pem},
                    "proofOfPossession": STANDARD.encode([1u8; 64]),
                }
            }))
            .await;
        assert_error(&resp, 400, 3, needle);
    }
    let resp =
        f.ca.post_v2(json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {"publicKey": {"content": "garbage"}, "proofOfPossession": "AA=="}
        }))
        .await;
    assert_error(&resp, 400, 3, "publicKey.content");
    // RSA keys of accepted sizes and Ed25519 / P-384 keys are fine.
    for alg in [
        KeyAlgorithm::Rsa { bits: 2048 },
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::EcdsaP384,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let resp = f.ca.request_pop(&token, &key, "alice@example.com").await;
        assert_eq!(resp.0, 200, "{alg}: {:?}", resp.1);
        let resp = f.ca.request_csr(&token, &csr_pem(&key, &key)).await;
        assert_eq!(resp.0, 200, "{alg} CSR: {:?}", resp.1);
    }
}

#[tokio::test]
async fn rejects_oversized_and_malformed_requests() {
    let f = fixture(5).await;
    let token = f.rsa.sign(&email_claims(&f.email_iss, "alice@example.com"));
    let big = "A".repeat(200 * 1024);
    let resp =
        f.ca.post_v2(
            json!({"credentials": {"oidcIdentityToken": token}, "certificateSigningRequest": big}),
        )
        .await;
    assert_error(&resp, 413, 8, "larger than");
    let resp =
        f.ca.http
            .post(format!("{}/api/v2/signingCert", f.ca.url))
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("JSON"), "{v}");
    let resp =
        f.ca.post_v2(json!({"credentials": {"oidcIdentityToken": token}}))
            .await;
    assert_error(&resp, 400, 3, "certificateSigningRequest");
    let resp = f
        .ca
        .post_v2(json!({"credentials": {"oidcIdentityToken": token}, "certificateSigningRequest": "!!!"}))
        .await;
    assert_error(&resp, 400, 3, "base64");
    let resp = f
        .ca
        .post_v2(json!({"credentials": {"oidcIdentityToken": token}, "certificateSigningRequest": STANDARD.encode("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")}))
        .await;
    assert_error(&resp, 400, 3, "certificateSigningRequest");
}
