//! The Rekor v2 API end to end: entries are written over HTTP, and an independent reader (plain
//! SHA-256 and aws-lc-rs here, none of Sigil's Merkle, tile or note code) rebuilds the tree from
//! the served tiles and entry bundles alone and matches the signed checkpoint. Tiles are
//! byte-identical after a restart; caching headers follow C2SP tlog-tiles; bad requests get 4xx;
//! a full queue answers 503.

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey};
use sigil_core::note::EcdsaNoteKey;
use sigil_server::log::engine::{EngineConfig, LogEngine};
use sigil_server::log::rekor_v2::{self, RekorV2State};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A v2 log served in-process on a loopback port.
struct Server {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(db_url: &str, key_pem: &str, config: EngineConfig) -> Server {
    let db = sigil_server::storage::connect(db_url).await.unwrap();
    let key = SigningKey::from_pkcs8_pem(key_pem).unwrap();
    let signer = Arc::new(
        EcdsaNoteKey::signer("sigil-v2", SigningKey::from_pkcs8_pem(key_pem).unwrap()).unwrap(),
    );
    let engine = LogEngine::open(db, rekor_v2::LOG_NAME, "sigil-v2", signer, config)
        .await
        .unwrap();
    let router = rekor_v2::router(Arc::new(RekorV2State::new(engine, &key.public_key())))
        .into_parts()
        .0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server { url, task }
}

impl Server {
    /// Stops serving; the router, its engine and sequencer are dropped.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client key signing artifact digests, and the request bodies it makes.
struct Signer {
    key: SigningKey,
}

impl Signer {
    fn new() -> Self {
        Signer {
            key: SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        }
    }

    fn request(&self, artifact: &[u8]) -> Value {
        let digest = Sha256::digest(artifact).to_vec();
        let sig = self
            .key
            .sign_prehashed(DigestAlgorithm::Sha256, &digest)
            .unwrap();
        json!({"hashedRekordRequestV002": {
            "digest": STANDARD.encode(&digest),
            "signature": {"content": STANDARD.encode(sig), "verifier": {
                "publicKey": {"rawBytes": STANDARD.encode(self.key.public_key().spki_der())},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            }},
        }})
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = http
        .post(format!("{url}/api/v2/log/entries"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    path: &str,
) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let resp = http
        .get(format!("{url}/api/v2/{path}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.bytes().await.unwrap().to_vec(), headers)
}

// ---- The independent reader: RFC 6962 hashing, C2SP paths and formats, written out here. ----

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(l)
        .chain_update(r)
        .finalize()
        .into()
}

/// RFC 6962 §2.1 MTH over leaf hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.2 inclusion proof verification.
fn root_from_proof(index: u64, size: u64, leaf: [u8; 32], proof: &[[u8; 32]]) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf);
    for p in proof {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// C2SP tlog-tiles index encoding: 3-digit groups, all but the last prefixed `x`.
fn index_path(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn tile_path(level: u8, index: u64, width: u64) -> String {
    let base = format!("tile/{level}/{}", index_path(index));
    if width == 256 {
        base
    } else {
        format!("{base}.p/{width}")
    }
}

fn entries_path(index: u64, width: u64) -> String {
    let base = format!("tile/entries/{}", index_path(index));
    if width == 256 {
        base
    } else {
        format!("{base}.p/{width}")
    }
}

fn parse_bundle(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        out.push(data[2..2 + len].to_vec());
        data = &data[2 + len..];
    }
    out
}

struct Checkpoint {
    size: u64,
    root: [u8; 32],
}

/// Parses a signed checkpoint and checks its ECDSA signature with the log key (SPKI DER).
fn open_checkpoint(note: &str, spki: &[u8]) -> Checkpoint {
    let (text, sigs) = note
        .split_once("\n\n")
        .expect("a blank line before the signatures");
    let text = format!("{text}\n");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{note}");
    let size: u64 = lines[1].parse().unwrap();
    let root: [u8; 32] = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    let key_hint = &Sha256::digest(spki)[..4];
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ").expect("signature line");
        let (_, b64) = rest.split_once(' ').unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        if &raw[..4] == key_hint {
            let point = &spki[spki.len() - 65..];
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                point,
            )
            .verify(text.as_bytes(), &raw[4..])
            .expect("checkpoint signature verifies with the log key");
            verified = true;
        }
    }
    assert!(verified, "no signature by the log key on {note}");
    Checkpoint { size, root }
}

/// Rebuilds the tree from tiles and entry bundles only; returns every served file by path.
async fn read_tree(
    http: &reqwest::Client,
    url: &str,
    spki: &[u8],
) -> (Checkpoint, BTreeMap<String, Vec<u8>>) {
    let mut files = BTreeMap::new();
    let (status, cp_bytes, _) = get(http, url, "checkpoint").await;
    assert_eq!(status, 200);
    let cp = open_checkpoint(std::str::from_utf8(&cp_bytes).unwrap(), spki);
    files.insert("checkpoint".to_string(), cp_bytes);
    let mut leaves: Vec<[u8; 32]> = Vec::new();
    for t in 0..cp.size.div_ceil(256) {
        let width = (cp.size - t * 256).min(256);
        let hashes_path = tile_path(0, t, width);
        let (status, hashes, _) = get(http, url, &hashes_path).await;
        assert_eq!(status, 200, "{hashes_path}");
        assert_eq!(hashes.len() as u64, width * 32, "{hashes_path}");
        let bundle_path = entries_path(t, width);
        let (status, bundle, _) = get(http, url, &bundle_path).await;
        assert_eq!(status, 200, "{bundle_path}");
        let entries = parse_bundle(&bundle);
        assert_eq!(entries.len() as u64, width, "{bundle_path}");
        for (i, entry) in entries.iter().enumerate() {
            let h: [u8; 32] = hashes[i * 32..i * 32 + 32].try_into().unwrap();
            assert_eq!(
                h,
                leaf_hash(entry),
                "leaf {} of {hashes_path} is the hash of its entry",
                t * 256 + i as u64
            );
            leaves.push(h);
        }
        files.insert(hashes_path, hashes);
        files.insert(bundle_path, bundle);
    }
    // Level-1 tiles hold the roots of each full run of 256 leaves.
    let full = cp.size / 256;
    if full > 0 {
        let path = tile_path(1, 0, full.min(256));
        let (status, l1, _) = get(http, url, &path).await;
        assert_eq!(status, 200, "{path}");
        for k in 0..full as usize {
            assert_eq!(
                l1[k * 32..k * 32 + 32],
                mth(&leaves[k * 256..k * 256 + 256]),
                "{path} hash {k}"
            );
        }
        files.insert(path, l1);
    }
    assert_eq!(
        mth(&leaves),
        cp.root,
        "the tree rebuilt from tiles has the checkpoint's root"
    );
    (cp, files)
}

/// Checks a TransparencyLogEntry against the independent reader's rules.
fn check_entry(entry: &Value, request: &Value, log_spki: &[u8]) -> u64 {
    let index: u64 = entry["logIndex"]
        .as_str()
        .expect("logIndex is a string")
        .parse()
        .unwrap();
    assert_eq!(
        entry["logId"]["keyId"],
        STANDARD.encode(Sha256::digest(log_spki))
    );
    assert_eq!(
        entry["kindVersion"],
        json!({"kind": "hashedrekord", "version": "0.0.2"})
    );
    assert!(
        entry.get("integratedTime").is_none(),
        "v2 entries carry no integrated time: {entry}"
    );
    assert!(
        entry.get("inclusionPromise").is_none(),
        "v2 entries carry no SET: {entry}"
    );
    let body = STANDARD
        .decode(entry["canonicalizedBody"].as_str().unwrap())
        .unwrap();
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    let req = &request["hashedRekordRequestV002"];
    assert_eq!(
        parsed,
        json!({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": req["digest"]},
            "signature": req["signature"],
        }}})
    );
    // RFC 8785: keys sorted, no whitespace.
    assert!(body.starts_with(
        br#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"#
    ));
    let proof = &entry["inclusionProof"];
    assert_eq!(proof["logIndex"], entry["logIndex"]);
    let size: u64 = proof["treeSize"].as_str().unwrap().parse().unwrap();
    let hashes: Vec<[u8; 32]> = proof["hashes"]
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
    let root =
        root_from_proof(index, size, leaf_hash(&body), &hashes).expect("inclusion proof verifies");
    assert_eq!(STANDARD.encode(root), proof["rootHash"].as_str().unwrap());
    let cp = open_checkpoint(proof["checkpoint"]["envelope"].as_str().unwrap(), log_spki);
    assert_eq!(
        (cp.size, cp.root),
        (size, root),
        "the proof is to the signed checkpoint"
    );
    index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_rebuild_the_checkpoint_and_survive_a_restart() {
    let (_db_dir, db_url) = sigil_tests::temp_sqlite().unwrap();
    let log_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let key_pem = log_key.to_pkcs8_pem().unwrap();
    let spki = log_key.public_key().spki_der().to_vec();
    let http = reqwest::Client::new();
    let server = serve(&db_url, &key_pem, EngineConfig::default()).await;
    let signer = Signer::new();

    // 300 entries, 30 at a time (batched by the sequencer), across a tile boundary.
    let mut indexes = Vec::new();
    let mut sent: Vec<(Value, u64)> = Vec::new();
    for chunk in (0..300u32).collect::<Vec<_>>().chunks(30) {
        let reqs: Vec<Value> = chunk
            .iter()
            .map(|i| signer.request(format!("artifact {i}").as_bytes()))
            .collect();
        let answers = futures_join(reqs.iter().map(|r| post(&http, &server.url, r))).await;
        for (req, (status, entry, _)) in reqs.iter().zip(answers) {
            assert_eq!(status, 201, "{entry}");
            let index = check_entry(&entry, req, &spki);
            indexes.push(index);
            sent.push((req.clone(), index));
        }
    }
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..300).collect::<Vec<u64>>(),
        "every entry got its own index"
    );

    // Resubmitting the same request answers the existing entry, proven in the current checkpoint.
    let (again, first_index) = sent[7].clone();
    let (status, entry, _) = post(&http, &server.url, &again).await;
    assert_eq!(status, 200, "{entry}");
    let index = check_entry(&entry, &again, &spki);
    assert_eq!(index, first_index);
    assert_eq!(entry["inclusionProof"]["treeSize"], "300");

    let (cp, files) = read_tree(&http, &server.url, &spki).await;
    assert_eq!(cp.size, 300);
    let bundle = parse_bundle(&files[&entries_path(0, 256)]);
    assert_eq!(
        STANDARD.encode(&bundle[index as usize]),
        entry["canonicalizedBody"].as_str().unwrap(),
        "the entry bundle holds the canonical body"
    );

    // Caching: full tiles are immutable; partial tiles and the checkpoint revalidate by ETag.
    for path in ["tile/0/000", "tile/entries/000"] {
        let (_, _, h) = get(&http, &server.url, path).await;
        assert_eq!(h["cache-control"], IMMUTABLE, "{path}");
    }
    for path in [
        "tile/0/001.p/44",
        "tile/entries/001.p/44",
        "tile/1/000.p/1",
        "checkpoint",
    ] {
        let (_, _, h) = get(&http, &server.url, path).await;
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let etag = h["etag"].to_str().unwrap().to_string();
        let resp = http
            .get(format!("{}/api/v2/{path}", server.url))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{path}");
    }
    // Tiles the tree does not have yet, and paths that are not canonical.
    for path in [
        "tile/0/001",
        "tile/0/001.p/45",
        "tile/0/002.p/1",
        "tile/1/000",
        "tile/2/000.p/1",
        "tile/entries/001",
    ] {
        let (status, body, _) = get(&http, &server.url, path).await;
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
    }
    for path in [
        "tile/0/01",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/x/000",
        "tile/0/x000",
        "tile/entries/000.p/",
        "tile/0/1000",
    ] {
        let (status, _, _) = get(&http, &server.url, path).await;
        assert_eq!(status, 400, "{path}");
    }

    // Restart on the same database: every file is byte-identical.
    server.stop().await;
    let server = serve(&db_url, &key_pem, EngineConfig::default()).await;
    let (_, after) = read_tree(&http, &server.url, &spki).await;
    assert_eq!(
        files, after,
        "tiles, bundles and checkpoint are byte-identical after a restart"
    );

    // The log goes on from where it was; the full tile never changes.
    let next = signer.request(b"after restart");
    let (status, entry, _) = post(&http, &server.url, &next).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(check_entry(&entry, &next, &spki), 300);
    let (cp, grown) = read_tree(&http, &server.url, &spki).await;
    assert_eq!(cp.size, 301);
    assert_eq!(grown[&tile_path(0, 0, 256)], files[&tile_path(0, 0, 256)]);
    assert_eq!(grown[&entries_path(0, 256)], files[&entries_path(0, 256)]);
    server.stop().await;
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn bad_entry_requests_get_400_with_a_reason() {
    let (_db_dir, db_url) = sigil_tests::temp_sqlite().unwrap();
    let key_pem = SigningKey::generate(KeyAlgorithm::EcdsaP256)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    let server = serve(&db_url, &key_pem, EngineConfig::default()).await;
    let http = reqwest::Client::new();
    let signer = Signer::new();
    let good = signer.request(b"good");
    let mut wrong_digest = good.clone();
    wrong_digest["hashedRekordRequestV002"]["digest"] =
        json!(STANDARD.encode(Sha256::digest(b"other")));
    let mut short_digest = good.clone();
    short_digest["hashedRekordRequestV002"]["digest"] = json!(STANDARD.encode([1u8; 20]));
    let mut wrong_details = good.clone();
    wrong_details["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] =
        json!("PKIX_ECDSA_P384_SHA_384");
    let mut bad_key = good.clone();
    bad_key["hashedRekordRequestV002"]["signature"]["verifier"]["publicKey"]["rawBytes"] =
        json!("AAAA");
    let mut two_verifiers = good.clone();
    two_verifiers["hashedRekordRequestV002"]["signature"]["verifier"]["x509Certificate"] =
        json!({"rawBytes": "AAAA"});
    let mut bad_cert = good.clone();
    let v = &mut bad_cert["hashedRekordRequestV002"]["signature"]["verifier"];
    v.as_object_mut().unwrap().remove("publicKey");
    v["x509Certificate"] = json!({"rawBytes": STANDARD.encode(b"not a certificate")});
    let mut no_sig = good.clone();
    no_sig["hashedRekordRequestV002"]["signature"]["content"] = json!("");
    for (body, reason) in [
        (wrong_digest, "does not verify"),
        (short_digest, "SHA2_256 digest is 32 bytes, got 20"),
        (wrong_details, "does not match"),
        (bad_key, "not a DER SubjectPublicKeyInfo"),
        (two_verifiers, "exactly one of"),
        (bad_cert, "not a DER certificate"),
        (no_sig, "signature.content: is empty"),
        (
            json!({"dsseRequestV002": {"envelope": {}}}),
            "DSSE entries are not accepted",
        ),
        (
            json!({"hashedRekordRequestV002": {}}),
            "hashedRekordRequestV002.digest: is required",
        ),
        (json!({}), "hashedRekordRequestV002: is required"),
        (json!([1, 2]), "must be an object"),
    ] {
        let (status, answer, _) = post(&http, &server.url, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "expected {reason:?} in {answer}");
    }
    let resp = http
        .post(format!("{}/api/v2/log/entries", server.url))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Nothing was logged by any of these.
    let (_, cp, _) = get(&http, &server.url, "checkpoint").await;
    assert_eq!(String::from_utf8(cp).unwrap().lines().nth(1), Some("0"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_accepted_entries_are_proven() {
    let (_db_dir, db_url) = sigil_tests::temp_sqlite().unwrap();
    let log_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let spki = log_key.public_key().spki_der().to_vec();
    let config = EngineConfig {
        max_batch: 1,
        max_wait: Duration::ZERO,
        queue_capacity: 1,
        ..EngineConfig::default()
    };
    let server = serve(&db_url, &log_key.to_pkcs8_pem().unwrap(), config).await;
    let http = reqwest::Client::new();
    let signer = Signer::new();
    let reqs: Vec<Value> = (0..200)
        .map(|i| signer.request(format!("burst {i}").as_bytes()))
        .collect();
    let answers = futures_join(reqs.iter().map(|r| post(&http, &server.url, r))).await;
    let mut busy = 0;
    for (req, (status, entry, headers)) in reqs.iter().zip(&answers) {
        match status {
            201 => {
                check_entry(entry, req, &spki);
            }
            503 => {
                busy += 1;
                assert!(headers.contains_key("retry-after"), "{entry}");
            }
            other => panic!("unexpected {other}: {entry}"),
        }
    }
    assert!(
        busy > 0,
        "200 concurrent submissions into a queue of 1 must see backpressure"
    );
    let accepted = answers.len() - busy;
    assert!(accepted > 0);
    let (cp, _) = read_tree(&http, &server.url, &spki).await;
    assert_eq!(cp.size, accepted as u64);
    server.stop().await;
}
