//! 64 concurrent clients append 5,000 entries, on PostgreSQL and SQLite: every 201 is in the log
//! exactly once, indexes are dense, the final tree holds them all; with 20% duplicates the log
//! holds exactly the unique set and every 409 points at the entry that won. Then 64 clients read
//! single entries at once: each answer is the stored entry, and on PostgreSQL reads share queries.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail, ensure};
use serde_json::Value;
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;

const CLIENTS: usize = 64;
const SUBMISSIONS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_on_postgres() {
    run(Backend::Postgres, 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_on_sqlite() {
    run(Backend::Sqlite, 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_with_duplicates_on_postgres() {
    run(Backend::Postgres, 20).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_with_duplicates_on_sqlite() {
    run(Backend::Sqlite, 20).await.unwrap();
}

/// 64 clients read single entries by index at once: each answer passes every client check and
/// is the entry stored at that index. On PostgreSQL, concurrent reads share queries: the read
/// batch histogram counts every read and fewer queries than reads.
async fn concurrent_reads(
    server: &LogServer,
    client: &LogClient,
    all: &[Checked],
    backend: Backend,
) -> Result<()> {
    const READS_EACH: usize = 30;
    let batches = |text: &str| {
        let get = |s: &str| sample(text, s).unwrap_or(0.0);
        (
            get("sigil_db_entry_read_batch_size_count{log=\"rekor\"}"),
            get("sigil_db_entry_read_batch_size_sum{log=\"rekor\"}"),
        )
    };
    let before = batches(&metrics_text(&server.http, &server.url).await?);
    // Indexes in full tiles, whose proofs come with the entry's own read.
    let covered = all.len() - all.len() % 256;
    ensure!(covered > 0, "no full tile to read from");
    let all = Arc::new(all.to_vec());
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, all) = (client.clone(), all.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(1000 + c as u64);
            for _ in 0..READS_EACH {
                let i = rng.next(covered);
                let a = client
                    .get(&format!("/api/v1/log/entries?logIndex={i}"))
                    .await?;
                ensure!(a.status == 200, "entry {i}: HTTP {} {}", a.status, a.text);
                let [got] = <[Checked; 1]>::try_from(client.check_entries(&a.body)?)
                    .map_err(|v| anyhow!("entry {i}: {} entries", v.len()))?;
                let want = &all[i];
                ensure!(
                    got.index == i as u64 && got.leaf == want.leaf && got.body == want.body,
                    "logIndex {i} answered entry {} ({})",
                    got.index,
                    got.uuid
                );
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let reads = (CLIENTS * READS_EACH) as f64;
    let after = batches(&metrics_text(&server.http, &server.url).await?);
    let (queries, batched) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "{backend:?}: {reads} concurrent reads, {queries} batched queries answered {batched}"
    );
    if matches!(backend, Backend::Postgres) {
        ensure!(
            batched >= reads,
            "the read batches answered {batched} of {reads} reads"
        );
        ensure!(
            queries < batched,
            "{queries} queries for {batched} concurrent reads: none were shared"
        );
    }
    Ok(())
}

/// What one submission got.
enum Outcome {
    Created(Checked),
    Conflict(String),
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// `SUBMISSIONS` submissions, `dup_percent`% of them copies of others; returns (entries, group
/// of each submission = index of its unique entry).
fn workload(dup_percent: usize) -> Result<(Vec<Value>, Vec<usize>)> {
    let unique = SUBMISSIONS - SUBMISSIONS * dup_percent / 100;
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    let entries: Vec<Value> = (0..unique)
        .map(|i| {
            signer
                .hashedrekord(format!("artifact {i}").as_bytes())
                .map(|(e, _)| e)
        })
        .collect::<Result<_>>()?;
    let mut groups: Vec<usize> = (0..unique).collect();
    let mut rng = Lcg(0x5eed);
    // Half of the copies right after their original (same batch, racing), half anywhere.
    for k in 0..SUBMISSIONS - unique {
        let of = rng.next(unique);
        if k % 2 == 0 {
            let pos = groups.iter().position(|g| *g == of).unwrap_or(0);
            groups.insert(pos + 1, of);
        } else {
            let pos = rng.next(groups.len() + 1);
            groups.insert(pos, of);
        }
    }
    Ok((entries, groups))
}

async fn run(backend: Backend, dup_percent: usize) -> Result<()> {
    let (entries, groups) = workload(dup_percent)?;
    let unique = entries.len();
    let server = LogServer::start(backend).await?;
    let client = server.client();

    let entries = Arc::new(entries);
    let groups = Arc::new(groups);
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (c, entries, groups, next, retries) = (
            client.clone(),
            entries.clone(),
            groups.clone(),
            next.clone(),
            retries.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<(usize, Outcome)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(g) = groups.get(i).copied() else {
                    return Ok::<_, anyhow::Error>(out);
                };
                let proposed = &entries[g];
                loop {
                    match c.append(proposed).await? {
                        Ok(checked) => {
                            out.push((g, Outcome::Created(checked)));
                            break;
                        }
                        Err(a) if a.status == 409 => {
                            let loc = a
                                .location
                                .clone()
                                .ok_or_else(|| anyhow!("409 without Location: {}", a.text))?;
                            ensure!(a.body["code"] == 409, "409 body {}", a.text);
                            out.push((g, Outcome::Conflict(loc)));
                            break;
                        }
                        Err(a) if a.status == 503 => {
                            // Backpressure is allowed; it must carry Retry-After semantics.
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(a) => bail!("submission {i}: HTTP {} {}", a.status, a.text),
                    }
                }
            }
        }));
    }
    let mut outcomes = Vec::with_capacity(SUBMISSIONS);
    for t in tasks {
        outcomes.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let (batches, batched) = batch_stats(&server.http, &server.url).await?;
    eprintln!(
        "{backend:?}: {SUBMISSIONS} submissions ({unique} unique) by {CLIENTS} clients in {elapsed:?} \
         ({:.0}/s), {} retries after 503, mean batch {:.1}",
        SUBMISSIONS as f64 / elapsed.as_secs_f64(),
        retries.load(Ordering::Relaxed),
        if batches > 0.0 {
            batched / batches
        } else {
            0.0
        }
    );
    ensure!(outcomes.len() == SUBMISSIONS, "{} outcomes", outcomes.len());

    // Exactly one 201 per unique entry; every other submission a 409 naming the winner.
    let mut created: HashMap<usize, Checked> = HashMap::new();
    let mut conflicts: Vec<(usize, String)> = Vec::new();
    let seen = Seen::default();
    for (g, o) in outcomes {
        match o {
            Outcome::Created(c) => {
                seen.add(c.tree_size, c.root)?;
                if created.insert(g, c).is_some() {
                    bail!("entry group {g} was created twice");
                }
            }
            Outcome::Conflict(loc) => conflicts.push((g, loc)),
        }
    }
    ensure!(
        created.len() == unique,
        "{} of {unique} unique entries created",
        created.len()
    );
    ensure!(
        conflicts.len() == SUBMISSIONS - unique,
        "{} conflicts",
        conflicts.len()
    );
    for (g, loc) in &conflicts {
        let winner = &created[g];
        ensure!(
            *loc == format!("/api/v1/log/entries/{}", winner.entry_id),
            "409 for group {g} points at {loc}, not {}",
            winner.entry_id
        );
    }

    // Dense indexes 0..n-1, each once.
    let indexes: BTreeSet<u64> = created.values().map(|c| c.index).collect();
    ensure!(indexes.len() == unique, "two 201s share an index");
    ensure!(
        indexes.iter().copied().eq(0..unique as u64),
        "indexes are not dense 0..{unique}"
    );

    // The final tree holds exactly these entries, at these indexes.
    let (size, root, _) = client.tree().await?;
    ensure!(
        size == unique as u64,
        "final tree has {size} entries, want {unique}"
    );
    seen.add(size, root)?;
    let all = read_all(&client, size).await?;
    let leaves: Vec<Hash> = all.iter().map(|e| e.leaf).collect();
    ensure!(
        leaves.iter().collect::<BTreeSet<_>>().len() == leaves.len(),
        "a leaf appears twice in the log"
    );
    for (g, c) in &created {
        let stored = &all[c.index as usize];
        ensure!(
            stored.leaf == c.leaf && stored.body == c.body,
            "entry {g} not at its index"
        );
    }
    ensure!(
        oracle::mth(&leaves) == root,
        "final root is not MTH of the leaves"
    );
    concurrent_reads(&server, &client, &all, backend).await?;

    // Every checkpoint seen is a prefix of this one tree, and consistent with its successors.
    let seen = seen.all();
    check_roots_against_leaves(&leaves, &seen)?;
    let nonempty: Vec<(u64, Hash)> = seen.into_iter().filter(|(s, _)| *s > 0).collect();
    let last = *nonempty.last().ok_or_else(|| anyhow!("no checkpoints"))?;
    for w in nonempty.windows(2) {
        client.check_consistency(w[0], w[1]).await?;
    }
    for cp in &nonempty {
        client.check_consistency(*cp, last).await?;
    }
    let mut rng = Lcg(7);
    for _ in 0..200 {
        let a = nonempty[rng.next(nonempty.len())];
        let b = nonempty[rng.next(nonempty.len())];
        let (a, b) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        client.check_consistency(a, b).await?;
    }
    eprintln!("{} checkpoints seen, all consistent", nonempty.len());
    Ok(())
}

/// Reads that go away mid-batch (a client that disconnects drops its request) cost the reads
/// batched with them nothing: every read that is not abandoned gets its own entry and its
/// block's leaves, whether its batch's leader went away or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_reads_leave_their_batch_whole_on_postgres() {
    abandoned_reads().await.unwrap();
}

async fn abandoned_reads() -> Result<()> {
    const ENTRIES: usize = 256;
    let server = LogServer::start(Backend::Postgres).await?;
    let client = server.client();
    let signer = Arc::new(Signer::new(KeyAlgorithm::EcdsaP256)?);
    let mut appends = Vec::new();
    for chunk in 0..16 {
        let (client, signer) = (client.clone(), signer.clone());
        appends.push(tokio::spawn(async move {
            for i in (chunk..ENTRIES).step_by(16) {
                let (e, _) = signer.hashedrekord(format!("abandoned {i}").as_bytes())?;
                client
                    .append(&e)
                    .await?
                    .map_err(|a| anyhow!("{}", a.text))?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for a in appends {
        a.await??;
    }
    let all = read_all(&client, ENTRIES as u64).await?;
    let store = sigil_server::storage::connect_serving(&server.db.url(), 8, true).await?;
    let mut rng = Lcg(0xabc);
    let (mut answered, mut abandoned) = (0, 0);
    for round in 0..20 {
        let mut reads = Vec::new();
        for k in 0..64 {
            let i = rng.next(ENTRIES) as u64;
            let start = i - i % 8;
            // Abandoned after its first few waits: at any point of a batch, leading it or not.
            let give_up = (k % 3 == 0).then(|| 1 + rng.next(3));
            let store = store.clone();
            reads.push(tokio::spawn(async move {
                let read = store.entry_with_leaves("rekor", i, start, start + 8);
                let got = match give_up {
                    Some(waits) => {
                        let mut read = read;
                        let mut pending = 0;
                        let got = std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
                            std::task::Poll::Ready(got) => std::task::Poll::Ready(Some(got)),
                            std::task::Poll::Pending => {
                                pending += 1;
                                if pending >= waits {
                                    std::task::Poll::Ready(None)
                                } else {
                                    std::task::Poll::Pending
                                }
                            }
                        })
                        .await;
                        match got {
                            Some(got) => got,
                            None => return Ok(None),
                        }
                    }
                    None => read.await,
                };
                Ok::<_, anyhow::Error>(Some((i, start, got?)))
            }));
        }
        for r in reads {
            let Some((i, start, got)) = r.await?? else {
                abandoned += 1;
                continue;
            };
            let (row, leaves) = got.ok_or_else(|| anyhow!("round {round}: entry {i} missing"))?;
            let want: Vec<Hash> = all[start as usize..start as usize + 8]
                .iter()
                .map(|c| c.leaf)
                .collect();
            ensure!(
                row.index == i && row.leaf_hash == all[i as usize].leaf && leaves == want,
                "round {round}: entry {i} came back as {} with other leaves",
                row.index
            );
            ensure!(
                sigil_core::merkle::leaf_hash(&row.data) == row.leaf_hash,
                "entry {i}: its body is not its leaf's"
            );
            answered += 1;
        }
    }
    eprintln!("{answered} reads answered, {abandoned} abandoned");
    ensure!(
        abandoned > 0,
        "no read was abandoned: the test tested nothing"
    );
    Ok(())
}
