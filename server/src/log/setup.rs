//! Wiring of the logs this process hosts: each opens its engine on the shared store with its own
//! key and origin and returns the routes it serves, so `app.rs` only composes them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, NoteSigner};

use crate::config::{Config, resolve};
use crate::keyfile::{read_certs, read_key};
use crate::log::ct::{CtState, Shards as CtShards};
use crate::log::engine::{EngineConfig, IdentitySearch, JournalConfig, LogEngine, SearchPrivacy};
use crate::log::rekor_v1::{LogKey, RekorState, set_sealer};
use crate::log::rekor_v2::{RekorV2State, Shards};
use crate::routes::Api;
use crate::storage::Store;
use crate::trust_history::History;

/// Database names (`log_name`) of the logs a server hosts; Rekor v2's is
/// [`crate::log::rekor_v2::LOG_NAME`].
pub const REKOR_LOG_NAME: &str = "rekor";
pub const CT_LOG_NAME: &str = "ctlog";

/// An opened log: its routes, its engine (for draining on shutdown) and its public key (for the
/// trust files).
pub struct OpenedLog {
    pub api: Api,
    pub engine: LogEngine,
    pub public_key: PublicKey,
}

/// Batching, queueing, the journal and the search index's privacy, shared by every log of the
/// process.
pub fn engine_config(cfg: &Config, data_dir: &Path) -> anyhow::Result<EngineConfig> {
    let mode = match cfg.log.identity_search.as_str() {
        "off" => IdentitySearch::Off,
        _ => IdentitySearch::Keyed,
    };
    let secret = search_secret(&resolve(data_dir, &cfg.log.search_key))?;
    Ok(EngineConfig {
        max_batch: cfg.log.max_batch,
        max_wait: Duration::from_millis(cfg.log.max_wait_ms),
        queue_capacity: cfg.log.queue_capacity,
        head_refresh: Duration::from_millis(cfg.log.head_refresh_ms),
        journal: journal_dir(cfg, data_dir).map(|dir| JournalConfig {
            dir,
            entries: cfg.log.journal_entries,
        }),
        search_privacy: Some(Arc::new(SearchPrivacy::new(&secret, mode))),
        ..EngineConfig::default()
    })
}

/// The search index's HMAC secret (hex in a file), created on first use.
fn search_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if !path.exists() {
        use std::io::Write;
        let secret: [u8; 32] = rand::random();
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)?;
        // Written whole under another name (owner-only), then linked in without replacing: a
        // process starting at the same moment reads either no file or the complete one.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(format!("{}\n", hex::encode(secret)).as_bytes())?;
        tmp.as_file().sync_all()?;
        match tmp.persist_noclobber(path) {
            Ok(_) => {
                tracing::info!(path = %path.display(), "created the search index secret; every process of this deployment needs this file")
            }
            // Another process created it meanwhile: use theirs.
            Err(_) if path.exists() => {}
            Err(e) => return Err(e.error.into()),
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the search index secret {}", path.display()))?;
    let secret = hex::decode(text.trim())
        .ok()
        .filter(|s| s.len() >= 32)
        .with_context(|| {
            format!(
                "{} must hold at least 32 bytes as hex (the search index secret)",
                path.display()
            )
        })?;
    Ok(secret)
}

/// The checkpoint journal's directory, unless it is turned off (`journal_dir = ""`).
pub fn journal_dir(cfg: &Config, data_dir: &Path) -> Option<std::path::PathBuf> {
    (!cfg.log.journal_dir.as_os_str().is_empty()).then(|| resolve(data_dir, &cfg.log.journal_dir))
}

/// A checkpoint signer for a note key of either supported algorithm.
fn note_signer(name: &str, key: SigningKey) -> anyhow::Result<Arc<dyn NoteSigner + Send + Sync>> {
    Ok(match key.algorithm() {
        KeyAlgorithm::Ed25519 => Arc::new(Ed25519NoteKey::signer(name, key)?),
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
            Arc::new(EcdsaNoteKey::signer(name, key)?)
        }
        other => bail!("log keys must be ECDSA or Ed25519, not {other:?}"),
    })
}

/// Opens one log's engine, its checkpoints signed under `note_name`.
async fn open_engine(
    db: &Store,
    log_name: &str,
    origin: &str,
    note_name: &str,
    key_path: &Path,
    engine_cfg: EngineConfig,
) -> anyhow::Result<LogEngine> {
    let signer = note_signer(note_name, read_key(key_path)?)?;
    Ok(LogEngine::open(db.clone(), log_name, origin, signer, engine_cfg).await?)
}

/// The engine settings of an active log, with its witnesses (retired shards take no writes).
fn with_witnesses(
    mut engine_cfg: EngineConfig,
    w: &crate::log::engine::witnessing::WitnessingConfig,
) -> anyhow::Result<EngineConfig> {
    engine_cfg.witnessing = crate::log::engine::witnessing::Witnessing::new(w)
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    Ok(engine_cfg)
}

/// The Rekor v1 log (`[log]`).
pub async fn rekor_v1(
    cfg: &Config,
    data_dir: &Path,
    db: &Store,
    engine_cfg: EngineConfig,
    admission: Option<Arc<crate::access::Admission>>,
) -> anyhow::Result<OpenedLog> {
    let path = resolve(data_dir, &cfg.log.key);
    let key = read_key(&path)?;
    let origin = cfg.log_origin();
    let history = History::load(data_dir)?;
    let log_name = history.log_name("rekor", REKOR_LOG_NAME);
    // Retired shards (`rotate rekor`), oldest first: read-only, with their old keys. Opened
    // first: their entries come before the active shard's in `logIndex`, which its SETs sign.
    let mut inactive = Vec::new();
    let mut offset = 0;
    for r in history.retired_logs("rekor") {
        let key_file = resolve(data_dir, &r.key_file);
        let old = open_engine(
            db,
            &r.log_name,
            &origin,
            &origin,
            &key_file,
            engine_cfg.clone(),
        )
        .await
        .with_context(|| format!("cannot open the retired Rekor shard {}", r.log_name))?;
        offset += old.view().head().size;
        inactive.push((old.view().clone(), LogKey::new(read_key(&key_file)?)));
    }
    let mut active_cfg = with_witnesses(engine_cfg, &cfg.log.witnessing)?;
    active_cfg.sealer = Some(set_sealer(LogKey::new(read_key(&path)?), offset));
    let engine = open_engine(db, &log_name, &origin, &origin, &path, active_cfg)
        .await
        .context("cannot open the transparency log")?;
    let public_key = key.public_key();
    let mut state = RekorState::new(engine.clone(), LogKey::new(key), 1000, inactive);
    state.admission = admission;
    let state = Arc::new(state);
    Ok(OpenedLog {
        api: crate::log::rekor_v1::router(state),
        engine,
        public_key,
    })
}

/// The Rekor v2 log (`[rekor_v2]`): its own log name and key on the same store, with Sigil's
/// search index beside the tiles.
pub async fn rekor_v2(
    cfg: &Config,
    data_dir: &Path,
    db: &Store,
    engine_cfg: EngineConfig,
    admission: Option<Arc<crate::access::Admission>>,
) -> anyhow::Result<OpenedLog> {
    let path = resolve(data_dir, &cfg.rekor_v2.key);
    let public_key = read_key(&path)?.public_key();
    let origin = &cfg.rekor_v2_origin();
    let history = History::load(data_dir)?;
    let log_name = history.log_name("rekor-v2", crate::log::rekor_v2::LOG_NAME);
    let engine = open_engine(
        db,
        &log_name,
        origin,
        origin,
        &path,
        with_witnesses(engine_cfg.clone(), &cfg.rekor_v2.witnessing)?,
    )
    .await
    .context("cannot open the Rekor v2 log")?;
    let mut state = RekorV2State::new(engine.clone(), &public_key);
    state.admission = admission;
    let state = Arc::new(state);
    let api =
        crate::log::v2_search::router(state.clone()).merge(crate::log::rekor_v2::router(state));
    // Retired shards: opened with their old keys, served without a write route.
    let mut shards = Shards::new();
    for r in history.retired_logs("rekor-v2") {
        let key_file = resolve(data_dir, &r.key_file);
        let engine = open_engine(
            db,
            &r.log_name,
            origin,
            origin,
            &key_file,
            engine_cfg.clone(),
        )
        .await
        .with_context(|| format!("cannot open the retired Rekor v2 shard {}", r.log_name))?;
        let state = RekorV2State::new(engine, &r.key()?);
        shards.insert(r.log_name.clone(), Arc::new(state));
    }
    Ok(OpenedLog {
        api: api.merge(crate::log::rekor_v2::shards_router(Arc::new(shards))),
        engine,
        public_key,
    })
}

/// The CT log (`[ct]`) that the CA's precertificates are submitted to.
pub async fn ct(
    cfg: &Config,
    data_dir: &Path,
    db: &Store,
    engine_cfg: EngineConfig,
) -> anyhow::Result<OpenedLog> {
    let path = resolve(data_dir, &cfg.ct.key);
    let key = read_key(&path)?;
    let origin = format!("{} CT", cfg.log_origin());
    let note_name = format!("{}-ct", cfg.log_origin());
    let history = History::load(data_dir)?;
    let log_name = history.log_name("ct", CT_LOG_NAME);
    let engine = open_engine(
        db,
        &log_name,
        &origin,
        &note_name,
        &path,
        with_witnesses(engine_cfg.clone(), &cfg.ct.witnessing)?,
    )
    .await
    .context("cannot open the CT log")?;
    let roots = read_certs(&resolve(data_dir, &cfg.ct.roots))?;
    let public_key = key.public_key();
    let api = crate::log::ct::router(Arc::new(CtState::new(engine.clone(), key, roots.clone())));
    // Retired shards: opened with their old keys, served without the add-* routes.
    let mut shards = CtShards::new();
    for r in history.retired_logs("ct") {
        let key_file = resolve(data_dir, &r.key_file);
        let old = open_engine(
            db,
            &r.log_name,
            &origin,
            &note_name,
            &key_file,
            engine_cfg.clone(),
        )
        .await
        .with_context(|| format!("cannot open the retired CT shard {}", r.log_name))?;
        let state = CtState::new(old, read_key(&key_file)?, roots.clone());
        shards.insert(r.log_name.clone(), Arc::new(state));
    }
    Ok(OpenedLog {
        api: api.merge(crate::log::ct::shards_router(Arc::new(shards))),
        engine,
        public_key,
    })
}
