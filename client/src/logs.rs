//! The deployment's transparency logs as one: every Rekor log the signing config lists (v1 and
//! v2), asked for an entry by index, UUID or search criteria, each answer proven against its
//! log's signed checkpoint and labelled with the log that gave it.
//!
//! Rekor v1 logs are read through their entry and index APIs. Rekor v2 logs serve only tiles:
//! entries are read and proven from the tiles ([`crate::log_v2`]), and found through Sigil's
//! search extension (`POST /api/v2/sigil/index/retrieve`, answered only by Sigil servers).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::crypto::PublicKey;
use sigil_core::merkle::{self, Hash};
use sigil_core::trust::{SigningConfig, TrustedRoot, select_services};

use crate::exit;
use crate::http::http;

/// Sigil's search extension of the Rekor v2 API.
pub const V2_SEARCH_PATH: &str = "/api/v2/sigil/index/retrieve";

/// One transparency log of the deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub url: String,
    /// Rekor API major version: 1 or 2.
    pub version: u32,
}

impl Log {
    fn base(&self) -> &str {
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

/// GET or POST returning JSON; `None` when the log answers 404 (no such entry).
fn fetch(url: &str, body: Option<&Value>) -> Result<Option<Value>> {
    let client = http()?;
    let (req, method) = match body {
        Some(b) => (client.post(url).json(b), "POST"),
        None => (client.get(url), "GET"),
    };
    let resp = req.send().with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status.is_server_error() {
        return Err(exit::network(format!("{url} answered {status}: {text}")));
    }
    if !status.is_success() {
        bail!("{url} answered {status}: {text}");
    }
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{url}: the answer is not JSON: {text}"))
}

/// A Rekor v1 `{uuid: LogEntry}` answer checked: its inclusion proof leads to a checkpoint
/// signed by the trusted-root key of the log that wrote it.
fn proven_v1(log: &Log, answer: Value, root: &TrustedRoot) -> Result<Entry> {
    let first = match answer {
        Value::Array(a) => a.into_iter().next(),
        other => Some(other),
    };
    let (_, entry) = first
        .and_then(|v| match v {
            Value::Object(m) => m.into_iter().next(),
            _ => None,
        })
        .ok_or_else(|| anyhow!("{} answered no entry", log.describe()))?;
    let tlog = crate::sign::tlog_entry_from_rekor(&entry, "", "")?;
    let check = || -> Result<Entry> {
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
        Ok(Entry {
            log: log.clone(),
            index,
            uuid: hex::encode(leaf),
            integrated_time: Some(tlog.integrated_time),
            log_id: tlog.log_id.key_id.clone(),
            body: tlog.canonicalized_body.clone(),
            tree_size: size,
            root_hash: cp_root,
        })
    };
    check().map_err(|e| exit::verification(format!("{}: {e:#}", log.describe())))
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
        _ => fetch(
            &format!("{}/api/v1/log/entries?logIndex={index}", log.base()),
            None,
        )?
        .map(|a| proven_v1(log, a, root))
        .transpose(),
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
            let hits = v2_search(log, &json!({"uuid": hex::encode(leaf)}))?;
            match hits.first() {
                Some(h) => get_by_index(log, h.index.unwrap_or(u64::MAX), root),
                None => Ok(None),
            }
        }
        _ => fetch(
            &format!("{}/api/v1/log/entries/{}", log.base(), hex::encode(leaf)),
            None,
        )?
        .map(|a| proven_v1(log, a, root))
        .transpose(),
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

fn v2_search(log: &Log, req: &Value) -> Result<Vec<Hit>> {
    let url = format!("{}{V2_SEARCH_PATH}", log.base());
    let answer = fetch(&url, Some(req))?.ok_or_else(|| {
        anyhow!(
            "{} offers no search ({V2_SEARCH_PATH} is Sigil's extension of Rekor v2); \
             find entries with --rekor-version 1 or by --index",
            log.describe()
        )
    })?;
    let list = answer
        .as_array()
        .ok_or_else(|| anyhow!("{url}: the answer is not a list"))?;
    Ok(list
        .iter()
        .filter_map(|h| {
            Some(Hit {
                log: log.clone(),
                uuid: h.get("uuid")?.as_str()?.to_string(),
                index: h.get("logIndex").and_then(Value::as_u64),
            })
        })
        .collect())
}

/// The UUIDs (leaf hashes, lowercase hex) one criterion finds in a log, with their indexes when
/// the log names them (v2).
fn search_one(log: &Log, c: &Criterion) -> Result<Vec<(String, Option<u64>)>> {
    if log.version == 2 {
        return Ok(v2_search(log, &c.request())?
            .into_iter()
            .map(|h| (h.uuid.to_ascii_lowercase(), h.index))
            .collect());
    }
    let url = format!("{}/api/v1/index/retrieve", log.base());
    let answer = fetch(&url, Some(&c.request()))?.unwrap_or(Value::Array(Vec::new()));
    Ok(answer
        .as_array()
        .ok_or_else(|| anyhow!("{url}: the answer is not a list: {answer}"))?
        .iter()
        .filter_map(Value::as_str)
        // An entry ID is the tree ID and the UUID: keep the UUID, as v2 names entries.
        .filter_map(|id| id.get(id.len().saturating_sub(64)..))
        .map(|u| (u.to_ascii_lowercase(), None))
        .collect())
}

/// The indexes of Rekor v1 entries, from the entries themselves (at most 100 per request).
fn v1_indexes(log: &Log, uuids: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut indexes = BTreeMap::new();
    for chunk in uuids.chunks(100) {
        let answer = fetch(
            &format!("{}/api/v1/log/entries/retrieve", log.base()),
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
        v1_indexes(log, &missing)?
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

/// A log's latest checkpoint, verified with its trusted-root key: (size, root hash).
pub fn verified_head(log: &Log, root: &TrustedRoot) -> Result<(u64, Hash)> {
    if log.version == 2 {
        return crate::log_v2::verified_head(log.base(), root)
            .map_err(|e| exit::verification(format!("{}: {e:#}", log.describe())));
    }
    let info = fetch(&format!("{}/api/v1/log", log.base()), None)?
        .ok_or_else(|| anyhow!("{} has no /api/v1/log", log.describe()))?;
    let sth = info
        .get("signedTreeHead")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{} answered no signedTreeHead", log.describe()))?;
    // The log is the trusted root's entry whose key signs this checkpoint.
    root.tlogs
        .iter()
        .filter_map(|l| PublicKey::from_spki_der(&l.public_key.raw_bytes).ok())
        .find_map(|k| crate::verify::verify_checkpoint(sth.as_bytes(), &k).ok())
        .ok_or_else(|| {
            exit::verification(format!(
                "the checkpoint of the {} is not signed by a trusted log key",
                log.describe()
            ))
        })
}

/// A consistency proof between two sizes of a log (computed from the tiles for v2, which
/// serves no proofs).
pub fn consistency_proof(log: &Log, old: u64, new: u64) -> Result<Vec<Hash>> {
    if log.version == 2 {
        return crate::log_v2::consistency_proof(log.base(), old, new);
    }
    let p = fetch(
        &format!(
            "{}/api/v1/log/proof?firstSize={old}&lastSize={new}",
            log.base()
        ),
        None,
    )?
    .ok_or_else(|| anyhow!("{} serves no consistency proof", log.describe()))?;
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
    let (size, root_hash) = verified_head(log, root)?;
    // v1 and v2 logs may share a base URL: each has its own last-seen checkpoint.
    let suffix = if log.version == 2 { "-v2" } else { "" };
    let state = state_dir.join(format!(
        "checkpoint-{}{suffix}.json",
        hex::encode(sigil_core::crypto::sha256(log.base().as_bytes()))
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
