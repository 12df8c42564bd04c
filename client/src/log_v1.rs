//! A Rekor v1 log through its entry API: logging an entry, reading one by index or UUID with
//! its inclusion proof checked against the checkpoint the log signed, its signed tree head,
//! consistency proofs and its search index.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::log_http::{SendToLog, fetch_json};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::bundle::{
    self, InclusionPromise, InclusionProof, KindVersion, LogId, TransparencyLogEntry,
};
use sigil_core::crypto::PublicKey;
use sigil_core::merkle::{self, Hash};
use sigil_core::trust::TrustedRoot;

use crate::exit;
use crate::http::{http, json_answer};

/// One entry of a Rekor v1 log, proven to be in a checkpoint the log signed.
#[derive(Debug)]
pub struct V1Entry {
    pub index: u64,
    /// The time the log integrated the entry (unsigned here: the SET is not checked).
    pub integrated_time: i64,
    pub body: Vec<u8>,
    /// SHA-256 of the log's key (the log id).
    pub log_id: Vec<u8>,
    pub tree_size: u64,
    pub root_hash: Hash,
}

/// How answers name the log (as `logs::Log::describe` does).
fn describe(base: &str) -> String {
    format!("Rekor v1 log {base}")
}

/// A Rekor v1 `LogEntry` (`{uuid: {...}}` value) converted to the bundle's form.
pub fn tlog_entry_from_rekor(
    entry: &Value,
    kind: &str,
    version: &str,
) -> Result<TransparencyLogEntry> {
    let s = |p: &str| entry.pointer(p).and_then(Value::as_str);
    let i = |p: &str| entry.pointer(p).and_then(Value::as_i64);
    let body = STANDARD.decode(s("/body").ok_or_else(|| anyhow!("log entry has no body"))?)?;
    let log_id = hex::decode(s("/logID").ok_or_else(|| anyhow!("log entry has no logID"))?)?;
    let promise = s("/verification/signedEntryTimestamp")
        .map(|b| {
            STANDARD.decode(b).map(|v| InclusionPromise {
                signed_entry_timestamp: v,
            })
        })
        .transpose()?;
    let proof = match entry.pointer("/verification/inclusionProof") {
        Some(p) if !p.is_null() => {
            let hashes = p
                .get("hashes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(hex::decode)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            Some(InclusionProof {
                log_index: p.get("logIndex").and_then(Value::as_i64).unwrap_or(0),
                root_hash: hex::decode(p.get("rootHash").and_then(Value::as_str).unwrap_or(""))?,
                tree_size: p.get("treeSize").and_then(Value::as_i64).unwrap_or(0),
                hashes,
                checkpoint: p.get("checkpoint").and_then(Value::as_str).map(|c| {
                    bundle::Checkpoint {
                        envelope: c.to_owned(),
                    }
                }),
            })
        }
        _ => None,
    };
    // The kind in the body is authoritative.
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = body_json
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(kind)
        .to_owned();
    let version = body_json
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(version)
        .to_owned();
    Ok(TransparencyLogEntry {
        log_index: i("/logIndex").unwrap_or(0),
        log_id: LogId { key_id: log_id },
        kind_version: KindVersion { kind, version },
        integrated_time: i("/integratedTime").unwrap_or(0),
        inclusion_promise: promise,
        inclusion_proof: proof,
        canonicalized_body: body,
    })
}

/// Posts a proposed entry to Rekor v1; returns (uuid, entry). An existing identical entry (409)
/// is fetched instead.
pub fn log_entry(rekor_url: &str, proposed: &Value) -> Result<(String, Value)> {
    let base = rekor_url.trim_end_matches('/');
    let url = format!("{base}/api/v1/log/entries");
    let client = http()?;
    let resp = client
        .post(&url)
        .json(proposed)
        .send_to_log()
        .with_context(|| format!("POST {url}"))?;
    let (uuid, mut entry) = if resp.status() == reqwest::StatusCode::CONFLICT {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("log answered 409 without a Location"))?;
        let uuid = loc.rsplit('/').next().unwrap_or_default().to_owned();
        get_entry_by_uuid(base, &uuid)?
    } else {
        first_entry(json_answer(resp, &format!("log {url}"))?)?
    };
    // An entry whose proof is not ready yet: fetch again briefly.
    for _ in 0..20 {
        if entry
            .pointer("/verification/inclusionProof/checkpoint")
            .is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        entry = get_entry_by_uuid(base, &uuid)?.1;
    }
    Ok((uuid, entry))
}

/// The first `(entry ID, LogEntry)` of an answer: one `{id: entry}` object, or a list of them.
fn first_entry(v: Value) -> Result<(String, Value)> {
    let v = match v {
        Value::Array(a) => a
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("log returned no entry"))?,
        other => other,
    };
    match v {
        Value::Object(m) => m
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("log returned no entry")),
        other => bail!("unexpected log answer {other}"),
    }
}

/// `GET /api/v1/log/entries/{uuid}`.
pub fn get_entry_by_uuid(rekor_url: &str, uuid: &str) -> Result<(String, Value)> {
    let url = format!(
        "{}/api/v1/log/entries/{uuid}",
        rekor_url.trim_end_matches('/')
    );
    first_entry(json_answer(
        http()?
            .get(&url)
            .send_to_log()
            .with_context(|| format!("GET {url}"))?,
        &format!("log {url}"),
    )?)
}

/// `GET /api/v1/log/entries?logIndex=N`.
pub fn get_entry_by_index(rekor_url: &str, index: u64) -> Result<(String, Value)> {
    let url = format!(
        "{}/api/v1/log/entries?logIndex={index}",
        rekor_url.trim_end_matches('/')
    );
    first_entry(json_answer(
        http()?
            .get(&url)
            .send_to_log()
            .with_context(|| format!("GET {url}"))?,
        &format!("log {url}"),
    )?)
}

/// An entry answer checked: its inclusion proof leads to a checkpoint signed by the
/// trusted-root key of the log that wrote it. A proof that does not check is a verification
/// failure.
fn proven(base: &str, answer: Value, root: &TrustedRoot) -> Result<V1Entry> {
    let first = match answer {
        Value::Array(a) => a.into_iter().next(),
        other => Some(other),
    };
    let (_, entry) = first
        .and_then(|v| match v {
            Value::Object(m) => m.into_iter().next(),
            _ => None,
        })
        .ok_or_else(|| anyhow!("{} answered no entry", describe(base)))?;
    let tlog = tlog_entry_from_rekor(&entry, "", "")?;
    let check = || -> Result<V1Entry> {
        let key = root
            .tlogs_by_id(&tlog.log_id.key_id)
            .next()
            .ok_or_else(|| {
                anyhow!(
                    "log {} is not in the trusted root",
                    hex::encode(&tlog.log_id.key_id)
                )
            })
            .and_then(|l| Ok(PublicKey::from_spki_der(&l.public_key.raw_bytes)?))?;
        let proof = tlog
            .inclusion_proof
            .as_ref()
            .ok_or_else(|| anyhow!("the entry has no inclusion proof"))?;
        let leaf = merkle::leaf_hash(&tlog.canonicalized_body);
        let hashes: Vec<Hash> = proof
            .hashes
            .iter()
            .map(|h| h.as_slice().try_into())
            .collect::<Result<_, _>>()
            .context("an inclusion proof hash is not 32 bytes")?;
        let index = u64::try_from(proof.log_index)?;
        let size = u64::try_from(proof.tree_size)?;
        let computed = merkle::root_from_inclusion_proof(&leaf, index, size, &hashes)?;
        let cp = proof
            .checkpoint
            .as_ref()
            .ok_or_else(|| anyhow!("the inclusion proof has no checkpoint"))?;
        let (cp_size, cp_root) = crate::verify::verify_checkpoint(cp.envelope.as_bytes(), &key)?;
        if cp_root != computed || cp_size != size {
            bail!("the inclusion proof does not lead to the signed checkpoint");
        }
        Ok(V1Entry {
            index,
            integrated_time: tlog.integrated_time,
            body: tlog.canonicalized_body.clone(),
            log_id: tlog.log_id.key_id.clone(),
            tree_size: size,
            root_hash: cp_root,
        })
    };
    check().map_err(|e| exit::verification(format!("{}: {e:#}", describe(base))))
}

/// Entry `index` of the Rekor v1 log at `rekor_url`, its inclusion proven; `None` when the log
/// has no such entry.
pub fn find_entry(rekor_url: &str, index: u64, root: &TrustedRoot) -> Result<Option<V1Entry>> {
    let base = rekor_url.trim_end_matches('/');
    fetch_json(&format!("{base}/api/v1/log/entries?logIndex={index}"), None)?
        .map(|a| proven(base, a, root))
        .transpose()
}

/// The entry whose leaf hash is `leaf`, its inclusion proven; `None` when the log has none.
pub fn find_entry_by_leaf(
    rekor_url: &str,
    leaf: &Hash,
    root: &TrustedRoot,
) -> Result<Option<V1Entry>> {
    let base = rekor_url.trim_end_matches('/');
    fetch_json(
        &format!("{base}/api/v1/log/entries/{}", hex::encode(leaf)),
        None,
    )?
    .map(|a| proven(base, a, root))
    .transpose()
}

/// The UUIDs (leaf hashes, lowercase hex) the log's search index (`/api/v1/index/retrieve`)
/// lists for one search request.
pub fn search(rekor_url: &str, request: &Value) -> Result<Vec<String>> {
    let url = format!("{}/api/v1/index/retrieve", rekor_url.trim_end_matches('/'));
    let answer = fetch_json(&url, Some(request))?.unwrap_or(Value::Array(Vec::new()));
    Ok(answer
        .as_array()
        .ok_or_else(|| anyhow!("{url}: the answer is not a list: {answer}"))?
        .iter()
        .filter_map(Value::as_str)
        // An entry ID is the tree ID and the UUID: keep the UUID, as v2 names entries.
        .filter_map(|id| id.get(id.len().saturating_sub(64)..))
        .map(str::to_ascii_lowercase)
        .collect())
}

/// The indexes of entries, from the entries themselves (at most 100 per request).
pub fn indexes(rekor_url: &str, uuids: &[String]) -> Result<BTreeMap<String, u64>> {
    let base = rekor_url.trim_end_matches('/');
    let mut indexes = BTreeMap::new();
    for chunk in uuids.chunks(100) {
        let answer = fetch_json(
            &format!("{base}/api/v1/log/entries/retrieve"),
            Some(&json!({"entryUUIDs": chunk})),
        )?
        .unwrap_or(Value::Array(Vec::new()));
        for m in answer.as_array().into_iter().flatten() {
            for (id, e) in m.as_object().into_iter().flatten() {
                let uuid = id.get(id.len().saturating_sub(64)..).unwrap_or(id);
                if let Some(i) = e.get("logIndex").and_then(Value::as_u64) {
                    indexes.insert(uuid.to_ascii_lowercase(), i);
                }
            }
        }
    }
    Ok(indexes)
}

/// The log's signed tree head, verified with a trusted-root key: (size, root hash, origin).
pub fn verified_head(rekor_url: &str, root: &TrustedRoot) -> Result<(u64, Hash, String)> {
    let (sth, _, size, hash) = head(rekor_url, root)?;
    Ok((
        size,
        hash,
        sth.lines().next().unwrap_or_default().to_string(),
    ))
}

/// The log's signed tree head as served, verified with a trusted-root key, and that log's ID.
pub fn signed_checkpoint(rekor_url: &str, root: &TrustedRoot) -> Result<(String, Vec<u8>)> {
    let (sth, log_id, _, _) = head(rekor_url, root)?;
    Ok((sth, log_id))
}

/// `GET /api/v1/log`'s signed tree head, verified by the trusted root's log whose key signed
/// it: (note, log ID, size, root hash).
fn head(rekor_url: &str, root: &TrustedRoot) -> Result<(String, Vec<u8>, u64, Hash)> {
    let base = rekor_url.trim_end_matches('/');
    let info = fetch_json(&format!("{base}/api/v1/log"), None)?
        .ok_or_else(|| anyhow!("{} has no /api/v1/log", describe(base)))?;
    let sth = info
        .get("signedTreeHead")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{} answered no signedTreeHead", describe(base)))?;
    root.tlogs
        .iter()
        .find_map(|l| {
            let k = PublicKey::from_spki_der(&l.public_key.raw_bytes).ok()?;
            let (size, hash) = crate::verify::verify_checkpoint(sth.as_bytes(), &k).ok()?;
            Some((sth.to_string(), l.log_id.key_id.clone(), size, hash))
        })
        .ok_or_else(|| {
            exit::verification(format!(
                "the checkpoint of the {} is not signed by a trusted log key",
                describe(base)
            ))
        })
}

/// The log's consistency proof between two tree sizes (the caller verifies it).
pub fn consistency_proof(rekor_url: &str, old: u64, new: u64) -> Result<Vec<Hash>> {
    let base = rekor_url.trim_end_matches('/');
    let p = fetch_json(
        &format!("{base}/api/v1/log/proof?firstSize={old}&lastSize={new}"),
        None,
    )?
    .ok_or_else(|| anyhow!("{} serves no consistency proof", describe(base)))?;
    Ok(p.get("hashes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
                .collect()
        })
        .unwrap_or_default())
}

/// `GET <rekor>/api/v1/log/publicKey`: the log's key (SPKI DER).
pub fn public_key(rekor_url: &str) -> Result<Vec<u8>> {
    let u = format!("{}/api/v1/log/publicKey", rekor_url.trim_end_matches('/'));
    let resp = http()?
        .get(&u)
        .send_to_log()
        .with_context(|| format!("GET {u}"))?;
    if !resp.status().is_success() {
        bail!("GET {u} answered {}", resp.status());
    }
    let pem = resp.text()?;
    Ok(PublicKey::from_pem(&pem)
        .with_context(|| format!("{u}: not a PEM public key"))?
        .spki_der()
        .to_vec())
}
