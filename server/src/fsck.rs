//! `sigil-server fsck`: every log of the database recomputed from its stored entries, and
//! compared with what the database says about them: each entry's leaf hash and stored signed
//! entry timestamp (by the trusted key it names), every tile, every stored checkpoint (its
//! root, and its signature by a key of the trusted root), and the current head. The first
//! mismatch of each log is reported.
//!
//! It only reads, entry by entry in index order, so it runs beside a live log or on a hot
//! standby: it checks the tree as of the size it found when it started, and the partial tiles
//! of that size as prefixes of what is stored by the time it reads them.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use sigil_core::checkpoint::open_checkpoint;
use sigil_core::crypto::{KeyAlgorithm, PublicKey};
use sigil_core::merkle::{self, Hash};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, Note, NoteVerifier};
use sigil_core::tiles::{TILE_WIDTH, TileId, TreeEdge};

use crate::log::rekor_v1::set;
use crate::storage::{StorageError, Store};

/// Entries read per query.
const CHUNK: u64 = 4096;
/// Checkpoints read per query.
const CHECKPOINTS: i64 = 1024;

/// What fsck found for one log.
#[derive(Debug)]
pub struct LogReport {
    pub log_name: String,
    /// The tree size checked (the stored size when the check began).
    pub size: u64,
    pub tiles: u64,
    pub checkpoints: u64,
    /// The first mismatch, if any.
    pub problem: Option<String>,
    pub seconds: f64,
}

/// Checks every log of `store`; checkpoint signatures must verify with one of `keys` (the
/// public keys of the trusted root's logs, current and retired). `progress` is called now and
/// then with (log, entries checked, size).
pub async fn check_all(
    store: &Store,
    keys: &[PublicKey],
    progress: &dyn Fn(&str, u64, u64),
) -> Result<Vec<LogReport>, StorageError> {
    let mut out = Vec::new();
    for name in store.log_names().await? {
        out.push(check_log(store, &name, keys, progress).await?);
    }
    Ok(out)
}

/// Checks one log. A storage error ends the check; a mismatch is reported in the result.
pub async fn check_log(
    store: &Store,
    log_name: &str,
    keys: &[PublicKey],
    progress: &dyn Fn(&str, u64, u64),
) -> Result<LogReport, StorageError> {
    let started = Instant::now();
    let row = store
        .load_log(log_name)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("log {log_name} vanished")))?;
    let mut report = LogReport {
        log_name: log_name.to_string(),
        size: row.tree_size,
        tiles: 0,
        checkpoints: 0,
        problem: None,
        seconds: 0.0,
    };
    let mut check = Check {
        store,
        log_name,
        keys,
        by_log_id: keys
            .iter()
            .map(|k| (sigil_core::crypto::sha256(k.spki_der()).to_vec(), k))
            .collect(),
        edge: TreeEdge::empty(),
        pending: VecDeque::new(),
        checkpoints_from: 0,
        more_checkpoints: true,
        report: &mut report,
    };
    let result = check.run(&row.root_hash, &row.checkpoint, progress).await;
    if let Err(Found(problem)) = result? {
        report.problem = Some(problem);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A mismatch, in words.
struct Found(String);

struct Check<'a> {
    store: &'a Store,
    log_name: &'a str,
    keys: &'a [PublicKey],
    /// `keys` by their Rekor log ID (SHA-256 of the SPKI).
    by_log_id: HashMap<Vec<u8>, &'a PublicKey>,
    edge: TreeEdge,
    /// Stored checkpoints not yet reached, smallest first.
    pending: VecDeque<(u64, Hash, Vec<u8>)>,
    /// The size of the last checkpoint fetched.
    checkpoints_from: u64,
    /// Whether the table may hold more checkpoints than fetched so far.
    more_checkpoints: bool,
    report: &'a mut LogReport,
}

impl Check<'_> {
    async fn run(
        &mut self,
        head_root: &Hash,
        head_note: &[u8],
        progress: &dyn Fn(&str, u64, u64),
    ) -> Result<Result<(), Found>, StorageError> {
        let size = self.report.size;
        let mut next = 0u64;
        let mut last_progress = Instant::now();
        self.fetch_checkpoints().await?;
        while next < size {
            let end = size.min(next + CHUNK);
            let rows = self.store.entries_range(self.log_name, next, end).await?;
            for e in rows {
                if e.index != next {
                    return Ok(Err(Found(format!(
                        "entry {next} is missing (the next stored entry is {})",
                        e.index
                    ))));
                }
                if e.leaf_hash != merkle::leaf_hash(&e.data) {
                    return Ok(Err(Found(format!(
                        "entry {next}: the stored leaf hash is not the hash of its data"
                    ))));
                }
                if let Some(stored) = set::parse(&e.extra)
                    && let Some(key) = self.by_log_id.get(stored.log_id)
                    && !set::verifies(&stored, key, &e.data, e.integrated_time, next)
                {
                    return Ok(Err(Found(format!(
                        "entry {next}: its stored signed entry timestamp does not verify with \
                         the log key it names"
                    ))));
                }
                if self.edge.try_append(e.leaf_hash).is_err() {
                    return Ok(Err(Found("the tree is full".into())));
                }
                next += 1;
                if let Err(f) = self.reach_checkpoints(next).await? {
                    return Ok(Err(f));
                }
            }
            if next < end {
                return Ok(Err(Found(format!(
                    "entry {next} is missing (the log's size is {size})"
                ))));
            }
            if let Err(f) = self.compare_tiles(next == size).await? {
                return Ok(Err(f));
            }
            if last_progress.elapsed().as_secs() >= 2 {
                progress(self.log_name, next, size);
                last_progress = Instant::now();
            }
        }
        // The head: the root of all entries, signed.
        let root = self.edge.root();
        if root != *head_root {
            return Ok(Err(Found(format!(
                "the stored head's root at size {size} is not the root of the entries"
            ))));
        }
        if let Err(f) = self.open(size, &root, head_note) {
            return Ok(Err(Found(format!("the stored head: {}", f.0))));
        }
        Ok(Ok(()))
    }

    async fn fetch_checkpoints(&mut self) -> Result<(), StorageError> {
        let got = self
            .store
            .checkpoints_after(self.log_name, self.checkpoints_from, CHECKPOINTS)
            .await?;
        self.more_checkpoints = got.len() as i64 == CHECKPOINTS;
        if let Some(last) = got.last() {
            self.checkpoints_from = last.0;
        }
        self.pending.extend(got);
        Ok(())
    }

    /// Checks the stored checkpoints of size `size`, which the tree just reached.
    async fn reach_checkpoints(&mut self, size: u64) -> Result<Result<(), Found>, StorageError> {
        loop {
            if self.pending.is_empty() && self.more_checkpoints {
                self.fetch_checkpoints().await?;
            }
            let Some((s, _, _)) = self.pending.front() else {
                return Ok(Ok(()));
            };
            if *s > size {
                return Ok(Ok(()));
            }
            let Some((s, root, note)) = self.pending.pop_front() else {
                return Ok(Ok(()));
            };
            if s < size {
                // Sizes come in order, so a smaller one was skipped: it cannot happen unless
                // the table changed underneath.
                return Ok(Err(Found(format!(
                    "the checkpoint at size {s} came out of order"
                ))));
            }
            let computed = self.edge.root();
            if root != computed {
                return Ok(Err(Found(format!(
                    "the stored checkpoint at size {s} has root {}, the entries give {}: \
                     the log forked or an entry changed",
                    hex::encode(root),
                    hex::encode(computed)
                ))));
            }
            if let Err(f) = self.open(s, &root, &note) {
                return Ok(Err(Found(format!("the checkpoint at size {s}: {}", f.0))));
            }
            self.report.checkpoints += 1;
        }
    }

    /// The full tiles that filled since the last call, exactly; at the end also the partial
    /// tiles, as prefixes of the stored ones (a live log may have grown them since).
    async fn compare_tiles(&mut self, at_end: bool) -> Result<Result<(), Found>, StorageError> {
        let tiles: Vec<(TileId, Vec<u8>)> = self
            .edge
            .take_dirty_tiles()
            .into_iter()
            .filter(|(t, _)| at_end || u64::from(t.width) == TILE_WIDTH)
            .collect();
        if tiles.is_empty() {
            return Ok(Ok(()));
        }
        let ids: Vec<(u8, u64)> = tiles.iter().map(|(t, _)| (t.level, t.index)).collect();
        let stored = self.store.read_tiles(self.log_name, &ids).await?;
        for (t, want) in &tiles {
            let Some(got) = stored.get(&(t.level, t.index)) else {
                return Ok(Err(Found(format!("{} is missing", t.path()))));
            };
            let full = u64::from(t.width) == TILE_WIDTH;
            let same = if full {
                got == want
            } else {
                got.get(..want.len()) == Some(want.as_slice())
            };
            if !same {
                return Ok(Err(Found(format!(
                    "{} differs from the hashes of the entries",
                    t.path()
                ))));
            }
            self.report.tiles += 1;
        }
        Ok(Ok(()))
    }

    /// A stored note: signed by a key of the trusted root, naming `size` and `root`.
    fn open(&self, size: u64, root: &Hash, note: &[u8]) -> Result<(), Found> {
        let parsed = Note::parse(note).map_err(|e| Found(format!("not a signed note: {e}")))?;
        let mut verifiers: Vec<Box<dyn NoteVerifier>> = Vec::new();
        for sig in &parsed.signatures {
            for k in self.keys {
                let v: Option<Box<dyn NoteVerifier>> = match k.algorithm() {
                    KeyAlgorithm::Ed25519 => Ed25519NoteKey::verifier(&sig.name, k.clone())
                        .ok()
                        .map(|v| Box::new(v) as Box<dyn NoteVerifier>),
                    _ => EcdsaNoteKey::verifier(&sig.name, k.clone())
                        .ok()
                        .map(|v| Box::new(v) as Box<dyn NoteVerifier>),
                };
                verifiers.extend(v);
            }
        }
        let refs: Vec<&dyn NoteVerifier> = verifiers.iter().map(|v| v.as_ref()).collect();
        let (cp, _) = open_checkpoint(note, &refs).map_err(|e| {
            Found(format!(
                "its signature does not verify with a trusted log key: {e}"
            ))
        })?;
        if cp.size != size || cp.root_hash != *root {
            return Err(Found(format!(
                "the signed note says size {} root {}, the row size {size} root {}",
                cp.size,
                hex::encode(cp.root_hash),
                hex::encode(root)
            )));
        }
        Ok(())
    }
}
