//! `POST /api/v1/index/retrieve`: Rekor's search by artifact hash, public key, e-mail or subject,
//! over every shard of the log.

use std::collections::HashSet;
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

use super::{RekorState, body_json, entry_error};
use crate::error::AppError;

/// How the criteria of a search combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    And,
    Or,
}

/// A non-empty string field of a search query; empty strings count as absent, as in Rekor.
fn query_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, AppError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.is_empty() => Ok(None),
        Some(Value::String(v)) => Ok(Some(v)),
        Some(_) => Err(AppError::bad_request(format!("{key} must be a string"))),
    }
}

/// Longest `subject` Rekor takes (its index key width).
const MAX_SUBJECT_LEN: usize = 512;

/// The search keys of an `/api/v1/index/retrieve` query and how to combine them. Each criterion
/// is one key; `or` (Rekor's default) answers the union of their entries, `and` the
/// intersection.
fn search_keys(req: &Value) -> Result<(Vec<String>, Operator), AppError> {
    let obj = req.as_object().ok_or_else(|| {
        AppError::bad_request(
            "body must be an object {hash?, publicKey?, email?, subject?, operator?}",
        )
    })?;
    let operator = match query_str(obj, "operator")? {
        None | Some("or") => Operator::Or,
        Some("and") => Operator::And,
        Some(other) => {
            return Err(AppError::bad_request(format!(
                "operator must be \"and\" or \"or\" (the default), got {other:?}"
            )));
        }
    };
    let mut keys = Vec::new();
    if let Some(h) = query_str(obj, "hash")? {
        keys.push(rekor::search_hash_key(h).map_err(AppError::BadRequest)?);
    }
    match obj.get("publicKey") {
        None | Some(Value::Null) => {}
        Some(Value::Object(pk)) => {
            match query_str(pk, "format")? {
                None | Some("x509") => {}
                Some(other) => {
                    return Err(AppError::bad_request(format!(
                        "publicKey.format {other:?} is not supported by this log: only x509 \
                         (PEM public keys and certificates) is"
                    )));
                }
            }
            let content = query_str(pk, "content")?.ok_or_else(|| {
                AppError::bad_request("publicKey.content (base64 of a PEM key) is required")
            })?;
            let pem = STANDARD.decode(content).map_err(|e| {
                AppError::bad_request(format!("publicKey.content is not base64: {e}"))
            })?;
            let v = rekor::parse_verifier(&pem, "publicKey.content").map_err(entry_error)?;
            keys.push(format!(
                "sha256:{}",
                hex::encode(sha256(v.canonical_pem.as_bytes()))
            ));
        }
        Some(_) => {
            return Err(AppError::bad_request(
                "publicKey must be an object {format, content}",
            ));
        }
    }
    if let Some(email) = query_str(obj, "email")? {
        let (local, domain) = email.split_once('@').unwrap_or_default();
        if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
            return Err(AppError::bad_request(format!(
                "email {email:?} is not an e-mail address"
            )));
        }
        keys.push(email.to_lowercase());
    }
    if let Some(subject) = query_str(obj, "subject")? {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(AppError::bad_request(format!(
                "subject is {} bytes long; at most {MAX_SUBJECT_LEN}",
                subject.len()
            )));
        }
        keys.push(subject.to_lowercase());
    }
    if keys.is_empty() {
        return Err(AppError::bad_request(
            "give at least one of hash, publicKey, email or subject",
        ));
    }
    Ok((keys, operator))
}

pub(super) async fn search_index(
    State(s): State<Arc<RekorState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let (keys, operator) = search_keys(&body_json(body)?)?;
    let cap = usize::try_from(s.max_search_results).unwrap_or(usize::MAX);
    let mut ids: Vec<String> = Vec::new();
    // Each shard is its own tree and index: combine the criteria within each.
    for shard in s.shards() {
        let mut result: Option<Vec<Hash>> = None;
        for k in &keys {
            let found = shard.log.search(k, s.max_search_results).await?;
            result = Some(match (result, operator) {
                (None, _) => found,
                (Some(prev), Operator::And) => {
                    let found: HashSet<Hash> = found.into_iter().collect();
                    prev.into_iter().filter(|h| found.contains(h)).collect()
                }
                (Some(mut prev), Operator::Or) => {
                    let mut seen: HashSet<Hash> = prev.iter().copied().collect();
                    prev.extend(found.into_iter().filter(|h| seen.insert(*h)));
                    prev
                }
            });
        }
        let tree = shard.tree_u64();
        ids.extend(
            result
                .unwrap_or_default()
                .iter()
                .map(|h| rekor::entry_id(tree, &hex::encode(h))),
        );
    }
    ids.truncate(cap);
    Ok(Json(json!(ids)))
}
