//! The RFC 3161 timestamp authority, checked by implementations nobody here wrote: OpenSSL
//! builds the DER queries and verifies the replies against the served chain (`openssl ts`), and
//! Python's `rfc3161-client` (the parser sigstore-python uses) parses and verifies replies to DER
//! and JSON requests. Malformed, truncated, oversized and unsupported queries get a 4xx.

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest;
use sigil_server::tsa;
use tempfile::TempDir;

/// A TSA served in-process on a loopback port, with its generated key and chain on disk.
struct Tsa {
    url: String,
    dir: TempDir,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Tsa {
    async fn start() -> Tsa {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let (key, chain, root_key) = (
            keys.join("tsa.pem"),
            keys.join("tsa-chain.crt.pem"),
            keys.join("tsa-root.pem"),
        );
        assert!(tsa::setup::ensure_tsa(&key, &chain, &root_key).unwrap());
        assert!(
            !tsa::setup::ensure_tsa(&key, &chain, &root_key).unwrap(),
            "second run keeps the keys"
        );
        let authority = tsa::setup::load(&key, &chain).unwrap();
        let router = tsa::router(Arc::new(authority)).into_parts().0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        // This test builds its own client without the harness: the TLS provider first.
        sigil_tests::install_crypto_provider();
        let tsa = Tsa {
            url,
            dir,
            http: reqwest::Client::new(),
            _server: server,
        };
        // The served chain, split into leaf and root files for openssl.
        let pem = tsa.get_text("/api/v1/timestamp/certchain").await;
        let certs = sigil_core::certs::parse_pem_certificates(pem.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2, "leaf and root");
        std::fs::write(tsa.path("chain.pem"), &pem).unwrap();
        std::fs::write(
            tsa.path("leaf.pem"),
            sigil_core::certs::pem_encode("CERTIFICATE", &certs[0].0),
        )
        .unwrap();
        std::fs::write(
            tsa.path("root.pem"),
            sigil_core::certs::pem_encode("CERTIFICATE", &certs[1].0),
        )
        .unwrap();
        tsa
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn get_text(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    async fn post(&self, content_type: Option<&str>, body: Vec<u8>) -> (u16, String, Vec<u8>) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/timestamp", self.url))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, resp.bytes().await.unwrap().to_vec())
    }
}

fn tool(name: &str) -> PathBuf {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed: `apt-get install openssl` (scripts/test --setup-only installs it)"
    );
    PathBuf::from(String::from_utf8(found.stdout).unwrap().trim())
}

fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(tool("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn python() -> PathBuf {
    let p = sigil_tests::workspace_root().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "{} missing: run scripts/test --setup-only (installs rfc3161-client from tests/python/requirements.txt)",
        p.display()
    );
    p
}

/// Parses and verifies a reply with rfc3161-client against the chain; returns what it read.
fn rfc3161_client_verify(
    tsr: &Path,
    chain: &Path,
    digest: &[u8],
    nonce: Option<u64>,
) -> Result<String, String> {
    const SCRIPT: &str = r#"
import sys
from cryptography import x509
from rfc3161_client import decode_timestamp_response, VerifierBuilder
resp = decode_timestamp_response(open(sys.argv[1], "rb").read())
chain = x509.load_pem_x509_certificates(open(sys.argv[2], "rb").read())
b = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
b = b.policy_id(x509.ObjectIdentifier("1.3.6.1.4.1.57264.2"))
if sys.argv[4] != "-":
    b = b.nonce(int(sys.argv[4]))
b.build().verify(resp, bytes.fromhex(sys.argv[3]))
info = resp.tst_info
print(info.policy.dotted_string, info.message_imprint.hash_algorithm.dotted_string, info.nonce, info.gen_time.isoformat())
"#;
    let nonce = nonce.map_or("-".to_string(), |n| n.to_string());
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(tsr)
        .arg(chain)
        .arg(hex::encode(digest))
        .arg(nonce)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn digest_of(alg: &str, data: &[u8]) -> Vec<u8> {
    match alg {
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        other => panic!("{other}"),
    }
}

const HASH_OIDS: [(&str, &str); 3] = [
    ("sha256", "2.16.840.1.101.3.4.2.1"),
    ("sha384", "2.16.840.1.101.3.4.2.2"),
    ("sha512", "2.16.840.1.101.3.4.2.3"),
];

#[tokio::test]
async fn der_queries_from_openssl_verify_with_openssl_and_rfc3161_client() {
    let tsa = Tsa::start().await;
    let dir = tsa.dir.path();
    for (alg, oid) in HASH_OIDS {
        for with_cert in [true, false] {
            let digest = digest_of(alg, format!("artifact {alg} {with_cert}").as_bytes());
            let mut args = vec!["ts", "-query", "-digest"];
            let digest_hex = hex::encode(&digest);
            args.push(&digest_hex);
            let flag = format!("-{alg}");
            args.push(&flag);
            if with_cert {
                args.push("-cert");
            }
            args.extend(["-out", "q.tsq"]);
            let (ok, text) = openssl(&args, dir);
            assert!(ok, "openssl ts -query: {text}");
            let query = std::fs::read(dir.join("q.tsq")).unwrap();
            let (status, ct, reply) = tsa.post(Some("application/timestamp-query"), query).await;
            assert_eq!(
                status,
                200,
                "{alg} cert={with_cert}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(ct, "application/timestamp-reply");
            std::fs::write(dir.join("r.tsr"), &reply).unwrap();

            let (ok, text) = openssl(&["ts", "-reply", "-in", "r.tsr", "-text"], dir);
            assert!(ok, "{text}");
            assert!(text.contains("Status: Granted."), "{text}");
            assert!(text.contains("Policy OID: 1.3.6.1.4.1.57264.2"), "{text}");
            assert!(text.contains(&format!("Hash Algorithm: {alg}")), "{text}");
            assert!(
                text.contains("Nonce: 0x"),
                "openssl sends a nonce by default and it is echoed: {text}"
            );
            assert!(
                text.contains("TSA: DirName:/O=sigil/CN=sigil timestamping"),
                "{text}"
            );

            // Certificates travel in the token only when asked for (certReq).
            let (ok, text) = openssl(
                &[
                    "ts",
                    "-reply",
                    "-in",
                    "r.tsr",
                    "-token_out",
                    "-out",
                    "tok.der",
                ],
                dir,
            );
            assert!(ok, "{text}");
            let (_, certs) = openssl(
                &["pkcs7", "-inform", "DER", "-in", "tok.der", "-print_certs"],
                dir,
            );
            assert_eq!(certs.contains("sigil timestamping"), with_cert, "{certs}");

            // openssl checks the imprint, nonce, signature, ESS signing certificate and chain.
            let mut verify = vec![
                "ts",
                "-verify",
                "-in",
                "r.tsr",
                "-queryfile",
                "q.tsq",
                "-CAfile",
                "root.pem",
            ];
            if !with_cert {
                verify.extend(["-untrusted", "leaf.pem"]);
            }
            let (ok, text) = openssl(&verify, dir);
            assert!(
                ok && text.contains("Verification: OK"),
                "{alg} cert={with_cert}: {text}"
            );

            let read =
                rfc3161_client_verify(&dir.join("r.tsr"), &dir.join("chain.pem"), &digest, None)
                    .unwrap_or_else(|e| panic!("rfc3161-client refused the {alg} reply: {e}"));
            assert!(
                read.starts_with(&format!("1.3.6.1.4.1.57264.2 {oid} ")),
                "{read}"
            );
        }
    }

    // A reply checked against a different artifact fails: the checks above are not vacuous.
    let other = hex::encode(digest_of("sha256", b"something else"));
    let (ok, text) = openssl(
        &[
            "ts",
            "-verify",
            "-in",
            "r.tsr",
            "-digest",
            &other,
            "-CAfile",
            "root.pem",
            "-untrusted",
            "leaf.pem",
        ],
        dir,
    );
    assert!(!ok, "a reply verified against the wrong digest: {text}");
}

#[tokio::test]
async fn json_requests_get_der_replies_that_verify() {
    let tsa = Tsa::start().await;
    let dir = tsa.dir.path();
    for (alg, _) in HASH_OIDS {
        let digest = digest_of(alg, b"signature bytes");
        let nonce: u64 = 0x8000_0000_0000_0001; // top bit set: encoded with a leading zero byte
        let body = serde_json::json!({
            "artifactHash": STANDARD.encode(&digest),
            "hashAlgorithm": alg,
            "nonce": nonce,
            "certificates": true,
        });
        let (status, ct, reply) = tsa
            .post(Some("application/json"), serde_json::to_vec(&body).unwrap())
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        assert_eq!(ct, "application/timestamp-reply");
        std::fs::write(dir.join("j.tsr"), &reply).unwrap();
        let read = rfc3161_client_verify(
            &dir.join("j.tsr"),
            &dir.join("chain.pem"),
            &digest,
            Some(nonce),
        )
        .unwrap_or_else(|e| panic!("rfc3161-client refused the JSON-requested {alg} reply: {e}"));
        assert!(read.contains(&nonce.to_string()), "{read}");
        let digest_hex = hex::encode(&digest);
        let (ok, text) = openssl(
            &[
                "ts",
                "-verify",
                "-in",
                "j.tsr",
                "-digest",
                &digest_hex,
                "-CAfile",
                "root.pem",
            ],
            dir,
        );
        assert!(ok, "{alg}: {text}");
        // A wrong nonce is caught by the independent verifier.
        assert!(
            rfc3161_client_verify(&dir.join("j.tsr"), &dir.join("chain.pem"), &digest, Some(7))
                .is_err()
        );
    }
    // sigstore-js sends only artifactHash and hashAlgorithm.
    let body = format!(
        r#"{{"artifactHash":"{}","hashAlgorithm":"sha256"}}"#,
        STANDARD.encode([7u8; 32])
    );
    let (status, _, _) = tsa.post(Some("application/json"), body.into_bytes()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_tsa_certificate_is_for_time_stamping_only() {
    let tsa = Tsa::start().await;
    let (ok, text) = openssl(
        &["x509", "-in", "leaf.pem", "-noout", "-text"],
        tsa.dir.path(),
    );
    assert!(ok, "{text}");
    let eku = text
        .split("X509v3 Extended Key Usage:")
        .nth(1)
        .unwrap_or_else(|| panic!("no EKU: {text}"));
    assert!(eku.starts_with(" critical"), "EKU must be critical: {text}");
    assert!(
        eku.lines().nth(1).unwrap().trim() == "Time Stamping",
        "{text}"
    );
    let (ok, text) = openssl(
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-purpose",
            "timestampsign",
            "leaf.pem",
        ],
        tsa.dir.path(),
    );
    assert!(ok, "{text}");
}

/// Runs `openssl ts -query` with extra arguments and returns the query bytes.
fn query(dir: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["ts", "-query"];
    all.extend_from_slice(args);
    all.extend(["-out", "bad.tsq"]);
    let (ok, text) = openssl(&all, dir);
    assert!(ok, "{text}");
    std::fs::read(dir.join("bad.tsq")).unwrap()
}

/// A DER rejection: status 2 with the reason, readable by openssl.
fn assert_rejection(dir: &Path, reply: &[u8], reason: &str) {
    std::fs::write(dir.join("rej.tsr"), reply).unwrap();
    let (ok, text) = openssl(&["ts", "-reply", "-in", "rej.tsr", "-text"], dir);
    assert!(ok, "{text}");
    assert!(text.contains("Status: Rejected."), "{text}");
    assert!(text.contains(reason), "expected {reason:?} in {text}");
}

#[tokio::test]
async fn bad_queries_get_4xx_with_a_reason() {
    let tsa = Tsa::start().await;
    let dir = tsa.dir.path();
    let good = query(dir, &["-digest", &"ab".repeat(32), "-sha256"]);

    // SHA-1 (openssl knows it; this TSA does not accept it).
    let sha1 = query(dir, &["-digest", &"ab".repeat(20), "-sha1"]);
    let (status, ct, reply) = tsa.post(Some("application/timestamp-query"), sha1).await;
    assert_eq!((status, ct.as_str()), (400, "application/timestamp-reply"));
    assert_rejection(dir, &reply, "unsupported hash algorithm SHA-1");

    // A SHA-256 OID with a 20-byte imprint: patch the OCTET STRING length and content.
    let mut short = good.clone();
    let pos = short.windows(2).position(|w| w == [0x04, 0x20]).unwrap();
    short.splice(
        pos..,
        [vec![0x04, 20], vec![0xab; 20], good[pos + 34..].to_vec()].concat(),
    );
    // Fix the two enclosing SEQUENCE lengths (short form in these small queries).
    short[1] -= 12;
    short[6] -= 12;
    let (status, _, reply) = tsa.post(Some("application/timestamp-query"), short).await;
    assert_eq!(status, 400);
    assert_rejection(
        dir,
        &reply,
        "the message imprint is 20 bytes, but a SHA-256 digest is 32 bytes",
    );

    // An unknown hash OID (SHA-256's last arc changed to 99).
    let mut unknown = good.clone();
    let oid_end = unknown
        .windows(9)
        .position(|w| w == [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04])
        .unwrap()
        + 11;
    unknown[oid_end - 1] = 99;
    let (status, _, reply) = tsa.post(Some("application/timestamp-query"), unknown).await;
    assert_eq!(status, 400);
    assert_rejection(
        dir,
        &reply,
        "unsupported hash algorithm 2.16.840.1.101.3.4.2.99",
    );

    // Another policy than the TSA's.
    let other_policy = query(
        dir,
        &[
            "-digest",
            &"ab".repeat(32),
            "-sha256",
            "-tspolicy",
            "1.2.3.4",
        ],
    );
    let (status, _, reply) = tsa
        .post(Some("application/timestamp-query"), other_policy)
        .await;
    assert_eq!(status, 400);
    assert_rejection(dir, &reply, "requested policy 1.2.3.4");

    // Every truncation of a valid query, and trailing garbage.
    for n in 0..good.len() {
        let (status, _, _) = tsa
            .post(Some("application/timestamp-query"), good[..n].to_vec())
            .await;
        assert_eq!(status, 400, "query truncated to {n} bytes");
    }
    let (status, _, reply) = tsa
        .post(
            Some("application/timestamp-query"),
            [good.clone(), vec![0]].concat(),
        )
        .await;
    assert_eq!(status, 400);
    assert_rejection(dir, &reply, "not a DER TimeStampReq");

    // Huge bodies are cut off before parsing.
    let huge = vec![0x30; tsa::token::MAX_QUERY_BYTES + 1];
    let (status, _, _) = tsa.post(Some("application/timestamp-query"), huge).await;
    assert_eq!(status, 413);

    // Content types and JSON.
    let (status, _, _) = tsa.post(Some("text/plain"), good.clone()).await;
    assert_eq!(status, 415);
    let (status, _, _) = tsa.post(None, good.clone()).await;
    assert_eq!(status, 200, "no Content-Type: sniffed as DER");
    for (body, reason) in [
        ("{", "JSON time-stamp request is invalid"),
        (
            r#"{"artifactHash":"!!","hashAlgorithm":"sha256"}"#,
            "not base64",
        ),
        (
            r#"{"artifactHash":"AAAA","hashAlgorithm":"sha256"}"#,
            "is 3 bytes",
        ),
        (
            r#"{"artifactHash":"AAAA","hashAlgorithm":"md5"}"#,
            "unsupported hash algorithm",
        ),
        (r#"{"hashAlgorithm":"sha256"}"#, "artifactHash"),
        (r#"{"artifactHash":"AAAA","bogus":1}"#, "bogus"),
    ] {
        let (status, ct, reply) = tsa
            .post(Some("application/json"), body.as_bytes().to_vec())
            .await;
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(status, 400, "{body}: {text}");
        assert!(ct.starts_with("application/json"), "{ct}");
        assert!(
            text.contains(reason),
            "{body}: expected {reason:?} in {text}"
        );
    }
}

mod fuzz {
    use std::sync::OnceLock;
    use std::time::SystemTime;

    use der::{Decode, Encode};
    use proptest::prelude::*;
    use sigil_core::rfc3161::{MessageImprint, TimeStampReq, TimeStampResp};
    use sigil_server::tsa::token::{self, TimestampAuthority};
    use x509_cert::spki::AlgorithmIdentifierOwned;

    fn authority() -> &'static TimestampAuthority {
        static TSA: OnceLock<(tempfile::TempDir, TimestampAuthority)> = OnceLock::new();
        &TSA.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let (k, c, r) = (
                dir.path().join("k.pem"),
                dir.path().join("c.pem"),
                dir.path().join("r.pem"),
            );
            sigil_server::tsa::setup::ensure_tsa(&k, &c, &r).unwrap();
            let tsa = sigil_server::tsa::setup::load(&k, &c).unwrap();
            (dir, tsa)
        })
        .1
    }

    fn valid_query(nonce: &[u8], cert_req: bool) -> Vec<u8> {
        TimeStampReq {
            version: 1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: sigil_core::rfc3161::SHA256,
                    parameters: None,
                },
                hashed_message: der::asn1::OctetString::new(vec![9u8; 32]).unwrap(),
            },
            req_policy: None,
            nonce: Some(der::asn1::Int::new(nonce).unwrap()),
            cert_req: Some(cert_req),
            extensions: None,
        }
        .to_der()
        .unwrap()
    }

    /// Whatever the input, parsing answers Ok or Err; an accepted query yields a granted reply.
    fn check(bytes: &[u8]) {
        if let Ok(req) = token::parse_der_request(bytes) {
            let reply = authority()
                .issue(&req, SystemTime::now(), &[1; 16])
                .unwrap();
            assert_eq!(TimeStampResp::from_der(&reply).unwrap().status.status, 0);
        }
        let _ = token::parse_json_request(bytes);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&bytes);
        }

        #[test]
        fn mutated_queries_never_panic(
            nonce in proptest::collection::vec(1u8..=0x7f, 1..20),
            cert_req: bool,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut q = valid_query(&nonce, cert_req);
            check(&q);
            prop_assert!(token::parse_der_request(&q).is_ok());
            for (pos, byte) in edits {
                let i = pos % q.len();
                q[i] = byte;
            }
            check(&q);
            q.truncate(cut % (q.len() + 1));
            check(&q);
        }

        #[test]
        fn random_json_never_panics(hash in "[A-Za-z0-9+/=]{0,100}", alg in "[a-zA-Z0-9_-]{0,12}", nonce: Option<u64>) {
            let body = serde_json::json!({"artifactHash": hash, "hashAlgorithm": alg, "nonce": nonce});
            if let Ok(req) = token::parse_json_request(&serde_json::to_vec(&body).unwrap()) {
                let reply = authority().issue(&req, SystemTime::now(), &[2; 16]).unwrap();
                prop_assert_eq!(TimeStampResp::from_der(&reply).unwrap().status.status, 0);
            }
        }
    }
}
