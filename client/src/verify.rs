//! Offline bundle verification: pure functions over a bundle, a trusted root, the artifact and a
//! policy. Nothing here touches the network or the clock (the caller passes nothing time-like:
//! the signing time comes from the transparency log entry).
//!
//! Checks, in order: bundle structure; every tlog entry (trusted log key, body rebuilt from the
//! bundle, inclusion proof to a signed checkpoint and/or SET); the signing time; the certificate
//! chain to a trusted CA valid at that time, the embedded SCT and the identity policy (or the
//! given key); and finally the signature over the artifact.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use sigil_core::bundle::{
    Bundle, BundleError, Content, Envelope, MessageSignature, SigningMaterial, TransparencyLogEntry,
};
use sigil_core::bundle::{BundleVersion, HashAlgorithm, IN_TOTO_PAYLOAD_TYPE};
use sigil_core::certs;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, sha256};
use sigil_core::merkle::{self, Hash};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, Note, NoteVerifier};
use sigil_core::rekor_v2;
use sigil_core::trust::{TransparencyLogInstance, TrustedRoot};

use crate::policy::{CertIdentity, CertificatePolicy};
use crate::x509::{self, ParsedCert, fmt_time};

/// Why verification failed. Each variant names the check; values that differ are included.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("bundle: {0}")]
    Bundle(#[from] BundleError),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("untrusted certificate: issuer {issuer:?} does not chain to a trusted CA ({reasons})")]
    UntrustedCertificate { issuer: String, reasons: String },
    #[error(
        "signing time {signing_time} is outside the certificate validity {not_before} .. {not_after}"
    )]
    CertificateNotValidAt {
        signing_time: String,
        not_before: String,
        not_after: String,
    },
    #[error("SCT: {0}")]
    Sct(String),
    #[error("identity mismatch: expected {expected}, certificate SANs are {actual:?}")]
    IdentityMismatch {
        expected: String,
        actual: Vec<String>,
    },
    #[error("issuer mismatch: expected {expected}, certificate OIDC issuer is {actual:?}")]
    IssuerMismatch { expected: String, actual: String },
    #[error("claim {claim} mismatch: expected {expected:?}, certificate has {actual:?}")]
    ClaimMismatch {
        claim: &'static str,
        expected: String,
        actual: String,
    },
    #[error("artifact digest mismatch: bundle says {bundle} ({algorithm}), artifact is {artifact}")]
    DigestMismatch {
        algorithm: String,
        bundle: String,
        artifact: String,
    },
    #[error("artifact signature: {0}")]
    Signature(String),
    #[error("verification key: {0}")]
    Key(String),
    #[error("transparency log: bundle has no tlog entries")]
    NoTlogEntry,
    #[error("transparency log: entry's log ID {0} is not a log in the trusted root")]
    UnknownLog(String),
    #[error("transparency log: log key {log_id} is not valid at the entry's time {time}")]
    LogKeyNotValid { log_id: String, time: String },
    #[error(
        "tlog entry body mismatch in {field}: bundle implies {expected}, log entry has {actual}"
    )]
    BodyMismatch {
        field: String,
        expected: String,
        actual: String,
    },
    #[error("tlog entry: {0}")]
    Entry(String),
    #[error("inclusion proof: {0}")]
    InclusionProof(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("signed entry timestamp (SET): {0}")]
    Set(String),
    #[error("tlog entry has neither an inclusion proof with a checkpoint nor a SET")]
    NoInclusionEvidence,
    #[error("no trusted signing time: {0}")]
    SigningTime(String),
    #[error("RFC 3161 timestamp: {0}")]
    Timestamp(String),
    #[error("in-toto statement: {0}")]
    Statement(String),
}

/// What was signed, as the verifier knows it.
#[derive(Clone, Debug)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// Only the artifact's digest (conformance `sha256:<hex>`).
    Digest {
        algorithm: DigestAlgorithm,
        digest: Vec<u8>,
    },
    /// Nothing: only for DSSE bundles, whose payload is self-contained.
    None,
}

/// Who must have signed.
#[derive(Clone, Debug)]
pub enum Policy {
    /// A Fulcio-style certificate matching this policy.
    Certificate(CertificatePolicy),
    /// A known public key (bundle `publicKey` or a certificate's key).
    Key(PublicKey),
}

/// Tunables; the defaults are what Sigstore clients require.
#[derive(Clone, Debug)]
pub struct Options {
    /// Entries needed; cosign's `--insecure-ignore-tlog` would be 0 (key mode only).
    pub min_tlog_entries: usize,
    /// Require a verifying embedded SCT for certificates.
    pub require_sct: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_tlog_entries: 1,
            require_sct: true,
        }
    }
}

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

/// What a successful verification established.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub media_type: String,
    /// Unix seconds, from the log.
    pub signing_time: i64,
    pub signing_time_rfc3339: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertIdentity>,
    pub tlog_entries: Vec<VerifiedEntry>,
    /// DSSE payload type and the in-toto statement, for attestations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<Value>,
}

/// The signing certificate or key, in the forms log entry bodies carry it.
struct Signer<'a> {
    key: &'a PublicKey,
    /// Certificate DER, or the key's SPKI DER.
    der: &'a [u8],
    pem: String,
    is_certificate: bool,
}

/// Most RFC 3161 timestamps a bundle may carry (as the reference clients allow).
pub const MAX_TIMESTAMPS: usize = 32;

/// Verifies `bundle` for `artifact` against `root` and `policy`.
pub fn verify_bundle(
    bundle: &Bundle,
    artifact: &Artifact<'_>,
    root: &TrustedRoot,
    policy: &Policy,
    opts: &Options,
) -> Result<Verified, VerifyError> {
    bundle.validate()?;
    let version = bundle.version()?;
    let content = bundle.content()?;

    // The key that must have signed, and the certificate it came from (if any).
    let leaf = match (bundle.signing_material()?, policy) {
        (SigningMaterial::Certificate { leaf, .. }, _) => Some(ParsedCert::from_der(leaf)?),
        (SigningMaterial::PublicKey { .. }, Policy::Key(_)) => None,
        (SigningMaterial::PublicKey { .. }, Policy::Certificate(_)) => {
            return Err(VerifyError::Key(
                "bundle is signed with a public key, but the policy requires a certificate identity (use --key)".into(),
            ));
        }
    };
    let signer_key = match (&leaf, policy) {
        (Some(c), Policy::Key(k)) if c.key != *k => {
            return Err(VerifyError::Key(
                "the bundle's certificate key is not the given key".into(),
            ));
        }
        (Some(c), _) => c.key.clone(),
        (None, Policy::Key(k)) => k.clone(),
        (None, Policy::Certificate(_)) => {
            return Err(VerifyError::Key("no verification key".into()));
        }
    };
    let signer_pem = match &leaf {
        Some(c) => certs::pem_encode("CERTIFICATE", &c.der),
        None => certs::pem_encode("PUBLIC KEY", signer_key.spki_der()),
    };
    let signer = Signer {
        key: &signer_key,
        der: match &leaf {
            Some(c) => &c.der,
            None => signer_key.spki_der(),
        },
        pem: signer_pem,
        is_certificate: leaf.is_some(),
    };

    let entries = &bundle.verification_material.tlog_entries;
    if entries.len() < opts.min_tlog_entries {
        return Err(VerifyError::NoTlogEntry);
    }
    // One entry, as the reference clients require: a second one would be evidence nobody checks
    // against a policy of its own.
    if entries.len() > 1 {
        return Err(VerifyError::Entry(format!(
            "bundle has {} tlog entries; exactly one is supported",
            entries.len()
        )));
    }

    // Trusted times: RFC 3161 timestamps over the signature, then integrated times vouched for
    // by a verified SET. An integrated time without a SET is unsigned and never used.
    let signature_bytes: &[u8] = match content {
        Content::MessageSignature(ms) => &ms.signature,
        Content::Dsse(env) => env
            .signatures
            .first()
            .map(|s| s.sig.as_slice())
            .unwrap_or_default(),
    };
    let mut tsa_times = Vec::new();
    let mut has_timestamp_data = false;
    if let Some(tvd) = &bundle.verification_material.timestamp_verification_data {
        let ts = &tvd.rfc3161_timestamps;
        has_timestamp_data = !ts.is_empty();
        if ts.len() > MAX_TIMESTAMPS {
            return Err(VerifyError::Timestamp(format!(
                "bundle carries {} timestamps; at most {MAX_TIMESTAMPS} are accepted",
                ts.len()
            )));
        }
        for (i, t) in ts.iter().enumerate() {
            if ts
                .iter()
                .take(i)
                .any(|o| o.signed_timestamp == t.signed_timestamp)
            {
                return Err(VerifyError::Timestamp(format!(
                    "timestamp #{i} is a duplicate of an earlier one"
                )));
            }
            tsa_times.push(crate::tsa::verify_timestamp(
                &t.signed_timestamp,
                signature_bytes,
                root,
            )?);
        }
    }

    // Transparency log entries: trusted log, body rebuilt from the bundle, proof and/or SET.
    let mut entry_logs = Vec::with_capacity(entries.len());
    let mut times = tsa_times.clone();
    for e in entries {
        check_kind_version(e)?;
        // A SET that fails over a body the bundle does not imply: the body is what is wrong.
        let v = verify_entry_log(e, root, &tsa_times).map_err(|err| match err {
            VerifyError::Set(_) => check_body(e, content, artifact, &signer)
                .err()
                .unwrap_or(err),
            other => other,
        })?;
        if v.has_set {
            times.push(e.integrated_time);
        } else if version >= BundleVersion::V02 && !has_timestamp_data {
            return Err(VerifyError::SigningTime(format!(
                "tlog entry {} has no signed entry timestamp and the bundle no RFC 3161 timestamp",
                e.log_index
            )));
        }
        entry_logs.push(v);
    }

    let signing_time = match times.first() {
        Some(t) => *t,
        None if leaf.is_none() => 0,
        None => {
            return Err(VerifyError::SigningTime(
                "neither a signed entry timestamp (SET) nor an RFC 3161 timestamp".into(),
            ));
        }
    };

    // Certificate: chain, SCT, profile, validity at every trusted time, identity.
    let identity = match (&leaf, policy) {
        (Some(c), p) => {
            let (first, rest) = times.split_first().ok_or_else(|| {
                VerifyError::SigningTime("no trusted time to check the certificate at".into())
            })?;
            // Signatures once; the other trusted times only need the same chain to be valid.
            let chain = x509::verify_chain(c, root, *first)?;
            for t in rest {
                x509::chain_valid_at(c, root, chain.ca_index, *t)?;
            }
            check_bundled_chain(bundle, root, chain.ca_index)?;
            x509::check_leaf_profile(c)?;
            if opts.require_sct {
                verify_sct(c, &chain.issuer, root, &times)?;
            }
            for t in &times {
                if !c.valid_at(*t) {
                    return Err(VerifyError::CertificateNotValidAt {
                        signing_time: fmt_time(*t),
                        not_before: fmt_time(c.not_before),
                        not_after: fmt_time(c.not_after),
                    });
                }
            }
            match p {
                Policy::Certificate(cp) => Some(cp.check(&c.cert)?),
                Policy::Key(_) => Some(crate::policy::cert_identity(&c.cert)),
            }
        }
        (None, _) => None,
    };

    // Each entry's body is the one this bundle implies (after the certificate, so that a bad
    // certificate is reported as such rather than as a body mismatch), and its inclusion proof.
    let mut verified_entries = Vec::with_capacity(entries.len());
    for (e, l) in entries.iter().zip(&entry_logs) {
        check_body(e, content, artifact, &signer)?;
        verified_entries.push(verify_entry_proof(e, l, version)?);
    }

    // The signature over the artifact.
    let (payload_type, statement) = match content {
        Content::MessageSignature(ms) => {
            verify_message_signature(ms, artifact, &signer_key)?;
            (None, None)
        }
        Content::Dsse(env) => {
            let statement = verify_dsse(env, artifact, &signer_key)?;
            (Some(env.payload_type.clone()), statement)
        }
    };

    Ok(Verified {
        media_type: bundle.media_type.clone(),
        signing_time,
        signing_time_rfc3339: fmt_time(signing_time),
        certificate: identity,
        tlog_entries: verified_entries,
        payload_type,
        statement,
    })
}

/// Certificates a v0.1/v0.2 bundle carries after the leaf are never trusted on their own; they
/// must be the trusted CA's own chain (in order, possibly shortened), or the bundle is refused.
fn check_bundled_chain(
    bundle: &Bundle,
    root: &TrustedRoot,
    ca_index: usize,
) -> Result<(), VerifyError> {
    let Ok(SigningMaterial::Certificate { chain, .. }) = bundle.signing_material() else {
        return Ok(());
    };
    let trusted = root
        .certificate_authorities
        .get(ca_index)
        .map(|ca| ca.cert_chain.certificates.as_slice())
        .unwrap_or_default();
    if chain.len() > trusted.len() || chain.iter().zip(trusted).any(|(a, b)| a != b) {
        return Err(VerifyError::Certificate(format!(
            "the bundle's x509CertificateChain carries {} certificate(s) after the leaf that are not \
             the trusted CA's chain",
            chain.len()
        )));
    }
    Ok(())
}

/// Entry kinds and versions this verifier knows how to rebuild from a bundle.
fn check_kind_version(e: &TransparencyLogEntry) -> Result<(), VerifyError> {
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
struct EntryLog<'a> {
    log: &'a TransparencyLogInstance,
    key: PublicKey,
    has_set: bool,
}

/// First half of an entry's checks, before the certificate (whose validity needs the SET's
/// time): its log is trusted and valid at the entry's time, and its SET, if any, signs the body,
/// integrated time, log ID and index.
fn verify_entry_log<'a>(
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
fn verify_entry_proof(
    e: &TransparencyLogEntry,
    l: &EntryLog<'_>,
    version: BundleVersion,
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
    p: &sigil_core::bundle::InclusionProof,
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

/// The artifact digest in the algorithm the bundle uses.
fn artifact_digest(
    artifact: &Artifact<'_>,
    alg: DigestAlgorithm,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match artifact {
        Artifact::Bytes(b) => Ok(Some(alg.digest(b))),
        Artifact::Digest { algorithm, digest } if *algorithm == alg => Ok(Some(digest.clone())),
        Artifact::Digest { algorithm, .. } => Err(VerifyError::DigestMismatch {
            algorithm: alg.name().into(),
            bundle: format!("a {} digest", alg.name()),
            artifact: format!("a {} digest", algorithm.name()),
        }),
        Artifact::None => Ok(None),
    }
}

fn digest_alg(h: HashAlgorithm) -> Result<DigestAlgorithm, VerifyError> {
    match h {
        HashAlgorithm::Sha2_256 => Ok(DigestAlgorithm::Sha256),
        HashAlgorithm::Sha2_384 => Ok(DigestAlgorithm::Sha384),
        HashAlgorithm::Sha2_512 => Ok(DigestAlgorithm::Sha512),
        other => Err(VerifyError::Signature(format!(
            "unsupported message digest algorithm {other:?}"
        ))),
    }
}

/// The (algorithm, digest) the message signature is over, after checking it against the artifact.
fn message_digest(
    ms: &MessageSignature,
    artifact: &Artifact<'_>,
) -> Result<(DigestAlgorithm, Vec<u8>), VerifyError> {
    let alg = match &ms.message_digest {
        Some(md) => digest_alg(md.algorithm)?,
        None => DigestAlgorithm::Sha256,
    };
    let computed = artifact_digest(artifact, alg)?;
    match (&ms.message_digest, computed) {
        (Some(md), Some(c)) if md.digest != c => Err(VerifyError::DigestMismatch {
            algorithm: alg.name().into(),
            bundle: hex::encode(&md.digest),
            artifact: hex::encode(&c),
        }),
        (_, Some(c)) => Ok((alg, c)),
        (Some(md), None) => Ok((alg, md.digest.clone())),
        (None, None) => Err(VerifyError::Signature(
            "no artifact and no message digest to verify against".into(),
        )),
    }
}

fn verify_message_signature(
    ms: &MessageSignature,
    artifact: &Artifact<'_>,
    key: &PublicKey,
) -> Result<(), VerifyError> {
    let (alg, digest) = message_digest(ms, artifact)?;
    let res = match (key.algorithm(), artifact) {
        // Ed25519 signs the message itself.
        (KeyAlgorithm::Ed25519, Artifact::Bytes(b)) => key.verify(b, &ms.signature),
        (KeyAlgorithm::Ed25519, _) => {
            return Err(VerifyError::Signature(
                "an Ed25519 signature needs the artifact itself, not its digest".into(),
            ));
        }
        _ => key.verify_prehashed(alg, &digest, &ms.signature),
    };
    res.map_err(|e| {
        VerifyError::Signature(format!(
            "signature does not verify over {} digest {} with the signing key: {e}",
            alg.name(),
            hex::encode(&digest)
        ))
    })
}

fn verify_dsse(
    env: &Envelope,
    artifact: &Artifact<'_>,
    key: &PublicKey,
) -> Result<Option<Value>, VerifyError> {
    let sig = env
        .signatures
        .first()
        .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
    key.verify(&env.pae(), &sig.sig).map_err(|e| {
        VerifyError::Signature(format!(
            "DSSE signature does not verify over the PAE of the payload: {e}"
        ))
    })?;
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Ok(None);
    }
    let stmt: Value = serde_json::from_slice(&env.payload)
        .map_err(|e| VerifyError::Statement(format!("payload is not JSON: {e}")))?;
    let subjects = stmt
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| VerifyError::Statement("statement has no subject list".into()))?;
    let wanted = match artifact {
        Artifact::None => return Ok(Some(stmt)),
        Artifact::Bytes(b) => vec![
            ("sha256", hex::encode(sha256(b))),
            ("sha512", hex::encode(DigestAlgorithm::Sha512.digest(b))),
        ],
        Artifact::Digest { algorithm, digest } => vec![(algorithm.name(), hex::encode(digest))],
    };
    let found = subjects.iter().any(|s| {
        wanted.iter().any(|(alg, hexd)| {
            s.get("digest")
                .and_then(|d| d.get(*alg))
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(hexd))
        })
    });
    if !found {
        let listed: Vec<String> = subjects
            .iter()
            .filter_map(|s| s.get("digest").map(|d| d.to_string()))
            .collect();
        let (alg, d) = wanted.first().cloned().unwrap_or(("sha256", String::new()));
        return Err(VerifyError::DigestMismatch {
            algorithm: alg.into(),
            bundle: format!("statement subjects {listed:?}"),
            artifact: d,
        });
    }
    Ok(Some(stmt))
}

fn mismatch(field: &str, expected: impl Into<String>, actual: impl Into<String>) -> VerifyError {
    VerifyError::BodyMismatch {
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

fn get_str<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn short(s: &str) -> String {
    if s.len() > 80 {
        format!("{}…", s.get(..77).unwrap_or(s))
    } else {
        s.to_owned()
    }
}

/// Refuses fields of the body object at `at` (a top-level key, or "" for the body itself) that
/// the verifier does not check.
fn only_fields(body: &Value, at: &str, allowed: &[&str]) -> Result<(), VerifyError> {
    let obj = if at.is_empty() {
        Some(body)
    } else {
        body.get(at)
    };
    let Some(Value::Object(map)) = obj else {
        return Err(VerifyError::Entry(format!(
            "canonicalizedBody{} is not a JSON object",
            if at.is_empty() {
                String::new()
            } else {
                format!(".{at}")
            }
        )));
    };
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(VerifyError::Entry(format!(
            "canonicalizedBody{} has an unexpected field {k:?}",
            if at.is_empty() {
                String::new()
            } else {
                format!(".{at}")
            }
        ))),
        None => Ok(()),
    }
}

/// Decodes base64 PEM text from a body field and returns the DER of its first block.
fn pem_field_der(b64: &str) -> Option<Vec<u8>> {
    let pem = STANDARD.decode(b64).ok()?;
    certs::pem_decode_all(&pem)
        .ok()?
        .into_iter()
        .next()
        .map(|(_, der)| der)
}

/// Rebuilds what the log entry must say from the bundle and compares.
fn check_body(
    e: &TransparencyLogEntry,
    content: Content<'_>,
    artifact: &Artifact<'_>,
    signer: &Signer<'_>,
) -> Result<(), VerifyError> {
    let (signer_pem, signer_der) = (signer.pem.as_str(), signer.der);
    let body: Value = serde_json::from_slice(&e.canonicalized_body)
        .map_err(|err| VerifyError::Entry(format!("canonicalizedBody is not JSON: {err}")))?;
    only_fields(&body, "", &["apiVersion", "kind", "spec"])?;
    let kind = get_str(&body, &["kind"]);
    let version = get_str(&body, &["apiVersion"]);
    if kind != e.kind_version.kind || version != e.kind_version.version {
        return Err(mismatch(
            "kindVersion",
            format!("{} {}", e.kind_version.kind, e.kind_version.version),
            format!("{kind} {version}"),
        ));
    }
    match (content, kind, version) {
        (Content::MessageSignature(ms), "hashedrekord", "0.0.1") => {
            let (alg, digest) = message_digest(ms, artifact)?;
            let expected =
                sigil_core::rekor::hashedrekord_body(alg, &digest, &ms.signature, signer_pem)
                    .map_err(|err| VerifyError::Entry(err.to_string()))?;
            if expected == e.canonicalized_body {
                return Ok(());
            }
            // Name the field that differs.
            let want: Value = serde_json::from_slice(&expected).unwrap_or(Value::Null);
            for path in [
                &["spec", "data", "hash", "algorithm"][..],
                &["spec", "data", "hash", "value"],
                &["spec", "signature", "content"],
                &["spec", "signature", "publicKey", "content"],
            ] {
                let (a, b) = (get_str(&want, path), get_str(&body, path));
                if a != b {
                    return Err(mismatch(&path.join("."), short(a), short(b)));
                }
            }
            Err(mismatch(
                "canonicalizedBody",
                "the canonical hashedrekord body",
                "different bytes",
            ))
        }
        (Content::MessageSignature(ms), "hashedrekord", "0.0.2") => {
            let (alg, digest) = message_digest(ms, artifact)?;
            check_v2_body(&body, alg, &digest, &ms.signature, signer)
        }
        (Content::Dsse(env), "hashedrekord", "0.0.2") => {
            // Rekor v2 has no DSSE kind: clients log an envelope as a hashedrekord over the
            // digest of its pre-authentication encoding, with the DSSE signature. The digest is
            // the signing key's (SHA-256 for P-256, SHA-384 for P-384).
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            let alg = signer
                .key
                .algorithm()
                .default_digest()
                .unwrap_or(DigestAlgorithm::Sha256);
            check_v2_body(&body, alg, &alg.digest(&env.pae()), &sig.sig, signer)
        }
        (Content::Dsse(env), "dsse", "0.0.1") => {
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            only_fields(
                &body,
                "spec",
                &["envelopeHash", "payloadHash", "signatures"],
            )?;
            let alg = get_str(&body, &["spec", "payloadHash", "algorithm"]);
            if alg != "sha256" {
                return Err(mismatch("spec.payloadHash.algorithm", "sha256", alg));
            }
            let want_hash = hex::encode(sha256(&env.payload));
            let got_hash = get_str(&body, &["spec", "payloadHash", "value"]);
            if got_hash != want_hash {
                return Err(mismatch("spec.payloadHash.value", want_hash, got_hash));
            }
            let sigs = body
                .pointer("/spec/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // The log entry must list exactly the envelope's signatures.
            if sigs.len() != env.signatures.len() {
                return Err(mismatch(
                    "spec.signatures",
                    format!("{} signature(s)", env.signatures.len()),
                    format!("{} signature(s)", sigs.len()),
                ));
            }
            let want_sig = STANDARD.encode(&sig.sig);
            let hit = sigs.iter().find(|s| get_str(s, &["signature"]) == want_sig);
            let Some(hit) = hit else {
                return Err(mismatch(
                    "spec.signatures[].signature",
                    short(&want_sig),
                    "no such signature",
                ));
            };
            if pem_field_der(get_str(hit, &["verifier"])).as_deref() != Some(signer_der) {
                return Err(mismatch(
                    "spec.signatures[].verifier",
                    "the bundle's signing certificate/key",
                    "a different key",
                ));
            }
            Ok(())
        }
        (Content::Dsse(env), "intoto", "0.0.2") => {
            let sig = env
                .signatures
                .first()
                .ok_or(VerifyError::Bundle(BundleError::DsseSignatureCount(0)))?;
            let want_hash = hex::encode(sha256(&env.payload));
            let got_hash = get_str(&body, &["spec", "content", "payloadHash", "value"]);
            if got_hash != want_hash {
                return Err(mismatch(
                    "spec.content.payloadHash.value",
                    want_hash,
                    got_hash,
                ));
            }
            let got_type = get_str(&body, &["spec", "content", "envelope", "payloadType"]);
            if got_type != env.payload_type {
                return Err(mismatch(
                    "spec.content.envelope.payloadType",
                    env.payload_type.clone(),
                    got_type,
                ));
            }
            let sigs = body
                .pointer("/spec/content/envelope/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if sigs.len() != env.signatures.len() {
                return Err(mismatch(
                    "spec.content.envelope.signatures",
                    format!("{} signature(s)", env.signatures.len()),
                    format!("{} signature(s)", sigs.len()),
                ));
            }
            // intoto 0.0.2 double-encodes signatures: base64 of the envelope's base64 text.
            let want_sig = STANDARD.encode(STANDARD.encode(&sig.sig));
            let hit = sigs.iter().find(|s| get_str(s, &["sig"]) == want_sig);
            let Some(hit) = hit else {
                return Err(mismatch(
                    "spec.content.envelope.signatures[].sig",
                    short(&want_sig),
                    "no such signature",
                ));
            };
            if pem_field_der(get_str(hit, &["publicKey"])).as_deref() != Some(signer_der) {
                return Err(mismatch(
                    "spec.content.envelope.signatures[].publicKey",
                    "the bundle's signing certificate/key",
                    "a different key",
                ));
            }
            Ok(())
        }
        (_, k, v) => Err(VerifyError::Entry(format!(
            "entry kind {k} {v} does not fit the bundle's content"
        ))),
    }
}

/// The Rekor v2 hashedrekord 0.0.2 body must be exactly the one the bundle implies: digest and
/// algorithm, signature, the signing certificate or key and its key details, and nothing else.
fn check_v2_body(
    body: &Value,
    alg: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
    signer: &Signer<'_>,
) -> Result<(), VerifyError> {
    let spec = body
        .pointer("/spec/hashedRekordV002")
        .cloned()
        .unwrap_or(Value::Null);
    // RSA keys name their padding and size in keyDetails; any RSA variant fits an RSA key.
    let details = match signer.key.algorithm() {
        KeyAlgorithm::Rsa { .. } => {
            let got = get_str(&spec, &["signature", "verifier", "keyDetails"]);
            if got.starts_with("PKIX_RSA_") {
                got.to_owned()
            } else {
                KeyAlgorithm::Rsa { bits: 2048 }.key_details().to_owned()
            }
        }
        a => a.key_details().to_owned(),
    };
    let material = if signer.is_certificate {
        rekor_v2::Material::Certificate(signer.der)
    } else {
        rekor_v2::Material::PublicKey(signer.der)
    };
    let field_name = material.field();
    let expected = rekor_v2::body(
        alg,
        digest,
        signature,
        &rekor_v2::Verifier {
            material,
            key_details: &details,
        },
    );
    if *body == expected {
        return Ok(());
    }
    // Name the first field that differs.
    let want_spec = expected
        .pointer("/spec/hashedRekordV002")
        .cloned()
        .unwrap_or(Value::Null);
    for path in [
        &["data", "algorithm"][..],
        &["data", "digest"],
        &["signature", "content"],
        &["signature", "verifier", field_name, "rawBytes"],
        &["signature", "verifier", "keyDetails"],
    ] {
        let (a, b) = (get_str(&want_spec, path), get_str(&spec, path));
        if a != b {
            let field = format!("spec.hashedRekordV002.{}", path.join("."));
            return Err(mismatch(&field, short(a), short(b)));
        }
    }
    Err(mismatch(
        "canonicalizedBody",
        "exactly the hashedrekord 0.0.2 fields the bundle implies",
        "other or extra fields",
    ))
}

/// Verifies the leaf's embedded SCTs against the trusted CT logs: at least one must verify.
fn verify_sct(
    leaf: &ParsedCert,
    issuer: &ParsedCert,
    root: &TrustedRoot,
    times: &[i64],
) -> Result<(), VerifyError> {
    let (_, scts) = sigil_core::sct::precert_tbs_from_cert(&leaf.der)
        .map_err(|e| VerifyError::Sct(format!("certificate has no usable embedded SCT: {e}")))?;
    let mut errors = Vec::new();
    for sct in &scts {
        let logs: Vec<_> = root.ctlogs_by_id(&sct.log_id).collect();
        if logs.is_empty() {
            errors.push(format!(
                "SCT from log {} which the trusted root does not list",
                hex::encode(sct.log_id)
            ));
            continue;
        }
        for log in logs {
            // The CT log's key must have been valid when the certificate was used.
            if !times.iter().all(|t| log.public_key.valid_at(*t)) {
                errors.push(format!(
                    "log {}: its key is not valid at the signing time",
                    hex::encode(sct.log_id)
                ));
                continue;
            }
            let Ok(key) = PublicKey::from_spki_der(&log.public_key.raw_bytes) else {
                continue;
            };
            match sigil_core::sct::verify_embedded_scts(&leaf.der, &issuer.spki, &key) {
                Ok(_) => return Ok(()),
                Err(e) => errors.push(format!("log {}: {e}", hex::encode(sct.log_id))),
            }
        }
    }
    if errors.is_empty() {
        errors.push("certificate carries no SCTs".into());
    }
    Err(VerifyError::Sct(errors.join("; ")))
}
