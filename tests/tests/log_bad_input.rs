//! Bad input to the log, on PostgreSQL and SQLite: each is a 4xx with a JSON `{code, message}`
//! that names what is wrong, and nothing is logged.

use anyhow::{Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm};
use sigil_tests::log::*;

const BODY_LIMIT: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_on_postgres() {
    bad_input(Backend::Postgres).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_on_sqlite() {
    bad_input(Backend::Sqlite).await.unwrap();
}

/// What a request must be answered with.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    status: u16,
    /// Words the message must contain (case-insensitive).
    says: Vec<&'static str>,
}

fn post(what: &str, path: &str, body: Vec<u8>, status: u16, says: &[&'static str]) -> Case {
    Case {
        what: what.to_string(),
        method: "POST",
        path: path.to_string(),
        body,
        status,
        says: says.to_vec(),
    }
}

fn entry(what: &str, v: Value, status: u16, says: &[&'static str]) -> Case {
    post(
        what,
        "/api/v1/log/entries",
        serde_json::to_vec(&v).unwrap_or_default(),
        status,
        says,
    )
}

fn get(what: &str, path: String, status: u16, says: &[&'static str]) -> Case {
    Case {
        what: what.to_string(),
        method: "GET",
        path,
        body: Vec::new(),
        status,
        says: says.to_vec(),
    }
}

/// `v` with the JSON value at `pointer` replaced (or removed when `new` is None).
fn with(v: &Value, pointer: &str, new: Option<Value>) -> Value {
    let mut v = v.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(o)) = v.pointer_mut(parent) {
        match new {
            Some(n) => {
                o.insert(key.to_string(), n);
            }
            None => {
                o.remove(key);
            }
        }
    }
    v
}

async fn bad_input(backend: Backend) -> Result<()> {
    let server =
        LogServer::start_with(backend, |cfg| cfg.server.max_body_bytes = BODY_LIMIT).await?;
    let c = server.client();

    // One good entry, so reads of existing things work and "nothing logged" is visible.
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    let (good, _) = signer.hashedrekord(b"the one good entry")?;
    let first = c
        .append(&good)
        .await?
        .map_err(|a| anyhow!("good entry refused: {} {}", a.status, a.text))?;
    let (size_before, root_before, _) = c.tree().await?;
    ensure!(size_before == 1);

    // A valid entry that has not been logged, to mutate.
    let (fresh, _) = signer.hashedrekord(b"a different artifact")?;
    let d = DigestAlgorithm::Sha256.digest(b"a different artifact");
    let other_sig = signer.key.sign_prehashed(
        DigestAlgorithm::Sha256,
        &DigestAlgorithm::Sha256.digest(b"something else"),
    )?;
    let other_key = Signer::new(KeyAlgorithm::EcdsaP256)?;
    let not_a_cert = "-----BEGIN CERTIFICATE-----\nMIIBfzCCASWgAwIBAgIUdGhpcyBpcyBub3QgYSBjZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----\n";
    let private_key_pem = signer.key.to_pkcs8_pem()?;

    let sig_content = "/spec/signature/content";
    let key_content = "/spec/signature/publicKey/content";
    let hash_value = "/spec/data/hash/value";
    let hash_alg = "/spec/data/hash/algorithm";

    let mut cases = vec![
        // Not JSON / not an entry.
        post(
            "invalid JSON",
            "/api/v1/log/entries",
            b"{\"kind\": ".to_vec(),
            400,
            &["json"],
        ),
        post(
            "empty body",
            "/api/v1/log/entries",
            Vec::new(),
            400,
            &["json"],
        ),
        post(
            "JSON array",
            "/api/v1/log/entries",
            b"[1,2]".to_vec(),
            400,
            &["object"],
        ),
        post(
            "binary garbage",
            "/api/v1/log/entries",
            vec![0xff, 0xfe, 0x00, 0x13],
            400,
            &["json"],
        ),
        // Wrong types.
        entry(
            "kind is a number",
            with(&fresh, "/kind", Some(json!(5))),
            400,
            &["kind"],
        ),
        entry(
            "apiVersion is a number",
            with(&fresh, "/apiVersion", Some(json!(1))),
            400,
            &["apiVersion"],
        ),
        entry(
            "spec is a string",
            with(&fresh, "/spec", Some(json!("x"))),
            400,
            &["spec"],
        ),
        entry(
            "signature is an array",
            with(&fresh, "/spec/signature", Some(json!([]))),
            400,
            &["spec.signature"],
        ),
        entry(
            "signature content is a number",
            with(&fresh, sig_content, Some(json!(7))),
            400,
            &["spec.signature.content"],
        ),
        entry(
            "hash value is an array",
            with(&fresh, hash_value, Some(json!(["00"]))),
            400,
            &["spec.data.hash.value"],
        ),
        // Missing fields.
        entry("empty object", json!({}), 400, &["kind"]),
        entry("no spec", with(&fresh, "/spec", None), 400, &["spec"]),
        entry("no kind", with(&fresh, "/kind", None), 400, &["kind"]),
        entry(
            "no signature",
            with(&fresh, "/spec/signature", None),
            400,
            &["spec.signature"],
        ),
        entry(
            "no public key",
            with(&fresh, "/spec/signature/publicKey", None),
            400,
            &["publicKey"],
        ),
        entry(
            "no digest",
            with(&fresh, "/spec/data", None),
            400,
            &["spec.data"],
        ),
        entry(
            "no digest value",
            with(&fresh, hash_value, None),
            400,
            &["spec.data.hash.value"],
        ),
        // Bad encodings.
        entry(
            "signature not base64",
            with(&fresh, sig_content, Some(json!("not*base64!"))),
            400,
            &["spec.signature.content", "base64"],
        ),
        entry(
            "public key not base64",
            with(&fresh, key_content, Some(json!("%%%"))),
            400,
            &["publicKey", "base64"],
        ),
        entry(
            "digest not hex",
            with(&fresh, hash_value, Some(json!("zz".repeat(32)))),
            400,
            &["spec.data.hash.value", "hex"],
        ),
        entry(
            "public key not PEM",
            with(&fresh, key_content, Some(json!(B64.encode("hello")))),
            400,
            &["publicKey"],
        ),
        entry(
            "empty signature",
            with(&fresh, sig_content, Some(json!(""))),
            400,
            &["spec.signature.content"],
        ),
        // Signatures that do not verify.
        entry(
            "signature over another digest",
            with(&fresh, sig_content, Some(json!(B64.encode(&other_sig)))),
            400,
            &["signature"],
        ),
        entry(
            "signature by another key",
            with(&fresh, key_content, Some(json!(B64.encode(&other_key.pem)))),
            400,
            &["signature"],
        ),
        entry(
            "signature garbage",
            with(&fresh, sig_content, Some(json!(B64.encode([1u8; 70])))),
            400,
            &["signature"],
        ),
        // Digests of the wrong length or algorithm.
        entry(
            "sha256 digest of 31 bytes",
            with(&fresh, hash_value, Some(json!(hex::encode(&d[..31])))),
            400,
            &["32"],
        ),
        entry(
            "sha256 digest of 33 bytes",
            with(
                &fresh,
                hash_value,
                Some(json!(format!("{}00", hex::encode(&d)))),
            ),
            400,
            &["32"],
        ),
        entry(
            "sha512 label on a sha256 digest",
            with(&fresh, hash_alg, Some(json!("sha512"))),
            400,
            &["64"],
        ),
        entry(
            "md5 digest",
            with(&fresh, hash_alg, Some(json!("md5"))),
            400,
            &["md5", "sha256"],
        ),
        // Not a certificate.
        entry(
            "certificate that is not a certificate",
            with(&fresh, key_content, Some(json!(B64.encode(not_a_cert)))),
            400,
            &["publicKey"],
        ),
        entry(
            "a private key as the verifier",
            with(
                &fresh,
                key_content,
                Some(json!(B64.encode(&private_key_pem))),
            ),
            400,
            &["PRIVATE KEY"],
        ),
        // Unknown kinds and versions name the supported ones.
        entry(
            "unknown kind",
            with(&fresh, "/kind", Some(json!("rekord"))),
            400,
            &["rekord", "hashedrekord", "dsse", "intoto"],
        ),
        entry(
            "unknown version",
            with(&fresh, "/apiVersion", Some(json!("0.0.2"))),
            400,
            &["0.0.2", "hashedrekord 0.0.1", "dsse", "intoto"],
        ),
        entry(
            "helm kind",
            json!({"apiVersion": "0.0.1", "kind": "helm", "spec": {}}),
            400,
            &["helm", "hashedrekord"],
        ),
        // DSSE and in-toto with bad signatures.
        entry(
            "dsse signed by another key",
            {
                let (mut e, _) = dsse_entry(&signer.key, b"{}")?;
                e["spec"]["proposedContent"]["verifiers"] = json!([B64.encode(&other_key.pem)]);
                e
            },
            400,
            &["signature"],
        ),
        entry(
            "dsse without verifiers",
            {
                let (mut e, _) = dsse_entry(&signer.key, b"{}")?;
                e["spec"]["proposedContent"]["verifiers"] = json!([]);
                e
            },
            400,
            &["verifiers"],
        ),
        entry(
            "dsse envelope not JSON",
            {
                let (mut e, _) = dsse_entry(&signer.key, b"{}")?;
                e["spec"]["proposedContent"]["envelope"] = json!("{not json");
                e
            },
            400,
            &["envelope"],
        ),
        entry(
            "intoto signed by another key",
            {
                let mut e = intoto_entry(&signer.key, b"{}")?;
                e["spec"]["content"]["envelope"]["signatures"][0]["publicKey"] =
                    json!(B64.encode(&other_key.pem));
                e
            },
            400,
            &["signature"],
        ),
        // Reads.
        get(
            "logIndex out of range",
            "/api/v1/log/entries?logIndex=1".into(),
            404,
            &["1"],
        ),
        get(
            "logIndex far out of range",
            "/api/v1/log/entries?logIndex=18446744073709551615".into(),
            404,
            &["logIndex"],
        ),
        get(
            "logIndex negative",
            "/api/v1/log/entries?logIndex=-1".into(),
            400,
            &["logIndex"],
        ),
        get(
            "logIndex not a number",
            "/api/v1/log/entries?logIndex=abc".into(),
            400,
            &["logIndex"],
        ),
        get(
            "logIndex missing",
            "/api/v1/log/entries".into(),
            400,
            &["logIndex"],
        ),
        get(
            "unknown UUID",
            format!("/api/v1/log/entries/{}", "ab".repeat(32)),
            404,
            &["uuid"],
        ),
        get(
            "unknown entry ID",
            format!(
                "/api/v1/log/entries/{:016x}{}",
                c.log.tree_id,
                "cd".repeat(32)
            ),
            404,
            &["uuid"],
        ),
        get(
            "malformed UUID",
            "/api/v1/log/entries/xyz".into(),
            400,
            &["uuid"],
        ),
        get(
            "UUID of the wrong length",
            format!("/api/v1/log/entries/{}", "ab".repeat(20)),
            400,
            &["uuid"],
        ),
        get(
            "proof beyond the tree",
            "/api/v1/log/proof?firstSize=1&lastSize=5".into(),
            400,
            &["5"],
        ),
        get(
            "proof sizes reversed",
            "/api/v1/log/proof?firstSize=2&lastSize=1".into(),
            400,
            &["firstSize"],
        ),
        get(
            "proof size negative",
            "/api/v1/log/proof?firstSize=-1&lastSize=1".into(),
            400,
            &["firstSize"],
        ),
        get(
            "proof without lastSize",
            "/api/v1/log/proof?firstSize=1".into(),
            400,
            &["lastSize"],
        ),
        // Search and retrieve.
        post(
            "search without criteria",
            "/api/v1/index/retrieve",
            b"{}".to_vec(),
            400,
            &["hash"],
        ),
        post(
            "search hash of the wrong length",
            "/api/v1/index/retrieve",
            br#"{"hash":"sha256:abcd"}"#.to_vec(),
            400,
            &["hash"],
        ),
        post(
            "search e-mail that is not one",
            "/api/v1/index/retrieve",
            br#"{"email":"nobody"}"#.to_vec(),
            400,
            &["email"],
        ),
        post(
            "search invalid JSON",
            "/api/v1/index/retrieve",
            b"{".to_vec(),
            400,
            &["json"],
        ),
        post(
            "retrieve UUIDs not an array",
            "/api/v1/log/entries/retrieve",
            br#"{"entryUUIDs":"x"}"#.to_vec(),
            400,
            &["entryUUIDs"],
        ),
        post(
            "retrieve bad UUID",
            "/api/v1/log/entries/retrieve",
            br#"{"entryUUIDs":["x"]}"#.to_vec(),
            400,
            &["uuid"],
        ),
        post(
            "retrieve negative index",
            "/api/v1/log/entries/retrieve",
            br#"{"logIndexes":[-1]}"#.to_vec(),
            400,
            &["logIndexes"],
        ),
    ];

    // A body over the limit: 413, whether it is valid JSON or not.
    let big_sig = B64.encode(vec![7u8; BODY_LIMIT + 1024]);
    cases.push(entry(
        "body over the limit",
        with(&fresh, sig_content, Some(json!(big_sig))),
        413,
        &["large"],
    ));
    cases.push(post(
        "garbage over the limit",
        "/api/v1/log/entries",
        vec![b'x'; 2 * BODY_LIMIT],
        413,
        &["large"],
    ));

    let mut failures = Vec::new();
    for case in &cases {
        let a = match case.method {
            "POST" => c.post_raw(&case.path, case.body.clone()).await?,
            _ => c.get(&case.path).await?,
        };
        let problem = check_error(case, &a);
        if let Some(p) = problem {
            failures.push(format!("{}: {p} (got {} {})", case.what, a.status, a.text));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing was logged: same tree, same entry, nothing else in the database.
    let (size, root, _) = c.tree().await?;
    ensure!(
        size == size_before && root == root_before,
        "the tree changed: size {size}"
    );
    let got = read_all(&c, size).await?;
    ensure!(got.len() == 1 && got[0].uuid == first.uuid);
    let rows = count_rows(&server).await?;
    ensure!(rows == 1, "the entries table holds {rows} rows");

    // And the log still takes good entries.
    let e = c.append(&fresh).await?.map_err(|a| {
        anyhow!(
            "fresh entry refused after bad input: {} {}",
            a.status,
            a.text
        )
    })?;
    ensure!(e.index == 1);
    Ok(())
}

fn check_error(case: &Case, a: &Answer) -> Option<String> {
    if a.status != case.status {
        return Some(format!("expected HTTP {}", case.status));
    }
    let Some(obj) = a.body.as_object() else {
        return Some("body is not a JSON object".into());
    };
    if obj.get("code").and_then(Value::as_u64) != Some(u64::from(case.status)) {
        return Some("code does not equal the HTTP status".into());
    }
    let Some(msg) = obj.get("message").and_then(Value::as_str) else {
        return Some("no message".into());
    };
    if msg.trim().is_empty() || msg.contains("internal") {
        return Some("unhelpful message".into());
    }
    let lower = msg.to_lowercase();
    let missing: Vec<&str> = case
        .says
        .iter()
        .copied()
        .filter(|w| !lower.contains(&w.to_lowercase()))
        .collect();
    if !missing.is_empty() {
        return Some(format!("message does not mention {missing:?}"));
    }
    None
}

async fn count_rows(server: &LogServer) -> Result<i64> {
    use sqlx::Connection;
    let url = server.db.url();
    let q = "SELECT COUNT(*) FROM entries";
    Ok(if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        sqlx::query_scalar(q).fetch_one(&mut conn).await?
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::query_scalar(q).fetch_one(&mut conn).await?
    })
}
