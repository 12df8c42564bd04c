//! A Rekor v2 log: logging an entry, and reading it, which has no entry API: an entry and its
//! inclusion proof come from the log's static C2SP tiles, checked against its signed checkpoint.

use std::time::Duration;

use crate::log_http::{SendToLog, fetch_json};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use sigil_core::bundle::TransparencyLogEntry;
use sigil_core::crypto::PublicKey;
use sigil_core::merkle::{self, Hash};
use sigil_core::tiles::{TILE_WIDTH, TileId, TileSet, parse_entry_bundle, tiles_for_nodes};
use sigil_core::trust::TrustedRoot;

use crate::http::{http, json_answer};

/// Sigil's search extension of the Rekor v2 API.
pub const V2_SEARCH_PATH: &str = "/api/v2/sigil/index/retrieve";

/// One entry of a Rekor v2 log, proven to be in its latest checkpoint.
#[derive(Debug)]
pub struct V2Entry {
    pub index: u64,
    pub body: Vec<u8>,
    /// SHA-256 of the trusted-root key that signed the checkpoint (the log id).
    pub log_id: Vec<u8>,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub proof: Vec<Hash>,
    pub checkpoint: String,
}

fn get(url: &str) -> Result<Vec<u8>> {
    let resp = http()?
        .get(url)
        .send_to_log()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.bytes().with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body.to_vec())
}

/// Fetches the log's checkpoint and verifies it with a trusted-root key of that log; returns
/// (checkpoint text, tree size, root hash, log id).
pub fn checkpoint(base: &str, root: &TrustedRoot) -> Result<(String, u64, Hash, Vec<u8>)> {
    let text = String::from_utf8(get(&format!("{base}/api/v2/checkpoint"))?)
        .context("the checkpoint is not UTF-8")?;
    let mut reasons = Vec::new();
    for log in root
        .tlogs
        .iter()
        .filter(|l| l.base_url.trim_end_matches('/') == base)
    {
        let key = match PublicKey::from_spki_der(&log.public_key.raw_bytes) {
            Ok(k) => k,
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        match crate::verify::verify_checkpoint(text.as_bytes(), &key) {
            Ok((size, hash)) => return Ok((text, size, hash, log.log_id.key_id.clone())),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if reasons.is_empty() {
        bail!("the trusted root lists no log at {base}");
    }
    bail!(
        "the checkpoint of {base} is not signed by a trusted key of that log: {}",
        reasons.join("; ")
    )
}

/// The Rekor v2 log's latest checkpoint, verified with its trusted-root key: (size, root hash,
/// origin).
pub fn verified_head(rekor_url: &str, root: &TrustedRoot) -> Result<(u64, Hash, String)> {
    let (text, size, hash, _) = checkpoint(rekor_url.trim_end_matches('/'), root)?;
    Ok((size, hash, origin_of(&text)))
}

/// A checkpoint's origin: its first line.
pub fn origin_of(checkpoint: &str) -> String {
    checkpoint.lines().next().unwrap_or_default().to_string()
}

/// Fetches the tiles holding the hashes of `nodes` in a tree of `size`.
fn tiles_for(base: &str, nodes: &[merkle::NodeId], size: u64) -> Result<TileSet> {
    let mut tiles = TileSet::new();
    for tile in tiles_for_nodes(nodes, size) {
        let data = get(&format!("{base}/api/v2/{}", tile.path()))?;
        tiles
            .insert(tile, data)
            .with_context(|| format!("tile {}", tile.path()))?;
    }
    Ok(tiles)
}

/// A consistency proof from tree size `old` to `new`, computed from the log's tiles (Rekor v2
/// serves no proofs; the caller verifies it against both roots).
pub fn consistency_proof(rekor_url: &str, old: u64, new: u64) -> Result<Vec<Hash>> {
    let base = rekor_url.trim_end_matches('/');
    let nodes = merkle::consistency_proof_nodes(old, new)
        .map_err(|e| anyhow!("consistency proof {old} → {new}: {e:?}"))?;
    let tiles = tiles_for(base, &nodes, new)?;
    merkle::consistency_proof(old, new, &tiles)
        .map_err(|e| anyhow!("consistency proof from the tiles: {e:?}"))
}

/// Entry `index` of the Rekor v2 log at `rekor_url`, with an inclusion proof computed from its
/// tiles and checked against its verified checkpoint.
pub fn get_entry(rekor_url: &str, index: u64, root: &TrustedRoot) -> Result<V2Entry> {
    let base = rekor_url.trim_end_matches('/');
    find_entry(base, index, root)?.ok_or_else(|| {
        anyhow!("the Rekor v2 log at {base} has fewer entries; there is no index {index}")
    })
}

/// The bodies of entries `start..` (at most to the end of `start`'s entry bundle, and below
/// `size`) from the log's entry bundle tile; the caller checks them against a checkpoint.
pub fn entry_bodies(rekor_url: &str, start: u64, size: u64) -> Result<Vec<Vec<u8>>> {
    let base = rekor_url.trim_end_matches('/');
    let first = start - start % TILE_WIDTH;
    let width = u16::try_from((size - first).min(TILE_WIDTH))?;
    let tile = TileId {
        level: 0,
        index: start / TILE_WIDTH,
        width,
    };
    let entries = parse_entry_bundle(&get(&format!("{base}/api/v2/{}", tile.entries_path()))?)?;
    Ok(entries
        .into_iter()
        .skip(usize::try_from(start - first)?)
        .collect())
}

/// Entry `index` of the Rekor v2 log, proven as [`get_entry`] does; `None` when the log's
/// checkpoint has no entry `index`.
pub fn find_entry(rekor_url: &str, index: u64, root: &TrustedRoot) -> Result<Option<V2Entry>> {
    let base = rekor_url.trim_end_matches('/');
    let (text, size, root_hash, log_id) = checkpoint(base, root)?;
    if index >= size {
        return Ok(None);
    }
    // From the entry bundle holding the entry: full, or the partial tile at the right edge.
    let body = entry_bodies(base, index, size)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the entry bundle of index {index} lacks it"))?;

    let nodes = merkle::inclusion_proof_nodes(index, size)
        .map_err(|e| anyhow!("inclusion proof of {index} in {size}: {e:?}"))?;
    let tiles = tiles_for(base, &nodes, size)?;
    let proof = merkle::inclusion_proof(index, size, &tiles)
        .map_err(|e| anyhow!("inclusion proof from the tiles: {e:?}"))?;
    let leaf = merkle::leaf_hash(&body);
    let computed = merkle::root_from_inclusion_proof(&leaf, index, size, &proof)?;
    if computed != root_hash {
        bail!("the entry's inclusion proof does not lead to the checkpoint's root hash");
    }
    Ok(Some(V2Entry {
        index,
        body,
        log_id,
        tree_size: size,
        root_hash,
        proof,
        checkpoint: text,
    }))
}

/// The entries Sigil's search extension of the log (`POST /api/v2/sigil/index/retrieve`) lists
/// for one search request: (UUID, index).
pub fn search(rekor_url: &str, request: &Value) -> Result<Vec<(String, Option<u64>)>> {
    let base = rekor_url.trim_end_matches('/');
    let url = format!("{base}{V2_SEARCH_PATH}");
    let answer = fetch_json(&url, Some(request))?.ok_or_else(|| {
        anyhow!(
            "Rekor v2 log {base} offers no search ({V2_SEARCH_PATH} is Sigil's extension of \
             Rekor v2); find entries with --rekor-version 1 or by --index"
        )
    })?;
    let list = answer
        .as_array()
        .ok_or_else(|| anyhow!("{url}: the answer is not a list"))?;
    Ok(list
        .iter()
        .filter_map(|h| {
            Some((
                h.get("uuid")?.as_str()?.to_string(),
                h.get("logIndex").and_then(Value::as_u64),
            ))
        })
        .collect())
}

/// Posts a `CreateEntryRequest` to a Rekor v2 log; returns the `TransparencyLogEntry`, which
/// arrives once the entry is in a signed checkpoint. A full log (503) is retried as it asks.
pub fn log_entry_v2(rekor_url: &str, request: &Value) -> Result<TransparencyLogEntry> {
    let url = format!("{}/api/v2/log/entries", rekor_url.trim_end_matches('/'));
    let client = http()?;
    let mut attempts = 0;
    loop {
        let resp = client
            .post(&url)
            .json(request)
            .send_to_log()
            .with_context(|| format!("POST {url}"))?;
        if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && attempts < 5 {
            attempts += 1;
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .min(10);
            std::thread::sleep(Duration::from_secs(wait));
            continue;
        }
        let entry = json_answer(resp, &format!("log {url}"))?;
        return serde_json::from_value(entry.clone())
            .with_context(|| format!("log {url}: answer is not a TransparencyLogEntry: {entry}"));
    }
}
