//! Offline bundle verification: pure functions over a bundle, a trusted root, the artifact and a
//! policy. Nothing here touches the network or the clock (the caller passes nothing time-like:
//! the signing time comes from the transparency log entry).
//!
//! Checks, in order: bundle structure; every tlog entry (trusted log key, body rebuilt from the
//! bundle, inclusion proof to a signed checkpoint and/or SET); the signing time; the certificate
//! chain to a trusted CA valid at that time, the embedded SCT and the identity policy (or the
//! given key); and finally the signature over the artifact.

pub mod artifact;
mod body;
mod entry;
pub mod error;
pub mod link_cache;
pub mod policy;
pub mod timestamp;
pub mod witness;
pub mod x509;

use serde::Serialize;
use serde_json::Value;
use sigil_core::bundle::{
    Bundle, BundleError, BundleVersion, Content, Envelope, IN_TOTO_PAYLOAD_TYPE, MessageSignature,
    SigningMaterial,
};
use sigil_core::certs;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey, sha256};
use sigil_core::trust::TrustedRoot;

pub use artifact::{Artifact, LoadedArtifact};
pub use entry::{VerifiedEntry, verify_checkpoint};
pub use error::VerifyError;
pub use policy::{CertIdentity, CertificatePolicy, Claim, Policy, StringMatcher};

use artifact::message_digest;
use body::{Signer, check_body};
use entry::{check_kind_version, verify_entry_log, verify_entry_proof};
use x509::{ParsedCert, fmt_time};

/// Tunables; the defaults are what Sigstore clients require.
#[derive(Clone, Debug)]
pub struct Options {
    /// Entries needed; cosign's `--insecure-ignore-tlog` would be 0 (key mode only).
    pub min_tlog_entries: usize,
    /// Require a verifying embedded SCT for certificates.
    pub require_sct: bool,
    /// Witnesses whose cosignatures every entry's checkpoint must carry.
    pub witnesses: witness::WitnessPolicies,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_tlog_entries: 1,
            require_sct: true,
            witnesses: witness::WitnessPolicies::default(),
        }
    }
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
            tsa_times.push(timestamp::verify_timestamp(
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
                Policy::Key(_) => Some(policy::cert_identity(&c.cert)),
            }
        }
        (None, _) => None,
    };

    // Each entry's body is the one this bundle implies (after the certificate, so that a bad
    // certificate is reported as such rather than as a body mismatch), and its inclusion proof.
    let mut verified_entries = Vec::with_capacity(entries.len());
    for (e, l) in entries.iter().zip(&entry_logs) {
        check_body(e, content, artifact, &signer)?;
        verified_entries.push(verify_entry_proof(
            e,
            l,
            version,
            opts.witnesses.for_log(&e.log_id.key_id),
        )?);
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
