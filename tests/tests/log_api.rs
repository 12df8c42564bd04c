//! The Rekor v1 API end to end, on PostgreSQL and on SQLite: every entry kind appended, read back
//! by index, UUID, entry ID and retrieve, searched; every proof, SET and checkpoint checked with
//! sigil-core and with the independent oracle; consistency between every pair of checkpoints seen;
//! canonical bodies whatever the PEM formatting of the input.

use anyhow::{Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, RsaPadding, SigningKey};
use sigil_tests::log::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_on_postgres() {
    every_kind(Backend::Postgres).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_on_sqlite() {
    every_kind(Backend::Sqlite).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_bodies_on_postgres() {
    canonical_bodies(Backend::Postgres).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_bodies_on_sqlite() {
    canonical_bodies(Backend::Sqlite).await.unwrap();
}

/// One appended entry and how it was made.
struct Made {
    what: &'static str,
    proposed: Value,
    entry: Checked,
    /// Search keys it must be found under: (request, description).
    searches: Vec<Value>,
    /// The body the test expects the log to store, when it builds it independently.
    expected_body: Option<Vec<u8>>,
}

async fn push(
    c: &LogClient,
    seen: &Seen,
    made: &mut Vec<Made>,
    what: &'static str,
    proposed: Value,
    searches: Vec<Value>,
    expected_body: Option<Vec<u8>>,
) -> Result<()> {
    let entry = c
        .append(&proposed)
        .await?
        .map_err(|a| anyhow!("{what}: expected 201, got {} {}", a.status, a.text))?;
    ensure!(
        entry.index == made.len() as u64,
        "{what}: index {} out of order",
        entry.index
    );
    seen.add(entry.tree_size, entry.root)?;
    if let Some(b) = &expected_body {
        ensure!(
            &entry.body == b,
            "{what}: stored body differs from the canonical form\n got: {}\nwant: {}",
            String::from_utf8_lossy(&entry.body),
            String::from_utf8_lossy(b)
        );
    }
    made.push(Made {
        what,
        proposed,
        entry,
        searches,
        expected_body,
    });
    Ok(())
}

async fn every_kind(backend: Backend) -> Result<()> {
    let server = LogServer::start(backend).await?;
    let c = server.client();
    let seen = Seen::default();

    let (size, root, _) = c.tree().await?;
    ensure!(size == 0, "a fresh log has {size} entries");
    ensure!(
        server.log.public.algorithm() == KeyAlgorithm::EcdsaP256,
        "the SET checks below assume a randomised (ECDSA) log key"
    );
    ensure!(
        root == oracle::mth(&[]),
        "empty root is not SHA-256 of nothing"
    );

    let p256 = Signer::new(KeyAlgorithm::EcdsaP256)?;
    let p384 = Signer::new(KeyAlgorithm::EcdsaP384)?;
    let rsa = SigningKey::generate(KeyAlgorithm::Rsa { bits: 2048 })?;
    let ed = SigningKey::generate(KeyAlgorithm::Ed25519)?;
    let cert_key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let cert_der = test_certificate(&cert_key, "alice@example.com")?;
    let cert_pem = oracle::pem64("CERTIFICATE", &cert_der);

    let mut made: Vec<Made> = Vec::new();
    // hashedrekord, ECDSA P-256 PEM public key, SHA-256.
    let artifact = b"artifact signed with a P-256 key".to_vec();
    let d = DigestAlgorithm::Sha256.digest(&artifact);
    let sig = p256.key.sign_prehashed(DigestAlgorithm::Sha256, &d)?;
    push(
        &c,
        &seen,
        &mut made,
        "hashedrekord P-256 key",
        hashedrekord(DigestAlgorithm::Sha256, &d, &sig, &p256.pem),
        vec![
            json!({"hash": format!("sha256:{}", hex::encode(&d))}),
            json!({"hash": hex::encode(&d)}),
            json!({"publicKey": {"format": "x509", "content": B64.encode(&p256.pem)}}),
        ],
        Some(expected_hashedrekord_body(
            DigestAlgorithm::Sha256,
            &d,
            &sig,
            &p256.pem,
        )),
    )
    .await?;

    // hashedrekord, X.509 certificate (e-mail SAN), SHA-256.
    let artifact = b"artifact signed by a certificate".to_vec();
    let d = DigestAlgorithm::Sha256.digest(&artifact);
    let sig = cert_key.sign_prehashed(DigestAlgorithm::Sha256, &d)?;
    push(
        &c,
        &seen,
        &mut made,
        "hashedrekord certificate",
        hashedrekord(DigestAlgorithm::Sha256, &d, &sig, &cert_pem),
        vec![
            json!({"hash": format!("sha256:{}", hex::encode(&d))}),
            json!({"email": "alice@example.com"}),
            json!({"email": "Alice@Example.com"}),
            json!({"publicKey": {"format": "x509", "content": B64.encode(&cert_pem)}}),
        ],
        Some(expected_hashedrekord_body(
            DigestAlgorithm::Sha256,
            &d,
            &sig,
            &cert_pem,
        )),
    )
    .await?;

    // hashedrekord, ECDSA P-384, SHA-384.
    let artifact = b"artifact signed with a P-384 key".to_vec();
    let d = DigestAlgorithm::Sha384.digest(&artifact);
    let sig = p384.key.sign_prehashed(DigestAlgorithm::Sha384, &d)?;
    push(
        &c,
        &seen,
        &mut made,
        "hashedrekord P-384",
        hashedrekord(DigestAlgorithm::Sha384, &d, &sig, &p384.pem),
        vec![json!({"hash": format!("sha384:{}", hex::encode(&d))})],
        Some(expected_hashedrekord_body(
            DigestAlgorithm::Sha384,
            &d,
            &sig,
            &p384.pem,
        )),
    )
    .await?;

    // hashedrekord, RSA PKCS#1 v1.5 with SHA-256 and SHA-512, and RSA-PSS.
    let rsa_pem = rsa.public_key().to_pem();
    for (what, padding, alg, artifact) in [
        (
            "hashedrekord RSA PKCS#1 v1.5 SHA-256",
            RsaPadding::Pkcs1v15,
            DigestAlgorithm::Sha256,
            "rsa a",
        ),
        (
            "hashedrekord RSA PKCS#1 v1.5 SHA-512",
            RsaPadding::Pkcs1v15,
            DigestAlgorithm::Sha512,
            "rsa b",
        ),
        (
            "hashedrekord RSA-PSS SHA-256",
            RsaPadding::Pss,
            DigestAlgorithm::Sha256,
            "rsa c",
        ),
    ] {
        let proposed = rsa_hashedrekord(&rsa, padding, alg, artifact.as_bytes())?;
        let d = alg.digest(artifact.as_bytes());
        let sig = B64.decode(
            proposed["spec"]["signature"]["content"]
                .as_str()
                .unwrap_or(""),
        )?;
        let hash_key = format!(
            "{}:{}",
            if alg == DigestAlgorithm::Sha256 {
                "sha256"
            } else {
                "sha512"
            },
            hex::encode(&d)
        );
        push(
            &c,
            &seen,
            &mut made,
            what,
            proposed,
            vec![json!({"hash": hash_key})],
            Some(expected_hashedrekord_body(alg, &d, &sig, &rsa_pem)),
        )
        .await?;
    }

    // hashedrekord with Ed25519: plain Ed25519 cannot be checked from a digest; a clear 400.
    let ed_sig = ed.sign(b"ed25519 artifact")?;
    let d = DigestAlgorithm::Sha256.digest(b"ed25519 artifact");
    let a = c
        .post(
            "/api/v1/log/entries",
            &hashedrekord(
                DigestAlgorithm::Sha256,
                &d,
                &ed_sig,
                &ed.public_key().to_pem(),
            ),
        )
        .await?;
    ensure!(
        a.status == 400,
        "Ed25519 hashedrekord: expected 400, got {} {}",
        a.status,
        a.text
    );
    ensure!(a.body["code"] == 400, "error body {}", a.text);
    let msg = a.body["message"].as_str().unwrap_or_default();
    ensure!(
        msg.contains("Ed25519"),
        "Ed25519 rejection does not say why: {msg}"
    );

    // dsse 0.0.1, with a P-256 key and with an Ed25519 key.
    for (what, key) in [("dsse P-256", &p256.key), ("dsse Ed25519", &ed)] {
        let artifact_digest = Sha256::digest(what.as_bytes());
        let payload = statement(&artifact_digest);
        let (proposed, envelope) = dsse_entry(key, &payload)?;
        push(&c, &seen, &mut made,
            what,
            proposed,
            vec![
                json!({"hash": format!("sha256:{}", hex::encode(Sha256::digest(&payload)))}),
                json!({"hash": format!("sha256:{}", hex::encode(Sha256::digest(envelope.as_bytes())))}),
                json!({"hash": format!("sha256:{}", hex::encode(artifact_digest))}),
            ],
            None,
        )
        .await?;
        let body: Value = serde_json::from_slice(
            &made
                .last()
                .map(|m| m.entry.body.clone())
                .unwrap_or_default(),
        )?;
        ensure!(body["kind"] == "dsse" && body["apiVersion"] == "0.0.1");
        ensure!(
            body["spec"]["payloadHash"]["value"] == hex::encode(Sha256::digest(&payload)),
            "dsse body must hold the payload hash"
        );
        ensure!(
            !String::from_utf8_lossy(
                &made
                    .last()
                    .map(|m| m.entry.body.clone())
                    .unwrap_or_default()
            )
            .contains(&B64.encode(&payload)),
            "dsse body must not hold the payload"
        );
    }

    // intoto 0.0.2.
    let artifact_digest = Sha256::digest(b"intoto artifact");
    let payload = statement(&artifact_digest);
    push(
        &c,
        &seen,
        &mut made,
        "intoto 0.0.2",
        intoto_entry(&p256.key, &payload)?,
        vec![
            json!({"hash": format!("sha256:{}", hex::encode(Sha256::digest(&payload)))}),
            json!({"hash": format!("sha256:{}", hex::encode(artifact_digest))}),
        ],
        None,
    )
    .await?;
    let intoto_body: Value = serde_json::from_slice(
        &made
            .last()
            .map(|m| m.entry.body.clone())
            .unwrap_or_default(),
    )?;
    ensure!(intoto_body["kind"] == "intoto" && intoto_body["apiVersion"] == "0.0.2");

    // Every stored body is RFC 8785: re-serialising with sorted keys gives the same bytes.
    for m in &made {
        let v: Value = serde_json::from_slice(&m.entry.body)?;
        ensure!(
            sorted_json(&v) == m.entry.body,
            "{}: body is not in RFC 8785 form",
            m.what
        );
        if let Some(b) = &m.expected_body {
            ensure!(&m.entry.body == b);
        }
    }

    // A resubmission is a 409 whose Location names the existing entry.
    for m in &made {
        let a = c.post("/api/v1/log/entries", &m.proposed).await?;
        ensure!(
            a.status == 409,
            "{}: resubmission answered {} {}",
            m.what,
            a.status,
            a.text
        );
        ensure!(
            a.body["code"] == 409 && a.body["message"].is_string(),
            "409 body: {}",
            a.text
        );
        ensure!(
            a.location.as_deref() == Some(&format!("/api/v1/log/entries/{}", m.entry.entry_id)),
            "{}: 409 Location {:?}",
            m.what,
            a.location
        );
    }

    // Read back every entry every way; each answer is checked in full.
    let total = made.len() as u64;
    for m in &made {
        let e = &m.entry;
        let ways = [
            (
                "by index",
                c.get(&format!("/api/v1/log/entries?logIndex={}", e.index))
                    .await?,
            ),
            (
                "by UUID",
                c.get(&format!("/api/v1/log/entries/{}", e.uuid)).await?,
            ),
            (
                "by entry ID",
                c.get(&format!("/api/v1/log/entries/{}", e.entry_id))
                    .await?,
            ),
            (
                "retrieve by UUID",
                c.post(
                    "/api/v1/log/entries/retrieve",
                    &json!({"entryUUIDs": [e.uuid]}),
                )
                .await?,
            ),
            (
                "retrieve by entry ID",
                c.post(
                    "/api/v1/log/entries/retrieve/",
                    &json!({"entryUUIDs": [e.entry_id]}),
                )
                .await?,
            ),
            (
                "retrieve by index",
                c.post(
                    "/api/v1/log/entries/retrieve",
                    &json!({"logIndexes": [e.index]}),
                )
                .await?,
            ),
            (
                "retrieve by proposed entry",
                c.post(
                    "/api/v1/log/entries/retrieve/",
                    &json!({"entries": [m.proposed]}),
                )
                .await?,
            ),
        ];
        for (how, a) in ways {
            ensure!(a.status == 200, "{} {how}: {} {}", m.what, a.status, a.text);
            let got = c.check_entries(&a.body)?;
            ensure!(got.len() == 1, "{} {how}: {} entries", m.what, got.len());
            let g = &got[0];
            ensure!(
                g.index == e.index && g.body == e.body && g.uuid == e.uuid,
                "{} {how}: a different entry came back",
                m.what
            );
            ensure!(
                g.integrated_time == e.integrated_time,
                "{} {how}: integratedTime changed",
                m.what
            );
            // ECDSA signatures are randomised: the same bytes mean the SET was stored when the
            // entry was sequenced, not signed again for this read.
            ensure!(
                g.set == e.set,
                "{} {how}: the SET differs from the one the append answered",
                m.what
            );
            ensure!(
                g.tree_size == total,
                "{} {how}: proof not in the latest tree",
                m.what
            );
            seen.add(g.tree_size, g.root)?;
        }
    }

    // Search: by artifact hash, public key, e-mail; every expected key finds the entry.
    for m in &made {
        for q in &m.searches {
            let a = c.post("/api/v1/index/retrieve", q).await?;
            ensure!(
                a.status == 200,
                "{} search {q}: {} {}",
                m.what,
                a.status,
                a.text
            );
            let ids: Vec<&str> = a
                .body
                .as_array()
                .ok_or_else(|| anyhow!("search answer is not an array: {}", a.text))?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            ensure!(
                ids.iter()
                    .any(|id| *id == m.entry.entry_id || *id == m.entry.uuid),
                "{}: search {q} did not find it (got {ids:?})",
                m.what
            );
        }
    }
    // A search for something never logged finds nothing; a key used by several entries finds
    // exactly those.
    let none = c
        .post(
            "/api/v1/index/retrieve",
            &json!({"hash": format!("sha256:{}", "ab".repeat(32))}),
        )
        .await?;
    ensure!(
        none.status == 200 && none.body == json!([]),
        "empty search: {}",
        none.text
    );
    let by_rsa = c
        .post(
            "/api/v1/index/retrieve",
            &json!({"publicKey": {"format": "x509", "content": B64.encode(&rsa_pem)}}),
        )
        .await?;
    let mut got: Vec<String> = by_rsa
        .body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    got.sort();
    let mut want: Vec<String> = made
        .iter()
        .filter(|m| m.what.contains("RSA"))
        .map(|m| m.entry.entry_id.clone())
        .collect();
    want.sort();
    ensure!(got == want, "search by RSA key: got {got:?}, want {want:?}");

    // Proofs: each inclusion proof equals RFC 6962 PATH computed from the leaves here.
    let (size, root, _) = c.tree().await?;
    seen.add(size, root)?;
    let all = read_all(&c, size).await?;
    let leaves: Vec<Hash> = all.iter().map(|e| e.leaf).collect();
    for m in &made {
        ensure!(leaves[m.entry.index as usize] == m.entry.leaf);
        let prefix = &leaves[..m.entry.tree_size as usize];
        ensure!(
            oracle::path(m.entry.index as usize, prefix) == m.entry.proof,
            "{}: inclusion proof differs from RFC 6962 PATH",
            m.what
        );
    }
    for e in &all {
        ensure!(
            oracle::path(e.index as usize, &leaves) == e.proof,
            "proof of {} differs",
            e.index
        );
    }
    let seen = seen.all();
    check_roots_against_leaves(&leaves, &seen)?;
    let pairs = check_all_pairs(&c, &seen).await?;
    ensure!(pairs >= seen.len(), "checked {pairs} consistency proofs");
    // And the consistency proofs are exactly RFC 6962 PROOF.
    for (a, _) in &seen {
        for (b, _) in &seen {
            if *a == 0 || a >= b {
                continue;
            }
            let hashes = c
                .check_consistency(
                    (*a, oracle::mth(&leaves[..*a as usize])),
                    (*b, oracle::mth(&leaves[..*b as usize])),
                )
                .await?;
            ensure!(
                hashes == oracle::consistency(*a as usize, &leaves[..*b as usize]),
                "consistency proof {a}..{b} differs from RFC 6962 PROOF"
            );
        }
    }
    Ok(())
}

async fn canonical_bodies(backend: Backend) -> Result<()> {
    let server = LogServer::start(backend).await?;
    let c = server.client();

    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let spki = key.public_key().spki_der().to_vec();
    let cert = test_certificate(&key, "bob@example.com")?;

    for (label, der) in [("PUBLIC KEY", spki), ("CERTIFICATE", cert)] {
        let canonical = oracle::pem64(label, &der);
        let d = DigestAlgorithm::Sha256.digest(label.as_bytes());
        let sig = key.sign_prehashed(DigestAlgorithm::Sha256, &d)?;
        let expected = expected_hashedrekord_body(DigestAlgorithm::Sha256, &d, &sig, &canonical);

        let variants = [
            (
                "64 columns, LF",
                pem_formatted(label, &der, 64, false, true),
            ),
            ("CRLF", pem_formatted(label, &der, 64, true, true)),
            (
                "no final newline",
                pem_formatted(label, &der, 64, false, false),
            ),
            (
                "CRLF, no final newline",
                pem_formatted(label, &der, 64, true, false),
            ),
            ("76 columns", pem_formatted(label, &der, 76, false, true)),
            (
                "40 columns, CRLF",
                pem_formatted(label, &der, 40, true, true),
            ),
            ("one line", pem_formatted(label, &der, 100_000, false, true)),
        ];
        // The first variant is appended; the identical canonical body makes every other one a
        // duplicate of it, whatever its formatting. Start with a non-canonical one so the stored
        // body cannot simply be the input.
        let mut first: Option<Checked> = None;
        for (what, pem) in variants.iter().rev() {
            let proposed = hashedrekord(DigestAlgorithm::Sha256, &d, &sig, pem);
            match &first {
                None => {
                    let e = c
                        .append(&proposed)
                        .await?
                        .map_err(|a| anyhow!("{label} {what}: {} {}", a.status, a.text))?;
                    ensure!(
                        e.body == expected,
                        "{label} {what}: stored body is not canonical\n got: {}\nwant: {}",
                        String::from_utf8_lossy(&e.body),
                        String::from_utf8_lossy(&expected)
                    );
                    first = Some(e);
                }
                Some(e) => {
                    let a = c.post("/api/v1/log/entries", &proposed).await?;
                    ensure!(a.status == 409, "{label} {what}: {} {}", a.status, a.text);
                    ensure!(
                        a.location.as_deref()
                            == Some(&format!("/api/v1/log/entries/{}", e.entry_id)),
                        "{label} {what}: Location {:?}",
                        a.location
                    );
                    let r = c
                        .post(
                            "/api/v1/log/entries/retrieve",
                            &json!({"entries": [proposed]}),
                        )
                        .await?;
                    let got = c.check_entries(&r.body)?;
                    ensure!(
                        got.len() == 1 && got[0].body == expected,
                        "{label} {what}: retrieve by proposed entry did not find the canonical body"
                    );
                }
            }
        }
        // The same entry with its JSON keys in another order and pretty-printed.
        let pretty = serde_json::to_vec_pretty(&json!({
            "spec": {
                "signature": {
                    "publicKey": {"content": B64.encode(variants[1].1.as_bytes())},
                    "content": B64.encode(&sig)
                },
                "data": {"hash": {"value": hex::encode(&d), "algorithm": "sha256"}}
            },
            "kind": "hashedrekord",
            "apiVersion": "0.0.1"
        }))?;
        let a = c.post_raw("/api/v1/log/entries", pretty).await?;
        ensure!(
            a.status == 409,
            "{label} reordered JSON: {} {}",
            a.status,
            a.text
        );

        // What is stored equals the bytes read back.
        let e = first.ok_or_else(|| anyhow!("nothing appended"))?;
        let a = c.get(&format!("/api/v1/log/entries/{}", e.uuid)).await?;
        let got = c.check_entries(&a.body)?;
        ensure!(got[0].body == expected, "{label}: read-back body differs");
        let v: Value = serde_json::from_slice(&got[0].body)?;
        let pem = B64.decode(
            v["spec"]["signature"]["publicKey"]["content"]
                .as_str()
                .unwrap_or(""),
        )?;
        let pem = String::from_utf8(pem)?;
        ensure!(
            pem == canonical,
            "{label}: stored PEM is not the 64-column form:\n{pem}"
        );
        ensure!(
            pem.lines().all(|l| l.len() <= 64) && !pem.contains('\r') && pem.ends_with("-----\n"),
            "{label}: stored PEM formatting"
        );
    }
    let (size, _, _) = c.tree().await?;
    ensure!(
        size == 2,
        "two distinct entries expected, the log has {size}"
    );
    Ok(())
}
