//! Trust distribution: the `trusted_root.json`, `signing_config.json` and client trust config
//! that Sigstore clients (sigil, sigstore-python, sigstore-js, cosign) need to use this instance.

use std::sync::Arc;

use crate::routes::Api;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, sha256};

pub const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
pub const SIGNING_CONFIG_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";
pub const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";

/// What the trust files describe.
pub struct TrustInputs {
    pub base_url: String,
    /// Where the transparency log, the CT log and the CA are reached (the base URL when one
    /// process serves every role).
    pub log_url: String,
    pub ct_url: String,
    pub ca_url: String,
    /// RFC 3339 start of validity for every key and CA listed.
    pub valid_from: String,
    pub log_key: Option<PublicKey>,
    pub ct_key: Option<PublicKey>,
    /// The Rekor v2 log's key: a second log at `log_url`, listed with `majorApiVersion: 2`.
    pub log_v2_key: Option<PublicKey>,
    /// DER certificates, intermediate first, root last.
    pub ca_chain: Vec<Vec<u8>>,
    /// DER TSA chain, leaf first.
    pub tsa_chain: Vec<Vec<u8>>,
    /// Base URL of the TSA; without one the signing config lists no TSA.
    pub tsa_url: Option<String>,
    pub oidc_url: Option<String>,
    pub operator: String,
    /// Rotated CAs and TSAs (still listed, their windows closed) and when the current ones
    /// started.
    pub history: crate::trust_history::History,
    /// Each log's witnesses (by the log's key), for `witnesses.json`.
    pub witnessing: Vec<(PublicKey, crate::witness::WitnessingConfig)>,
}

fn key_details(k: &PublicKey) -> &'static str {
    match k.algorithm() {
        KeyAlgorithm::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
        KeyAlgorithm::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
        KeyAlgorithm::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512",
        KeyAlgorithm::Ed25519 => "PKIX_ED25519",
        KeyAlgorithm::Rsa { .. } => "PKIX_RSA_PKCS1V15_2048_SHA256",
    }
}

/// A `validFor` window; `end` is set once a rotation retired the key or chain.
fn valid_for(start: &str, end: Option<&str>) -> Value {
    match end {
        Some(end) => json!({"start": start, "end": end}),
        None => json!({"start": start}),
    }
}

fn log_json(base_url: &str, k: &PublicKey, start: &str, end: Option<&str>) -> Value {
    let valid_for = valid_for(start, end);
    json!({
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": STANDARD.encode(k.spki_der()),
            "keyDetails": key_details(k),
            "validFor": valid_for,
        },
        "logId": {"keyId": STANDARD.encode(sha256(k.spki_der()))},
    })
}

fn chain_json(
    uri: &str,
    org: &str,
    cn: &str,
    chain: &[Vec<u8>],
    start: &str,
    end: Option<&str>,
) -> Value {
    let valid_for = valid_for(start, end);
    json!({
        "subject": {"organization": org, "commonName": cn},
        "uri": uri,
        "certChain": {"certificates": chain.iter().map(|c| json!({"rawBytes": STANDARD.encode(c)})).collect::<Vec<_>>()},
        "validFor": valid_for,
    })
}

impl TrustInputs {
    pub fn trusted_root(&self) -> Value {
        // Rekor v1's retired and current shards; retired Rekor v2 shards (read-only at
        // `<log url>/shards/<name>`), each closed at its rotation; the current Rekor v2 shard.
        let mut tlogs: Vec<Value> = Vec::new();
        // Rekor v1's shards share its URL (its API serves them all).
        for r in self.history.retired_logs("rekor") {
            if let Ok(k) = r.key() {
                tlogs.push(log_json(&self.log_url, &k, &r.start, Some(&r.end)));
            }
        }
        if let Some(k) = &self.log_key {
            tlogs.push(log_json(
                &self.log_url,
                k,
                &self.history.start("rekor"),
                None,
            ));
        }
        for r in self.history.retired_logs("rekor-v2") {
            // `History::load` refused keys that do not parse.
            if let Ok(k) = r.key() {
                let url = format!("{}/shards/{}", self.log_url, r.log_name);
                tlogs.push(log_json(&url, &k, &r.start, Some(&r.end)));
            }
        }
        if let Some(k) = &self.log_v2_key {
            let start = self.history.start("rekor-v2");
            tlogs.push(log_json(&self.log_url, k, &start, None));
        }
        let mut ctlogs: Vec<Value> = Vec::new();
        for r in self.history.retired_logs("ct") {
            if let Ok(k) = r.key() {
                let url = format!("{}/shards/{}", self.ct_url, r.log_name);
                ctlogs.push(log_json(&url, &k, &r.start, Some(&r.end)));
            }
        }
        if let Some(k) = &self.ct_key {
            ctlogs.push(log_json(&self.ct_url, k, &self.history.start("ct"), None));
        }
        // Retired chains first, each closed at its rotation; the current one last.
        let mut cas: Vec<Value> = self
            .history
            .retired("ca")
            .map(|r| {
                chain_json(
                    &self.ca_url,
                    &self.operator,
                    &self.operator,
                    &r.chain_der(),
                    &r.start,
                    Some(&r.end),
                )
            })
            .collect();
        if !self.ca_chain.is_empty() {
            cas.push(chain_json(
                &self.ca_url,
                &self.operator,
                &self.operator,
                &self.ca_chain,
                &self.history.start("ca"),
                None,
            ));
        }
        let tsa_uri = format!(
            "{}/api/v1/timestamp",
            self.tsa_url.as_deref().unwrap_or(&self.base_url)
        );
        let tsa_cn = format!("{} TSA", self.operator);
        let mut tsas: Vec<Value> = self
            .history
            .retired("tsa")
            .map(|r| {
                chain_json(
                    &tsa_uri,
                    &self.operator,
                    &tsa_cn,
                    &r.chain_der(),
                    &r.start,
                    Some(&r.end),
                )
            })
            .collect();
        if !self.tsa_chain.is_empty() {
            tsas.push(chain_json(
                &tsa_uri,
                &self.operator,
                &tsa_cn,
                &self.tsa_chain,
                &self.history.start("tsa"),
                None,
            ));
        }
        json!({
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": tlogs,
            "certificateAuthorities": cas,
            "ctlogs": ctlogs,
            "timestampAuthorities": tsas,
        })
    }

    pub fn signing_config(&self) -> Value {
        let svc = |url: String, version: u32| json!({"url": url, "majorApiVersion": version, "validFor": {"start": self.valid_from}, "operator": self.operator});
        let rekor_urls: Vec<Value> = [
            self.log_key.as_ref().map(|_| svc(self.log_url.clone(), 1)),
            self.log_v2_key
                .as_ref()
                .map(|_| svc(self.log_url.clone(), 2)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut cfg = json!({
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": if self.ca_chain.is_empty() { vec![] } else { vec![svc(self.ca_url.clone(), 1)] },
            "oidcUrls": self.oidc_url.iter().map(|u| svc(u.clone(), 1)).collect::<Vec<_>>(),
            "rekorTlogUrls": rekor_urls,
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": match (&self.tsa_url, self.tsa_chain.is_empty()) {
                (Some(u), false) => vec![svc(format!("{u}/api/v1/timestamp"), 1)],
                _ => vec![],
            },
        });
        let lists_tsa = self.tsa_url.is_some() && !self.tsa_chain.is_empty();
        if let (true, Some(obj)) = (lists_tsa, cfg.as_object_mut()) {
            obj.insert("tsaConfig".into(), json!({"selector": "ANY"}));
        }
        cfg
    }

    pub fn client_trust_config(&self) -> Value {
        json!({
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self.trusted_root(),
            "signingConfig": self.signing_config(),
        })
    }

    /// SHA-256 of the trusted root JSON as served: the fingerprint users pin.
    pub fn fingerprint(&self) -> String {
        hex::encode(sha256(&pretty(&self.trusted_root())))
    }
}

/// Pretty JSON bytes, exactly as served and written to disk.
pub fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

impl TrustInputs {
    /// `witnesses.json`: per log (its trusted-root log ID), the witnesses that cosign its
    /// checkpoints and how many must.
    pub fn witnesses(&self) -> Value {
        let logs: Vec<Value> = self
            .witnessing
            .iter()
            .filter(|(_, w)| !w.witnesses.is_empty())
            .map(|(k, w)| {
                json!({
                    "logId": {"keyId": STANDARD.encode(sha256(k.spki_der()))},
                    "threshold": w.threshold.unwrap_or(w.witnesses.len()),
                    "witnesses": w.witnesses.iter().map(|e| json!({"url": e.url, "vkey": e.vkey})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"mediaType": WITNESSES_MEDIA_TYPE, "logs": logs})
    }
}

/// Media type of `witnesses.json` (Sigil's own document).
pub const WITNESSES_MEDIA_TYPE: &str = "application/vnd.dev.sigil.witness-policy.v0.1+json";

/// `GET /api/v1/trust/*.json`.
pub fn router(trust: Arc<TrustInputs>) -> Api {
    Api::new()
        .get("/api/v1/trust/trusted_root.json", trusted_root)
        .get("/api/v1/trust/signing_config.json", signing_config)
        .get(
            "/api/v1/trust/client_trust_config.json",
            client_trust_config,
        )
        .get("/api/v1/trust/witnesses.json", witnesses)
        .with_state(trust)
}

fn json_bytes(v: &Value) -> Response {
    // Exactly the bytes written to disk and fingerprinted, so a pinned digest matches.
    ([(header::CONTENT_TYPE, "application/json")], pretty(v)).into_response()
}

async fn trusted_root(State(t): State<Arc<TrustInputs>>) -> Response {
    json_bytes(&t.trusted_root())
}
async fn signing_config(State(t): State<Arc<TrustInputs>>) -> Response {
    json_bytes(&t.signing_config())
}
async fn client_trust_config(State(t): State<Arc<TrustInputs>>) -> Response {
    json_bytes(&t.client_trust_config())
}
async fn witnesses(State(t): State<Arc<TrustInputs>>) -> Response {
    json_bytes(&t.witnesses())
}
