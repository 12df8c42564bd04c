//! Reads from a PostgreSQL hot standby (`database.read_url`). Each log keeps a second, read-only
//! view whose head, partial tiles and caches come from the standby, refreshed every 100 ms; the
//! sequencer and writes stay on the primary.
//!
//! Which one serves a request is decided once per request ([`ReadRouting::decide`]), so that
//! every read of it (a checkpoint, then a proof against it) comes from one database: the standby
//! while it is no more than `max_lag` behind the primary, else the primary (or a 503, when
//! falling back is turned off). How far behind is measured against the heads this process saw
//! the primary publish: the standby's lag is the time since the primary first published a tree
//! larger than the standby's.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use super::{EngineError, Shared, TreeHead, sequencer};
use crate::storage::Store;

/// How often the standby's head is read.
const REFRESH: Duration = Duration::from_millis(100);
/// Primary heads remembered, to date the standby's lag.
const HISTORY: usize = 4096;

/// Where reads go, for every log of a process.
pub struct ReadRouting {
    store: Store,
    pub max_lag: Duration,
    /// Serve from the primary when the standby lags (else answer 503).
    pub fallback: bool,
    replicas: Mutex<Vec<Arc<Replica>>>,
}

impl std::fmt::Debug for ReadRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRouting")
            .field("max_lag", &self.max_lag)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// The database a request reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Replica,
    Primary,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Replica => "replica",
            Source::Primary => "primary",
        }
    }
}

tokio::task_local! {
    /// The source decided for the request this task serves.
    static SOURCE: Cell<Source>;
}

/// Runs `f` (a request) reading from `source`.
pub async fn with_source<F: std::future::Future>(source: Source, f: F) -> F::Output {
    SOURCE.scope(Cell::new(source), f).await
}

/// Whether the current request reads from the standby (outside a request: never).
pub(super) fn reading_replica() -> bool {
    SOURCE
        .try_with(|s| s.get() == Source::Replica)
        .unwrap_or(false)
}

impl ReadRouting {
    pub fn new(store: Store, max_lag: Duration, fallback: bool) -> Arc<ReadRouting> {
        Arc::new(ReadRouting {
            store,
            max_lag,
            fallback,
            replicas: Mutex::new(Vec::new()),
        })
    }

    /// The source for the next read request, or the reason it cannot be served.
    pub fn decide(&self) -> Result<Source, String> {
        let lag = self.lag();
        crate::metrics::set_replica_lag(lag.as_secs_f64());
        if lag <= self.max_lag {
            Ok(Source::Replica)
        } else if self.fallback {
            Ok(Source::Primary)
        } else {
            Err(format!(
                "the read replica is {} ms behind the primary (at most {} ms are allowed); retry shortly",
                lag.as_millis(),
                self.max_lag.as_millis()
            ))
        }
    }

    /// The largest lag of any log's standby view.
    pub fn lag(&self) -> Duration {
        let Ok(replicas) = self.replicas.lock() else {
            return Duration::MAX;
        };
        replicas
            .iter()
            .map(|r| r.lag())
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// One log's standby view.
pub(super) struct Replica {
    pub(super) shared: Arc<Shared>,
    primary: Weak<Shared>,
}

impl Replica {
    fn lag(&self) -> Duration {
        let Some(primary) = self.primary.upgrade() else {
            return Duration::ZERO;
        };
        let have = self.shared.head().size;
        if have >= primary.head().size {
            return Duration::ZERO;
        }
        match primary.first_seen_above(have) {
            Some(t) => t.elapsed(),
            None => Duration::MAX,
        }
    }
}

/// Heads the primary published, with when this process first saw each.
#[derive(Default)]
pub(super) struct HeadHistory(VecDeque<(u64, Instant)>);

impl HeadHistory {
    pub(super) fn record(&mut self, size: u64) {
        if self.0.back().is_some_and(|(s, _)| *s >= size) {
            return;
        }
        if self.0.len() == HISTORY {
            self.0.pop_front();
        }
        self.0.push_back((size, Instant::now()));
    }

    fn first_above(&self, size: u64) -> Option<Instant> {
        let i = self.0.partition_point(|(s, _)| *s <= size);
        self.0.get(i).map(|(_, t)| *t)
    }
}

impl Shared {
    fn first_seen_above(&self, size: u64) -> Option<Instant> {
        self.history.lock().ok()?.first_above(size)
    }
}

/// Opens the standby view of the log `primary` writes and keeps it fresh.
pub(super) async fn open(
    primary: &Arc<Shared>,
    routing: &Arc<ReadRouting>,
) -> Result<Arc<Replica>, EngineError> {
    let store = routing.store.clone();
    let name = &primary.log_name;
    // A log the primary just created reaches the standby shortly after.
    let since = Instant::now();
    let row = loop {
        if let Some(row) = store.load_log(name).await? {
            break row;
        }
        if since.elapsed() > Duration::from_secs(30) {
            return Err(EngineError::Internal(format!(
                "the read replica has no log {name} after 30 s: is it a standby of this database?"
            )));
        }
        tokio::time::sleep(REFRESH).await;
    };
    if row.tree_id != primary.tree_id {
        return Err(EngineError::Internal(format!(
            "the read replica's log {name} is tree {}, the primary's tree {}: another database",
            row.tree_id, primary.tree_id
        )));
    }
    let (_, partials) = sequencer::load_edge(store.as_ref(), name, row.tree_size).await?;
    let shared = Arc::new(Shared {
        store: store.clone(),
        log_name: name.clone(),
        tree_id: row.tree_id,
        origin: primary.origin.clone(),
        head: RwLock::new(Arc::new(TreeHead::from_row(row))),
        partials: RwLock::new(partials),
        full_tiles: Mutex::new(Default::default()),
        nodes: Mutex::new(Default::default()),
        summaries: primary.summaries.clone(),
        config: primary.config.clone(),
        queued: AtomicUsize::new(0),
        history: Mutex::new(HeadHistory::default()),
        replica: std::sync::OnceLock::new(),
    });
    let replica = Arc::new(Replica {
        shared,
        primary: Arc::downgrade(primary),
    });
    if let Ok(mut all) = routing.replicas.lock() {
        all.push(replica.clone());
    }
    tokio::spawn(refresh(Arc::downgrade(&replica)));
    Ok(replica)
}

/// Takes up the standby's head (and the partial tiles of it) as replication brings it.
async fn refresh(replica: Weak<Replica>) {
    loop {
        tokio::time::sleep(REFRESH).await;
        let Some(r) = replica.upgrade() else { return };
        let s = &r.shared;
        let row = match s.store.load_log(&s.log_name).await {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(log = %s.log_name, error = %e, "reading the replica's head failed");
                continue;
            }
        };
        if row.tree_size == s.head().size {
            continue;
        }
        // Tiles after the row: replay is in commit order, so they are at least as new, and a
        // partial tile read at a larger width holds the one of this size as a prefix.
        match sequencer::load_edge(s.store.as_ref(), &s.log_name, row.tree_size).await {
            Ok((_, partials)) => {
                if let Ok(mut p) = s.partials.write() {
                    *p = partials;
                }
                if let Ok(mut h) = s.head.write() {
                    *h = Arc::new(TreeHead::from_row(row));
                }
            }
            Err(e) => {
                tracing::warn!(log = %s.log_name, error = %e, "reading the replica's tiles failed");
            }
        }
    }
}
