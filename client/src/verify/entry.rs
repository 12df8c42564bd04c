//! A bundle's transparency log entry: its log is a trusted one whose key was valid at the
//! entry's time, its SET signs the body, integrated time, log ID and index, and its inclusion
//! proof leads from the body's leaf to a checkpoint the log signed.

use serde::Serialize;
use sigil_core::bundle::{BundleVersion, InclusionProof, TransparencyLogEntry};
use sigil_core::crypto::{KeyAlgorithm, PublicKey};
use sigil_core::merkle::{self, Hash};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, Note, NoteVerifier};
use sigil_core::trust::{TransparencyLogInstance, TrustedRoot};

use super::error::VerifyError;
use super::x509::fmt_time;

/// One verified log entry.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedEntry {
    pub log_index: i64,
    pub log_id: String,
    pub log_url: String,
    pub integrated_time: i64,
    pub uuid: String,
    pub inclusion_proof: bool,
    pub set: bool,
}

/// Entry kinds and versions this verifier knows how to rebuild from a bundle.
pub(crate) fn check_kind_version(e: &TransparencyLogEntry) -> Result<(), VerifyError> {
    let kv = &e.kind_version;
    match (kv.kind.as_str(), kv.version.as_str()) {
        ("hashedrekord", "0.0.1" | "0.0.2") | ("dsse", "0.0.1") | ("intoto", "0.0.2") => Ok(()),
        (k, v) => Err(VerifyError::Entry(format!(
            "unsupported tlog entry kind {k:?} version {v:?}"
        ))),
    }
}

/// The trusted log that issued entry `e`: its key ID must name a log of the trusted root whose
/// key was valid at the entry's trusted time(s) — the SET's integrated time, else every RFC 3161
/// time (Rekor v2 entries carry no time of their own).
fn find_log<'a>(
    root: &'a TrustedRoot,
    e: &'a TransparencyLogEntry,
    times: &[i64],
) -> Result<&'a TransparencyLogInstance, VerifyError> {
    let id = &e.log_id.key_id;
    let mut candidates = root.tlogs_by_id(id).peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UnknownLog(hex::encode(id)));
    }
    candidates
        .find(|l| times.iter().all(|t| l.public_key.valid_at(*t)))
        .ok_or_else(|| VerifyError::LogKeyNotValid {
            log_id: hex::encode(id),
            time: times
                .iter()
                .map(|t| fmt_time(*t))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn log_key(log: &TransparencyLogInstance) -> Result<PublicKey, VerifyError> {
    PublicKey::from_spki_der(&log.public_key.raw_bytes).map_err(|e| {
        VerifyError::Entry(format!(
            "trusted root key of log {} is unusable: {e}",
            log.base_url
        ))
    })
}

/// The trusted log of an entry, and whether its SET verified.
pub(crate) struct EntryLog<'a> {
    log: &'a TransparencyLogInstance,
    key: PublicKey,
    pub(crate) has_set: bool,
}

/// First half of an entry's checks, before the certificate (whose validity needs the SET's
/// time): its log is trusted and valid at the entry's time, and its SET, if any, signs the body,
/// integrated time, log ID and index.
pub(crate) fn verify_entry_log<'a>(
    e: &'a TransparencyLogEntry,
    root: &'a TrustedRoot,
    tsa_times: &[i64],
) -> Result<EntryLog<'a>, VerifyError> {
    let body = &e.canonicalized_body;
    if body.is_empty() {
        return Err(VerifyError::Entry("canonicalizedBody is empty".into()));
    }
    if e.integrated_time != 0 && e.inclusion_promise.is_none() {
        return Err(VerifyError::Entry(format!(
            "integratedTime {} is not covered by a signed entry timestamp (SET); \
             remove it or include the SET",
            e.integrated_time
        )));
    }
    if e.integrated_time < 0 {
        return Err(VerifyError::Entry(format!(
            "negative integratedTime {}",
            e.integrated_time
        )));
    }
    let times = if e.inclusion_promise.is_some() {
        vec![e.integrated_time]
    } else {
        tsa_times.to_vec()
    };
    let log = find_log(root, e, &times)?;
    let key = log_key(log)?;
    let mut has_set = false;
    if let Some(promise) = &e.inclusion_promise {
        let index = u64::try_from(e.log_index)
            .map_err(|_| VerifyError::Set(format!("negative logIndex {}", e.log_index)))?;
        let payload = sigil_core::rekor::set_payload(
            body,
            e.integrated_time,
            &hex::encode(&e.log_id.key_id),
            index,
        );
        verify_log_signature(&key, &payload, &promise.signed_entry_timestamp).map_err(|err| {
            VerifyError::Set(format!(
                "does not verify with the key of log {} over logIndex {} integratedTime {}: {err}",
                log.base_url, e.log_index, e.integrated_time
            ))
        })?;
        has_set = true;
    }
    Ok(EntryLog { log, key, has_set })
}

/// Second half: the inclusion proof, always verified when present (required from bundle v0.2),
/// leads from the entry's leaf to the root it names, and that root is the log's signed
/// checkpoint, which must be there.
pub(crate) fn verify_entry_proof(
    e: &TransparencyLogEntry,
    l: &EntryLog<'_>,
    version: BundleVersion,
    witnesses: &super::witness::WitnessPolicy,
) -> Result<VerifiedEntry, VerifyError> {
    // v0.2 and later carry a proof with a signed checkpoint in every entry; v0.1 bundles (and
    // cosign's image signature annotations, read as v0.1) may rest on the SET alone.
    let proof_required = version >= BundleVersion::V02;
    let (log, key, has_set) = (l.log, &l.key, l.has_set);
    let body = &e.canonicalized_body;
    let leaf = merkle::leaf_hash(body);
    let what = format!(
        "tlog entry at logIndex {} (UUID {})",
        e.log_index,
        hex::encode(leaf)
    );

    let has_proof = match &e.inclusion_proof {
        Some(p) => {
            verify_inclusion_proof(&leaf, e, p, key).map_err(|err| annotate(err, &what))?;
            true
        }
        None if proof_required => {
            return Err(VerifyError::InclusionProof(format!(
                "{what} has no inclusion proof"
            )));
        }
        None => false,
    };
    if !has_proof && !has_set {
        return Err(VerifyError::NoInclusionEvidence);
    }
    if witnesses.required() {
        // The proof (verified above) leads to this checkpoint; the witnesses must vouch for it.
        let cp = e
            .inclusion_proof
            .as_ref()
            .and_then(|p| p.checkpoint.as_ref())
            .ok_or_else(|| {
                VerifyError::Witness(format!(
                    "{what} has no checkpoint for witnesses to have cosigned"
                ))
            })?;
        witnesses
            .check(cp.envelope.as_bytes())
            .map_err(|err| VerifyError::Witness(format!("{what}: {err}")))?;
    }
    Ok(VerifiedEntry {
        log_index: e.log_index,
        log_id: hex::encode(&e.log_id.key_id),
        log_url: log.base_url.clone(),
        integrated_time: e.integrated_time,
        uuid: hex::encode(leaf),
        inclusion_proof: has_proof,
        set: has_set,
    })
}

/// Prefixes an inclusion-proof or checkpoint error with the entry it is about.
fn annotate(err: VerifyError, what: &str) -> VerifyError {
    match err {
        VerifyError::InclusionProof(m) => VerifyError::InclusionProof(format!("{what}: {m}")),
        VerifyError::Checkpoint(m) => VerifyError::Checkpoint(format!("{what}: {m}")),
        other => other,
    }
}

fn verify_log_signature(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    key.verify(msg, sig).map_err(|e| e.to_string())
}

fn to_hash(b: &[u8], what: &str) -> Result<Hash, VerifyError> {
    b.try_into().map_err(|_| {
        VerifyError::InclusionProof(format!("{what} is {} bytes, expected 32", b.len()))
    })
}

fn verify_inclusion_proof(
    leaf: &Hash,
    e: &TransparencyLogEntry,
    p: &InclusionProof,
    key: &PublicKey,
) -> Result<(), VerifyError> {
    let ip = |s: String| VerifyError::InclusionProof(s);
    // A sharded Rekor v1 numbers entries globally (shard offset + index in the shard's tree) and
    // its SET signs that global index; without a SET nothing else binds the entry's index, so it
    // must be the proof's.
    let index_fits = if e.inclusion_promise.is_some() {
        p.log_index <= e.log_index
    } else {
        p.log_index == e.log_index
    };
    if !index_fits {
        return Err(ip(format!(
            "the proof is for logIndex {}, which cannot be the entry's (logIndex {})",
            p.log_index, e.log_index
        )));
    }
    let index =
        u64::try_from(p.log_index).map_err(|_| ip(format!("negative logIndex {}", p.log_index)))?;
    let size =
        u64::try_from(p.tree_size).map_err(|_| ip(format!("negative treeSize {}", p.tree_size)))?;
    let hashes: Vec<Hash> = p
        .hashes
        .iter()
        .map(|h| to_hash(h, "proof hash"))
        .collect::<Result<_, _>>()?;
    let root = to_hash(&p.root_hash, "rootHash")?;
    let computed = merkle::root_from_inclusion_proof(leaf, index, size, &hashes)
        .map_err(|e| ip(format!("index {index} in tree of size {size}: {e}")))?;
    if computed != root {
        return Err(ip(format!(
            "the entry's leaf hash and proof give root {}, not the proof's rootHash {} (index {index}, size {size})",
            hex::encode(computed),
            hex::encode(root)
        )));
    }
    // A root nobody signed proves nothing: a proof that is present needs its checkpoint, in
    // every bundle version (as sigstore-python requires).
    let Some(cp) = p.checkpoint.as_ref() else {
        return Err(ip("the proof has no signed checkpoint".into()));
    };
    let (size_cp, root_cp) = verify_checkpoint(cp.envelope.as_bytes(), key)?;
    if size_cp != size || root_cp != root {
        return Err(VerifyError::Checkpoint(format!(
            "signed checkpoint is size {size_cp} root {}, but the proof is for size {size} root {}",
            hex::encode(root_cp),
            hex::encode(root)
        )));
    }
    Ok(())
}

/// Verifies a signed checkpoint with a log key (signature lines may use any key name; the key ID
/// binds them to the key). Returns (tree size, root hash).
pub fn verify_checkpoint(note_bytes: &[u8], key: &PublicKey) -> Result<(u64, Hash), VerifyError> {
    let ck = |s: String| VerifyError::Checkpoint(s);
    let note = Note::parse(note_bytes).map_err(|e| ck(e.to_string()))?;
    let cp =
        sigil_core::checkpoint::Checkpoint::parse(&note.text).map_err(|e| ck(e.to_string()))?;
    let mut verifiers: Vec<Box<dyn NoteVerifier>> = Vec::new();
    // The log signs under its origin's name: C2SP logs (Rekor v2) use the origin itself, Rekor v1
    // the host part of `<host> - <tree ID>`. A line under another name is not the log's.
    let names_origin = |name: &str| {
        cp.origin == name
            || cp
                .origin
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(" - "))
    };
    for s in note.signatures.iter().filter(|s| names_origin(&s.name)) {
        let v: Option<Box<dyn NoteVerifier>> = match key.algorithm() {
            KeyAlgorithm::Ed25519 => Ed25519NoteKey::verifier(&s.name, key.clone())
                .ok()
                .map(|k| Box::new(k) as _),
            _ => EcdsaNoteKey::verifier(&s.name, key.clone())
                .ok()
                .map(|k| Box::new(k) as _),
        };
        verifiers.extend(v);
    }
    let refs: Vec<&dyn NoteVerifier> = verifiers.iter().map(|b| b.as_ref()).collect();
    note.verify(&refs).map_err(|e| {
        ck(format!(
            "no signature by the trusted log key under the name of origin {:?}: {e}",
            cp.origin
        ))
    })?;
    Ok((cp.size, cp.root_hash))
}
