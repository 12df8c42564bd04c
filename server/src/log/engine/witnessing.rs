//! A log asking witnesses (C2SP tlog-witness) to cosign each checkpoint it commits, before it
//! publishes it. Every witness is asked at once, with a consistency proof from the size it last
//! cosigned (learnt from its 409 answer when unknown); a cosignature is kept only if it verifies
//! with the witness's configured key. With `fail_closed`, a checkpoint that fewer than
//! `threshold` witnesses cosigned is not published: its entries stay durable and are published
//! with the next checkpoint the witnesses cosign.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sigil_core::note::{CosignatureV1Key, Note, NoteVerifier};
use sigil_core::witness::AddCheckpoint;

use std::sync::Arc;

use sigil_core::tiles::TreeEdge;

use super::{EngineError, LogView, Shared, TreeHead};
use crate::storage::LogStore;
pub use crate::witness::{WitnessEndpoint, WitnessingConfig};

struct Endpoint {
    url: String,
    key: CosignatureV1Key,
    /// The size this witness last cosigned for the log, once known.
    known: Mutex<Option<u64>>,
}

/// A log's witnesses, ready to ask.
pub struct Witnessing {
    endpoints: Vec<Endpoint>,
    threshold: usize,
    pub fail_closed: bool,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Witnessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnessing")
            .field("witnesses", &self.endpoints.len())
            .field("threshold", &self.threshold)
            .field("fail_closed", &self.fail_closed)
            .finish()
    }
}

impl Witnessing {
    /// `None` when no witness is configured.
    pub fn new(cfg: &WitnessingConfig) -> Result<Option<Self>, String> {
        if cfg.witnesses.is_empty() {
            return Ok(None);
        }
        crate::install_crypto_provider();
        let mut endpoints = Vec::new();
        for w in &cfg.witnesses {
            endpoints.push(Endpoint {
                url: w.url.trim_end_matches('/').to_string(),
                key: CosignatureV1Key::from_vkey(&w.vkey).map_err(|e| e.to_string())?,
                known: Mutex::new(None),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Some(Self {
            threshold: cfg.threshold.unwrap_or(endpoints.len()),
            endpoints,
            fail_closed: cfg.fail_closed,
            timeout: Duration::from_millis(cfg.timeout_ms.max(100)),
            http,
        }))
    }

    /// How many of the configured witnesses validly cosigned `note`.
    pub fn cosigned_by(&self, note: &[u8]) -> usize {
        let Ok(n) = Note::parse(note) else {
            return 0;
        };
        let verifiers: Vec<&dyn NoteVerifier> = self
            .endpoints
            .iter()
            .map(|e| &e.key as &dyn NoteVerifier)
            .collect();
        n.verify(&verifiers).map(|v| v.len()).unwrap_or(0)
    }

    pub fn enough(&self, note: &[u8]) -> bool {
        self.cosigned_by(note) >= self.threshold
    }

    /// Asks every witness to cosign `checkpoint` (the log's signed note for a tree of `size`
    /// leaves, committed but not necessarily published); returns the note with the cosignatures
    /// that verified, or why fewer than the threshold did.
    pub(super) async fn gather(
        &self,
        view: &LogView,
        checkpoint: &[u8],
        size: u64,
    ) -> Result<Vec<u8>, String> {
        let asks = self
            .endpoints
            .iter()
            .map(|e| self.ask(e, view, checkpoint, size));
        let answers = futures_util::future::join_all(asks).await;
        let mut note = Note::parse(checkpoint).map_err(|e| e.to_string())?;
        // Lines these witnesses added to a stored note before are replaced by today's answers.
        note.signatures.retain(|s| {
            !self
                .endpoints
                .iter()
                .any(|e| e.key.name() == s.name && e.key.key_id() == s.key_id)
        });
        let mut reasons = Vec::new();
        let mut got = 0;
        for (e, a) in self.endpoints.iter().zip(answers) {
            match a {
                Ok(sig) => {
                    note.signatures.push(sig);
                    got += 1;
                }
                Err(r) => reasons.push(format!("{}: {r}", e.url)),
            }
        }
        if got < self.threshold {
            crate::metrics::witness_cosign_failure();
            return Err(format!(
                "{got} of the {} required witness cosignatures ({})",
                self.threshold,
                reasons.join("; ")
            ));
        }
        Ok(note.to_bytes())
    }

    async fn ask(
        &self,
        e: &Endpoint,
        view: &LogView,
        checkpoint: &[u8],
        size: u64,
    ) -> Result<sigil_core::note::NoteSignature, String> {
        let mut old = e.known.lock().map(|k| k.unwrap_or(0)).unwrap_or(0);
        for _ in 0..3 {
            if old > size {
                return Err(format!(
                    "the witness has cosigned size {old}, beyond this checkpoint's {size}"
                ));
            }
            let proof = if old > 0 && old < size {
                view.consistency_proof_committed(old, size)
                    .await
                    .map_err(|err: EngineError| err.to_string())?
            } else {
                Vec::new()
            };
            let body = AddCheckpoint {
                old_size: old,
                proof,
                checkpoint: checkpoint.to_vec(),
            }
            .to_bytes();
            let resp = self
                .http
                .post(format!("{}/add-checkpoint", e.url))
                .body(body)
                .send()
                .await
                .map_err(|err| err.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|err| err.to_string())?;
            match status {
                200 => {
                    let line = text
                        .lines()
                        .find(|l| l.starts_with('\u{2014}'))
                        .ok_or("no cosignature line in the answer")?;
                    let sig = parse_line(line)?;
                    // Kept only if it is this witness's valid cosignature of this checkpoint.
                    let mut n = Note::parse(checkpoint).map_err(|err| err.to_string())?;
                    n.signatures = vec![sig.clone()];
                    if n.verify(&[&e.key as &dyn NoteVerifier]).is_err() {
                        return Err("its cosignature does not verify with its key".into());
                    }
                    if let Ok(mut k) = e.known.lock() {
                        *k = Some(size);
                    }
                    return Ok(sig);
                }
                409 => {
                    old = text
                        .trim()
                        .parse()
                        .map_err(|_| format!("409 without a size: {text:?}"))?;
                    if let Ok(mut k) = e.known.lock() {
                        *k = Some(old);
                    }
                }
                s => return Err(format!("answered {s}: {}", text.trim())),
            }
        }
        Err("the witness's size kept moving".into())
    }
}

fn parse_line(line: &str) -> Result<sigil_core::note::NoteSignature, String> {
    let rest = line
        .strip_prefix("\u{2014} ")
        .ok_or("not a signature line")?;
    let (name, b64) = rest
        .trim_end()
        .split_once(' ')
        .ok_or("not a signature line")?;
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| "signature is not base64")?;
    let (id, sig) = raw.split_first_chunk::<4>().ok_or("signature too short")?;
    Ok(sigil_core::note::NoteSignature {
        name: name.to_string(),
        key_id: u32::from_be_bytes(*id),
        signature: sig.to_vec(),
    })
}

/// With witnesses: the committed checkpoint with their cosignatures (`Ok(Some)`, also stored),
/// or, when too few cosigned, `Err` if the log must not publish it and `Ok(None)` if it
/// publishes it anyway (fail-open). Without witnesses: `Ok(None)`.
pub(super) async fn cosign(
    shared: &Arc<Shared>,
    store: &dyn LogStore,
    checkpoint: &[u8],
    size: u64,
) -> Result<Option<Vec<u8>>, String> {
    let Some(w) = shared.config.witnessing.clone() else {
        return Ok(None);
    };
    match w
        .gather(&LogView::new(shared.clone()), checkpoint, size)
        .await
    {
        Ok(cosigned) => {
            // Stored so that a restart or another process serves the cosigned note; if that
            // fails the note is still served from memory, and the witnesses cosign again later.
            if let Err(e) = store
                .set_checkpoint(&shared.log_name, size, &cosigned)
                .await
            {
                tracing::warn!(log = %shared.log_name, size, error = %e, "storing the cosigned checkpoint failed");
            }
            Ok(Some(cosigned))
        }
        Err(reason) if w.fail_closed => {
            tracing::warn!(log = %shared.log_name, size, %reason, "checkpoint not published: too few witness cosignatures");
            Err(reason)
        }
        Err(reason) => {
            tracing::warn!(log = %shared.log_name, size, %reason, "publishing a checkpoint without enough witness cosignatures (fail-open)");
            Ok(None)
        }
    }
}

/// Whether the stored log is beyond `size` with a checkpoint its witnesses cosigned (another
/// process committed on top of ours and stored its cosigned note); that note is stored right
/// after the witnesses answer, so it is waited for briefly.
pub(super) async fn later_cosigned(shared: &Shared, store: &dyn LogStore, size: u64) -> bool {
    let Some(w) = shared.config.witnessing.as_ref() else {
        return false;
    };
    let deadline = std::time::Instant::now() + w.timeout;
    loop {
        match store.load_log(&shared.log_name).await {
            Ok(Some(row)) if row.tree_size > size => {
                if w.enough(&row.checkpoint) {
                    return true;
                }
            }
            // Nothing beyond this batch: its own checkpoint is the one to cosign.
            _ => return false,
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With fail-closed witnesses, a committed head that is not published yet (its batch was
/// withheld), or the head a process started with before its witnesses cosigned it, is offered
/// to the witnesses again; once they cosign it, it is published.
pub(super) async fn publish_withheld(shared: &Arc<Shared>, store: &dyn LogStore, edge: &TreeEdge) {
    let Some(w) = shared.config.witnessing.as_ref() else {
        return;
    };
    let head = shared.head();
    if !w.fail_closed || (head.size >= edge.size() && w.enough(&head.checkpoint)) {
        return;
    }
    let row = match store.load_log(&shared.log_name).await {
        Ok(Some(row)) if row.tree_size == edge.size() => row,
        _ => return,
    };
    if let Ok(Some(cosigned)) = cosign(shared, store, &row.checkpoint, row.tree_size).await {
        let mut head = TreeHead::from_row(row);
        head.checkpoint = cosigned;
        tracing::info!(log = %shared.log_name, size = head.size, "withheld checkpoint cosigned and published");
        crate::metrics::set_log_size(&shared.log_name, head.size);
        shared.set_head(Arc::new(head));
    }
}
