//! `sigil-server fsck` on PostgreSQL and SQLite: a log written through the API checks out (also
//! while it is being written to), and each kind of damage to the stored log is reported as the
//! first mismatch with exit status 1: an entry whose bytes changed, a missing entry, an entry's
//! stored SET altered or taken from another entry, a tile
//! that differs from the entries, a checkpoint with another root (a fork), a checkpoint whose
//! signed note does not match, and the head.

use std::process::Output;

use anyhow::{Context, Result, bail, ensure};
use sigil_core::crypto::KeyAlgorithm;
use sigil_tests::log::*;
use sigil_tests::workspace_bin;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_each_kind_of_damage_on_postgres() {
    run(Backend::Postgres).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_each_kind_of_damage_on_sqlite() {
    run(Backend::Sqlite).await.unwrap();
}

/// The test's own connection to the log's database, to damage it.
enum Db {
    Pg(PgConnection),
    Lite(SqliteConnection),
}

impl Db {
    async fn open(url: &str) -> Result<Db> {
        Ok(if url.starts_with("postgres") {
            Db::Pg(PgConnection::connect(url).await?)
        } else {
            Db::Lite(SqliteConnection::connect(url).await?)
        })
    }

    async fn bytes(&mut self, sql: &str) -> Result<Vec<u8>> {
        Ok(match self {
            Db::Pg(c) => sqlx::query(sql).fetch_one(c).await?.get(0),
            Db::Lite(c) => sqlx::query(sql).fetch_one(c).await?.get(0),
        })
    }

    async fn int(&mut self, sql: &str) -> Result<i64> {
        Ok(match self {
            Db::Pg(c) => sqlx::query(sql).fetch_one(c).await?.get(0),
            Db::Lite(c) => sqlx::query(sql).fetch_one(c).await?.get(0),
        })
    }

    /// Runs `sql` with byte arguments `$1`, `$2`, …
    async fn exec(&mut self, sql: &str, args: &[&[u8]]) -> Result<u64> {
        Ok(match self {
            Db::Pg(c) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(c).await?.rows_affected()
            }
            Db::Lite(c) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(c).await?.rows_affected()
            }
        })
    }
}

fn fsck(server: &LogServer) -> Result<Output> {
    std::process::Command::new(workspace_bin("sigil-server")?)
        .arg("fsck")
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .arg("--database-url")
        .arg(server.db.url())
        .output()
        .context("running sigil-server fsck")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// fsck must fail, naming the Rekor log and `want`.
fn expect_mismatch(o: &Output, case: &str, want: &str) -> Result<()> {
    let out = text(o);
    ensure!(
        o.status.code() == Some(1),
        "{case}: fsck exited {:?}, want 1:\n{out}",
        o.status
    );
    ensure!(
        out.contains("rekor: MISMATCH") && out.contains(want),
        "{case}: fsck does not report {want:?}:\n{out}"
    );
    eprintln!(
        "{case}: {}",
        out.lines().find(|l| l.contains("MISMATCH")).unwrap_or("")
    );
    Ok(())
}

fn expect_ok(o: &Output, entries: i64) -> Result<()> {
    let out = text(o);
    ensure!(o.status.success(), "fsck failed on an intact log:\n{out}");
    ensure!(
        out.contains(&format!("rekor: OK: {entries} entries")),
        "fsck does not report the log's {entries} entries:\n{out}"
    );
    Ok(())
}

async fn append_all(c: &LogClient, n: usize, tag: &str) -> Result<()> {
    let signer = Signer::new(KeyAlgorithm::EcdsaP256)?;
    let work: Vec<_> = (0..n)
        .map(|i| {
            signer
                .hashedrekord(format!("{tag} {i}").as_bytes())
                .map(|(e, _)| e)
        })
        .collect::<Result<_>>()?;
    for chunk in work.chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for e in chunk {
            let (c, e) = (c.clone(), e.clone());
            tasks.spawn(async move { c.append(&e).await });
        }
        while let Some(a) = tasks.join_next().await {
            if let Err(a) = a?? {
                bail!("append: {} {}", a.status, a.text);
            }
        }
    }
    Ok(())
}

async fn run(backend: Backend) -> Result<()> {
    let server = LogServer::start(backend).await?;
    let c = server.client();
    // Past one full tile (256), so full and partial tiles of two levels exist.
    append_all(&c, 600, "fsck").await?;

    // On a live log: fsck while more entries are written checks the size it started at.
    let (o, more) = tokio::join!(
        async {
            tokio::task::spawn_blocking({
                let cmd = fsck(&server);
                move || cmd
            })
            .await
        },
        append_all(&c, 200, "during fsck")
    );
    more?;
    let o = o??;
    ensure!(
        o.status.success(),
        "fsck of a live log failed:\n{}",
        text(&o)
    );
    eprintln!(
        "live: {}",
        text(&o)
            .lines()
            .find(|l| l.starts_with("rekor"))
            .unwrap_or("")
    );

    let mut db = Db::open(&server.db.url()).await?;
    let size = db
        .int("SELECT tree_size FROM logs WHERE log_id = 'rekor'")
        .await?;
    ensure!(size == 800, "the log holds {size} entries, want 800");
    expect_ok(&fsck(&server)?, size)?;

    // An entry's bytes changed.
    let e5 = "FROM entries WHERE log_id = 'rekor' AND idx = 5";
    let data = db.bytes(&format!("SELECT data {e5}")).await?;
    let mut bad = data.clone();
    bad[10] ^= 1;
    db.exec(
        "UPDATE entries SET data = $1 WHERE log_id = 'rekor' AND idx = 5",
        &[&bad],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "changed entry",
        "entry 5: the stored leaf hash is not the hash of its data",
    )?;
    // The same entry replaced whole (bytes and leaf hash).
    let leaf = db.bytes(&format!("SELECT leaf_hash {e5}")).await?;
    let new_leaf = sigil_core::merkle::leaf_hash(&bad);
    db.exec(
        "UPDATE entries SET leaf_hash = $1 WHERE log_id = 'rekor' AND idx = 5",
        &[&new_leaf],
    )
    .await?;
    // Its stored SET signs the old bytes.
    expect_mismatch(
        &fsck(&server)?,
        "replaced entry",
        "entry 5: its stored signed entry timestamp does not verify",
    )?;
    // Without one (as entries sequenced before SETs were stored): the first checkpoint after
    // it no longer matches the entries.
    let extra5 = db.bytes(&format!("SELECT extra {e5}")).await?;
    db.exec(
        "UPDATE entries SET extra = $1 WHERE log_id = 'rekor' AND idx = 5",
        &[&[]],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "replaced entry without a stored SET",
        "the log forked or an entry changed",
    )?;
    db.exec(
        "UPDATE entries SET data = $1, leaf_hash = $2, extra = $3 WHERE log_id = 'rekor' AND idx = 5",
        &[&data, &leaf, &extra5],
    )
    .await?;
    expect_ok(&fsck(&server)?, size)?;

    // A missing entry.
    let e7 = "FROM entries WHERE log_id = 'rekor' AND idx = 7";
    let (leaf7, data7, extra7) = (
        db.bytes(&format!("SELECT leaf_hash {e7}")).await?,
        db.bytes(&format!("SELECT data {e7}")).await?,
        db.bytes(&format!("SELECT extra {e7}")).await?,
    );
    let time7 = db.int(&format!("SELECT integrated_time {e7}")).await?;
    ensure!(db.exec(&format!("DELETE {e7}"), &[]).await? == 1);
    expect_mismatch(&fsck(&server)?, "missing entry", "entry 7 is missing")?;
    db.exec(
        &format!(
            "INSERT INTO entries (log_id, idx, leaf_hash, data, extra, integrated_time) \
             VALUES ('rekor', 7, $1, $2, $3, {time7})"
        ),
        &[&leaf7, &data7, &extra7],
    )
    .await?;

    // An entry's stored signed entry timestamp altered (what reads serve as its SET), and one
    // whose index (the SET signs the entry's logIndex) was swapped with its neighbour's.
    ensure!(
        extra7.len() > 40,
        "entry 7 has no stored SET ({} bytes of extra)",
        extra7.len()
    );
    let mut bad_set = extra7.clone();
    let last = bad_set.len() - 1;
    bad_set[last] ^= 1;
    db.exec(
        "UPDATE entries SET extra = $1 WHERE log_id = 'rekor' AND idx = 7",
        &[&bad_set],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "altered SET",
        "entry 7: its stored signed entry timestamp does not verify",
    )?;
    let extra8 = db
        .bytes("SELECT extra FROM entries WHERE log_id = 'rekor' AND idx = 8")
        .await?;
    db.exec(
        "UPDATE entries SET extra = $1 WHERE log_id = 'rekor' AND idx = 7",
        &[&extra8],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "another entry's SET",
        "entry 7: its stored signed entry timestamp does not verify",
    )?;
    db.exec(
        "UPDATE entries SET extra = $1 WHERE log_id = 'rekor' AND idx = 7",
        &[&extra7],
    )
    .await?;
    expect_ok(&fsck(&server)?, size)?;

    // A tile that differs from the entries.
    let t = "FROM tiles WHERE log_id = 'rekor' AND level = 0 AND idx = 1";
    let tile = db.bytes(&format!("SELECT data {t}")).await?;
    let mut bad_tile = tile.clone();
    bad_tile[40] ^= 0x80;
    db.exec(
        "UPDATE tiles SET data = $1 WHERE log_id = 'rekor' AND level = 0 AND idx = 1",
        &[&bad_tile],
    )
    .await?;
    expect_mismatch(&fsck(&server)?, "changed tile", "tile/0/001 differs")?;
    db.exec(
        "UPDATE tiles SET data = $1 WHERE log_id = 'rekor' AND level = 0 AND idx = 1",
        &[&tile],
    )
    .await?;
    expect_ok(&fsck(&server)?, size)?;

    // A checkpoint with another root: what a fork leaves behind.
    let cp_size = db
        .int("SELECT min(tree_size) FROM checkpoints WHERE log_id = 'rekor' AND tree_size > 300")
        .await?;
    let cp = format!("FROM checkpoints WHERE log_id = 'rekor' AND tree_size = {cp_size}");
    let root = db.bytes(&format!("SELECT root_hash {cp}")).await?;
    let note = db.bytes(&format!("SELECT checkpoint {cp}")).await?;
    db.exec(
        &format!(
            "UPDATE checkpoints SET root_hash = $1 WHERE log_id = 'rekor' AND tree_size = {cp_size}"
        ),
        &[&[7u8; 32]],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "forked checkpoint",
        &format!("the stored checkpoint at size {cp_size} has root"),
    )?;
    db.exec(
        &format!(
            "UPDATE checkpoints SET root_hash = $1 WHERE log_id = 'rekor' AND tree_size = {cp_size}"
        ),
        &[&root],
    )
    .await?;

    // A checkpoint whose signed note is another size's, and one whose signature is broken.
    let other = db
        .bytes(&format!(
            "SELECT checkpoint FROM checkpoints WHERE log_id = 'rekor' AND tree_size < {cp_size} \
             ORDER BY tree_size DESC LIMIT 1"
        ))
        .await?;
    db.exec(
        &format!("UPDATE checkpoints SET checkpoint = $1 WHERE log_id = 'rekor' AND tree_size = {cp_size}"),
        &[&other],
    )
    .await?;
    expect_mismatch(&fsck(&server)?, "swapped note", "the signed note says size")?;
    let mut forged = note.clone();
    // The last bytes before the final newline are the signature's base64.
    let at = forged.len() - 6;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    db.exec(
        &format!("UPDATE checkpoints SET checkpoint = $1 WHERE log_id = 'rekor' AND tree_size = {cp_size}"),
        &[&forged],
    )
    .await?;
    expect_mismatch(
        &fsck(&server)?,
        "forged signature",
        &format!("the checkpoint at size {cp_size}"),
    )?;
    db.exec(
        &format!("UPDATE checkpoints SET checkpoint = $1 WHERE log_id = 'rekor' AND tree_size = {cp_size}"),
        &[&note],
    )
    .await?;

    // The head names a root the entries do not give.
    let head_root = db
        .bytes("SELECT root_hash FROM logs WHERE log_id = 'rekor'")
        .await?;
    db.exec(
        "UPDATE logs SET root_hash = $1 WHERE log_id = 'rekor'",
        &[&[9u8; 32]],
    )
    .await?;
    expect_mismatch(&fsck(&server)?, "head", "the stored head")?;
    db.exec(
        "UPDATE logs SET root_hash = $1 WHERE log_id = 'rekor'",
        &[&head_root],
    )
    .await?;

    // Everything put back: intact again.
    expect_ok(&fsck(&server)?, size)?;
    Ok(())
}
