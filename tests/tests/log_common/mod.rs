//! Shared helpers of the transparency-log end-to-end tests: log servers (in-process on PostgreSQL
//! or SQLite, or `sigil-server log` processes), entry builders for every kind, and the checks every
//! returned entry goes through — once with `sigil-core`, once with an independent oracle written
//! here from RFC 6962 / RFC 9162 and a plain aws-lc-rs ECDSA verify.
#![allow(dead_code)]
// Test helpers: a panic is a test failure with its message.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_core::checkpoint::open_checkpoint;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, RsaPadding, SigningKey};
use sigil_core::merkle;
use sigil_core::note::{EcdsaNoteKey, NoteVerifier};
use sigil_core::rekor;
use sigil_tests::{Postgres, ServerProcess, free_port, temp_sqlite, workspace_bin};
use tempfile::TempDir;

pub type Hash = [u8; 32];

// ---------------------------------------------------------------------------------------------
// Databases and servers
// ---------------------------------------------------------------------------------------------

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A database for one test; keeps the cluster / temp dir alive.
pub enum TestDb {
    Postgres(Postgres),
    Sqlite(TempDir, String),
}

impl TestDb {
    pub async fn start(backend: Backend) -> Result<TestDb> {
        Ok(match backend {
            Backend::Postgres => TestDb::Postgres(Postgres::start().await?),
            Backend::Sqlite => {
                let (dir, url) = temp_sqlite()?;
                TestDb::Sqlite(dir, url)
            }
        })
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Postgres(pg) => pg.url(),
            TestDb::Sqlite(_, url) => url.clone(),
        }
    }
}

/// A data dir initialised by `init::init` (keys, CA, config) for a server at `public_url`.
pub fn init_data_dir(public_url: &str) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("sigil-log-test-")
        .tempdir()?;
    sigil_server::init::init(dir.path(), public_url, false)?;
    Ok(dir)
}

/// The log-only config of a data dir, on `db_url`.
pub fn log_config(data_dir: &Path, db_url: &str) -> Result<sigil_server::config::Config> {
    let mut cfg = sigil_server::config::Config::load(Some(&data_dir.join("sigil.toml")))?;
    cfg.database.url = db_url.to_string();
    cfg.ca.enabled = false;
    cfg.dev_oidc.enabled = false;
    Ok(cfg)
}

/// A log server running in this process (axum on a random loopback port).
pub struct LogServer {
    pub url: String,
    pub http: reqwest::Client,
    pub data_dir: TempDir,
    pub db: TestDb,
    pub log: LogIdentity,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LogServer {
    pub async fn start(backend: Backend) -> Result<LogServer> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like [`start`](Self::start), with a hook to adjust the config.
    pub async fn start_with(
        backend: Backend,
        adjust: impl FnOnce(&mut sigil_server::config::Config),
    ) -> Result<LogServer> {
        let db = TestDb::start(backend).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let data_dir = init_data_dir(&url)?;
        let mut cfg = log_config(data_dir.path(), &db.url())?;
        adjust(&mut cfg);
        let service = sigil_server::app::build(&cfg, data_dir.path()).await?;
        let router = service.router;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = http_client(64)?;
        let log = LogIdentity::fetch(&http, &url).await?;
        Ok(LogServer {
            url,
            http,
            data_dir,
            db,
            log,
            task,
        })
    }

    pub fn client(&self) -> LogClient {
        LogClient {
            url: self.url.clone(),
            http: self.http.clone(),
            log: self.log.clone(),
        }
    }
}

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// `sigil-server log` as a process on a data dir and a database.
pub struct LogProcess {
    pub url: String,
    pub process: ServerProcess,
}

impl LogProcess {
    /// `sigil-server init` of a fresh data dir for `port` (the caller keeps the dir).
    pub fn init(port: u16) -> Result<TempDir> {
        let dir = tempfile::Builder::new()
            .prefix("sigil-log-proc-")
            .tempdir()?;
        let bin = workspace_bin("sigil-server")?;
        let out = std::process::Command::new(&bin)
            .arg("init")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--public-url")
            .arg(format!("http://127.0.0.1:{port}"))
            .output()
            .context("running sigil-server init")?;
        ensure!(
            out.status.success(),
            "sigil-server init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(dir)
    }

    /// Starts `sigil-server log` on `port` and waits for `/healthz`.
    pub async fn start(data_dir: &Path, db_url: &str, port: u16) -> Result<LogProcess> {
        let bin = workspace_bin("sigil-server")?;
        let listen = format!("127.0.0.1:{port}");
        let data = data_dir
            .to_str()
            .ok_or_else(|| anyhow!("non-UTF-8 data dir"))?;
        let mut process = ServerProcess::spawn(
            &bin,
            ["log", "--data-dir", data],
            &[
                ("SIGIL_DATABASE_URL", db_url),
                ("SIGIL_SERVER_LISTEN", &listen),
                ("RUST_LOG", "warn"),
            ],
        )?;
        let url = format!("http://{listen}");
        process
            .wait_for_url(&format!("{url}/healthz"), Duration::from_secs(60))
            .await?;
        Ok(LogProcess { url, process })
    }
}

pub fn free_port_u16() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------
// The log's identity and a client that checks every answer
// ---------------------------------------------------------------------------------------------

/// What a client pins: the log's public key and the values derived from it.
#[derive(Clone)]
pub struct LogIdentity {
    pub public: PublicKey,
    pub spki_der: Vec<u8>,
    /// hex SHA-256 of the SPKI DER (Rekor's log ID), computed here with `sha2`.
    pub log_id_hex: String,
    pub tree_id: u64,
    /// Checkpoint key name and origin prefix: the log's host[:port], as Rekor uses its hostname.
    pub name: String,
}

impl LogIdentity {
    pub async fn fetch(http: &reqwest::Client, url: &str) -> Result<LogIdentity> {
        let resp = http
            .get(format!("{url}/api/v1/log/publicKey"))
            .send()
            .await?;
        ensure!(resp.status() == 200, "publicKey: HTTP {}", resp.status());
        let pem = resp.text().await?;
        let spki_der = pem_body(&pem, "PUBLIC KEY")?;
        let public = PublicKey::from_spki_der(&spki_der)?;
        ensure!(
            public.algorithm() == KeyAlgorithm::EcdsaP256,
            "log key is {:?}",
            public.algorithm()
        );
        let info: Value = http
            .get(format!("{url}/api/v1/log"))
            .send()
            .await?
            .json()
            .await?;
        let tree_id: u64 = info["treeID"]
            .as_str()
            .ok_or_else(|| anyhow!("treeID is not a string: {info}"))?
            .parse()?;
        let host = url.split_once("://").map_or(url, |(_, r)| r);
        let name = host.split('/').next().unwrap_or(host).to_string();
        Ok(LogIdentity {
            name,
            log_id_hex: hex::encode(Sha256::digest(&spki_der)),
            public,
            spki_der,
            tree_id,
        })
    }
}

fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or_else(|| anyhow!("no {begin}"))? + begin.len();
    let stop = pem.find(&end).ok_or_else(|| anyhow!("no {end}"))?;
    let b64: String = pem[start..stop].split_whitespace().collect();
    Ok(B64.decode(b64)?)
}

/// An HTTP answer: status, selected headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
    pub text: String,
}

#[derive(Clone)]
pub struct LogClient {
    pub url: String,
    pub http: reqwest::Client,
    pub log: LogIdentity,
}

impl LogClient {
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Answer> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        answer(resp).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.post_raw(path, serde_json::to_vec(body)?).await
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await?;
        answer(resp).await
    }

    /// POST an entry; on 201 checks the answer fully and returns it.
    pub async fn append(&self, proposed: &Value) -> Result<Result<Checked, Answer>> {
        let a = self.post("/api/v1/log/entries", proposed).await?;
        if a.status != 201 {
            return Ok(Err(a));
        }
        let checked = self.check_entries(&a.body)?;
        let [one] = <[Checked; 1]>::try_from(checked)
            .map_err(|v| anyhow!("201 answer holds {} entries", v.len()))?;
        let loc = a.location.clone().unwrap_or_default();
        ensure!(
            loc == format!("/api/v1/log/entries/{}", one.entry_id),
            "Location {loc:?} does not name entry {}",
            one.entry_id
        );
        Ok(Ok(one))
    }

    /// Checks a `{entryID: LogEntry}` object (or an array of them, as retrieve answers).
    pub fn check_entries(&self, body: &Value) -> Result<Vec<Checked>> {
        let objects: Vec<&serde_json::Map<String, Value>> = match body {
            Value::Object(o) => vec![o],
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_object().ok_or_else(|| anyhow!("not an object: {v}")))
                .collect::<Result<_>>()?,
            other => bail!("not an entry map: {other}"),
        };
        let mut out = Vec::new();
        for o in objects {
            for (key, entry) in o {
                out.push(check_log_entry(&self.log, key, entry)?);
            }
        }
        Ok(out)
    }

    pub async fn tree(&self) -> Result<(u64, Hash, String)> {
        let a = self.get("/api/v1/log").await?;
        ensure!(a.status == 200, "GET /api/v1/log: {}", a.text);
        let size = a.body["treeSize"]
            .as_u64()
            .ok_or_else(|| anyhow!("treeSize"))?;
        let root = hash_hex(a.body["rootHash"].as_str().unwrap_or_default())?;
        let sth = a.body["signedTreeHead"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (cp_size, cp_root) = verify_checkpoint(&self.log, &sth)?;
        ensure!(
            cp_size == size && cp_root == root,
            "signedTreeHead disagrees with rootHash/treeSize"
        );
        Ok((size, root, sth))
    }

    /// Consistency proof between two sizes, checked with sigil-core and the oracle verifier.
    pub async fn check_consistency(&self, a: (u64, Hash), b: (u64, Hash)) -> Result<Vec<Hash>> {
        let ans = self
            .get(&format!(
                "/api/v1/log/proof?firstSize={}&lastSize={}",
                a.0, b.0
            ))
            .await?;
        ensure!(ans.status == 200, "proof {}..{}: {}", a.0, b.0, ans.text);
        let root = hash_hex(ans.body["rootHash"].as_str().unwrap_or_default())?;
        ensure!(
            root == b.1,
            "proof rootHash for size {} is not the checkpoint's",
            b.0
        );
        let hashes = hash_list(&ans.body["hashes"])?;
        merkle::verify_consistency(a.0, b.0, &a.1, &b.1, &hashes)
            .map_err(|e| anyhow!("sigil-core: consistency {}..{}: {e}", a.0, b.0))?;
        ensure!(
            oracle::verify_consistency(a.0, b.0, &a.1, &b.1, &hashes),
            "oracle: consistency proof {}..{} does not verify",
            a.0,
            b.0
        );
        Ok(hashes)
    }
}

async fn answer(resp: reqwest::Response) -> Result<Answer> {
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        location,
        body,
        text,
    })
}

pub fn hash_hex(s: &str) -> Result<Hash> {
    hex::decode(s)?
        .try_into()
        .map_err(|_| anyhow!("{s:?} is not a 32-byte hex hash"))
}

fn hash_list(v: &Value) -> Result<Vec<Hash>> {
    v.as_array()
        .ok_or_else(|| anyhow!("hashes is not an array: {v}"))?
        .iter()
        .map(|h| hash_hex(h.as_str().unwrap_or_default()))
        .collect()
}

/// A log entry that passed every check.
#[derive(Clone, Debug)]
pub struct Checked {
    pub entry_id: String,
    pub uuid: String,
    pub body: Vec<u8>,
    pub leaf: Hash,
    pub index: u64,
    pub integrated_time: i64,
    /// The tree the inclusion proof is in.
    pub tree_size: u64,
    pub root: Hash,
    pub proof: Vec<Hash>,
}

/// Every check a client does on a `LogEntry`, twice: sigil-core and the independent oracle.
pub fn check_log_entry(log: &LogIdentity, key: &str, e: &Value) -> Result<Checked> {
    let body = B64.decode(
        e["body"]
            .as_str()
            .ok_or_else(|| anyhow!("body missing: {e}"))?,
    )?;
    let integrated_time = e["integratedTime"]
        .as_i64()
        .ok_or_else(|| anyhow!("integratedTime"))?;
    let index = e["logIndex"].as_u64().ok_or_else(|| anyhow!("logIndex"))?;
    let log_id = e["logID"].as_str().ok_or_else(|| anyhow!("logID"))?;
    ensure!(
        log_id == log.log_id_hex,
        "logID {log_id} is not the log key's SHA-256"
    );

    // Leaf hash / UUID / entry ID: sigil-core and sha2.
    let leaf = merkle::leaf_hash(&body);
    let oracle_leaf = oracle::leaf(&body);
    ensure!(leaf == oracle_leaf, "leaf hash mismatch");
    let uuid = hex::encode(leaf);
    let entry_id = format!("{:016x}{uuid}", log.tree_id);
    ensure!(entry_id == rekor::entry_id(log.tree_id, &uuid));
    ensure!(
        key == entry_id || key == uuid,
        "entry keyed {key}, expected {entry_id}"
    );

    // Signed entry timestamp.
    let set = B64.decode(
        e["verification"]["signedEntryTimestamp"]
            .as_str()
            .ok_or_else(|| anyhow!("signedEntryTimestamp missing"))?,
    )?;
    let payload = rekor::set_payload(&body, integrated_time, log_id, index);
    log.public
        .verify(&payload, &set)
        .map_err(|err| anyhow!("sigil-core: SET does not verify: {err}"))?;
    ensure!(
        oracle::verify_set(log, &body, integrated_time, index, &set),
        "oracle: SET does not verify over RFC 8785 JSON built independently"
    );

    // Inclusion proof and its checkpoint.
    let p = &e["verification"]["inclusionProof"];
    ensure!(
        p["logIndex"].as_u64() == Some(index),
        "inclusionProof.logIndex"
    );
    let tree_size = p["treeSize"].as_u64().ok_or_else(|| anyhow!("treeSize"))?;
    let root = hash_hex(p["rootHash"].as_str().unwrap_or_default())?;
    let proof = hash_list(&p["hashes"])?;
    merkle::verify_inclusion(&leaf, index, tree_size, &proof, &root)
        .map_err(|err| anyhow!("sigil-core: inclusion proof of {index} in {tree_size}: {err}"))?;
    ensure!(
        oracle::root_from_inclusion(&oracle_leaf, index, tree_size, &proof) == Some(root),
        "oracle: inclusion proof of {index} in {tree_size} does not lead to the root"
    );
    let cp = p["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("checkpoint missing"))?;
    let (cp_size, cp_root) = verify_checkpoint(log, cp)?;
    ensure!(
        cp_size == tree_size && cp_root == root,
        "checkpoint ({cp_size}) does not match the proof's tree ({tree_size})"
    );
    Ok(Checked {
        entry_id,
        uuid,
        body,
        leaf,
        index,
        integrated_time,
        tree_size,
        root,
        proof,
    })
}

/// Checks a checkpoint note with sigil-core and with the oracle; returns (size, root).
pub fn verify_checkpoint(log: &LogIdentity, note: &str) -> Result<(u64, Hash)> {
    let verifier = EcdsaNoteKey::verifier(&log.name, log.public.clone())?;
    let verifiers: [&dyn NoteVerifier; 1] = [&verifier];
    let (cp, _) = open_checkpoint(note.as_bytes(), &verifiers)
        .map_err(|e| anyhow!("sigil-core: checkpoint does not verify: {e}\n{note}"))?;
    let (size, root) = oracle::open_checkpoint(log, note)
        .ok_or_else(|| anyhow!("oracle: checkpoint does not verify:\n{note}"))?;
    ensure!(
        cp.size == size && cp.root_hash == root,
        "core and oracle parse differently"
    );
    ensure!(
        cp.origin == format!("{} - {}", log.name, log.tree_id),
        "checkpoint origin {:?}",
        cp.origin
    );
    Ok((size, root))
}

// ---------------------------------------------------------------------------------------------
// Checkpoints a test has seen
// ---------------------------------------------------------------------------------------------

/// Every (size, root) a test saw; a size with two roots is a fork.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<BTreeMap<u64, Hash>>>);

impl Seen {
    pub fn add(&self, size: u64, root: Hash) -> Result<()> {
        let mut m = self.0.lock().map_err(|_| anyhow!("poisoned"))?;
        if let Some(prev) = m.insert(size, root) {
            ensure!(
                prev == root,
                "FORK: tree size {size} seen with two roots {} and {}",
                hex::encode(prev),
                hex::encode(root)
            );
        }
        Ok(())
    }

    pub fn all(&self) -> Vec<(u64, Hash)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(s, r)| (*s, *r)).collect())
            .unwrap_or_default()
    }
}

/// Consistency proofs between every pair of sizes seen (skipping empty trees), checked twice.
pub async fn check_all_pairs(client: &LogClient, seen: &[(u64, Hash)]) -> Result<usize> {
    let sizes: Vec<(u64, Hash)> = seen.iter().copied().filter(|(s, _)| *s > 0).collect();
    let mut n = 0;
    for (i, a) in sizes.iter().enumerate() {
        for b in sizes.iter().skip(i) {
            client.check_consistency(*a, *b).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// All leaves of the log in index order, read back through `retrieve` by index, each checked.
pub async fn read_all(client: &LogClient, size: u64) -> Result<Vec<Checked>> {
    let mut out = Vec::with_capacity(size as usize);
    let mut start = 0;
    while start < size {
        let end = (start + 100).min(size);
        let idx: Vec<u64> = (start..end).collect();
        let a = client
            .post(
                "/api/v1/log/entries/retrieve",
                &json!({ "logIndexes": idx }),
            )
            .await?;
        ensure!(a.status == 200, "retrieve {start}..{end}: {}", a.text);
        let mut got = client.check_entries(&a.body)?;
        got.sort_by_key(|c| c.index);
        ensure!(
            got.iter().map(|c| c.index).collect::<Vec<_>>() == idx,
            "retrieve by index {start}..{end} answered other indexes"
        );
        out.extend(got);
        start = end;
    }
    Ok(out)
}

/// The tree built independently from the leaves: every seen root must be MTH(prefix).
pub fn check_roots_against_leaves(leaves: &[Hash], seen: &[(u64, Hash)]) -> Result<()> {
    let mut memo = HashMap::new();
    for (size, root) in seen {
        ensure!(
            *size as usize <= leaves.len(),
            "seen size {size} beyond the log"
        );
        let mth = oracle::mth_memo(leaves, 0, *size as usize, &mut memo);
        ensure!(
            mth == *root,
            "root of size {size} is not the RFC 6962 hash of the first {size} leaves"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The independent oracle: RFC 6962 / RFC 9162 written from the RFC text, RFC 8785 JSON from
// serde_json with sorted keys, ECDSA with aws-lc-rs directly. Shares no code with sigil-core.
// ---------------------------------------------------------------------------------------------

pub mod oracle {
    use super::*;

    pub fn leaf(data: &[u8]) -> Hash {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    pub fn node(l: &Hash, r: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    /// Largest power of two smaller than n (n > 1).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k << 1 < n {
            k <<= 1;
        }
        k
    }

    /// MTH(D[lo..hi]) (RFC 6962 §2.1), leaves already hashed.
    pub fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// MTH with a memo over (lo, hi) so many prefixes of one big log stay cheap.
    pub fn mth_memo(
        leaves: &[Hash],
        lo: usize,
        hi: usize,
        memo: &mut HashMap<(usize, usize), Hash>,
    ) -> Hash {
        if let Some(h) = memo.get(&(lo, hi)) {
            return *h;
        }
        let h = match hi - lo {
            0 => Sha256::digest([]).into(),
            1 => leaves[lo],
            n => {
                let k = split(n);
                let l = mth_memo(leaves, lo, lo + k, memo);
                let r = mth_memo(leaves, lo + k, hi, memo);
                node(&l, &r)
            }
        };
        // Only aligned power-of-two subtrees recur across prefixes; keep the memo small.
        if (hi - lo).is_power_of_two() {
            memo.insert((lo, hi), h);
        }
        h
    }

    /// PATH(m, D[n]) (RFC 6962 §2.1.1).
    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// PROOF(m, D[n]) (RFC 6962 §2.1.2).
    pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        fn sub(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
            let n = d.len();
            if m == n {
                return if b { Vec::new() } else { vec![mth(d)] };
            }
            let k = split(n);
            if m <= k {
                let mut p = sub(m, &d[..k], b);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = sub(m - k, &d[k..], false);
                p.push(mth(&d[..k]));
                p
            }
        }
        if m == 0 || m >= leaves.len() {
            return Vec::new();
        }
        sub(m, leaves, true)
    }

    /// RFC 9162 §2.1.3.2, from the RFC text.
    pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
        if index >= size {
            return None;
        }
        let mut fnode = index;
        let mut snode = size - 1;
        let mut r = *leaf;
        for p in proof {
            if snode == 0 {
                return None;
            }
            if fnode % 2 == 1 || fnode == snode {
                r = node(p, &r);
                while fnode.is_multiple_of(2) && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                r = node(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        (snode == 0).then_some(r)
    }

    /// RFC 9162 §2.1.4.2, from the RFC text.
    pub fn verify_consistency(
        first: u64,
        second: u64,
        first_root: &Hash,
        second_root: &Hash,
        proof: &[Hash],
    ) -> bool {
        if first == second {
            return proof.is_empty() && first_root == second_root;
        }
        if first == 0 || first > second {
            return false;
        }
        let mut path: Vec<Hash> = proof.to_vec();
        if first.is_power_of_two() {
            path.insert(0, *first_root);
        }
        let mut fnode = first - 1;
        let mut snode = second - 1;
        while fnode % 2 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
        let Some((first_hash, rest)) = path.split_first() else {
            return false;
        };
        let mut fr = *first_hash;
        let mut sr = *first_hash;
        for c in rest {
            if snode == 0 {
                return false;
            }
            if fnode % 2 == 1 || fnode == snode {
                fr = node(c, &fr);
                sr = node(c, &sr);
                while fnode.is_multiple_of(2) && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            } else {
                sr = node(&sr, c);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        snode == 0 && fr == *first_root && sr == *second_root
    }

    /// The raw P-256 point of a 91-byte P-256 SPKI.
    fn p256_point(spki: &[u8]) -> Option<&[u8]> {
        (spki.len() == 91).then(|| &spki[26..])
    }

    /// A plain ECDSA P-256 verify over RFC 8785 JSON built here: serde_json over a BTreeMap
    /// (sorted keys, compact, no floats), which is exactly RFC 8785 for these values.
    pub fn verify_set(log: &LogIdentity, body: &[u8], time: i64, index: u64, sig: &[u8]) -> bool {
        let mut m: BTreeMap<&str, Value> = BTreeMap::new();
        m.insert("body", Value::String(B64.encode(body)));
        m.insert("integratedTime", Value::from(time));
        m.insert("logID", Value::String(log.log_id_hex.clone()));
        m.insert("logIndex", Value::from(index));
        let Ok(msg) = serde_json::to_vec(&m) else {
            return false;
        };
        let Some(point) = p256_point(&log.spki_der) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(&msg, sig)
            .is_ok()
    }

    /// Parse and verify a checkpoint note by hand (C2SP signed-note, Rekor's ECDSA key id).
    pub fn open_checkpoint(log: &LogIdentity, note: &str) -> Option<(u64, Hash)> {
        let (text, sigs) = note.split_once("\n\n")?;
        let text = format!("{text}\n");
        let key_id = &Sha256::digest(&log.spki_der)[..4];
        let point = p256_point(&log.spki_der)?;
        let verified = sigs.lines().any(|line| {
            let Some(rest) = line
                .strip_prefix("\u{2014} ")
                .and_then(|l| l.strip_prefix(log.name.as_str()))
                .and_then(|l| l.strip_prefix(' '))
            else {
                return false;
            };
            let Ok(raw) = B64.decode(rest) else {
                return false;
            };
            raw.len() > 4
                && &raw[..4] == key_id
                && UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                    .verify(text.as_bytes(), &raw[4..])
                    .is_ok()
        });
        if !verified {
            return None;
        }
        let mut lines = text.lines();
        let _origin = lines.next()?;
        let size = lines.next()?.parse().ok()?;
        let root: Hash = B64.decode(lines.next()?).ok()?.try_into().ok()?;
        Some((size, root))
    }

    /// A 64-column PEM, as Go's `pem.Encode` writes it.
    pub fn pem64(label: &str, der: &[u8]) -> String {
        let b64 = B64.encode(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Entries of every kind
// ---------------------------------------------------------------------------------------------

/// A PEM with `width`-column lines, optional CRLF and optional final newline.
pub fn pem_formatted(label: &str, der: &[u8], width: usize, crlf: bool, final_nl: bool) -> String {
    let nl = if crlf { "\r\n" } else { "\n" };
    let b64 = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----{nl}");
    for chunk in b64.as_bytes().chunks(width) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push_str(nl);
    }
    s.push_str(&format!("-----END {label}-----"));
    if final_nl {
        s.push_str(nl);
    }
    s
}

pub fn digest(alg: DigestAlgorithm, data: &[u8]) -> Vec<u8> {
    alg.digest(data)
}

fn alg_name(alg: DigestAlgorithm) -> &'static str {
    match alg {
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

/// A proposed hashedrekord 0.0.1 entry.
pub fn hashedrekord(alg: DigestAlgorithm, digest: &[u8], sig: &[u8], verifier_pem: &str) -> Value {
    json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg_name(alg), "value": hex::encode(digest)}},
            "signature": {
                "content": B64.encode(sig),
                "publicKey": {"content": B64.encode(verifier_pem.as_bytes())}
            }
        }
    })
}

/// The canonical body Rekor stores for a hashedrekord, built independently: sorted keys,
/// compact JSON, the verifier re-encoded as 64-column PEM.
pub fn expected_hashedrekord_body(
    alg: DigestAlgorithm,
    digest: &[u8],
    sig: &[u8],
    canonical_pem: &str,
) -> Vec<u8> {
    let v = json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg_name(alg), "value": hex::encode(digest)}},
            "signature": {
                "content": B64.encode(sig),
                "publicKey": {"content": B64.encode(canonical_pem.as_bytes())}
            }
        }
    });
    sorted_json(&v)
}

/// Compact JSON with object keys sorted at every level (RFC 8785 for strings and integers).
pub fn sorted_json(v: &Value) -> Vec<u8> {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let m: BTreeMap<String, Value> =
                    o.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                serde_json::to_value(m).unwrap_or(Value::Null)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // A BTreeMap serialises in key order whatever serde_json's map type is.
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(o) => {
                let m: BTreeMap<&String, &Value> = o.iter().collect();
                out.push(b'{');
                for (i, (k, v)) in m.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, out);
                }
                out.push(b']');
            }
            other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(&sort(v), &mut out);
    out
}

/// A signer of hashedrekord entries and its public key PEM.
pub struct Signer {
    pub key: SigningKey,
    pub pem: String,
}

impl Signer {
    pub fn new(alg: KeyAlgorithm) -> Result<Signer> {
        let key = SigningKey::generate(alg)?;
        let pem = key.public_key().to_pem();
        Ok(Signer { key, pem })
    }

    /// A hashedrekord of `artifact` with the key's natural digest, signed over the digest.
    pub fn hashedrekord(&self, artifact: &[u8]) -> Result<(Value, Vec<u8>)> {
        let alg = self
            .key
            .algorithm()
            .default_digest()
            .ok_or_else(|| anyhow!("no default digest"))?;
        let d = alg.digest(artifact);
        let sig = self.key.sign_prehashed(alg, &d)?;
        Ok((hashedrekord(alg, &d, &sig, &self.pem), sig))
    }
}

/// An RSA hashedrekord with an explicit padding and digest.
pub fn rsa_hashedrekord(
    key: &SigningKey,
    padding: RsaPadding,
    alg: DigestAlgorithm,
    artifact: &[u8],
) -> Result<Value> {
    let sig = key.sign_rsa(padding, alg, artifact)?;
    Ok(hashedrekord(
        alg,
        &alg.digest(artifact),
        &sig,
        &key.public_key().to_pem(),
    ))
}

/// A self-signed ECDSA P-256 X.509 certificate with an e-mail SAN, signed by `key` (DER).
pub fn test_certificate(key: &SigningKey, email: &str) -> Result<Vec<u8>> {
    test_certificate_with_sans(key, &[TestSan::Email(email)])
}

/// A SAN of a test certificate.
pub enum TestSan<'a> {
    Email(&'a str),
    Uri(&'a str),
}

/// A self-signed P-256 test certificate for `key` with these SANs.
pub fn test_certificate_with_sans(key: &SigningKey, sans: &[TestSan]) -> Result<Vec<u8>> {
    use der::Encode;
    use der::asn1::{BitString, Ia5String, OctetString, UtcTime};
    use x509_cert::Certificate;
    use x509_cert::certificate::{TbsCertificate, Version};
    use x509_cert::ext::Extension;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
    use x509_cert::time::{Time, Validity};

    ensure!(
        key.algorithm() == KeyAlgorithm::EcdsaP256,
        "test certificates use P-256"
    );
    let ecdsa_sha256 = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let name = Name::from_str("CN=sigil log test,O=sigil")?;
    let san = SubjectAltName(
        sans.iter()
            .map(|s| {
                Ok(match s {
                    TestSan::Email(e) => GeneralName::Rfc822Name(Ia5String::new(*e)?),
                    TestSan::Uri(u) => GeneralName::UniformResourceIdentifier(Ia5String::new(*u)?),
                })
            })
            .collect::<Result<Vec<_>>>()?,
    );
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x42])?,
        signature: ecdsa_sha256.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: Time::UtcTime(UtcTime::from_unix_duration(now - Duration::from_secs(60))?),
            not_after: Time::UtcTime(UtcTime::from_unix_duration(now + Duration::from_secs(600))?),
        },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::try_from(key.public_key().spki_der())?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vec![Extension {
            extn_id: ObjectIdentifier::new_unwrap("2.5.29.17"),
            critical: false,
            extn_value: OctetString::new(san.to_der()?)?,
        }]),
    };
    let sig = key.sign(&tbs.to_der()?)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256,
        signature: BitString::from_bytes(&sig)?,
    };
    Ok(cert.to_der()?)
}

pub const INTOTO_TYPE: &str = "application/vnd.in-toto+json";

/// An in-toto statement about one artifact (its SHA-256 is the subject digest).
pub fn statement(artifact_sha256: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": hex::encode(artifact_sha256)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {}
    }))
    .unwrap_or_default()
}

/// DSSE pre-authentication encoding, written from the spec.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// A proposed dsse 0.0.1 entry; returns the entry and the envelope JSON string.
pub fn dsse_entry(key: &SigningKey, payload: &[u8]) -> Result<(Value, String)> {
    let sig = key.sign(&pae(INTOTO_TYPE, payload))?;
    let envelope = serde_json::to_string(&json!({
        "payload": B64.encode(payload),
        "payloadType": INTOTO_TYPE,
        "signatures": [{"keyid": "", "sig": B64.encode(&sig)}]
    }))?;
    let entry = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {
            "envelope": envelope,
            "verifiers": [B64.encode(key.public_key().to_pem().as_bytes())]
        }}
    });
    Ok((entry, envelope))
}

/// A proposed intoto 0.0.2 entry (double base64, as Rekor's intoto v0.0.2 wants).
pub fn intoto_entry(key: &SigningKey, payload: &[u8]) -> Result<Value> {
    let sig = key.sign(&pae(INTOTO_TYPE, payload))?;
    let envelope = json!({
        "payloadType": INTOTO_TYPE,
        "payload": B64.encode(payload),
        "signatures": [{"sig": B64.encode(&sig), "keyid": ""}]
    });
    let envelope_hash = hex::encode(Sha256::digest(serde_json::to_vec(&envelope)?));
    Ok(json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {"content": {
            "envelope": {
                "payloadType": INTOTO_TYPE,
                "payload": B64.encode(B64.encode(payload)),
                "signatures": [{
                    "sig": B64.encode(B64.encode(&sig)),
                    "publicKey": B64.encode(key.public_key().to_pem().as_bytes())
                }]
            },
            "hash": {"algorithm": "sha256", "value": envelope_hash}
        }}
    }))
}

/// The `sigil_sequencer_batch_size` histogram of a server's /metrics: (count, sum).
pub async fn batch_stats(http: &reqwest::Client, url: &str) -> Result<(f64, f64)> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut count = 0.0;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with("sigil_sequencer_batch_size_count{log=\"rekor\"}") {
            count = line.rsplit(' ').next().unwrap_or("0").parse()?;
        }
        if line.starts_with("sigil_sequencer_batch_size_sum{log=\"rekor\"}") {
            sum = line.rsplit(' ').next().unwrap_or("0").parse()?;
        }
    }
    Ok((count, sum))
}

pub fn data_path(dir: &TempDir) -> PathBuf {
    dir.path().to_path_buf()
}
