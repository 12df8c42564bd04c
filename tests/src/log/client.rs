//! The log's identity, a client that checks every answer, and the checkpoints a test has seen (a size with two roots is a fork).

#[allow(unused_imports)]
use super::*;

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
    /// The signed entry timestamp, as served.
    pub set: Vec<u8>,
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
        set,
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
