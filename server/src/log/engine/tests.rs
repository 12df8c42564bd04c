//! The sequencer driven through storage faults on the in-memory store. After every step the
//! whole log is checked against itself, as an auditor would: entries against leaf hashes,
//! every stored tile against the entries, every checkpoint's signature and root (none forked),
//! every inclusion proof and consistency proof the engine serves; and against what submitters
//! were told: each acknowledged entry was durable when acknowledged and is in the log once.
//!
//! One concept: the engine under faults. Every scenario drives the same test log and ends in the
//! same whole-log audit, so they stay beside that harness rather than in files of their own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sigil_core::checkpoint::open_checkpoint;
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::merkle::{self, Hash};
use sigil_core::note::Ed25519NoteKey;
use sigil_core::tiles::{TILE_HEIGHT, TILE_WIDTH, tiles_for_size};
use tokio::task::JoinHandle;

use super::*;
use crate::clock::ManualClock;
use crate::storage::memory::{Fault, MemoryStore};

const LOG: &str = "test-log";
const KEY_NAME: &str = "sigil-test";
/// 2026-01-01T00:00:00.250Z
const T0_MS: u64 = 1_767_225_600_250;

type Outcome = Result<Appended, EngineError>;

/// One log on a memory store, with what it acknowledged.
struct TestLog {
    store: MemoryStore,
    engine: LogEngine,
    clock: Arc<ManualClock>,
    /// The log key (PKCS#8 PEM).
    key: String,
    verifier: Ed25519NoteKey,
    /// Leaf input → the acknowledgement it got.
    acked: HashMap<Vec<u8>, Appended>,
    /// Makes this handle's entries differ from another replica's.
    tag: u64,
    next: u64,
}

fn new_key() -> String {
    SigningKey::generate(KeyAlgorithm::Ed25519)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap()
}

fn signer(pem: &str) -> Arc<Ed25519NoteKey> {
    Arc::new(Ed25519NoteKey::signer(KEY_NAME, SigningKey::from_pkcs8_pem(pem).unwrap()).unwrap())
}

impl TestLog {
    async fn new() -> TestLog {
        Self::on(MemoryStore::new(), new_key()).await
    }

    /// A log (a replica, if `store` already holds it) on `store`, signing with `key`.
    async fn on(store: MemoryStore, key: String) -> TestLog {
        let clock = ManualClock::at_ms(T0_MS);
        let public = SigningKey::from_pkcs8_pem(&key).unwrap().public_key();
        let verifier = Ed25519NoteKey::verifier(KEY_NAME, public).unwrap();
        let config = EngineConfig {
            max_batch: 64,
            clock: clock.clone(),
            ..EngineConfig::default()
        };
        let engine = LogEngine::open(Arc::new(store.clone()), LOG, "test", signer(&key), config)
            .await
            .unwrap();
        let log = TestLog {
            store,
            engine,
            clock,
            key,
            verifier,
            acked: HashMap::new(),
            tag: rand::random(),
            next: 0,
        };
        log.check();
        log
    }

    fn fresh_data(&mut self) -> Vec<u8> {
        self.next += 1;
        format!("entry {} of {:x}", self.next, self.tag).into_bytes()
    }

    /// Submit a fixed leaf; the task asserts, the moment it is acknowledged, that it is durable,
    /// and answers with the data.
    fn submit(&self, data: Vec<u8>) -> JoinHandle<(Vec<u8>, Outcome)> {
        let sub = Submission {
            leaf: LeafInput::Fixed(data.clone()),
            extra: b"extra".to_vec(),
            search_keys: vec![format!("key:{}", data.len())],
        };
        self.spawn(data, sub)
    }

    /// Submit; answers with the stored leaf once acknowledged, else with `name`.
    fn spawn(&self, name: Vec<u8>, sub: Submission) -> JoinHandle<(Vec<u8>, Outcome)> {
        let engine = self.engine.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            let out = engine.append(sub).await;
            match &out {
                Ok(a) => (assert_durable(&store, a), out),
                Err(_) => (name, out),
            }
        })
    }

    fn submit_fresh(&mut self) -> JoinHandle<(Vec<u8>, Outcome)> {
        let d = self.fresh_data();
        self.submit(d)
    }

    /// Submit `n` fresh entries at once and wait for every answer.
    async fn append_fresh(&mut self, n: usize) -> Vec<(Vec<u8>, Outcome)> {
        let tasks: Vec<_> = (0..n).map(|_| self.submit_fresh()).collect();
        self.collect(tasks).await
    }

    async fn collect(
        &mut self,
        tasks: Vec<JoinHandle<(Vec<u8>, Outcome)>>,
    ) -> Vec<(Vec<u8>, Outcome)> {
        let mut out = Vec::new();
        for t in tasks {
            let (data, r) = t.await.unwrap();
            if let Ok(a) = &r {
                let before = self.acked.insert(data.clone(), a.clone());
                assert!(before.is_none(), "{data:?} acknowledged twice");
            }
            out.push((data, r));
        }
        out
    }

    fn head(&self) -> Arc<TreeHead> {
        self.engine.view().head()
    }

    /// The whole-log check (synchronous parts), then every proof the engine serves.
    fn check(&self) -> Checked {
        check_stored(&self.store, &self.verifier, self.engine.view(), &self.acked)
    }

    async fn check_proofs(&self) {
        let checked = self.check();
        check_proofs(self.engine.view(), &checked).await;
    }
}

/// What `check_stored` established.
struct Checked {
    leaves: Vec<Hash>,
    root: Hash,
    checkpoint_sizes: Vec<u64>,
}

/// The entry is in the store at its index, and the tree it was answered with is committed.
/// Returns the stored leaf.
fn assert_durable(store: &MemoryStore, a: &Appended) -> Vec<u8> {
    let log = store.snapshot(LOG);
    let row = log.row.expect("log row");
    assert!(
        row.tree_size >= a.tree.size && a.index < a.tree.size,
        "entry {} acknowledged in tree {} but the stored log has {}",
        a.index,
        a.tree.size,
        row.tree_size
    );
    let e = log
        .entries
        .iter()
        .find(|e| e.index == a.index)
        .expect("acknowledged entry stored");
    assert_eq!(e.leaf_hash, a.leaf_hash);
    assert!(
        log.checkpoints
            .iter()
            .any(|(s, r, c)| *s == a.tree.size && *r == a.tree.root && *c == a.tree.checkpoint),
        "the checkpoint answered with is stored"
    );
    e.data.clone()
}

/// Check everything stored for the log, and the engine's head against it.
fn check_stored(
    store: &MemoryStore,
    verifier: &Ed25519NoteKey,
    view: &LogView,
    acked: &HashMap<Vec<u8>, Appended>,
) -> Checked {
    let log = store.snapshot(LOG);
    let row = log.row.expect("log row");
    let size = row.tree_size;

    // The checkpoint: signed by the log key, for the stored size and root.
    let (cp, _) = open_checkpoint(&row.checkpoint, &[verifier]).expect("checkpoint verifies");
    assert_eq!(cp.origin, view.origin());
    assert_eq!(cp.size, size);
    assert_eq!(cp.root_hash, row.root_hash);

    // Entries: indexes 0..size, each leaf hash that of its data, no leaf twice.
    assert_eq!(log.entries.len() as u64, size, "one entry per index");
    let mut leaves = Vec::new();
    let mut seen = HashSet::new();
    let mut last_time = i64::MIN;
    for (i, e) in log.entries.iter().enumerate() {
        assert_eq!(e.index, i as u64);
        assert_eq!(e.leaf_hash, merkle::leaf_hash(&e.data), "entry {i}");
        assert!(seen.insert(e.leaf_hash), "entry {i} is in the log twice");
        assert!(e.integrated_time >= last_time, "integrated times go back");
        last_time = e.integrated_time;
        leaves.push(e.leaf_hash);
    }
    assert_eq!(log.leaves.len() as u64, size);
    let root = merkle::root_from_leaves(&leaves);
    assert_eq!(
        root, row.root_hash,
        "stored root is the root of the entries"
    );

    // Tiles: exactly the tiles the tree has, each holding the hashes the entries give.
    let expected: HashSet<(u8, u64)> = tiles_for_size(size)
        .iter()
        .map(|t| (t.level, t.index))
        .collect();
    let stored: HashSet<(u8, u64)> = log.tiles.keys().copied().collect();
    assert_eq!(stored, expected, "stored tiles");
    for t in tiles_for_size(size) {
        let data = &log.tiles[&(t.level, t.index)];
        assert_eq!(data.len(), usize::from(t.width) * 32, "tile {}", t.path());
        let span = 1usize << (u32::from(TILE_HEIGHT) * u32::from(t.level));
        for j in 0..u64::from(t.width) {
            let first = ((t.index * TILE_WIDTH + j) as usize) * span;
            let want = merkle::root_from_leaves(&leaves[first..first + span]);
            let at = j as usize * 32;
            assert_eq!(&data[at..at + 32], &want[..], "tile {} hash {j}", t.path());
        }
    }

    // Checkpoint history: growing sizes, each signed, each the root of that prefix (no fork).
    let mut sizes = Vec::new();
    let mut last = 0;
    for (s, r, note) in &log.checkpoints {
        assert!(*s > last, "checkpoint sizes grow");
        last = *s;
        assert_eq!(
            *r,
            merkle::root_from_leaves(&leaves[..*s as usize]),
            "fork at {s}"
        );
        let (cp, _) = open_checkpoint(note, &[verifier]).expect("checkpoint verifies");
        assert_eq!((cp.size, cp.root_hash), (*s, *r));
        sizes.push(*s);
    }
    assert_eq!(sizes.last().copied().unwrap_or(0), size);

    // The engine serves the stored head.
    let head = view.head();
    assert_eq!((head.size, head.root), (size, row.root_hash));
    assert_eq!(head.checkpoint, row.checkpoint);

    // Every acknowledgement is in the log once, where it was said to be, with its time.
    for (data, a) in acked {
        let e = &log.entries[a.index as usize];
        assert_eq!(&e.data, data, "acknowledged entry {} differs", a.index);
        assert_eq!(e.integrated_time, a.integrated_time);
        assert_eq!(a.integrated_time, (a.timestamp_ms / 1000) as i64);
    }
    Checked {
        leaves,
        root,
        checkpoint_sizes: sizes,
    }
}

/// Every inclusion proof at the current size, and a consistency proof from every checkpoint.
async fn check_proofs(view: &LogView, c: &Checked) {
    let size = c.leaves.len() as u64;
    for (i, leaf) in c.leaves.iter().enumerate() {
        let proof = view.inclusion_proof(i as u64, size).await.unwrap();
        merkle::verify_inclusion(leaf, i as u64, size, &proof, &c.root)
            .unwrap_or_else(|e| panic!("inclusion of {i} in {size}: {e}"));
        // The read that serves entries: the same proof, summarised tile or not.
        let (row, same) = view
            .entry_with_proof(i as u64, size)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.index, &row.leaf_hash), (i as u64, leaf));
        assert_eq!(same, proof, "entry_with_proof({i}, {size})");
    }
    for s in &c.checkpoint_sizes {
        for i in (0..*s).step_by(37) {
            let proof = view.inclusion_proof(i, *s).await.unwrap();
            let (_, same) = view.entry_with_proof(i, *s).await.unwrap().unwrap();
            assert_eq!(same, proof, "entry_with_proof({i}, {s})");
        }
    }
    if size >= 256 {
        assert!(
            view.shared().summaries.has(0),
            "the first full tile is summarised"
        );
    }
    for s in &c.checkpoint_sizes {
        let old = merkle::root_from_leaves(&c.leaves[..*s as usize]);
        assert_eq!(view.root_at(*s).await.unwrap(), old);
        let proof = view.consistency_proof(*s, size).await.unwrap();
        merkle::verify_consistency(*s, size, &old, &c.root, &proof)
            .unwrap_or_else(|e| panic!("consistency {s} → {size}: {e}"));
    }
}

fn ok_count(r: &[(Vec<u8>, Outcome)]) -> usize {
    r.iter().filter(|(_, o)| o.is_ok()).count()
}

#[tokio::test]
async fn appends_across_tile_boundaries_and_checks_out() {
    let mut log = TestLog::new().await;
    for n in [1, 5, 300, 250] {
        let r = log.append_fresh(n).await;
        assert_eq!(ok_count(&r), n);
        log.check_proofs().await;
    }
    assert_eq!(log.head().size, 556);
    // Batched: far fewer commits than entries.
    assert!(log.store.commit_attempts() < 100);
}

#[tokio::test]
async fn a_failed_commit_acknowledges_nothing_and_the_log_goes_on() {
    let mut log = TestLog::new().await;
    log.append_fresh(10).await;
    log.store.inject(Fault::Fail);
    let r = log.append_fresh(40).await;
    assert_eq!(log.store.pending_faults(), 0, "the fault was used");
    let failed: Vec<Vec<u8>> = r
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(d, _)| d.clone())
        .collect();
    assert!(
        !failed.is_empty(),
        "the failed batch's submitters get an error"
    );
    for (_, o) in &r {
        if let Err(e) = o {
            assert!(matches!(e, EngineError::Internal(_)), "{e:?}");
        }
    }
    log.check_proofs().await;
    // Nothing of the failed batch was written.
    let stored: HashSet<Vec<u8>> = log
        .store
        .snapshot(LOG)
        .entries
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert!(failed.iter().all(|d| !stored.contains(d)));
    // Submitted again, they land, once.
    let tasks: Vec<_> = failed.iter().map(|d| log.submit(d.clone())).collect();
    let again = log.collect(tasks).await;
    assert_eq!(ok_count(&again), failed.len());
    log.check_proofs().await;
    assert_eq!(log.head().size, 50);
}

#[tokio::test]
async fn a_commit_failing_after_persisting_is_reloaded_and_lands_once() {
    let mut log = TestLog::new().await;
    log.append_fresh(3).await;
    log.store.inject(Fault::FailAfterPersist);
    let r = log.append_fresh(30).await;
    let failed: Vec<Vec<u8>> = r
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(d, _)| d.clone())
        .collect();
    assert!(!failed.is_empty());
    // Durable though unacknowledged: the engine reloaded the stored log and serves it.
    log.check_proofs().await;
    assert_eq!(log.head().size, 33);
    // Submitted again: each is found where it already is.
    let tasks: Vec<_> = failed.iter().map(|d| log.submit(d.clone())).collect();
    for (d, o) in log.collect(tasks).await {
        match o {
            Err(EngineError::Duplicate { index, .. }) => {
                assert_eq!(log.store.snapshot(LOG).entries[index as usize].data, d);
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }
    // And new entries go on top.
    assert_eq!(ok_count(&log.append_fresh(20).await), 20);
    log.check_proofs().await;
    assert_eq!(log.head().size, 53);
}

#[tokio::test]
async fn a_lost_compare_and_swap_is_retried_until_it_lands() {
    let mut log = TestLog::new().await;
    log.append_fresh(2).await;
    let before = log.store.commit_attempts();
    for _ in 0..3 {
        log.store.inject(Fault::LoseCas);
    }
    let r = log.append_fresh(25).await;
    assert_eq!(ok_count(&r), 25, "conflicts are retried, not reported");
    assert!(log.store.commit_attempts() >= before + 4);
    log.check_proofs().await;
    assert_eq!(log.head().size, 27);
}

#[tokio::test]
async fn two_replicas_on_one_store_never_fork() {
    let store = MemoryStore::new();
    let key = new_key();
    let mut a = TestLog::on(store.clone(), key.clone()).await;
    let mut b = TestLog::on(store.clone(), key).await;
    let mut shared = Vec::new();
    for round in 0..5 {
        let mut ta = Vec::new();
        let mut tb = Vec::new();
        for _ in 0..20 {
            ta.push(a.submit_fresh());
            tb.push(b.submit_fresh());
        }
        // The same entry to both replicas: it lands once.
        let same = format!("shared {round}").into_bytes();
        ta.push(a.submit(same.clone()));
        tb.push(b.submit(same.clone()));
        shared.push(same);
        let ra = a.collect(ta).await;
        let rb = b.collect(tb).await;
        for (d, o) in ra.iter().chain(&rb) {
            if !shared.contains(d) {
                assert!(o.is_ok(), "{o:?}");
            }
        }
        let landed = ra
            .iter()
            .chain(&rb)
            .filter(|(d, o)| shared.contains(d) && o.is_ok())
            .count();
        assert_eq!(landed, 1, "the shared entry is acknowledged once");
        // Each replica's head may trail the other's commits; catch up with one more entry.
        a.append_fresh(1).await;
        b.append_fresh(1).await;
        a.append_fresh(1).await;
        let mut acked = a.acked.clone();
        acked.extend(b.acked.clone());
        check_stored(&store, &a.verifier, a.engine.view(), &acked);
    }
    a.check_proofs().await;
    assert_eq!(a.head().size, 5 * (40 + 1 + 3));
}

#[tokio::test]
async fn a_slow_commit_holds_every_answer_until_it_is_durable() {
    let mut log = TestLog::new().await;
    let gate = MemoryStore::gate();
    log.store.inject(Fault::Slow {
        gate: gate.clone(),
        then: None,
    });
    let first = log.submit(b"first".to_vec());
    log.store.wait_for_commit_attempts(1).await;
    // Sequenced on top of the batch that is still committing, not yet committed.
    let later: Vec<_> = (0..10).map(|_| log.submit_fresh()).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!first.is_finished() && later.iter().all(|t| !t.is_finished()));
    assert_eq!(
        log.store.commit_attempts(),
        1,
        "the next batch waits for the first"
    );
    assert_eq!(log.head().size, 0);
    assert_eq!(log.store.snapshot(LOG).entries.len(), 0);
    gate.add_permits(1);
    let mut all = vec![first];
    all.extend(later);
    assert_eq!(ok_count(&log.collect(all).await), 11);
    log.check_proofs().await;
}

#[tokio::test]
async fn a_batch_prepared_on_a_failing_commit_is_sequenced_again() {
    let mut log = TestLog::new().await;
    log.append_fresh(4).await;
    let gate = MemoryStore::gate();
    log.store.inject(Fault::Slow {
        gate: gate.clone(),
        then: Some(Box::new(Fault::Fail)),
    });
    let before = log.store.commit_attempts();
    let first = log.submit(b"doomed".to_vec());
    log.store.wait_for_commit_attempts(before + 1).await;
    let later: Vec<_> = (0..8).map(|_| log.submit_fresh()).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    gate.add_permits(1);
    let (_, o) = first.await.unwrap();
    assert!(matches!(o, Err(EngineError::Internal(_))), "{o:?}");
    // The batch built on the failed one is rebuilt on the stored tree and lands.
    assert_eq!(ok_count(&log.collect(later).await), 8);
    log.check_proofs().await;
    assert_eq!(log.head().size, 12);
    let stored = log.store.snapshot(LOG);
    assert!(stored.entries.iter().all(|e| e.data != b"doomed"));
}

#[tokio::test]
async fn each_batch_takes_one_timestamp() {
    let mut log = TestLog::new().await;
    let r = log.append_fresh(30).await;
    // The clock did not move: one timestamp for all, whatever the batching.
    for (_, o) in &r {
        let a = o.as_ref().unwrap();
        assert_eq!(a.timestamp_ms, T0_MS);
        assert_eq!(a.integrated_time, (T0_MS / 1000) as i64);
        assert_eq!(a.tree.timestamp_ms, T0_MS);
    }
    assert_eq!(
        log.store.snapshot(LOG).row.unwrap().timestamp_ms,
        T0_MS as i64
    );
    log.clock.advance(Duration::from_millis(1500));
    let r = log.append_fresh(3).await;
    for (_, o) in &r {
        assert_eq!(o.as_ref().unwrap().timestamp_ms, T0_MS + 1500);
    }
    // A clock that steps back never takes a batch below the tree it extends.
    let back = ManualClock::at_ms(T0_MS);
    let engine = LogEngine::open(
        Arc::new(log.store.clone()),
        LOG,
        "test",
        signer(&log.key),
        EngineConfig {
            clock: back,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    log.engine = engine;
    let r = log.append_fresh(2).await;
    for (_, o) in &r {
        assert_eq!(o.as_ref().unwrap().timestamp_ms, T0_MS + 1500);
    }
    log.check_proofs().await;
}

/// A leaf holding its timestamp, as an RFC 6962 `MerkleTreeLeaf` does.
fn stamped(name: &'static str) -> Submission {
    Submission {
        leaf: LeafInput::Timestamped(Arc::new(move |ts| {
            if name.is_empty() {
                Err("no name".into())
            } else {
                Ok(format!("{ts} {name}").into_bytes())
            }
        })),
        extra: Vec::new(),
        search_keys: Vec::new(),
    }
}

#[tokio::test]
async fn timestamped_leaves_carry_the_batch_timestamp() {
    let mut log = TestLog::new().await;
    let tasks = vec![
        log.spawn(b"a".to_vec(), stamped("a")),
        log.spawn(b"b".to_vec(), stamped("b")),
        log.spawn(b"refused".to_vec(), stamped("")),
    ];
    let r = log.collect(tasks).await;
    let stored = log.store.snapshot(LOG);
    for (leaf, o) in &r {
        match o {
            Ok(a) => {
                assert_eq!(a.timestamp_ms, T0_MS);
                let text = String::from_utf8_lossy(leaf);
                assert!(
                    text == format!("{T0_MS} a") || text == format!("{T0_MS} b"),
                    "{text}"
                );
                assert_eq!(&stored.entries[a.index as usize].data, leaf);
            }
            Err(EngineError::InvalidArgs(m)) => {
                assert_eq!(leaf, b"refused");
                assert_eq!(m, "no name");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok_count(&r), 2);
    // The same leaf at the same timestamp is a duplicate that knows its timestamp (a CT log
    // answers it with an SCT for the stored entry).
    let (_, o) = log.spawn(b"a".to_vec(), stamped("a")).await.unwrap();
    match o {
        Err(EngineError::Duplicate {
            index,
            timestamp_ms: Some(ts),
        }) => {
            assert_eq!(ts, T0_MS);
            assert_eq!(
                stored.entries[index as usize].data,
                format!("{T0_MS} a").into_bytes()
            );
        }
        other => panic!("{other:?}"),
    }
    // A second later the same submission is a new leaf.
    log.clock.advance(Duration::from_secs(1));
    let (_, o) = log.spawn(b"a".to_vec(), stamped("a")).await.unwrap();
    assert_eq!(o.unwrap().timestamp_ms, T0_MS + 1000);
    log.check_proofs().await;
}

#[tokio::test]
async fn a_reopened_log_goes_on_where_the_store_is() {
    let mut log = TestLog::new().await;
    log.append_fresh(270).await;
    log.store.inject(Fault::FailAfterPersist);
    log.append_fresh(5).await;
    let size = log.head().size;
    let reopened = TestLog::on(log.store.clone(), log.key.clone()).await;
    assert_eq!(reopened.head().size, size);
    assert_eq!(reopened.head().root, log.head().root);
    log.engine = reopened.engine;
    assert_eq!(ok_count(&log.append_fresh(10).await), 10);
    log.check_proofs().await;
}

/// Faults in random order, with duplicates, checked after every step (seeded: reproducible).
#[tokio::test]
async fn random_faults_never_break_the_log() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut log = TestLog::new().await;
    let mut submitted: Vec<Vec<u8>> = Vec::new();
    for step in 0..30 {
        match rng.random_range(0..6) {
            0 => log.store.inject(Fault::Fail),
            1 => log.store.inject(Fault::FailAfterPersist),
            2 => log.store.inject(Fault::LoseCas),
            3 => log.store.inject(Fault::Delay(Duration::from_millis(5))),
            _ => {}
        }
        if rng.random_bool(0.3) {
            log.clock
                .advance(Duration::from_millis(rng.random_range(0..3000)));
        }
        let mut tasks = Vec::new();
        for _ in 0..rng.random_range(1..80) {
            let data = if !submitted.is_empty() && rng.random_bool(0.2) {
                submitted[rng.random_range(0..submitted.len())].clone()
            } else {
                log.fresh_data()
            };
            if log.acked.contains_key(&data) || tasks.iter().any(|(d, _)| *d == data) {
                continue;
            }
            submitted.push(data.clone());
            tasks.push((data.clone(), log.submit(data)));
        }
        let r = log
            .collect(tasks.into_iter().map(|(_, t)| t).collect())
            .await;
        for (d, o) in &r {
            match o {
                Ok(_) => {}
                Err(EngineError::Duplicate { index, .. }) => {
                    assert_eq!(&log.store.snapshot(LOG).entries[*index as usize].data, d);
                }
                Err(EngineError::Internal(_)) => {}
                Err(e) => panic!("step {step}: {e:?}"),
            }
        }
        log.check();
        if step % 10 == 9 {
            log.check_proofs().await;
        }
    }
    // Everything acknowledged is there; everything submitted is there at most once (the
    // check above); retried, everything lands.
    let tasks: Vec<_> = submitted
        .iter()
        .filter(|d| !log.acked.contains_key(*d))
        .map(|d| log.submit(d.clone()))
        .collect();
    for (_, o) in log.collect(tasks).await {
        assert!(
            matches!(o, Ok(_) | Err(EngineError::Duplicate { .. })),
            "{o:?}"
        );
    }
    let stored: HashSet<Vec<u8>> = log
        .store
        .snapshot(LOG)
        .entries
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert!(submitted.iter().all(|d| stored.contains(d)));
    log.check_proofs().await;
}
