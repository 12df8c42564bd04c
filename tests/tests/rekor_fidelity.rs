//! Rekor v1 API details a rekor-cli or cosign user relies on, each as a table of cases asserting
//! the upstream behaviour (read from rekor's `pkg/api/index.go`, `pkg/util/sha.go`,
//! `pkg/api/entries.go`, `pkg/sharding`, `pkg/api/public_key.go`, `pkg/api/tlog.go` and
//! `pkg/types/intoto/v0.0.1`):
//! - `/api/v1/index/retrieve`: `operator` "or" (the default) is the union, "and" the
//!   intersection; `subject` (a SAN, case-insensitive) alone and combined; hashes as `alg:hex` or
//!   bare hex whose length names the algorithm (SHA-1, SHA-256, SHA-384, SHA-512).
//! - `treeID`: decimal in `?treeID=`, 400 when malformed or not a tree of this log; entry IDs
//!   whose 16-hex tree prefix names another tree are not found (404), malformed ones are 400.
//! - the 201 answer: `ETag` is the 80-hex entry ID, `Location` the entry's path.
//! - `intoto` 0.0.1 as cosign builds it, stored in Rekor's canonical form.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey};
use sigil_tests::log::*;

/// The entry IDs a search answers, as a set.
async fn search(c: &LogClient, query: Value) -> (u16, BTreeSet<String>, String) {
    let a = c.post("/api/v1/index/retrieve", &query).await.unwrap();
    let ids = a
        .body
        .as_array()
        .map(|v| v.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (a.status, ids, a.text)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Append an entry; its entry ID.
async fn add(c: &LogClient, proposed: Value) -> String {
    c.append(&proposed).await.unwrap().unwrap().entry_id
}

/// A hashedrekord of `artifact` signed by `key` (P-256) with `cert_pem` as the verifier.
fn cert_hashedrekord(key: &SigningKey, cert_pem: &str, artifact: &[u8]) -> Value {
    let d = DigestAlgorithm::Sha256.digest(artifact);
    let sig = key.sign_prehashed(DigestAlgorithm::Sha256, &d).unwrap();
    hashedrekord(DigestAlgorithm::Sha256, &d, &sig, cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_operator_subject_and_hash_formats() {
    let server = LogServer::start(Backend::Sqlite).await.unwrap();
    let c = server.client();

    // A: alice's certificate (e-mail SAN), artifact a. B: the same certificate, artifact b.
    // C: a bare P-256 key, artifact c. W: a workflow certificate (URI SAN), artifact w.
    let alice_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let alice_pem = oracle::pem64(
        "CERTIFICATE",
        &test_certificate(&alice_key, "Alice@Example.com").unwrap(),
    );
    let workflow =
        "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main";
    let wf_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let wf_pem = oracle::pem64(
        "CERTIFICATE",
        &test_certificate_with_sans(&wf_key, &[TestSan::Uri(workflow)]).unwrap(),
    );
    let bare = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
    let p384 = Signer::new(KeyAlgorithm::EcdsaP384).unwrap();
    let rsa = SigningKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let rsa_pem = rsa.public_key().to_pem();

    let a = add(&c, cert_hashedrekord(&alice_key, &alice_pem, b"a")).await;
    let b = add(&c, cert_hashedrekord(&alice_key, &alice_pem, b"b")).await;
    let cc = add(&c, bare.hashedrekord(b"c").unwrap().0).await;
    let w = add(&c, cert_hashedrekord(&wf_key, &wf_pem, b"w")).await;
    // SHA-384 and SHA-512 artifact digests.
    let s384 = add(&c, p384.hashedrekord(b"s384").unwrap().0).await;
    let d512 = DigestAlgorithm::Sha512.digest(b"s512");
    let sig512 = rsa.sign_prehashed(DigestAlgorithm::Sha512, &d512).unwrap();
    let s512 = add(
        &c,
        hashedrekord(DigestAlgorithm::Sha512, &d512, &sig512, &rsa_pem),
    )
    .await;
    // An in-toto statement whose subject is named by its SHA-1 digest (dsse 0.0.1).
    let sha1 = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
    let stmt = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "legacy", "digest": {"sha1": sha1}}],
        "predicateType": "https://example.com/p",
        "predicate": {}
    }))
    .unwrap();
    let s1 = add(&c, dsse_entry(&bare.key, &stmt).unwrap().0).await;

    let h = |data: &[u8]| hex::encode(Sha256::digest(data));
    let (ha, hc) = (h(b"a"), h(b"c"));
    let email = "alice@example.com";
    let h384 = hex::encode(DigestAlgorithm::Sha384.digest(b"s384"));
    let h512 = hex::encode(&d512);

    // (case, query, expected status, expected entry IDs)
    let cases: Vec<(&str, Value, u16, BTreeSet<String>)> = vec![
        ("email alone", json!({"email": email}), 200, set(&[&a, &b])),
        (
            "email is case-insensitive",
            json!({"email": "ALICE@example.COM"}),
            200,
            set(&[&a, &b]),
        ),
        (
            "hash alone",
            json!({"hash": format!("sha256:{hc}")}),
            200,
            set(&[&cc]),
        ),
        (
            "email or hash, default operator: union",
            json!({"email": email, "hash": hc}),
            200,
            set(&[&a, &b, &cc]),
        ),
        (
            "email or hash, explicit or",
            json!({"email": email, "hash": hc, "operator": "or"}),
            200,
            set(&[&a, &b, &cc]),
        ),
        (
            "email and hash of another entry: empty",
            json!({"email": email, "hash": hc, "operator": "and"}),
            200,
            set(&[]),
        ),
        (
            "email and hash of one of its entries",
            json!({"email": email, "hash": ha, "operator": "and"}),
            200,
            set(&[&a]),
        ),
        (
            "empty operator is or",
            json!({"email": email, "hash": hc, "operator": ""}),
            200,
            set(&[&a, &b, &cc]),
        ),
        (
            "unknown operator",
            json!({"email": email, "operator": "xor"}),
            400,
            set(&[]),
        ),
        (
            "subject alone (URI SAN)",
            json!({"subject": workflow}),
            200,
            set(&[&w]),
        ),
        (
            "subject is case-insensitive",
            json!({"subject": workflow.to_uppercase()}),
            200,
            set(&[&w]),
        ),
        (
            "subject matches an e-mail SAN too",
            json!({"subject": email}),
            200,
            set(&[&a, &b]),
        ),
        (
            "subject or hash",
            json!({"subject": workflow, "hash": ha}),
            200,
            set(&[&w, &a]),
        ),
        (
            "subject and hash of another entry",
            json!({"subject": workflow, "hash": ha, "operator": "and"}),
            200,
            set(&[]),
        ),
        (
            "subject and its own hash",
            json!({"subject": workflow, "hash": h(b"w"), "operator": "and"}),
            200,
            set(&[&w]),
        ),
        (
            "subject and email",
            json!({"subject": workflow, "email": email, "operator": "and"}),
            200,
            set(&[]),
        ),
        (
            "subject of nobody",
            json!({"subject": "https://example.com/nobody"}),
            200,
            set(&[]),
        ),
        (
            "subject longer than 512 bytes",
            json!({"subject": "x".repeat(513)}),
            400,
            set(&[]),
        ),
        (
            "bare 64 hex is sha256",
            json!({"hash": ha}),
            200,
            set(&[&a]),
        ),
        (
            "upper-case hex",
            json!({"hash": ha.to_uppercase()}),
            200,
            set(&[&a]),
        ),
        (
            "bare 128 hex is sha512",
            json!({"hash": h512}),
            200,
            set(&[&s512]),
        ),
        (
            "sha512: prefix",
            json!({"hash": format!("sha512:{h512}")}),
            200,
            set(&[&s512]),
        ),
        (
            "bare 96 hex is sha384",
            json!({"hash": h384}),
            200,
            set(&[&s384]),
        ),
        (
            "bare 40 hex is sha1",
            json!({"hash": sha1}),
            200,
            set(&[&s1]),
        ),
        (
            "sha1: prefix",
            json!({"hash": format!("sha1:{sha1}")}),
            200,
            set(&[&s1]),
        ),
        (
            "sha1 of nothing logged",
            json!({"hash": "0000000000000000000000000000000000000000"}),
            200,
            set(&[]),
        ),
        ("63 hex digits", json!({"hash": &ha[1..]}), 400, set(&[])),
        (
            "prefix and length disagree",
            json!({"hash": format!("sha256:{sha1}")}),
            400,
            set(&[]),
        ),
        (
            "unknown algorithm",
            json!({"hash": format!("md5:{}", &ha[..32])}),
            400,
            set(&[]),
        ),
        ("not hex", json!({"hash": "z".repeat(64)}), 400, set(&[])),
        (
            "public key of C",
            json!({"publicKey": {"format": "x509", "content": B64.encode(&bare.pem)}}),
            200,
            set(&[&cc, &s1]),
        ),
        (
            "public key and hash: intersection",
            json!({"publicKey": {"format": "x509", "content": B64.encode(&bare.pem)}, "hash": hc, "operator": "and"}),
            200,
            set(&[&cc]),
        ),
        (
            "unsupported key format",
            json!({"publicKey": {"format": "ssh", "content": B64.encode("ssh-ed25519 AAAA")}}),
            400,
            set(&[]),
        ),
        ("no criterion", json!({}), 400, set(&[])),
    ];
    let mut failures = Vec::new();
    for (case, query, status, want) in &cases {
        let (got_status, got, text) = search(&c, query.clone()).await;
        if got_status != *status || (got_status == 200 && &got != want) {
            failures.push(format!(
                "{case}: want {status} {want:?}, got {got_status} {got:?} {text}"
            ));
        }
        if got_status == 400 {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if body["code"] != 400 || !body["message"].is_string() {
                failures.push(format!("{case}: 400 without {{code, message}}: {text}"));
            }
        }
    }
    println!("search: {} cases", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_ids_entry_ids_etag_and_location() {
    let server = LogServer::start(Backend::Sqlite).await.unwrap();
    let c = server.client();
    let signer = Signer::new(KeyAlgorithm::EcdsaP256).unwrap();
    let (proposed, _) = signer.hashedrekord(b"tree ids").unwrap();

    // 201: ETag is the entry ID (unquoted, as Rekor), Location its path, the body its key.
    let resp = server
        .http
        .post(format!("{}/api/v1/log/entries", server.url))
        .json(&proposed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    let entry_id = body.as_object().unwrap().keys().next().unwrap().clone();
    assert_eq!(etag, entry_id, "ETag is the entry ID");
    assert_eq!(etag.len(), 80);
    assert_eq!(location, format!("/api/v1/log/entries/{entry_id}"));

    let info = c.get("/api/v1/log").await.unwrap();
    let tree: i64 = info.body["treeID"].as_str().unwrap().parse().unwrap();
    assert!(tree > 0, "tree ID {tree} must be positive");
    let prefix = format!("{tree:016x}");
    assert!(
        entry_id.starts_with(&prefix),
        "{entry_id} starts with the tree ID {prefix}"
    );
    let checkpoint = info.body["signedTreeHead"].as_str().unwrap();
    assert!(
        checkpoint
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!(" - {tree}")),
        "the checkpoint origin names the tree: {checkpoint}"
    );
    let uuid = &entry_id[16..];
    let other_tree = format!("{:016x}", tree ^ 0x1234);
    let pem = c.get("/api/v1/log/publicKey").await.unwrap().text;

    // (case, path, expected status)
    let gets: Vec<(&str, String, u16)> = vec![
        ("publicKey, no treeID", "/api/v1/log/publicKey".into(), 200),
        (
            "publicKey, empty treeID",
            "/api/v1/log/publicKey?treeID=".into(),
            200,
        ),
        (
            "publicKey, this tree",
            format!("/api/v1/log/publicKey?treeID={tree}"),
            200,
        ),
        (
            "publicKey, non-numeric treeID",
            "/api/v1/log/publicKey?treeID=abc".into(),
            400,
        ),
        (
            "publicKey, negative treeID",
            "/api/v1/log/publicKey?treeID=-5".into(),
            400,
        ),
        (
            "publicKey, treeID beyond int64",
            "/api/v1/log/publicKey?treeID=99999999999999999999".into(),
            400,
        ),
        (
            "publicKey, unknown tree",
            format!("/api/v1/log/publicKey?treeID={}", tree ^ 0x1234),
            400,
        ),
        (
            "proof, this tree",
            format!("/api/v1/log/proof?lastSize=1&treeID={tree}"),
            200,
        ),
        (
            "proof, non-numeric treeID",
            "/api/v1/log/proof?lastSize=1&treeID=abc".into(),
            400,
        ),
        (
            "proof, unknown tree",
            format!("/api/v1/log/proof?lastSize=1&treeID={}", tree ^ 0x1234),
            400,
        ),
        ("entry by UUID", format!("/api/v1/log/entries/{uuid}"), 200),
        (
            "entry by entry ID",
            format!("/api/v1/log/entries/{entry_id}"),
            200,
        ),
        (
            "entry ID, upper-case hex",
            format!("/api/v1/log/entries/{}", entry_id.to_uppercase()),
            200,
        ),
        (
            "entry ID of another tree",
            format!("/api/v1/log/entries/{other_tree}{uuid}"),
            404,
        ),
        (
            "entry ID with tree ID 0",
            format!("/api/v1/log/entries/{}{uuid}", "0".repeat(16)),
            400,
        ),
        (
            "entry ID with a tree ID beyond int64",
            format!("/api/v1/log/entries/8000000000000000{uuid}"),
            400,
        ),
        (
            "unknown UUID",
            format!("/api/v1/log/entries/{}", "ab".repeat(32)),
            404,
        ),
        (
            "neither UUID nor entry ID",
            "/api/v1/log/entries/abc".into(),
            400,
        ),
        (
            "not hex",
            format!("/api/v1/log/entries/{}", "zz".repeat(32)),
            400,
        ),
        ("not UTF-8", "/api/v1/log/entries/%FF".into(), 400),
    ];
    let mut failures = Vec::new();
    for (case, path, status) in &gets {
        let a = c.get(path).await.unwrap();
        if a.status != *status {
            failures.push(format!(
                "{case}: {path}: want {status}, got {} {}",
                a.status, a.text
            ));
        }
        if a.status == 200 && path.contains("publicKey") && a.text != pem {
            failures.push(format!("{case}: another key"));
        }
        if a.status == 400 && a.body["code"] != 400 {
            failures.push(format!("{case}: 400 without {{code, message}}: {}", a.text));
        }
    }

    // retrieve: an entry ID of another tree matches nothing; a malformed one is a 400.
    let retrieves: Vec<(&str, Value, u16, usize)> = vec![
        ("entry ID", json!({"entryUUIDs": [entry_id]}), 200, 1),
        ("UUID", json!({"entryUUIDs": [uuid]}), 200, 1),
        (
            "entry ID of another tree",
            json!({"entryUUIDs": [format!("{other_tree}{uuid}")]}),
            200,
            0,
        ),
        (
            "tree ID 0",
            json!({"entryUUIDs": [format!("{}{uuid}", "0".repeat(16))]}),
            400,
            0,
        ),
    ];
    for (case, q, status, n) in &retrieves {
        let a = c.post("/api/v1/log/entries/retrieve", q).await.unwrap();
        let got = a.body.as_array().map(Vec::len).unwrap_or(0);
        if a.status != *status || (a.status == 200 && got != *n) {
            failures.push(format!(
                "retrieve {case}: want {status} x{n}, got {} {}",
                a.status, a.text
            ));
        }
    }
    println!(
        "tree IDs: {} GET cases, {} retrieve cases",
        gets.len(),
        retrieves.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An `intoto` 0.0.1 proposed entry as cosign (`attest --rekor-entry-type intoto`) builds it:
/// the envelope JSON as a string, its SHA-256 as `content.hash`, the signer's PEM (certificate
/// or key) base64 in `publicKey`.
fn cosign_intoto_v001(envelope: &str, verifier_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": envelope,
                "hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(envelope.as_bytes()))}
            },
            "publicKey": B64.encode(verifier_pem.as_bytes())
        }
    })
}

/// A DSSE envelope JSON string in the field order Go's DSSE library writes.
fn envelope(payload: &[u8], sigs: &[Vec<u8>]) -> String {
    let sigs: Vec<String> = sigs
        .iter()
        .map(|s| format!(r#"{{"keyid":"","sig":"{}"}}"#, B64.encode(s)))
        .collect();
    format!(
        r#"{{"payloadType":"{INTOTO_TYPE}","payload":"{}","signatures":[{}]}}"#,
        B64.encode(payload),
        sigs.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intoto_v001_as_cosign_writes_it() {
    let server = LogServer::start(Backend::Sqlite).await.unwrap();
    let c = server.client();
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert_der = test_certificate(&key, "bob@example.com").unwrap();
    // Not Go's 64-column PEM: the stored body must hold the canonical form anyway.
    let cert_pem_wide = pem_formatted("CERTIFICATE", &cert_der, 76, true, true);
    let cert_pem = oracle::pem64("CERTIFICATE", &cert_der);
    let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let p384 = SigningKey::generate(KeyAlgorithm::EcdsaP384).unwrap();

    let artifact = Sha256::digest(b"attested artifact");
    let stmt = statement(&artifact);
    let sig = key.sign(&pae(INTOTO_TYPE, &stmt)).unwrap();
    let wrong = other.sign(&pae(INTOTO_TYPE, &stmt)).unwrap();
    // Rekor checks intoto 0.0.1 with a SHA-256 verifier whatever the curve.
    let p384_sha256 = p384
        .sign_prehashed(
            DigestAlgorithm::Sha256,
            &Sha256::digest(pae(INTOTO_TYPE, &stmt)),
        )
        .ok();
    let env = envelope(&stmt, std::slice::from_ref(&sig));
    let expected_body = sorted_json(&json!({
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {
            "content": {
                "hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(env.as_bytes()))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(&stmt))}
            },
            "publicKey": B64.encode(cert_pem.as_bytes())
        }
    }));

    let mut with_wrong_hash = cosign_intoto_v001(&env, &cert_pem_wide);
    with_wrong_hash["spec"]["content"]["hash"]["value"] = json!("00".repeat(32));
    let mut no_envelope = cosign_intoto_v001(&env, &cert_pem);
    no_envelope["spec"]["content"]
        .as_object_mut()
        .unwrap()
        .remove("envelope");
    let p384_env = p384_sha256
        .as_ref()
        .map(|s| envelope(&stmt, std::slice::from_ref(s)));

    // (case, proposed entry, expected status)
    let mut cases: Vec<(&str, Value, u16)> = vec![
        (
            "certificate, 76-column PEM, client hash ignored",
            with_wrong_hash,
            201,
        ),
        (
            "the same entry again",
            cosign_intoto_v001(&env, &cert_pem),
            409,
        ),
        (
            "one of two signatures verifies",
            cosign_intoto_v001(&envelope(&stmt, &[wrong.clone(), sig.clone()]), &cert_pem),
            201,
        ),
        (
            "bare public key",
            cosign_intoto_v001(
                &envelope(&stmt, &[other.sign(&pae(INTOTO_TYPE, &stmt)).unwrap()]),
                &other.public_key().to_pem(),
            ),
            201,
        ),
        (
            "signature by another key",
            cosign_intoto_v001(&envelope(&stmt, &[wrong]), &cert_pem),
            400,
        ),
        (
            "no envelope (a committed entry, not a proposal)",
            no_envelope,
            400,
        ),
        (
            "envelope not JSON",
            cosign_intoto_v001("{not json", &cert_pem),
            400,
        ),
        (
            "envelope without signatures",
            cosign_intoto_v001(&envelope(&stmt, &[]), &cert_pem),
            400,
        ),
        (
            "publicKey not PEM",
            json!({"apiVersion": "0.0.1", "kind": "intoto", "spec": {"content": {"envelope": env}, "publicKey": B64.encode("nope")}}),
            400,
        ),
    ];
    if let Some(e) = &p384_env {
        cases.push((
            "P-384 key, SHA-256 signature",
            cosign_intoto_v001(e, &p384.public_key().to_pem()),
            201,
        ));
    }
    let mut failures = Vec::new();
    let mut first = None;
    for (case, proposed, status) in &cases {
        let a = c.post("/api/v1/log/entries", proposed).await.unwrap();
        if a.status != *status {
            failures.push(format!(
                "{case}: want {status}, got {} {}",
                a.status, a.text
            ));
            continue;
        }
        if a.status == 201 && first.is_none() {
            let e = c.check_entries(&a.body).unwrap().remove(0);
            first = Some(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let e = first.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&e.body),
        String::from_utf8_lossy(&expected_body),
        "stored intoto 0.0.1 body"
    );

    // Found the way cosign looks it up (retrieve by proposed entry), and by the search keys
    // upstream indexes: envelope hash, payload hash, subject digest, signer e-mail.
    let found = c
        .post(
            "/api/v1/log/entries/retrieve",
            &json!({"entries": [cosign_intoto_v001(&env, &cert_pem)]}),
        )
        .await
        .unwrap();
    assert_eq!(
        c.check_entries(&found.body).unwrap()[0].entry_id,
        e.entry_id
    );
    for query in [
        json!({"hash": hex::encode(Sha256::digest(env.as_bytes()))}),
        json!({"hash": hex::encode(Sha256::digest(&stmt))}),
        json!({"hash": hex::encode(artifact)}),
        json!({"email": "bob@example.com"}),
    ] {
        let (status, ids, text) = search(&c, query.clone()).await;
        assert!(
            status == 200 && ids.contains(&e.entry_id),
            "{query}: {text}"
        );
    }
    println!("intoto 0.0.1: {} cases", cases.len());
}
