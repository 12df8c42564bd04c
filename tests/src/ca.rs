//! Shared pieces of the CA tests: a mock OpenID
//! provider whose keys the test controls (to forge every kind of bad token), an in-process CT
//! log on SQLite, an in-process CA on loopback, CSR building and certificate inspection.
// Test helpers: a panic is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::asn1::{BitString, ObjectIdentifier, SetOfVec, UintRef};
use der::{Decode, Encode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_server::ca::{Ca, CaConfig, CaKeys, CaNames, IssuerConfig, IssuerType};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Serves `router` on a free loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A token-signing key of the mock provider with its JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub enc: EncodingKey,
    pub jwk: Value,
    pub signing: SigningKey,
}

#[derive(der::Sequence)]
struct RsaPub<'a> {
    n: UintRef<'a>,
    e: UintRef<'a>,
}

impl TestKey {
    pub fn new(kid: &str, alg: KeyAlgorithm) -> TestKey {
        let signing = SigningKey::generate(alg).unwrap();
        let pem = signing.to_pkcs8_pem().unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_der(signing.public_key().spki_der()).unwrap();
        let bits = spki.subject_public_key.raw_bytes();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (jalg, enc, jwk) = match alg {
            KeyAlgorithm::Rsa { .. } => {
                let k = RsaPub::from_der(bits).unwrap();
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
                    json!({"kty": "RSA", "n": b64(k.n.as_bytes()), "e": b64(k.e.as_bytes())}),
                )
            }
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let (crv, jalg, len) = if alg == KeyAlgorithm::EcdsaP256 {
                    ("P-256", Algorithm::ES256, 32)
                } else {
                    ("P-384", Algorithm::ES384, 48)
                };
                (
                    jalg,
                    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
                    json!({"kty": "EC", "crv": crv, "x": b64(&bits[1..1 + len]), "y": b64(&bits[1 + len..])}),
                )
            }
            KeyAlgorithm::EcdsaP521 => panic!("ES512 ID tokens are not used by these tests"),
            KeyAlgorithm::Ed25519 => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(bits)}),
            ),
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey {
            kid: kid.to_string(),
            alg: jalg,
            enc,
            jwk,
            signing,
        }
    }

    /// A signed JWT of `claims` with this key and its kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }

    /// The public key as PEM (what an attacker might use as an HMAC secret).
    pub fn public_pem(&self) -> String {
        self.signing.public_key().to_pem()
    }
}

/// A JWT assembled by hand (for `alg: none` and other malformed tokens).
pub fn raw_jwt(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

#[derive(Clone)]
struct IdpState {
    base: Arc<RwLock<String>>,
    keys: Arc<RwLock<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

/// A minimal OpenID provider: every path prefix `/<name>` is an issuer `<base>/<name>` with
/// discovery; all share one JWKS the test controls.
pub struct MockIdp {
    pub base: String,
    state: IdpState,
}

impl MockIdp {
    pub async fn start(keys: &[&TestKey]) -> MockIdp {
        let state = IdpState {
            base: Arc::new(RwLock::new(String::new())),
            keys: Arc::new(RwLock::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let router = Router::new()
            .route("/jwks", get(jwks))
            .route("/{name}/.well-known/openid-configuration", get(discovery))
            .with_state(state.clone());
        let base = serve(router).await;
        *state.base.write().unwrap() = base.clone();
        MockIdp { base, state }
    }

    pub fn issuer(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.state.keys.write().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

async fn jwks(State(s): State<IdpState>) -> axum::Json<Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"keys": *s.keys.read().unwrap()}))
}

async fn discovery(State(s): State<IdpState>, Path(name): Path<String>) -> axum::Json<Value> {
    let base = s.base.read().unwrap().clone();
    axum::Json(json!({
        "issuer": format!("{base}/{name}"),
        "jwks_uri": format!("{base}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
}

/// Standard claims for `iss`/`sub`, valid now for 10 minutes, `aud: sigstore`.
pub fn claims(iss: &str, sub: &str) -> Value {
    let t = now();
    json!({"iss": iss, "sub": sub, "aud": "sigstore", "iat": t, "nbf": t, "exp": t + 600})
}

/// E-mail claims (verified).
pub fn email_claims(iss: &str, email: &str) -> Value {
    let mut c = claims(iss, "user-1234");
    c["email"] = json!(email);
    c["email_verified"] = json!(true);
    c
}

/// An in-process CT log (RFC 6962 API on the log engine, SQLite in a temp dir).
pub struct CtLog {
    pub url: String,
    pub key: SigningKey,
    pub dir: tempfile::TempDir,
}

impl CtLog {
    pub async fn start(roots: Vec<Vec<u8>>) -> CtLog {
        use sigil_server::log::ct::{CtState, router};
        use sigil_server::log::engine::{EngineConfig, LogEngine};
        let dir = tempfile::tempdir().unwrap();
        let db = sigil_server::storage::connect(&format!(
            "sqlite://{}",
            dir.path().join("ct.db").display()
        ))
        .await
        .unwrap();
        let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let signer = sigil_core::note::EcdsaNoteKey::signer(
            "test-ct",
            SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap(),
        )
        .unwrap();
        let engine = LogEngine::open(
            db,
            "ct",
            "test CT",
            Arc::new(signer),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let state = CtState::new(
            engine,
            SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap(),
            roots,
        );
        let url = serve(router(Arc::new(state)).into_parts().0).await;
        CtLog { url, key, dir }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
}

/// A CA served on loopback.
pub struct TestCa {
    pub url: String,
    pub ca: Arc<Ca>,
    pub keys: CaKeys,
    pub ct: Option<CtLog>,
    pub http: reqwest::Client,
}

impl TestCa {
    /// A CA with ephemeral keys; with `with_ct` an in-process CT log it submits to.
    pub async fn start(mut config: CaConfig, with_ct: bool) -> TestCa {
        let keys = CaKeys::ephemeral(&CaNames::default()).unwrap();
        let ct = if with_ct {
            let root = keys.chain_der().last().unwrap().clone();
            let ct = CtLog::start(vec![root]).await;
            config.ct_log_url = Some(ct.url.clone());
            config.ct_log_public_key = Some(ct.public_key().to_pem());
            Some(ct)
        } else {
            None
        };
        let ca = Arc::new(Ca::new(config, keys.clone()).unwrap());
        let url = serve(sigil_server::ca::router(ca.clone()).into_parts().0).await;
        TestCa {
            url,
            ca,
            keys,
            ct,
            http: reqwest::Client::new(),
        }
    }

    /// POST /api/v2/signingCert with a public key and proof of possession.
    pub async fn request_pop(
        &self,
        token: &str,
        key: &SigningKey,
        challenge: &str,
    ) -> (u16, Value) {
        let proof = key.sign(challenge.as_bytes()).unwrap();
        self.post_v2(json!({
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": key.public_key().to_pem()},
                "proofOfPossession": STANDARD.encode(proof),
            }
        }))
        .await
    }

    /// POST /api/v2/signingCert with a CSR (token as a Bearer header, as sigstore-python).
    pub async fn request_csr(&self, token: &str, csr_pem: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v2/signingCert", self.url))
            .bearer_auth(token)
            .header("accept", "application/pem-certificate-chain")
            .json(&json!({"certificateSigningRequest": STANDARD.encode(csr_pem)}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_v2(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v2/signingCert", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Issuer configs for the mock provider: `<base>/<name>` of `ty`.
pub fn issuer(idp: &MockIdp, name: &str, ty: IssuerType) -> IssuerConfig {
    IssuerConfig::exact(idp.issuer(name), ty)
}

/// A PKCS#10 request for `key`, signed by `signer` (the same key for a valid CSR).
pub fn csr_pem(key: &SigningKey, signer: &SigningKey) -> String {
    let info = CertReqInfo {
        version: Version::V1,
        subject: "CN=ignored".parse().unwrap(),
        public_key: SubjectPublicKeyInfoOwned::from_der(key.public_key().spki_der()).unwrap(),
        attributes: SetOfVec::new(),
    };
    let oid = match signer.algorithm() {
        KeyAlgorithm::EcdsaP256 => sigil_core::oid::ECDSA_WITH_SHA256,
        KeyAlgorithm::EcdsaP384 => sigil_core::oid::ECDSA_WITH_SHA384,
        KeyAlgorithm::EcdsaP521 => sigil_core::oid::ECDSA_WITH_SHA512,
        KeyAlgorithm::Ed25519 => sigil_core::oid::ED25519,
        KeyAlgorithm::Rsa { .. } => sigil_core::oid::SHA256_WITH_RSA,
    };
    let sig = signer.sign(&info.to_der().unwrap()).unwrap();
    let parameters = matches!(signer.algorithm(), KeyAlgorithm::Rsa { .. })
        .then(|| der::Any::encode_from(&der::asn1::Null).unwrap());
    let req = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned { oid, parameters },
        signature: BitString::from_bytes(&sig).unwrap(),
    };
    sigil_core::certs::pem_encode("CERTIFICATE REQUEST", &req.to_der().unwrap())
}

/// The certificates of a v2 response, DER, leaf first.
pub fn chain_from_response(v: &Value) -> Vec<Vec<u8>> {
    let certs = v
        .pointer("/signedCertificateEmbeddedSct/chain/certificates")
        .or_else(|| v.pointer("/signedCertificateDetachedSct/chain/certificates"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no chain in response: {v}"));
    certs
        .iter()
        .map(|c| {
            let pem = c.as_str().unwrap();
            let parsed = sigil_core::certs::parse_pem_certificates(pem.as_bytes()).unwrap();
            assert_eq!(parsed.len(), 1, "one certificate per chain element");
            parsed.into_iter().next().unwrap().0
        })
        .collect()
}

/// A certificate extension's value bytes and criticality.
pub fn ext(cert: &Certificate, oid: &ObjectIdentifier) -> Option<(bool, Vec<u8>)> {
    let exts = cert.tbs_certificate.extensions.as_ref()?;
    let matching: Vec<_> = exts.iter().filter(|e| &e.extn_id == oid).collect();
    assert!(
        matching.len() <= 1,
        "extension {oid} appears more than once"
    );
    matching
        .first()
        .map(|e| (e.critical, e.extn_value.as_bytes().to_vec()))
}

/// The Fulcio extension's string value (raw for .1–.6, UTF8String after).
pub fn ext_str(cert: &Certificate, oid: &ObjectIdentifier) -> Option<String> {
    let (_, v) = ext(cert, oid)?;
    Some(sigil_core::oid::fulcio_extension_string(oid, &v).expect("extension in its required form"))
}

/// The SAN values as (kind, value).
pub fn sans(cert: &Certificate) -> Vec<(String, String)> {
    let (_, san) = cert
        .tbs_certificate
        .get::<SubjectAltName>()
        .unwrap()
        .unwrap();
    san.0
        .iter()
        .map(|n| match n {
            GeneralName::Rfc822Name(s) => ("email".into(), s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => ("uri".into(), s.to_string()),
            GeneralName::OtherName(o) => (
                format!("other:{}", o.type_id),
                der::asn1::Utf8StringRef::try_from(&o.value)
                    .unwrap()
                    .as_str()
                    .to_string(),
            ),
            other => ("other".into(), format!("{other:?}")),
        })
        .collect()
}
