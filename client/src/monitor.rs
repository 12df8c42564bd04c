//! `sigil monitor`: follows Rekor v1 logs from a persisted state. For each log it verifies the
//! new checkpoint's signature (a trusted-root key) and its consistency with the last one, reads
//! every new entry, rebuilds the tree from the entries' leaf hashes and requires the checkpoint's
//! root (so the entries served are the entries committed), and matches each entry's signers
//! against a watch list. It prints one JSON line per finding and per checkpoint, and can POST
//! findings to a webhook. A second URL of the same log (`--compare`) is checked for a split view:
//! the two checkpoints must be consistent with each other; so must the checkpoint a witness
//! last cosigned (`--compare-witness`).
//!
//! The state (per log: checkpoint, next index, the tree's right edge, the findings reported
//! at indexes not yet saved) is replaced atomically after every chunk, so a monitor killed at
//! any moment resumes without missing an entry, and reports a finding again only if it was
//! killed between printing it and saving (one line at most).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sigil_core::crypto::PublicKey;
use sigil_core::merkle::{self, Hash};
use sigil_core::note::CosignatureV1Key;
use sigil_core::rekor::{Signer, parse_verifier};
use sigil_core::trust::TrustedRoot;

use crate::exit;
use crate::log_http::fetch_json;

/// Entries asked for per request (the Rekor v1 retrieve limit).
const CHUNK: u64 = 100;

/// What to report.
#[derive(Clone, Debug, Default)]
pub struct WatchList {
    /// Certificate identities (SAN e-mail, URI...) to report; `*` matches any run of characters.
    pub identities: Vec<String>,
    /// OIDC issuers (the Fulcio issuer extension) to report.
    pub issuers: Vec<String>,
    /// SHA-256 (hex) of public keys (SubjectPublicKeyInfo DER) to report.
    pub keys: Vec<String>,
    /// When set: report every certificate identity that matches none of these.
    pub allowed_identities: Vec<String>,
}

/// `*` matches any run of characters; everything else itself (case-insensitive, as SANs are).
pub fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, s.get(i..).unwrap_or_default())),
            Some((c, rest)) => match s.split_first() {
                Some((d, srest)) if d.eq_ignore_ascii_case(c) => go(rest, srest),
                _ => false,
            },
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// One signer of an entry, as the watch list sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerFacts {
    pub identities: Vec<String>,
    pub issuer: Option<String>,
    pub key_sha256: String,
}

/// The signers' facts of a stored Rekor v1 body (hashedrekord, dsse, intoto 0.0.1 / 0.0.2).
pub fn signers_of(body: &[u8]) -> Result<Vec<SignerFacts>> {
    let v: Value = serde_json::from_slice(body).context("entry body is not JSON")?;
    let spec = v
        .get("spec")
        .ok_or_else(|| anyhow!("entry body has no spec"))?;
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    if let Some(verifier) = spec.pointer("/hashedRekordV002/signature/verifier") {
        // Rekor v2: the verifier's DER, a certificate or a public key.
        let (label, der) = match (verifier.get("x509Certificate"), verifier.get("publicKey")) {
            (Some(c), _) => ("CERTIFICATE", c),
            (None, Some(k)) => ("PUBLIC KEY", k),
            _ => bail!("a v2 entry's verifier has no key"),
        };
        let der = der
            .get("rawBytes")
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok())
            .ok_or_else(|| anyhow!("a v2 entry's verifier is not base64"))?;
        let pem = sigil_core::certs::pem_encode(label, &der);
        return facts(&[STANDARD.encode(pem)]);
    }
    let pems: Vec<&str> = match kind {
        "hashedrekord" => spec
            .pointer("/signature/publicKey/content")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
        "dsse" => spec
            .get("signatures")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("verifier")?.as_str())
                    .collect()
            })
            .unwrap_or_default(),
        "intoto" => match spec.get("publicKey").and_then(Value::as_str) {
            Some(k) => vec![k],
            None => spec
                .pointer("/content/envelope/signatures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.get("publicKey")?.as_str())
                        .collect()
                })
                .unwrap_or_default(),
        },
        other => bail!("entry kind {other:?} is not one the monitor reads"),
    };
    facts(&pems.into_iter().map(str::to_owned).collect::<Vec<_>>())
}

/// The facts of each verifier (base64 of its PEM).
fn facts(pems: &[String]) -> Result<Vec<SignerFacts>> {
    let mut out = Vec::new();
    for b64 in pems {
        let pem = STANDARD.decode(b64).context("a verifier is not base64")?;
        let verifier = parse_verifier(&pem, "verifier").map_err(|e| anyhow!("{e}"))?;
        let (issuer, spki) = match &verifier.signer {
            Signer::Certificate(chain) => {
                let leaf = chain
                    .first()
                    .and_then(|d| sigil_core::certs::parse_certificate(d).ok());
                let issuer = leaf.as_ref().and_then(|c| {
                    [sigil_core::oid::ISSUER_V2, sigil_core::oid::ISSUER_V1]
                        .iter()
                        .find_map(|oid| {
                            let raw = sigil_core::certs::extension_value(c, &oid.to_string())?;
                            sigil_core::oid::fulcio_extension_string(oid, raw)
                        })
                });
                (issuer, verifier.key.spki_der().to_vec())
            }
            Signer::PublicKey(spki) => (None, spki.clone()),
        };
        out.push(SignerFacts {
            identities: verifier.subjects.clone(),
            issuer,
            key_sha256: hex::encode(sigil_core::crypto::sha256(&spki)),
        });
    }
    Ok(out)
}

impl WatchList {
    /// The rules an entry's signers trip, as `(rule, signer)`.
    pub fn matches(&self, signers: &[SignerFacts]) -> Vec<(String, SignerFacts)> {
        let mut found = Vec::new();
        for s in signers {
            for id in &s.identities {
                if let Some(p) = self.identities.iter().find(|p| glob(p, id)) {
                    found.push((format!("identity {p}"), s.clone()));
                }
                if !self.allowed_identities.is_empty()
                    && !self.allowed_identities.iter().any(|p| glob(p, id))
                {
                    found.push(("identity not on the allow list".into(), s.clone()));
                }
            }
            if let Some(iss) = &s.issuer
                && let Some(p) = self.issuers.iter().find(|p| glob(p, iss))
            {
                found.push((format!("issuer {p}"), s.clone()));
            }
            if self
                .keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&s.key_sha256))
            {
                found.push(("key".into(), s.clone()));
            }
        }
        found
    }
}

/// What the monitor remembers of one log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogState {
    pub origin: String,
    /// The last checkpoint verified and fully read.
    pub size: u64,
    pub root: String,
    /// Entries read so far (the tree's first `next_index` leaves).
    pub next_index: u64,
    /// The right edge of the tree of those leaves: (height, hash hex), largest first.
    pub edge: Vec<(u32, String)>,
    /// Findings already printed at indexes ≥ `next_index` (UUID and rule).
    pub reported: Vec<String>,
}

/// The monitor's state file: one entry per log URL.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub logs: BTreeMap<String, LogState>,
}

impl State {
    pub fn load(path: &Path) -> Result<State> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is not a monitor state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Replaces the file atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }
}

fn edge_push(edge: &mut Vec<(u32, Hash)>, leaf: Hash) {
    let mut node = (0u32, leaf);
    while let Some(&(h, left)) = edge.last() {
        if h != node.0 {
            break;
        }
        edge.pop();
        node = (h + 1, merkle::node_hash(&left, &node.1));
    }
    edge.push(node);
}

fn edge_root(edge: &[(u32, Hash)]) -> Hash {
    let mut it = edge.iter().rev();
    match it.next() {
        None => merkle::empty_root(),
        Some(&(_, last)) => it.fold(last, |acc, (_, h)| merkle::node_hash(h, &acc)),
    }
}

/// Where findings and checkpoints go.
pub struct Sink {
    pub webhook: Option<String>,
}

impl Sink {
    fn emit(&self, line: &Value) -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }

    fn finding(&self, line: &Value) -> Result<()> {
        self.emit(line)?;
        if let Some(url) = &self.webhook {
            let resp = crate::http::http()?
                .post(url)
                .json(line)
                .send()
                .with_context(|| format!("POST {url}"))?;
            if !resp.status().is_success() {
                bail!("the webhook {url} answered {}", resp.status());
            }
        }
        Ok(())
    }
}

/// One pass over one log: from the saved state to the log's current checkpoint. Returns the
/// number of entries read.
pub fn follow(
    log: &crate::logs::Log,
    root: &TrustedRoot,
    watch: &WatchList,
    state: &mut State,
    state_path: &Path,
    sink: &Sink,
) -> Result<u64> {
    let base = log.url.trim_end_matches('/');
    let v2 = log.version == 2;
    // v1 and v2 logs may share a base URL: each has its own state.
    let key = if v2 {
        format!("{base} v2")
    } else {
        base.to_string()
    };
    let (size, root_hash, origin) = crate::logs::verified_head(log, root)?;
    let mut st = state.logs.get(&key).cloned().unwrap_or_default();
    if st.origin != origin {
        // A new tree (first run, or the log was rotated to a new shard): start it from 0.
        st = LogState {
            origin: origin.clone(),
            ..LogState::default()
        };
    }
    let fail = |m: String| exit::verification(format!("log {base}: {m}"));
    if st.size > size {
        sink.emit(
            &json!({"type": "inconsistency", "log": base, "reason": "shrank",
            "previousSize": st.size, "size": size}),
        )?;
        return Err(fail(format!("the log shrank from {} to {size}", st.size)));
    }
    if st.size > 0 && st.size < size {
        let old_root: Hash = hex::decode(&st.root)?
            .try_into()
            .map_err(|_| anyhow!("stored root is not 32 bytes"))?;
        let proof = crate::logs::consistency_proof(log, st.size, size)?;
        if let Err(e) = merkle::verify_consistency(st.size, size, &old_root, &root_hash, &proof) {
            sink.emit(
                &json!({"type": "inconsistency", "log": base, "reason": "consistency proof",
                "previousSize": st.size, "size": size, "error": e.to_string()}),
            )?;
            return Err(fail(format!(
                "checkpoint {size} is not consistent with {}: {e}",
                st.size
            )));
        }
    } else if st.size == size && st.size > 0 && st.root != hex::encode(root_hash) {
        sink.emit(&json!({"type": "inconsistency", "log": base, "reason": "another root for the same size",
            "size": size}))?;
        return Err(fail(format!("a second root for size {size}")));
    }
    // Global v1 indexes of this tree start after the retired shards' entries.
    let offset: u64 = if v2 {
        0
    } else {
        fetch_json(&format!("{base}/api/v1/log"), None)?
            .unwrap_or_default()
            .get("inactiveShards")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.get("treeSize")?.as_u64()).sum())
            .unwrap_or(0)
    };
    let mut edge: Vec<(u32, Hash)> = st
        .edge
        .iter()
        .map(|(h, x)| {
            let hash: Hash = hex::decode(x)?
                .try_into()
                .map_err(|_| anyhow!("edge hash is not 32 bytes"))?;
            Ok((*h, hash))
        })
        .collect::<Result<_>>()?;
    let mut read = 0;
    while st.next_index < size {
        let (end, mut by_index) = if v2 {
            let bodies = crate::log_v2::entry_bodies(base, st.next_index, size)?;
            let mut m = BTreeMap::new();
            for (i, body) in (st.next_index..).zip(bodies) {
                m.insert(i, (hex::encode(merkle::leaf_hash(&body)), body));
            }
            (st.next_index + m.len() as u64, m)
        } else {
            let end = (st.next_index + CHUNK).min(size);
            (end, v1_chunk(base, st.next_index, end, offset)?)
        };
        if end == st.next_index {
            bail!("log {base} served no entry at {}", st.next_index);
        }
        for i in st.next_index..end {
            let (uuid, body) = by_index
                .remove(&i)
                .ok_or_else(|| anyhow!("log {base} did not serve entry {}", i + offset))?;
            edge_push(&mut edge, merkle::leaf_hash(&body));
            let signers = signers_of(&body).unwrap_or_default();
            for (rule, s) in watch.matches(&signers) {
                let seen = format!("{uuid} {rule}");
                if st.reported.contains(&seen) {
                    continue;
                }
                sink.finding(
                    &json!({"type": "finding", "log": base, "logIndex": i + offset,
                    "uuid": uuid, "rule": rule, "identities": s.identities, "issuer": s.issuer,
                    "keySha256": s.key_sha256}),
                )?;
                st.reported.push(seen);
                // Saved at once: a restart must not report it again.
                state.logs.insert(key.clone(), st.clone());
                state.save(state_path)?;
            }
        }
        read += end - st.next_index;
        st.next_index = end;
        st.reported.clear();
        st.edge = edge.iter().map(|(h, x)| (*h, hex::encode(x))).collect();
        state.logs.insert(key.clone(), st.clone());
        state.save(state_path)?;
    }
    if edge_root(&edge) != root_hash {
        sink.emit(&json!({"type": "inconsistency", "log": base,
            "reason": "the entries served do not hash to the checkpoint's root", "size": size}))?;
        return Err(fail(format!(
            "the {size} entries served do not hash to the checkpoint's root"
        )));
    }
    st.size = size;
    st.root = hex::encode(root_hash);
    state.logs.insert(key, st);
    state.save(state_path)?;
    sink.emit(
        &json!({"type": "checkpoint", "log": base, "origin": origin, "size": size,
        "rootHash": hex::encode(root_hash), "entriesRead": read}),
    )?;
    Ok(read)
}

/// Entries `start..end` of a Rekor v1 tree whose global indexes start at `offset`: (UUID, body)
/// by tree index.
fn v1_chunk(
    base: &str,
    start: u64,
    end: u64,
    offset: u64,
) -> Result<BTreeMap<u64, (String, Vec<u8>)>> {
    let indexes: Vec<u64> = (start + offset..end + offset).collect();
    let answer = fetch_json(
        &format!("{base}/api/v1/log/entries/retrieve"),
        Some(&json!({"logIndexes": indexes})),
    )?
    .unwrap_or(Value::Array(Vec::new()));
    let mut by_index = BTreeMap::new();
    for item in answer.as_array().into_iter().flatten() {
        for (uuid, e) in item.as_object().into_iter().flatten() {
            let idx = e
                .get("logIndex")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let body = e
                .get("body")
                .and_then(Value::as_str)
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or_else(|| anyhow!("entry {uuid} has no body"))?;
            by_index.insert(idx.saturating_sub(offset), (uuid.clone(), body));
        }
    }
    Ok(by_index)
}

/// Two URLs of one log must show consistent checkpoints (the smaller a prefix of the larger,
/// proven by the larger side), or the log shows different views to different readers.
pub fn compare(a: &str, b: &str, root: &TrustedRoot, sink: &Sink) -> Result<()> {
    let (sa, ra, oa) = crate::log_v1::verified_head(a, root)?;
    let (sb, rb, ob) = crate::log_v1::verified_head(b, root)?;
    let split = |reason: String| -> Result<()> {
        sink.emit(
            &json!({"type": "inconsistency", "reason": "split view", "logs": [a, b],
            "sizes": [sa, sb], "detail": reason}),
        )?;
        Err(exit::verification(format!(
            "split view between {a} and {b}: {reason}"
        )))
    };
    if oa != ob {
        return split(format!("origins differ: {oa:?} and {ob:?}"));
    }
    // The larger side proves it.
    let prover = if sa <= sb { b } else { a };
    match disagreement((sa, ra), (sb, rb), |old, new| {
        crate::log_v1::consistency_proof(prover, old, new)
    })? {
        Some(reason) => split(reason),
        None => Ok(()),
    }
}

/// Why two checkpoints of one log are not views of one tree (the smaller a prefix of the
/// larger, proven by `prove(small, large)`), if they are not.
fn disagreement(
    (sa, ra): (u64, Hash),
    (sb, rb): (u64, Hash),
    prove: impl FnOnce(u64, u64) -> Result<Vec<Hash>>,
) -> Result<Option<String>> {
    let ((small, small_root), (large, large_root)) = if sa <= sb {
        ((sa, ra), (sb, rb))
    } else {
        ((sb, rb), (sa, ra))
    };
    if small == large {
        return Ok((ra != rb).then(|| format!("two roots for size {sa}")));
    }
    if small == 0 {
        return Ok(None);
    }
    let proof = prove(small, large)?;
    Ok(
        merkle::verify_consistency(small, large, &small_root, &large_root, &proof)
            .err()
            .map(|e| format!("size {small} is not a prefix of size {large}: {e}")),
    )
}

/// A witness is a second vantage point: the latest checkpoint it cosigned for a log (signed by
/// the log's trusted key, cosigned by `witness_key`) must be consistent with the log's current
/// one, proven by the log, or the log showed the witness a view it does not show this monitor.
pub fn compare_witness(
    log: &crate::logs::Log,
    witness: &str,
    witness_key: &CosignatureV1Key,
    root: &TrustedRoot,
    sink: &Sink,
) -> Result<()> {
    let witness = witness.trim_end_matches('/');
    let (size, log_root, origin) = crate::logs::verified_head(log, root)?;
    let mut url = url::Url::parse(&format!("{witness}/checkpoint"))
        .with_context(|| format!("witness URL {witness:?}"))?;
    url.query_pairs_mut().append_pair("origin", &origin);
    let resp = crate::http::http()?
        .get(url.as_str())
        .send()
        .map_err(|e| exit::network(format!("GET {url}: {e}")))?;
    let status = resp.status();
    let body = resp.bytes().with_context(|| format!("reading {url}"))?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return sink.emit(
            &json!({"type": "vantage", "log": log.base(), "witness": witness,
            "status": "the witness has cosigned nothing of this log",
            "detail": String::from_utf8_lossy(&body)}),
        );
    }
    if !status.is_success() {
        return Err(exit::network(format!(
            "the witness {witness} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let note = sigil_core::note::Note::parse(&body)
        .map_err(|e| exit::verification(format!("the witness {witness} served no note: {e}")))?;
    note.verify(&[witness_key as &dyn sigil_core::note::NoteVerifier])
        .map_err(|e| {
            exit::verification(format!(
                "the checkpoint served by {witness} carries no valid cosignature of {}: {e}",
                witness_key.name()
            ))
        })?;
    let (wsize, wroot) = root
        .tlogs
        .iter()
        .find_map(|l| {
            let k = PublicKey::from_spki_der(&l.public_key.raw_bytes).ok()?;
            crate::verify::verify_checkpoint(&body, &k).ok()
        })
        .ok_or_else(|| {
            exit::verification(format!(
                "the checkpoint served by {witness} is not signed by a trusted log key"
            ))
        })?;
    let split = |reason: String| -> Result<()> {
        sink.emit(&json!({"type": "inconsistency", "reason": "split view",
            "log": log.base(), "witness": witness, "sizes": [size, wsize], "detail": reason}))?;
        Err(exit::verification(format!(
            "split view between {} and what {witness} cosigned: {reason}",
            log.describe()
        )))
    };
    if let Some(reason) = disagreement((size, log_root), (wsize, wroot), |old, new| {
        crate::logs::consistency_proof(log, old, new)
    })? {
        return split(reason);
    }
    sink.emit(
        &json!({"type": "vantage", "log": log.base(), "witness": witness,
        "status": "consistent", "log_size": size, "witness_size": wsize}),
    )
}

/// The state file's default place.
pub fn default_state() -> Result<PathBuf> {
    Ok(crate::config::config_dir()?.join("monitor-state.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_gives_the_tree_root() {
        let leaves: Vec<Hash> = (0u32..40)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut edge = Vec::new();
        assert_eq!(edge_root(&edge), merkle::empty_root());
        for (n, l) in leaves.iter().enumerate() {
            edge_push(&mut edge, *l);
            assert_eq!(
                edge_root(&edge),
                merkle::root_from_leaves(&leaves[..=n]),
                "size {}",
                n + 1
            );
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*@example.com", "Alice@Example.com"));
        assert!(!glob("*@example.com", "alice@example.com.evil"));
        assert!(glob(
            "https://github.com/org/*",
            "https://github.com/org/repo/.github/w.yml@refs/heads/main"
        ));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
    }
}
