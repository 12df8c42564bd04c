//! Crash safety and replicas on PostgreSQL, with `sigil-server log` as real processes:
//! kill -9 during a write load loses no acknowledged entry and never forks the log; two servers
//! appending to one database at once build one consistent tree; an idle server takes up the
//! other's writes within a second; a PostgreSQL restart costs no request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail, ensure};
use serde_json::Value;
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;
use sigil_tests::{Postgres, free_port};
use sqlx::{Connection, Row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_loses_nothing_acknowledged() {
    kill_9().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_never_fork() {
    two_servers().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_behind_alternating_requests_and_an_idle_one_within_a_second() {
    idle_refresh().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_costs_no_request() {
    database_restart().await.unwrap();
}

fn entries(n: usize, tag: &str) -> Result<Vec<Value>> {
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    (0..n)
        .map(|i| {
            signer
                .hashedrekord(format!("{tag} {i}").as_bytes())
                .map(|(e, _)| e)
        })
        .collect()
}

/// What a load run saw.
#[derive(Default)]
struct Load {
    created: Vec<Checked>,
    conflicts: Vec<String>,
    /// Submissions whose outcome is unknown (the connection died).
    unknown: usize,
    /// Answers that are neither 201, 409 nor 503.
    errors: Vec<String>,
}

/// `clients` tasks post `work` (shared queue) to `client` until it runs out or `stop` is set;
/// a transport error (server gone) ends a task.
async fn load(
    client: &LogClient,
    work: Arc<Vec<Value>>,
    next: Arc<AtomicUsize>,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Result<Load> {
    let out = Arc::new(Mutex::new(Load::default()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, work, next, stop, out) = (
            client.clone(),
            work.clone(),
            next.clone(),
            stop.clone(),
            out.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(proposed) = work.get(i) else { return };
                let result = c.append(proposed).await;
                let mut o = match out.lock() {
                    Ok(o) => o,
                    Err(_) => return,
                };
                match result {
                    Ok(Ok(checked)) => o.created.push(checked),
                    Ok(Err(a)) if a.status == 409 => {
                        o.conflicts.push(a.location.unwrap_or_default());
                    }
                    Ok(Err(a)) if a.status == 503 => {}
                    Ok(Err(a)) => o.errors.push(format!("HTTP {} {}", a.status, a.text)),
                    Err(_) => {
                        o.unknown += 1;
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut o = out.lock().map_err(|_| anyhow!("poisoned"))?;
    Ok(std::mem::take(&mut *o))
}

/// The log as the database holds it: leaves by index and every stored checkpoint.
struct Stored {
    leaves: Vec<Hash>,
    checkpoints: Vec<(u64, Hash, String)>,
    head: (u64, Hash),
}

async fn stored(db_url: &str) -> Result<Stored> {
    let mut conn = sqlx::PgConnection::connect(db_url).await?;
    let rows =
        sqlx::query("SELECT idx, leaf_hash FROM entries WHERE log_id = 'rekor' ORDER BY idx")
            .fetch_all(&mut conn)
            .await?;
    let mut leaves = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let idx: i64 = r.get(0);
        ensure!(
            idx == i as i64,
            "entries are not dense: index {idx} at position {i}"
        );
        let h: Vec<u8> = r.get(1);
        leaves.push(h.try_into().map_err(|_| anyhow!("bad leaf hash"))?);
    }
    let rows = sqlx::query(
        "SELECT tree_size, root_hash, checkpoint FROM checkpoints WHERE log_id = 'rekor' ORDER BY tree_size",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut checkpoints = Vec::new();
    for r in rows {
        let size: i64 = r.get(0);
        let root: Vec<u8> = r.get(1);
        let note: Vec<u8> = r.get(2);
        checkpoints.push((
            size as u64,
            root.try_into().map_err(|_| anyhow!("bad root"))?,
            String::from_utf8(note)?,
        ));
    }
    let r = sqlx::query("SELECT tree_size, root_hash FROM logs WHERE log_id = 'rekor'")
        .fetch_one(&mut conn)
        .await?;
    let size: i64 = r.get(0);
    let root: Vec<u8> = r.get(1);
    Ok(Stored {
        leaves,
        checkpoints,
        head: (
            size as u64,
            root.try_into().map_err(|_| anyhow!("bad root"))?,
        ),
    })
}

/// The stored log is one tree: dense leaves, the head and every stored checkpoint (signed by the
/// log) are RFC 6962 hashes of prefixes of those leaves, and so is every checkpoint `seen`.
fn check_one_tree(log: &LogIdentity, s: &Stored, seen: &Seen) -> Result<()> {
    ensure!(
        s.head.0 == s.leaves.len() as u64,
        "head size {} but {} entries",
        s.head.0,
        s.leaves.len()
    );
    ensure!(
        oracle::mth(&s.leaves) == s.head.1,
        "head root is not MTH of the entries"
    );
    let mut sizes = BTreeSet::new();
    for (size, root, note) in &s.checkpoints {
        ensure!(sizes.insert(*size), "two stored checkpoints of size {size}");
        let (cp_size, cp_root) = verify_checkpoint(log, note)?;
        ensure!(
            cp_size == *size && cp_root == *root,
            "stored checkpoint note disagrees with its row"
        );
        seen.add(*size, *root)?;
    }
    check_roots_against_leaves(&s.leaves, &seen.all())
}

async fn kill_9() -> Result<()> {
    let pg = Postgres::start().await?;
    let port = free_port();
    let dir = LogProcess::init(port)?;
    let mut server = LogProcess::start(dir.path(), &pg.url(), port).await?;
    let http = http_client(64)?;
    let log = LogIdentity::fetch(&http, &server.url).await?;
    let client = LogClient {
        url: server.url.clone(),
        http: http.clone(),
        log: log.clone(),
    };

    let work = Arc::new(entries(30_000, "crash")?);
    let next = Arc::new(AtomicUsize::new(0));
    let seen = Seen::default();
    let mut acknowledged: Vec<Checked> = Vec::new();

    for round in 0..3 {
        // Write load; kill -9 the server in the middle of it.
        let stop = Arc::new(AtomicBool::new(false));
        let runner = {
            let (client, work, next, stop) =
                (client.clone(), work.clone(), next.clone(), stop.clone());
            tokio::spawn(async move { load(&client, work, next, 32, stop).await })
        };
        let start = Instant::now();
        let before = next.load(Ordering::Relaxed);
        while next.load(Ordering::Relaxed) < before + 300
            && start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.process.kill9()?;
        let l = runner.await??;
        stop.store(true, Ordering::Relaxed);
        ensure!(
            l.errors.is_empty(),
            "round {round}: unexpected answers: {:?}",
            l.errors
        );
        ensure!(
            l.unknown > 0,
            "round {round}: the kill did not interrupt any request"
        );
        ensure!(
            !l.created.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        eprintln!(
            "round {round}: {} acknowledged, {} in flight at kill -9",
            l.created.len(),
            l.unknown
        );
        for c in &l.created {
            seen.add(c.tree_size, c.root)?;
        }
        acknowledged.extend(l.created);

        // Restart on the same database; it must come up and hold every acknowledged entry.
        server = LogProcess::start(dir.path(), &pg.url(), port).await?;
        let (size, root, _) = client.tree().await?;
        seen.add(size, root)?;
        for a in &acknowledged {
            let r = client
                .get(&format!("/api/v1/log/entries/{}", a.uuid))
                .await?;
            ensure!(
                r.status == 200,
                "acknowledged entry {} lost after kill -9: {}",
                a.index,
                r.text
            );
            let got = client.check_entries(&r.body)?;
            ensure!(
                got.len() == 1 && got[0].index == a.index && got[0].body == a.body,
                "acknowledged entry {} changed after restart",
                a.index
            );
            seen.add(got[0].tree_size, got[0].root)?;
        }
        check_one_tree(&log, &stored(&pg.url()).await?, &seen)?;

        // It takes writes again, right away.
        let fresh = entries(3, &format!("after restart {round}"))?;
        for e in &fresh {
            let c = client
                .append(e)
                .await?
                .map_err(|a| anyhow!("write after restart refused: {} {}", a.status, a.text))?;
            seen.add(c.tree_size, c.root)?;
            acknowledged.push(c);
        }
    }

    let s = stored(&pg.url()).await?;
    check_one_tree(&log, &s, &seen)?;
    let indexes: BTreeSet<u64> = acknowledged.iter().map(|c| c.index).collect();
    ensure!(
        indexes.len() == acknowledged.len(),
        "two acknowledged entries share an index"
    );
    for a in &acknowledged {
        ensure!(
            s.leaves[a.index as usize] == a.leaf,
            "entry {} is not where it was acknowledged",
            a.index
        );
    }
    // Consistency between consecutive checkpoints and each to the final one, served by the log.
    let all = seen.all();
    let nonempty: Vec<(u64, Hash)> = all.into_iter().filter(|(s, _)| *s > 0).collect();
    let last = *nonempty.last().ok_or_else(|| anyhow!("no checkpoints"))?;
    for w in nonempty.windows(2) {
        client.check_consistency(w[0], w[1]).await?;
    }
    for cp in &nonempty {
        client.check_consistency(*cp, last).await?;
    }
    Ok(())
}

async fn two_servers() -> Result<()> {
    let pg = Postgres::start().await?;
    let (port_a, port_b) = (free_port(), free_port());
    let dir = LogProcess::init(port_a)?;
    let a = LogProcess::start(dir.path(), &pg.url(), port_a).await?;
    let b = LogProcess::start(dir.path(), &pg.url(), port_b).await?;
    let http = http_client(64)?;
    let log = LogIdentity::fetch(&http, &a.url).await?;
    let log_b = LogIdentity::fetch(&http, &b.url).await?;
    ensure!(
        log.tree_id == log_b.tree_id,
        "the two servers opened different trees"
    );
    let ca = LogClient {
        url: a.url.clone(),
        http: http.clone(),
        log: log.clone(),
    };
    let cb = LogClient {
        url: b.url.clone(),
        http: http.clone(),
        log: log.clone(),
    };

    // Each server gets its own entries, and both get the same 300 shared ones (cross-replica
    // duplicates racing each other).
    let shared = entries(300, "shared")?;
    let mut wa = entries(1_500, "only a")?;
    let mut wb = entries(1_500, "only b")?;
    for (i, e) in shared.iter().enumerate() {
        wa.insert((i * 5) % wa.len(), e.clone());
        wb.insert((i * 5) % wb.len(), e.clone());
    }
    let total_unique = 3_000 + shared.len();
    let stop = Arc::new(AtomicBool::new(false));
    let (la, lb) = tokio::join!(
        load(
            &ca,
            Arc::new(wa),
            Arc::new(AtomicUsize::new(0)),
            32,
            stop.clone()
        ),
        load(
            &cb,
            Arc::new(wb),
            Arc::new(AtomicUsize::new(0)),
            32,
            stop.clone()
        ),
    );
    let (la, lb) = (la?, lb?);
    for (name, l, p) in [("A", &la, &a), ("B", &lb, &b)] {
        eprintln!(
            "server {name}: {} created, {} conflicts, {} errors",
            l.created.len(),
            l.conflicts.len(),
            l.errors.len()
        );
        ensure!(l.unknown == 0, "server {name}: {} requests died", l.unknown);
        ensure!(
            l.errors.is_empty(),
            "server {name}: {:?}\n{}",
            &l.errors[..l.errors.len().min(5)],
            tail(&p.process.stderr(), 20)
        );
    }

    let seen = Seen::default();
    let mut by_index: BTreeMap<u64, Hash> = BTreeMap::new();
    for c in la.created.iter().chain(&lb.created) {
        seen.add(c.tree_size, c.root)?;
        if let Some(prev) = by_index.insert(c.index, c.leaf) {
            bail!(
                "FORK: index {} acknowledged twice (leaves {} and {})",
                c.index,
                hex::encode(prev),
                hex::encode(c.leaf)
            );
        }
    }
    ensure!(
        by_index.len() == total_unique,
        "{} entries acknowledged, want {total_unique}",
        by_index.len()
    );
    ensure!(
        la.conflicts.len() + lb.conflicts.len() == shared.len(),
        "{} conflicts, want {}",
        la.conflicts.len() + lb.conflicts.len(),
        shared.len()
    );
    let s = stored(&pg.url()).await?;
    ensure!(
        s.leaves.len() == total_unique,
        "the database holds {} entries",
        s.leaves.len()
    );
    for (i, leaf) in &by_index {
        ensure!(
            s.leaves[*i as usize] == *leaf,
            "entry {i} is not the acknowledged one"
        );
    }
    check_one_tree(&log, &s, &seen)?;

    // Each server proves consistency from every checkpoint the other served to the final tree
    // (after a write, a server's head is the database's).
    for c in [&ca, &cb] {
        let extra = entries(1, &format!("final {}", c.url))?;
        let e = c
            .append(&extra[0])
            .await?
            .map_err(|a| anyhow!("final write: {} {}", a.status, a.text))?;
        seen.add(e.tree_size, e.root)?;
    }
    let (size, root, _) = cb.tree().await?;
    let nonempty: Vec<(u64, Hash)> = seen.all().into_iter().filter(|(s, _)| *s > 0).collect();
    for cp in &nonempty {
        if cp.0 <= size {
            cb.check_consistency(*cp, (size, root)).await?;
        }
    }
    check_one_tree(&log, &stored(&pg.url()).await?, &seen)?;
    drop((a, b));
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Two writers behind alternating requests: no index acknowledged twice, dense indexes, every
/// acknowledged entry readable from both. Then B stays idle: its checkpoint must still reach
/// what A committed within a second (`head_refresh_ms` is 500 ms by default), and B must serve
/// A's entry and prove it.
async fn idle_refresh() -> Result<()> {
    let pg = Postgres::start().await?;
    let (port_a, port_b) = (free_port(), free_port());
    let dir = LogProcess::init(port_a)?;
    let a = LogProcess::start(dir.path(), &pg.url(), port_a).await?;
    let b = LogProcess::start(dir.path(), &pg.url(), port_b).await?;
    let http = http_client(4)?;
    let log = LogIdentity::fetch(&http, &a.url).await?;
    let client = |url: &str| LogClient {
        url: url.to_string(),
        http: http.clone(),
        log: log.clone(),
    };
    let (ca, cb) = (client(&a.url), client(&b.url));

    // Behind a load balancer: requests alternate between the two writers, 8 at a time.
    let work = entries(600, "alternating")?;
    let mut acked: BTreeMap<u64, Checked> = BTreeMap::new();
    for chunk in work.chunks(8) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, e) in chunk.iter().enumerate() {
            let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
            let e = e.clone();
            tasks.spawn(async move { c.append(&e).await });
        }
        while let Some(r) = tasks.join_next().await {
            let e = r??.map_err(|x| anyhow!("append: {} {}", x.status, x.text))?;
            if let Some(prev) = acked.insert(e.index, e.clone()) {
                bail!(
                    "FORK: index {} acknowledged twice ({} and {})",
                    e.index,
                    hex::encode(prev.leaf),
                    hex::encode(e.leaf)
                );
            }
        }
    }
    ensure!(
        acked.keys().copied().eq(0..work.len() as u64),
        "the acknowledged indexes are not 0..{}",
        work.len()
    );
    // Every acknowledged entry, read from either server, is the acknowledged one.
    let size = work.len() as u64;
    for (name, c) in [("A", &ca), ("B", &cb)] {
        let since = Instant::now();
        while c.tree().await?.0 < size {
            ensure!(
                since.elapsed() < Duration::from_secs(1),
                "server {name} is behind a second after the last write"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = read_all(c, size).await?;
        for (i, e) in &acked {
            ensure!(
                all[*i as usize].leaf == e.leaf,
                "server {name}: entry {i} is not the acknowledged one"
            );
        }
    }

    let mut worst = Duration::ZERO;
    for (round, work) in entries(5, "written through A")?.iter().enumerate() {
        let e = ca
            .append(work)
            .await?
            .map_err(|x| anyhow!("append: {} {}", x.status, x.text))?;
        let since = Instant::now();
        loop {
            let (size, root, _) = cb.tree().await?;
            if size >= e.tree_size {
                if size == e.tree_size {
                    ensure!(
                        root == e.root,
                        "B serves another root at size {size}: a fork"
                    );
                }
                break;
            }
            ensure!(
                since.elapsed() < Duration::from_millis(1500),
                "round {round}: B still serves size {size} {} ms after A committed size {}",
                since.elapsed().as_millis(),
                e.tree_size
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst = worst.max(since.elapsed());
        // B serves the entry itself and proves it.
        let got = cb
            .get(&format!("/api/v1/log/entries?logIndex={}", e.index))
            .await?;
        ensure!(
            got.status == 200,
            "B: entry {}: {} {}",
            e.index,
            got.status,
            got.text
        );
        let (size, root, _) = cb.tree().await?;
        cb.check_consistency((e.tree_size, e.root), (size, root))
            .await?;
        // Idle for a while between rounds, as a replica behind a load balancer is.
        tokio::time::sleep(Duration::from_millis(300 + 200 * round as u64)).await;
    }
    eprintln!(
        "B took up A's commits within {} ms at worst",
        worst.as_millis()
    );
    Ok(())
}

/// The server keeps its connections between requests. While PostgreSQL is down a read answers
/// 503; after it restarts the connections are all closed; the next reads and writes must each still succeed on the first try, whether the
/// server pings a connection that sat idle or retries a read that met a closed one.
async fn database_restart() -> Result<()> {
    let pg = Postgres::start_dedicated().await?;
    let port = free_port();
    let dir = LogProcess::init(port)?;
    let server = LogProcess::start(dir.path(), &pg.url(), port).await?;
    let http = http_client(16)?;
    let log = LogIdentity::fetch(&http, &server.url).await?;
    let client = LogClient {
        url: server.url.clone(),
        http,
        log,
    };
    let batch = |tag: &'static str| {
        let client = client.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for e in entries(16, tag)? {
                let c = client.clone();
                tasks.spawn(async move { c.append(&e).await });
            }
            let mut n = 0;
            while let Some(r) = tasks.join_next().await {
                r??.map_err(|a| anyhow!("{tag}: append answered {} {}", a.status, a.text))?;
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }
    };
    // Several connections in use, then idle in the server.
    batch("before").await?;
    let (size, _, _) = client.tree().await?;
    ensure!(read_all(&client, size).await?.len() as u64 == size);

    for (round, pause) in [(0, Duration::ZERO), (1, Duration::from_millis(1500))] {
        pg.stop_server()?;
        if round == 0 {
            // While it is down: 503 with Retry-After, saying why, not a 500.
            let r = client
                .http
                .get(format!("{}/api/v1/log/entries?logIndex=0", client.url))
                .send()
                .await?;
            let status = r.status().as_u16();
            let retry = r.headers().contains_key("retry-after");
            let text = r.text().await?;
            ensure!(
                status == 503 && retry && text.contains("database is unavailable"),
                "a read with the database down: {status} (Retry-After: {retry}) {text}"
            );
        }
        pg.start_server()?;
        // Straight away (within the idle bound, so a closed connection is met by a read) and
        // after a pause (over it, so a connection is pinged before use).
        tokio::time::sleep(pause).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..size {
            let c = client.clone();
            tasks.spawn(
                async move { (i, c.get(&format!("/api/v1/log/entries?logIndex={i}")).await) },
            );
        }
        while let Some(r) = tasks.join_next().await {
            let (i, a) = r?;
            let a = a?;
            ensure!(
                a.status == 200,
                "round {round}: entry {i} after the restart: {} {}",
                a.status,
                a.text
            );
        }
        pg.stop_server()?;
        pg.start_server()?;
        tokio::time::sleep(pause).await;
        batch(if round == 0 { "after 0" } else { "after 1" }).await?;
    }
    let (size, _, _) = client.tree().await?;
    ensure!(size == 48, "the log has {size} entries, want 48");
    ensure!(read_all(&client, size).await?.len() == 48);
    Ok(())
}
