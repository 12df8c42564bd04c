//! `sigil-server witness`: a C2SP tlog-witness. It cosigns (tlog-cosignature, Ed25519
//! `cosignature/v1`) the checkpoints of the logs it is configured with, each only when a
//! consistency proof ties it to the last checkpoint it cosigned for that origin, so it never
//! cosigns two roots for one size. The check and the record are one compare-and-swap in its
//! own database, made durable before the cosignature is returned.
//!
//! Beyond the protocol, `GET /checkpoint?origin=O` serves the latest checkpoint it cosigned for
//! `O`, freshly cosigned: a second vantage point from which a monitor can tell whether the log
//! showed the witness the same tree it shows everyone else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sigil_core::checkpoint::Checkpoint;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::note::{CosignatureV1Key, EcdsaNoteKey, Ed25519NoteKey, Note, NoteVerifier};
use sigil_core::witness::{AddCheckpoint, Decision, SIZE_CONTENT_TYPE, decide};

use crate::error::AppError;
use crate::keyfile::resolve;
use crate::routes::Api;
use crate::storage::Store;

/// `[witness]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name: its cosignatures' key name (e.g. `witness.example.org/w1`).
    #[serde(default = "default_name")]
    pub name: String,
    /// Its Ed25519 key (PKCS#8 PEM), created on first start.
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// Its own database (SQLite file relative to the data dir, or PostgreSQL).
    #[serde(default = "default_db")]
    pub database_url: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The logs it cosigns.
    #[serde(default)]
    pub logs: Vec<WitnessedLog>,
}

/// One log a witness follows.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    /// The checkpoints' origin line.
    pub origin: String,
    /// The log's public key (PEM; ECDSA or Ed25519).
    pub public_key: PathBuf,
    /// The key name of the log's signatures (default: the origin up to ` - `, as Sigil and
    /// Rekor name theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
}

fn default_name() -> String {
    "sigil-witness".into()
}
fn default_key() -> PathBuf {
    "keys/witness.pem".into()
}
fn default_db() -> String {
    "sqlite://witness.db".into()
}
fn default_listen() -> String {
    "127.0.0.1:3100".into()
}

impl Default for WitnessConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            key: default_key(),
            database_url: default_db(),
            listen: default_listen(),
            logs: Vec::new(),
        }
    }
}

/// `[log.witnessing]`, `[rekor_v2.witnessing]`, `[ct.witnessing]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessingConfig {
    /// The witnesses (none: checkpoints are published with the log's signature only).
    #[serde(default)]
    pub witnesses: Vec<WitnessEndpoint>,
    /// Cosignatures a checkpoint needs (default: every witness).
    #[serde(default)]
    pub threshold: Option<usize>,
    /// Publish nothing that `threshold` witnesses did not cosign (writes get 503 meanwhile).
    /// Off: publish anyway, with a warning and `sigil_witness_cosign_failures_total`.
    #[serde(default = "yes")]
    pub fail_closed: bool,
    /// How long a witness may take to answer.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// One witness: where its `add-checkpoint` is and its verifier key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessEndpoint {
    /// The submission prefix (`<url>/add-checkpoint`).
    pub url: String,
    /// The witness's verifier key (`name+id+base64`, as `sigil-server witness` prints it).
    pub vkey: String,
}

fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    3000
}

impl WitnessingConfig {
    pub fn validate(&self, key: &str) -> Result<(), String> {
        for w in &self.witnesses {
            CosignatureV1Key::from_vkey(&w.vkey)
                .map_err(|e| format!("{key}.witnesses: {:?} is not a witness key: {e}", w.vkey))?;
        }
        if self.threshold.is_some_and(|t| t > self.witnesses.len()) {
            return Err(format!(
                "{key}.threshold is above the number of witnesses ({})",
                self.witnesses.len()
            ));
        }
        Ok(())
    }
}

/// A running witness: its key, the logs' verifiers, its store.
pub struct Witness {
    key: CosignatureV1Key,
    logs: HashMap<String, Box<dyn NoteVerifier + Send + Sync>>,
    store: Store,
}

impl Witness {
    /// Loads (or on first start creates) the key and the logs' verifiers.
    pub fn open(cfg: &WitnessConfig, data_dir: &Path, store: Store) -> anyhow::Result<Self> {
        let key_path = resolve(data_dir, &cfg.key);
        if !key_path.exists() {
            if let Some(dir) = key_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key = SigningKey::generate(KeyAlgorithm::Ed25519)?;
            crate::keyfile::write_new(&key_path, &key.to_pkcs8_pem()?, true)?;
        }
        let signing = crate::keyfile::read_key(&key_path)?;
        let key = CosignatureV1Key::signer(&cfg.name, signing)
            .map_err(|e| anyhow::anyhow!("witness.name {:?}: {e}", cfg.name))?;
        let mut logs: HashMap<String, Box<dyn NoteVerifier + Send + Sync>> = HashMap::new();
        for l in &cfg.logs {
            let public = crate::keyfile::read_public_key(&resolve(data_dir, &l.public_key))
                .with_context(|| format!("the key of the witnessed log {:?}", l.origin))?;
            let name = l
                .key_name
                .clone()
                .unwrap_or_else(|| l.origin.split(" - ").next().unwrap_or(&l.origin).to_owned());
            let verifier: Box<dyn NoteVerifier + Send + Sync> = match public.algorithm() {
                KeyAlgorithm::Ed25519 => Box::new(Ed25519NoteKey::verifier(&name, public)?),
                _ => Box::new(EcdsaNoteKey::verifier(&name, public)?),
            };
            logs.insert(l.origin.clone(), verifier);
        }
        Ok(Self { key, logs, store })
    }

    /// The verifier key clients configure (`name+id+base64`).
    /// Cosigns a checkpoint's text as of now.
    fn cosign_now(
        &self,
        text: &str,
    ) -> Result<sigil_core::note::NoteSignature, sigil_core::note::NoteError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
            .max(1);
        self.key.cosign(text, now)
    }

    pub fn vkey(&self) -> String {
        self.key.vkey()
    }
}

/// The witness's routes (submission and monitoring prefix: the server root).
pub fn router(w: Arc<Witness>) -> Api {
    Api::new()
        .post("/add-checkpoint", add_checkpoint)
        .get("/checkpoint", latest_checkpoint)
        .with_state(w)
}

fn answer(outcome: &'static str, err: AppError) -> Response {
    crate::metrics::witness(outcome);
    err.into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let req = match AddCheckpoint::parse(&body) {
        Ok(r) => r,
        Err(e) => return answer("malformed", AppError::BadRequest(e.to_string())),
    };
    let note = match Note::parse(&req.checkpoint) {
        Ok(n) => n,
        Err(e) => {
            return answer(
                "malformed",
                AppError::BadRequest(format!("the checkpoint is not a signed note: {e}")),
            );
        }
    };
    let cp = match Checkpoint::parse(&note.text) {
        Ok(c) => c,
        Err(e) => {
            return answer(
                "malformed",
                AppError::BadRequest(format!("not a checkpoint: {e}")),
            );
        }
    };
    let Some(verifier) = w.logs.get(&cp.origin) else {
        return answer(
            "unknown-origin",
            AppError::NotFound(format!("this witness does not follow {:?}", cp.origin)),
        );
    };
    if let Err(e) = note.verify(&[verifier.as_ref() as &dyn NoteVerifier]) {
        return answer(
            "bad-signature",
            AppError::Forbidden(format!("no valid signature of the log's key: {e}")),
        );
    }
    let latest = match w.store.witness_latest(&cp.origin).await {
        Ok(l) => l.map(|(size, root, _)| (size, root)),
        Err(e) => return answer("error", AppError::internal(e)),
    };
    match decide(&req, &cp, latest) {
        Decision::Cosign => {}
        Decision::OldSizeAboveCheckpoint => {
            return answer(
                "bad-old-size",
                AppError::BadRequest(format!(
                    "old size {} is above the checkpoint's size {}",
                    req.old_size, cp.size
                )),
            );
        }
        Decision::Conflict(size) => return conflict(size),
        Decision::Unprocessable(m) => {
            tracing::warn!(origin = %cp.origin, size = cp.size, reason = %m, "inconsistent checkpoint refused");
            crate::metrics::witness("inconsistent");
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(serde_json::json!({"code": 422, "message": m})),
            )
                .into_response();
        }
    }
    let (old_size, old_root) = latest.unwrap_or((0, sigil_core::merkle::empty_root()));
    match w
        .store
        .witness_advance(
            &cp.origin,
            (old_size, &old_root),
            (cp.size, &cp.root_hash, &req.checkpoint),
        )
        .await
    {
        Ok(true) => {}
        // Another request moved the record between the check and the write.
        Ok(false) => {
            let now = w
                .store
                .witness_latest(&cp.origin)
                .await
                .ok()
                .flatten()
                .map_or(0, |(s, _, _)| s);
            return conflict(now);
        }
        Err(e) => return answer("error", AppError::internal(e)),
    }
    match w.cosign_now(&note.text) {
        Ok(sig) => {
            crate::metrics::witness("cosigned");
            tracing::info!(origin = %cp.origin, size = cp.size, "cosigned");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                sig.to_line(),
            )
                .into_response()
        }
        Err(e) => answer("error", AppError::internal(e)),
    }
}

#[derive(Deserialize)]
struct OriginQuery {
    origin: String,
}

/// The latest checkpoint cosigned for an origin, with this witness's cosignature as of now
/// (it still vouches that nothing it has seen since contradicts it).
async fn latest_checkpoint(
    State(w): State<Arc<Witness>>,
    q: Result<axum::extract::Query<OriginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return AppError::BadRequest("pass the log's origin as ?origin=".into()).into_response();
    };
    if !w.logs.contains_key(&q.origin) {
        return AppError::NotFound(format!("this witness does not follow {:?}", q.origin))
            .into_response();
    }
    let stored = match w.store.witness_latest(&q.origin).await {
        Ok(Some((_, _, checkpoint))) => checkpoint,
        Ok(None) => {
            return AppError::NotFound(format!(
                "this witness has cosigned no checkpoint of {:?} yet",
                q.origin
            ))
            .into_response();
        }
        Err(e) => return AppError::internal(e).into_response(),
    };
    let note = match Note::parse(&stored) {
        Ok(n) => n,
        Err(e) => return AppError::internal(e).into_response(),
    };
    match w.cosign_now(&note.text) {
        Ok(sig) => {
            let mut body = stored;
            body.extend_from_slice(sig.to_line().as_bytes());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                body,
            )
                .into_response()
        }
        Err(e) => AppError::internal(e).into_response(),
    }
}

fn conflict(size: u64) -> Response {
    crate::metrics::witness("conflict");
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, SIZE_CONTENT_TYPE)],
        format!("{size}\n"),
    )
        .into_response()
}
