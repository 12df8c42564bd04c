//! The deployment's transparency logs as one: every Rekor log the signing config lists (v1 and
//! v2), asked for an entry by index, UUID or search criteria, each answer proven against its
//! log's signed checkpoint and labelled with the log that gave it.
//!
//! Rekor v1 logs are read through their entry and index APIs ([`crate::log_v1`]). Rekor v2 logs
//! serve only tiles: entries are read and proven from the tiles ([`crate::log_v2`]), and found
//! through Sigil's search extension (`POST /api/v2/sigil/index/retrieve`, answered only by Sigil
//! servers).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::merkle::{self, Hash};
use sigil_core::trust::{SigningConfig, TrustedRoot, select_services};

use crate::exit;

/// One transparency log of the deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub url: String,
    /// Rekor API major version: 1 or 2.
    pub version: u32,
}

impl Log {
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// `Rekor v2 log http://...`: how answers name the log.
    pub fn describe(&self) -> String {
        format!("Rekor v{} log {}", self.version, self.base())
    }

    pub fn to_json(&self) -> Value {
        json!({"url": self.base(), "rekorVersion": self.version})
    }
}

/// The Rekor logs the signing config lists as valid now, newest API first; `only` keeps one API
/// version.
pub fn deployment_logs(c: &SigningConfig, now: i64, only: Option<u32>) -> Result<Vec<Log>> {
    let mut logs: Vec<Log> = Vec::new();
    for v in [2, 1] {
        if only.is_some_and(|o| o != v) {
            continue;
        }
        for s in select_services(&c.rekor_tlog_urls, now, &[v]) {
            let log = Log {
                url: s.url.trim_end_matches('/').to_string(),
                version: v,
            };
            if !logs.contains(&log) {
                logs.push(log);
            }
        }
    }
    if logs.is_empty() {
        return Err(exit::usage(match only {
            Some(v) => format!("the signing config lists no Rekor v{v} log valid now"),
            None => "the signing config lists no transparency log valid now".into(),
        }));
    }
    Ok(logs)
}

/// An entry found in one of the logs, its inclusion proven against that log's checkpoint.
#[derive(Clone, Debug)]
pub struct Entry {
    pub log: Log,
    pub index: u64,
    /// Hex of the leaf hash: the entry's UUID in either log.
    pub uuid: String,
    /// Rekor v1 only: the time the log integrated the entry (v2 entries are dated by a TSA).
    pub integrated_time: Option<i64>,
    pub log_id: Vec<u8>,
    pub body: Vec<u8>,
    /// The checkpoint the inclusion proof was checked against.
    pub tree_size: u64,
    pub root_hash: Hash,
}

impl Entry {
    pub fn to_json(&self) -> Value {
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(STANDARD.encode(&self.body)));
        let mut j = json!({
            "log": self.log.to_json(),
            "uuid": self.uuid,
            "logIndex": self.index,
            "logID": hex::encode(&self.log_id),
            "treeSize": self.tree_size,
            "rootHash": hex::encode(self.root_hash),
            "inclusionProofVerified": true,
            "body": body,
        });
        if let (Some(t), Some(o)) = (self.integrated_time, j.as_object_mut()) {
            o.insert("integratedTime".into(), json!(t));
        }
        j
    }
}

fn from_v1(log: &Log, e: crate::log_v1::V1Entry) -> Entry {
    Entry {
        log: log.clone(),
        index: e.index,
        uuid: hex::encode(merkle::leaf_hash(&e.body)),
        integrated_time: Some(e.integrated_time),
        log_id: e.log_id,
        body: e.body,
        tree_size: e.tree_size,
        root_hash: e.root_hash,
    }
}

fn from_v2(log: &Log, e: crate::log_v2::V2Entry) -> Entry {
    Entry {
        log: log.clone(),
        index: e.index,
        uuid: hex::encode(merkle::leaf_hash(&e.body)),
        integrated_time: None,
        log_id: e.log_id,
        body: e.body,
        tree_size: e.tree_size,
        root_hash: e.root_hash,
    }
}

/// Entry `index` of one log, if it has one.
pub fn get_by_index(log: &Log, index: u64, root: &TrustedRoot) -> Result<Option<Entry>> {
    match log.version {
        2 => Ok(crate::log_v2::find_entry(log.base(), index, root)?.map(|e| from_v2(log, e))),
        _ => Ok(crate::log_v1::find_entry(log.base(), index, root)?.map(|e| from_v1(log, e))),
    }
}

/// The entry with this UUID (leaf hash; a v1 entry ID's tree prefix is accepted), if the log
/// has it.
pub fn get_by_uuid(log: &Log, uuid: &str, root: &TrustedRoot) -> Result<Option<Entry>> {
    let uuid = uuid.trim().to_ascii_lowercase();
    let leaf = sigil_core::rekor::parse_uuid_or_entry_id(&uuid).ok_or_else(|| {
        exit::usage(format!(
            "--uuid {uuid:?}: give the 64 hex digits sign-blob printed (or an 80-hex entry ID)"
        ))
    })?;
    match log.version {
        2 => {
            let hits = crate::log_v2::search(log.base(), &json!({"uuid": hex::encode(leaf)}))?;
            match hits.first() {
                Some((_, index)) => get_by_index(log, index.unwrap_or(u64::MAX), root),
                None => Ok(None),
            }
        }
        _ => Ok(
            crate::log_v1::find_entry_by_leaf(log.base(), &leaf, root)?.map(|e| from_v1(log, e))
        ),
    }
}

/// One search criterion, as `rekor-cli search` takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// `sha256:<hex>` (or sha384/sha512).
    Hash(String),
    Email(String),
    /// A PEM public key or certificate.
    PublicKey(String),
}

impl Criterion {
    fn request(&self) -> Value {
        match self {
            Criterion::Hash(h) => json!({"hash": h}),
            Criterion::Email(e) => json!({"email": e}),
            Criterion::PublicKey(p) => {
                json!({"publicKey": {"format": "x509", "content": STANDARD.encode(p)}})
            }
        }
    }
}

/// How several criteria combine: `Or` (the union, as `rekor-cli search` by default) or `And`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Operator {
    #[default]
    Or,
    And,
}

/// A search result: an entry's UUID in a log (and its index, when the log says).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub log: Log,
    pub uuid: String,
    pub index: Option<u64>,
}

impl Hit {
    pub fn to_json(&self) -> Value {
        json!({"log": self.log.to_json(), "uuid": self.uuid, "logIndex": self.index})
    }
}

/// The UUIDs (leaf hashes, lowercase hex) one criterion finds in a log, with their indexes when
/// the log names them (v2).
fn search_one(log: &Log, c: &Criterion) -> Result<Vec<(String, Option<u64>)>> {
    if log.version == 2 {
        return Ok(crate::log_v2::search(log.base(), &c.request())?
            .into_iter()
            .map(|(uuid, index)| (uuid.to_ascii_lowercase(), index))
            .collect());
    }
    Ok(crate::log_v1::search(log.base(), &c.request())?
        .into_iter()
        .map(|u| (u, None))
        .collect())
}

/// Entries of one log matching the criteria, by index. Each criterion is asked alone and the
/// answers combined here, so the result does not depend on how a server combines criteria.
pub fn search(log: &Log, criteria: &[Criterion], op: Operator) -> Result<Vec<Hit>> {
    if criteria.is_empty() {
        return Err(exit::usage(
            "give at least one of --artifact, --sha256, --email or --public-key",
        ));
    }
    let mut result: Option<BTreeMap<String, Option<u64>>> = None;
    for c in criteria {
        let found: BTreeMap<String, Option<u64>> = search_one(log, c)?.into_iter().collect();
        result = Some(match (result, op) {
            (None, _) => found,
            (Some(mut prev), Operator::And) => {
                prev.retain(|u, _| found.contains_key(u));
                prev
            }
            (Some(mut prev), Operator::Or) => {
                prev.extend(found);
                prev
            }
        });
    }
    let found = result.unwrap_or_default();
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, i)| i.is_none())
        .map(|(u, _)| u.clone())
        .collect();
    let indexes = if missing.is_empty() {
        BTreeMap::new()
    } else {
        crate::log_v1::indexes(log.base(), &missing)?
    };
    let mut hits: Vec<Hit> = found
        .into_iter()
        .map(|(uuid, index)| Hit {
            log: log.clone(),
            index: index.or_else(|| indexes.get(&uuid).copied()),
            uuid,
        })
        .collect();
    hits.sort_by_key(|h| h.index);
    Ok(hits)
}

/// A log's latest checkpoint, verified with its trusted-root key: (size, root hash, origin).
pub fn verified_head(log: &Log, root: &TrustedRoot) -> Result<(u64, Hash, String)> {
    if log.version == 2 {
        return crate::log_v2::verified_head(log.base(), root)
            .map_err(|e| exit::verification(format!("{}: {e:#}", log.describe())));
    }
    crate::log_v1::verified_head(log.base(), root)
}

/// A log's latest signed checkpoint as served (verified with its trusted-root key) and the log's
/// ID: what a witness policy is checked on.
pub fn signed_checkpoint(log: &Log, root: &TrustedRoot) -> Result<(String, Vec<u8>)> {
    if log.version == 2 {
        return crate::log_v2::checkpoint(log.base(), root)
            .map(|(text, _, _, id)| (text, id))
            .map_err(|e| exit::verification(format!("{}: {e:#}", log.describe())));
    }
    crate::log_v1::signed_checkpoint(log.base(), root)
}

/// A consistency proof between two sizes of a log (computed from the tiles for v2, which
/// serves no proofs).
pub fn consistency_proof(log: &Log, old: u64, new: u64) -> Result<Vec<Hash>> {
    if log.version == 2 {
        return crate::log_v2::consistency_proof(log.base(), old, new);
    }
    crate::log_v1::consistency_proof(log.base(), old, new)
}

/// What `log verify` found for one log.
#[derive(Clone, Debug)]
pub struct Consistency {
    pub log: Log,
    pub size: u64,
    pub root_hash: Hash,
    /// The size of the last checkpoint seen before, if any.
    pub previous: Option<u64>,
}

impl Consistency {
    pub fn to_json(&self) -> Value {
        json!({"log": self.log.to_json(), "treeSize": self.size,
            "rootHash": hex::encode(self.root_hash), "consistentWithSize": self.previous})
    }
}

/// Checks a log's checkpoint is consistent with the last one seen (stored in `state_dir`, one
/// file per log), then remembers it.
pub fn check_consistency(
    log: &Log,
    root: &TrustedRoot,
    state_dir: &std::path::Path,
) -> Result<Consistency> {
    let (size, root_hash, origin) = verified_head(log, root)?;
    // One last-seen checkpoint per tree: v1 and v2 logs may share a base URL, and a rotated log
    // starts a new tree (a new origin) at the same URL, which is not a fork of the old one.
    let suffix = if log.version == 2 { "-v2" } else { "" };
    let tree = format!("{}\n{origin}", log.base());
    let state = state_dir.join(format!(
        "checkpoint-{}{suffix}.json",
        hex::encode(sigil_core::crypto::sha256(tree.as_bytes()))
    ));
    let mut previous = None;
    if let Ok(prev) = std::fs::read(&state) {
        let prev: Value = serde_json::from_slice(&prev)
            .with_context(|| format!("{} is not JSON", state.display()))?;
        let old_size = prev.get("size").and_then(Value::as_u64).unwrap_or(0);
        let old_root: Hash = hex::decode(prev.get("root").and_then(Value::as_str).unwrap_or(""))?
            .try_into()
            .map_err(|_| anyhow!("the stored checkpoint root is not 32 bytes"))?;
        let fail = |m: String| exit::verification(format!("{}: {m}", log.describe()));
        if old_size > size {
            return Err(fail(format!(
                "the log shrank: last seen size {old_size}, now {size}"
            )));
        }
        if old_size > 0 && old_size < size {
            let hashes = consistency_proof(log, old_size, size)?;
            merkle::verify_consistency(old_size, size, &old_root, &root_hash, &hashes).map_err(
                |e| {
                    fail(format!(
                        "checkpoint {size} is not consistent with the last seen {old_size}: {e}"
                    ))
                },
            )?;
        } else if old_size == size && old_root != root_hash {
            return Err(fail(format!(
                "same tree size {size} with a different root hash: the log forked"
            )));
        }
        previous = Some(old_size);
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    std::fs::write(
        &state,
        serde_json::to_vec(&json!({"size": size, "root": hex::encode(root_hash)}))?,
    )
    .with_context(|| format!("writing {}", state.display()))?;
    Ok(Consistency {
        log: log.clone(),
        size,
        root_hash,
        previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_logs_lists_each_log_once_newest_api_first() {
        let sc = SigningConfig::from_json(
            br#"{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [], "oidcUrls": [], "tsaUrls": [],
            "rekorTlogUrls": [
              {"url": "http://h/", "majorApiVersion": 1, "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "o"},
              {"url": "http://h", "majorApiVersion": 1, "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "o"},
              {"url": "http://h", "majorApiVersion": 2, "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "o"}],
            "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"}}"#,
        )
        .unwrap();
        let logs = deployment_logs(&sc, 1_800_000_000, None).unwrap();
        assert_eq!(
            logs.iter().map(|l| l.describe()).collect::<Vec<_>>(),
            ["Rekor v2 log http://h", "Rekor v1 log http://h"]
        );
        assert_eq!(
            deployment_logs(&sc, 1_800_000_000, Some(1)).unwrap().len(),
            1
        );
    }
}
