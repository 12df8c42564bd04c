//! Sigil extension, not part of the Rekor v2 API: a search index over the Rekor v2 log.
//!
//! Rekor v2 serves only tiles, so a client cannot find an entry by artifact, identity or UUID.
//! The sequencer already stores search keys for every v2 entry (digest, verifier PEM hash and the
//! certificate's SAN identities, computed as for v1 entries); this endpoint reads them.
//!
//! `POST /api/v2/sigil/index/retrieve` `{hash?, email?, publicKey?: {content: base64 PEM},
//! uuid?, operator?: "or"|"and"}` → `[{"uuid": hex leaf hash, "logIndex": n}]`, ordered by index.
//! Several criteria combine as `operator` says; "or" (the union) is the default, as for Rekor v1.
//! Answers name only entries already in a signed checkpoint; the caller reads and proves them
//! from the tiles.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::crypto::sha256;
use sigil_core::merkle::Hash;
use sigil_core::rekor;

use super::rekor_v2::RekorV2State;
use crate::error::AppError;

/// The extension's path.
pub const PATH: &str = "/api/v2/sigil/index/retrieve";

/// The route of the search extension, mounted beside the Rekor v2 API.
pub fn router(state: Arc<RekorV2State>) -> crate::routes::Api {
    crate::routes::Api::new()
        .post(PATH, retrieve)
        .with_state(state)
}

/// Answers are capped at this many entries per criterion.
const MAX_RESULTS: i64 = 1000;

/// One search criterion: a stored search key, or an entry's leaf hash.
#[derive(Debug, PartialEq, Eq)]
enum Criterion {
    Key(String),
    Leaf(Hash),
}

/// Parses the request into criteria and whether they must all match.
fn parse(req: &Value) -> Result<(Vec<Criterion>, bool), AppError> {
    let obj = req.as_object().ok_or_else(|| {
        AppError::bad_request(
            "body must be an object {hash?, email?, publicKey?, uuid?, operator?}",
        )
    })?;
    let mut criteria = Vec::new();
    if let Some(h) = obj.get("hash") {
        let h = h
            .as_str()
            .ok_or_else(|| AppError::bad_request("hash must be a string"))?
            .to_lowercase();
        let (alg, hex_part) = h.split_once(':').unwrap_or(("sha256", h.as_str()));
        let want = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => 0,
        };
        if hex_part.len() != want || hex::decode(hex_part).is_err() {
            return Err(AppError::bad_request(format!(
                "hash must be <sha256|sha384|sha512>:<hex digest>, got {h:?}"
            )));
        }
        criteria.push(Criterion::Key(format!("{alg}:{hex_part}")));
    }
    if let Some(pk) = obj.get("publicKey") {
        let content = pk
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| AppError::bad_request("publicKey.content (base64 PEM) is required"))?;
        let pem = STANDARD
            .decode(content)
            .map_err(|e| AppError::bad_request(format!("publicKey.content is not base64: {e}")))?;
        let v = rekor::parse_verifier(&pem, "publicKey.content")
            .map_err(|e| AppError::bad_request(e.to_string()))?;
        criteria.push(Criterion::Key(format!(
            "sha256:{}",
            hex::encode(sha256(v.canonical_pem.as_bytes()))
        )));
    }
    if let Some(email) = obj.get("email") {
        let email = email
            .as_str()
            .filter(|e| e.contains('@'))
            .ok_or_else(|| AppError::bad_request("email must be an e-mail address"))?;
        criteria.push(Criterion::Key(email.to_lowercase()));
    }
    if let Some(u) = obj.get("uuid") {
        let leaf = u
            .as_str()
            .and_then(rekor::parse_uuid_or_entry_id)
            .ok_or_else(|| AppError::bad_request("uuid must be 64 hex digits (the leaf hash)"))?;
        criteria.push(Criterion::Leaf(leaf));
    }
    if criteria.is_empty() {
        return Err(AppError::bad_request(
            "give at least one of hash, email, publicKey or uuid",
        ));
    }
    let all = match obj.get("operator").map(|o| o.as_str()) {
        None | Some(Some("or")) => false,
        Some(Some("and")) => true,
        Some(_) => {
            return Err(AppError::bad_request(
                "operator must be \"or\" (default) or \"and\"",
            ));
        }
    };
    Ok((criteria, all))
}

/// Leaf hash → index of the entries one criterion names, limited to the signed tree.
async fn matches(s: &RekorV2State, c: &Criterion) -> Result<BTreeMap<Hash, u64>, AppError> {
    let leaves = match c {
        Criterion::Key(k) => s.log.search(k, MAX_RESULTS).await?,
        Criterion::Leaf(l) => vec![*l],
    };
    let size = s.log.head().size;
    let mut out = BTreeMap::new();
    for leaf in leaves {
        if let Some(index) = s.log.index_of_leaf(&leaf).await?.filter(|i| *i < size) {
            out.insert(leaf, index);
        }
    }
    Ok(out)
}

/// `POST /api/v2/sigil/index/retrieve`.
pub async fn retrieve(
    State(s): State<Arc<RekorV2State>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let bytes = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge("request body is larger than the server accepts".into())
        } else {
            AppError::bad_request(format!("could not read the request body: {e}"))
        }
    })?;
    let req: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request(format!("request body is not valid JSON: {e}")))?;
    let (criteria, all) = parse(&req)?;
    let mut result: Option<BTreeMap<Hash, u64>> = None;
    for c in &criteria {
        let found = matches(&s, c).await?;
        result = Some(match result {
            None => found,
            Some(mut prev) if all => {
                prev.retain(|leaf, _| found.contains_key(leaf));
                prev
            }
            Some(mut prev) => {
                prev.extend(found);
                prev
            }
        });
    }
    let mut entries: Vec<(u64, Hash)> = result
        .unwrap_or_default()
        .into_iter()
        .map(|(leaf, index)| (index, leaf))
        .collect();
    entries.sort_unstable();
    Ok(Json(Value::Array(
        entries
            .into_iter()
            .map(|(index, leaf)| json!({"uuid": hex::encode(leaf), "logIndex": index}))
            .collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_into_criteria() {
        let digest = "ab".repeat(32);
        let (c, all) =
            parse(&json!({"hash": format!("SHA256:{digest}"), "email": "A@b.c"})).unwrap();
        assert_eq!(
            c,
            vec![
                Criterion::Key(format!("sha256:{digest}")),
                Criterion::Key("a@b.c".into())
            ]
        );
        assert!(!all, "the default operator is or");
        let (_, all) = parse(&json!({"email": "a@b.c", "operator": "and"})).unwrap();
        assert!(all);
        let (c, _) = parse(&json!({"uuid": digest})).unwrap();
        assert_eq!(c, vec![Criterion::Leaf([0xab; 32])]);
        for bad in [
            json!({}),
            json!([]),
            json!({"hash": "sha256:abc"}),
            json!({"hash": "md5:".to_string() + &digest}),
            json!({"email": "nobody"}),
            json!({"email": "a@b.c", "operator": "xor"}),
            json!({"uuid": "zz"}),
            json!({"publicKey": {"content": "not base64!"}}),
        ] {
            assert!(
                matches!(parse(&bad), Err(AppError::BadRequest(_))),
                "{bad} was accepted"
            );
        }
    }
}
