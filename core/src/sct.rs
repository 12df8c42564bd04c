//! Certificate Transparency structures of RFC 6962 (§3.2–3.5) in their TLS encodings: signed certificate
//! timestamps, SCT lists, the data an SCT or tree head signature covers, and the Merkle tree leaf.
//!
//! Everything here is byte layout only; signing and verifying take keys from [`crate::crypto`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Errors decoding CT structures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SctError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("{0} has {1} trailing bytes")]
    Trailing(&'static str, usize),
    #[error("unsupported SCT version {0} (only v1 = 0)")]
    Version(u8),
    #[error("unknown log entry type {0}")]
    EntryType(u16),
    #[error("unknown Merkle leaf type {0}")]
    LeafType(u8),
    #[error("{0} is too long for its length prefix")]
    TooLong(&'static str),
    #[error("invalid base64 in {0}")]
    Base64(&'static str),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("SCT signature does not verify: {0}")]
    BadSignature(String),
    #[error("SCT log id does not match the log's key")]
    WrongLog,
}

/// RFC 6962 `LogEntryType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum LogEntryType {
    X509 = 0,
    Precert = 1,
}

/// RFC 5246 `DigitallySigned`: hash and signature algorithm codes plus the signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitallySigned {
    /// TLS HashAlgorithm: 4 = sha256, 5 = sha384, 8 = intrinsic (Ed25519).
    pub hash_alg: u8,
    /// TLS SignatureAlgorithm: 1 = rsa, 3 = ecdsa, 7 = ed25519.
    pub sig_alg: u8,
    pub signature: Vec<u8>,
}

impl DigitallySigned {
    pub const ECDSA_SHA256: (u8, u8) = (4, 3);
    pub const ECDSA_SHA384: (u8, u8) = (5, 3);
    pub const RSA_SHA256: (u8, u8) = (4, 1);
    pub const ED25519: (u8, u8) = (8, 7);
}

/// RFC 6962 §3.2 v1 SignedCertificateTimestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCertificateTimestamp {
    /// SHA-256 of the log's SubjectPublicKeyInfo DER.
    pub log_id: [u8; 32],
    pub timestamp_ms: u64,
    pub extensions: Vec<u8>,
    pub signature: DigitallySigned,
}

/// A log entry as an SCT signs it or a Merkle leaf holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    X509 {
        cert_der: Vec<u8>,
    },
    Precert {
        issuer_key_hash: [u8; 32],
        tbs_der: Vec<u8>,
    },
}

impl LogEntry {
    pub fn entry_type(&self) -> LogEntryType {
        match self {
            Self::X509 { .. } => LogEntryType::X509,
            Self::Precert { .. } => LogEntryType::Precert,
        }
    }
}

/// RFC 6962 §3.4 TimestampedEntry, the content of a Merkle tree leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampedEntry {
    pub timestamp_ms: u64,
    pub entry: LogEntry,
    pub extensions: Vec<u8>,
}

// ---- writing -------------------------------------------------------------------------------

fn put_u16(out: &mut Vec<u8>, v: usize) -> Result<(), SctError> {
    let v = u16::try_from(v).map_err(|_| SctError::TooLong("field"))?;
    out.extend_from_slice(&v.to_be_bytes());
    Ok(())
}

fn put_u24(out: &mut Vec<u8>, v: usize) -> Result<(), SctError> {
    if v >= 1 << 24 {
        return Err(SctError::TooLong("field"));
    }
    let b = (v as u32).to_be_bytes();
    out.extend_from_slice(b.get(1..).unwrap_or_default());
    Ok(())
}

/// Appends `data` with a u16 length prefix; data too long for it is an error, never truncated.
fn put_opaque16(out: &mut Vec<u8>, data: &[u8]) -> Result<(), SctError> {
    put_u16(out, data.len())?;
    out.extend_from_slice(data);
    Ok(())
}

fn put_opaque24(out: &mut Vec<u8>, data: &[u8]) -> Result<(), SctError> {
    put_u24(out, data.len())?;
    out.extend_from_slice(data);
    Ok(())
}

fn put_entry(out: &mut Vec<u8>, entry: &LogEntry) -> Result<(), SctError> {
    out.extend_from_slice(&(entry.entry_type() as u16).to_be_bytes());
    match entry {
        LogEntry::X509 { cert_der } => put_opaque24(out, cert_der),
        LogEntry::Precert {
            issuer_key_hash,
            tbs_der,
        } => {
            out.extend_from_slice(issuer_key_hash);
            put_opaque24(out, tbs_der)
        }
    }
}

/// The bytes an SCT signature covers (RFC 6962 §3.2 `digitally-signed struct`).
pub fn sct_signed_data(
    timestamp_ms: u64,
    entry: &LogEntry,
    extensions: &[u8],
) -> Result<Vec<u8>, SctError> {
    let mut out = Vec::with_capacity(64 + entry_len(entry) + extensions.len());
    out.push(0); // sct_version v1
    out.push(0); // signature_type certificate_timestamp
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    put_entry(&mut out, entry)?;
    put_opaque16(&mut out, extensions)?;
    Ok(out)
}

fn entry_len(entry: &LogEntry) -> usize {
    match entry {
        LogEntry::X509 { cert_der } => cert_der.len(),
        LogEntry::Precert { tbs_der, .. } => tbs_der.len() + 32,
    }
}

/// SCT signature input for an X.509 entry.
pub fn sct_signed_data_x509(
    timestamp_ms: u64,
    cert_der: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, SctError> {
    sct_signed_data(
        timestamp_ms,
        &LogEntry::X509 {
            cert_der: cert_der.to_vec(),
        },
        extensions,
    )
}

/// SCT signature input for a precertificate entry: `tbs_der` is the precertificate's TBS with the
/// poison extension removed.
pub fn sct_signed_data_precert(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs_der: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, SctError> {
    sct_signed_data(
        timestamp_ms,
        &LogEntry::Precert {
            issuer_key_hash: *issuer_key_hash,
            tbs_der: tbs_der.to_vec(),
        },
        extensions,
    )
}

/// RFC 6962 §3.4 MerkleTreeLeaf (version v1, leaf_type timestamped_entry): the data a CT log hashes.
pub fn merkle_tree_leaf(e: &TimestampedEntry) -> Result<Vec<u8>, SctError> {
    let mut out = Vec::with_capacity(64 + entry_len(&e.entry) + e.extensions.len());
    out.push(0); // version v1
    out.push(0); // leaf_type timestamped_entry
    out.extend_from_slice(&e.timestamp_ms.to_be_bytes());
    put_entry(&mut out, &e.entry)?;
    put_opaque16(&mut out, &e.extensions)?;
    Ok(out)
}

pub fn merkle_tree_leaf_x509(
    timestamp_ms: u64,
    cert_der: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, SctError> {
    merkle_tree_leaf(&TimestampedEntry {
        timestamp_ms,
        entry: LogEntry::X509 {
            cert_der: cert_der.to_vec(),
        },
        extensions: extensions.to_vec(),
    })
}

pub fn merkle_tree_leaf_precert(
    timestamp_ms: u64,
    issuer_key_hash: &[u8; 32],
    tbs_der: &[u8],
    extensions: &[u8],
) -> Result<Vec<u8>, SctError> {
    merkle_tree_leaf(&TimestampedEntry {
        timestamp_ms,
        entry: LogEntry::Precert {
            issuer_key_hash: *issuer_key_hash,
            tbs_der: tbs_der.to_vec(),
        },
        extensions: extensions.to_vec(),
    })
}

/// RFC 6962 §3.5 tree head signature input: version v1, signature_type tree_hash, timestamp, size, root.
pub fn tree_head_signed_data(timestamp_ms: u64, tree_size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(50);
    out.push(0);
    out.push(1);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&tree_size.to_be_bytes());
    out.extend_from_slice(root);
    out
}

/// TLS encoding of a `DigitallySigned` struct (as in get-sth's `tree_head_signature`).
pub fn encode_digitally_signed(ds: &DigitallySigned) -> Result<Vec<u8>, SctError> {
    let mut out = Vec::with_capacity(4 + ds.signature.len());
    out.push(ds.hash_alg);
    out.push(ds.sig_alg);
    put_opaque16(&mut out, &ds.signature)?;
    Ok(out)
}

/// Decodes a complete TLS `DigitallySigned` struct.
pub fn decode_digitally_signed(b: &[u8]) -> Result<DigitallySigned, SctError> {
    let mut r = Reader::new(b);
    let ds = r.digitally_signed()?;
    r.finish("DigitallySigned")?;
    Ok(ds)
}

impl SignedCertificateTimestamp {
    /// TLS encoding of the SCT (RFC 6962 §3.2).
    pub fn to_tls_bytes(&self) -> Result<Vec<u8>, SctError> {
        let mut out = Vec::with_capacity(
            1 + 32 + 8 + 2 + self.extensions.len() + 4 + self.signature.signature.len(),
        );
        out.push(0);
        out.extend_from_slice(&self.log_id);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        put_opaque16(&mut out, &self.extensions)?;
        out.push(self.signature.hash_alg);
        out.push(self.signature.sig_alg);
        put_opaque16(&mut out, &self.signature.signature)?;
        Ok(out)
    }

    /// Decodes one complete TLS-encoded SCT.
    pub fn from_tls_bytes(b: &[u8]) -> Result<Self, SctError> {
        let mut r = Reader::new(b);
        let sct = r.sct()?;
        r.finish("SCT")?;
        Ok(sct)
    }

    /// The bytes this SCT's signature covers for `entry`.
    pub fn signed_data(&self, entry: &LogEntry) -> Result<Vec<u8>, SctError> {
        sct_signed_data(self.timestamp_ms, entry, &self.extensions)
    }

    /// RFC 6962 §4.1 JSON form (what add-chain / add-pre-chain answer).
    pub fn to_json(&self) -> Result<SctJson, SctError> {
        Ok(SctJson {
            sct_version: 0,
            id: B64.encode(self.log_id),
            timestamp: self.timestamp_ms,
            extensions: B64.encode(&self.extensions),
            signature: B64.encode(encode_digitally_signed(&self.signature)?),
        })
    }

    /// Parses the RFC 6962 §4.1 JSON form.
    pub fn from_json(j: &SctJson) -> Result<Self, SctError> {
        if j.sct_version != 0 {
            return Err(SctError::Version(j.sct_version));
        }
        let id = B64.decode(&j.id).map_err(|_| SctError::Base64("id"))?;
        let log_id: [u8; 32] = id.try_into().map_err(|_| SctError::Truncated("log id"))?;
        let extensions = B64
            .decode(&j.extensions)
            .map_err(|_| SctError::Base64("extensions"))?;
        let sig = B64
            .decode(&j.signature)
            .map_err(|_| SctError::Base64("signature"))?;
        Ok(Self {
            log_id,
            timestamp_ms: j.timestamp,
            extensions,
            signature: decode_digitally_signed(&sig)?,
        })
    }
}

/// RFC 6962 §4.1 add-chain / add-pre-chain response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SctJson {
    pub sct_version: u8,
    /// Base64 log id.
    pub id: String,
    pub timestamp: u64,
    /// Base64 extensions (usually empty).
    #[serde(default)]
    pub extensions: String,
    /// Base64 TLS `DigitallySigned`.
    pub signature: String,
}

/// TLS `SignedCertificateTimestampList` (RFC 6962 §3.3): u16 total length, then each SCT with a u16 length.
pub fn encode_sct_list(scts: &[SignedCertificateTimestamp]) -> Result<Vec<u8>, SctError> {
    let mut inner = Vec::new();
    for sct in scts {
        put_opaque16(&mut inner, &sct.to_tls_bytes()?)?;
    }
    let mut out = Vec::with_capacity(inner.len() + 2);
    put_u16(&mut out, inner.len()).map_err(|_| SctError::TooLong("SCT list"))?;
    out.extend_from_slice(&inner);
    Ok(out)
}

pub fn decode_sct_list(b: &[u8]) -> Result<Vec<SignedCertificateTimestamp>, SctError> {
    let mut r = Reader::new(b);
    let list = r.opaque16("SCT list")?;
    r.finish("SCT list")?;
    let mut lr = Reader::new(list);
    let mut out = Vec::new();
    while !lr.is_empty() {
        let one = lr.opaque16("SCT")?;
        out.push(SignedCertificateTimestamp::from_tls_bytes(one)?);
    }
    Ok(out)
}

/// Parses a MerkleTreeLeaf produced by [`merkle_tree_leaf`].
pub fn parse_merkle_tree_leaf(b: &[u8]) -> Result<TimestampedEntry, SctError> {
    let mut r = Reader::new(b);
    let version = r.u8("leaf version")?;
    if version != 0 {
        return Err(SctError::Version(version));
    }
    let leaf_type = r.u8("leaf type")?;
    if leaf_type != 0 {
        return Err(SctError::LeafType(leaf_type));
    }
    let timestamp_ms = r.u64("timestamp")?;
    let entry = match r.u16("entry type")? {
        0 => LogEntry::X509 {
            cert_der: r.opaque24("certificate")?.to_vec(),
        },
        1 => {
            let issuer_key_hash = r.array32("issuer key hash")?;
            LogEntry::Precert {
                issuer_key_hash,
                tbs_der: r.opaque24("TBS certificate")?.to_vec(),
            }
        }
        other => return Err(SctError::EntryType(other)),
    };
    let extensions = r.opaque16("extensions")?.to_vec();
    r.finish("Merkle tree leaf")?;
    Ok(TimestampedEntry {
        timestamp_ms,
        entry,
        extensions,
    })
}

// ---- certificates --------------------------------------------------------------------------

/// SHA-256 of an issuer's SubjectPublicKeyInfo DER: the `issuer_key_hash` of a precert entry.
pub fn issuer_key_hash(issuer_spki_der: &[u8]) -> [u8; 32] {
    crate::crypto::sha256(issuer_spki_der)
}

fn cert_err(e: impl std::fmt::Display) -> SctError {
    SctError::Certificate(e.to_string())
}

/// Re-encodes `tbs` without the extension `oid`; errors if it is absent.
fn remove_extension(
    mut tbs: x509_cert::TbsCertificate,
    oid: &der::asn1::ObjectIdentifier,
    what: &str,
) -> Result<(Vec<u8>, x509_cert::ext::Extension), SctError> {
    use der::Encode;
    let exts = tbs
        .extensions
        .as_mut()
        .ok_or_else(|| cert_err(format!("certificate has no extensions, so no {what}")))?;
    let pos = exts
        .iter()
        .position(|e| &e.extn_id == oid)
        .ok_or_else(|| cert_err(format!("certificate has no {what} extension ({oid})")))?;
    let removed = exts.remove(pos);
    if exts.iter().any(|e| &e.extn_id == oid) {
        return Err(cert_err(format!(
            "certificate has more than one {what} extension"
        )));
    }
    if exts.is_empty() {
        tbs.extensions = None;
    }
    Ok((tbs.to_der().map_err(cert_err)?, removed))
}

/// The TBS a precert SCT signs, from a precertificate: its TBS with the critical poison
/// extension removed (what a CT log does on add-pre-chain).
pub fn precert_tbs_from_precert(precert_der: &[u8]) -> Result<Vec<u8>, SctError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(precert_der).map_err(cert_err)?;
    let (tbs, poison) = remove_extension(
        cert.tbs_certificate,
        &crate::oid::CT_PRECERT_POISON,
        "precertificate poison",
    )?;
    if !poison.critical {
        return Err(cert_err(
            "the precertificate poison extension must be critical",
        ));
    }
    if poison.extn_value.as_bytes() != [0x05, 0x00] {
        return Err(cert_err(
            "the precertificate poison extension's value must be ASN.1 NULL",
        ));
    }
    Ok(tbs)
}

/// Whether a certificate carries the precertificate poison extension (RFC 6962 §3.1), critical
/// or not: a log refuses it on add-chain either way.
pub fn has_poison(cert: &x509_cert::Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .as_ref()
        .is_some_and(|exts| {
            exts.iter()
                .any(|e| e.extn_id == crate::oid::CT_PRECERT_POISON)
        })
}

/// `ASN.1Cert certificate_chain<0..2^24-1>` (RFC 6962 §4.6): the `extra_data` of an X.509 entry.
pub fn encode_cert_chain<C: AsRef<[u8]>>(certs: &[C]) -> Result<Vec<u8>, SctError> {
    let mut inner = Vec::new();
    for c in certs {
        put_opaque24(&mut inner, c.as_ref())?;
    }
    let mut out = Vec::with_capacity(inner.len() + 3);
    put_opaque24(&mut out, &inner)?;
    Ok(out)
}

/// `PrecertChainEntry { ASN.1Cert pre_certificate; ASN.1Cert precertificate_chain<..> }`
/// (RFC 6962 §4.6): the `extra_data` of a precert entry.
pub fn encode_precert_chain_entry<C: AsRef<[u8]>>(
    precert: &[u8],
    chain: &[C],
) -> Result<Vec<u8>, SctError> {
    let mut out = Vec::new();
    put_opaque24(&mut out, precert)?;
    out.extend(encode_cert_chain(chain)?);
    Ok(out)
}

/// From a final certificate with an embedded SCT list (extension 1.3.6.1.4.1.11129.2.4.2): the
/// precertificate TBS the SCTs signed (the TBS without that extension) and the SCTs.
pub fn precert_tbs_from_cert(
    cert_der: &[u8],
) -> Result<(Vec<u8>, Vec<SignedCertificateTimestamp>), SctError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(cert_err)?;
    let (tbs, ext) = remove_extension(
        cert.tbs_certificate,
        &crate::oid::CT_PRECERT_SCTS,
        "embedded SCT list",
    )?;
    let list = der::asn1::OctetStringRef::from_der(ext.extn_value.as_bytes())
        .map_err(|e| cert_err(format!("embedded SCT list is not a DER OCTET STRING: {e}")))?;
    Ok((tbs, decode_sct_list(list.as_bytes())?))
}

/// Verifies an SCT's signature over `entry` with the CT log's key (and that the SCT names that log).
pub fn verify_sct(
    sct: &SignedCertificateTimestamp,
    entry: &LogEntry,
    log_key: &crate::crypto::PublicKey,
) -> Result<(), SctError> {
    use crate::crypto::{DigestAlgorithm, KeyAlgorithm};
    if sct.log_id != log_key.key_id() {
        return Err(SctError::WrongLog);
    }
    let data = sct.signed_data(entry)?;
    let bad = |e: crate::crypto::CryptoError| SctError::BadSignature(e.to_string());
    let sig = &sct.signature;
    let expected_sig_alg = match log_key.algorithm() {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521 => 3,
        KeyAlgorithm::Rsa { .. } => 1,
        KeyAlgorithm::Ed25519 => 7,
    };
    if sig.sig_alg != expected_sig_alg {
        return Err(SctError::BadSignature(format!(
            "signature algorithm {} does not match the log's {} key",
            sig.sig_alg,
            log_key.algorithm()
        )));
    }
    if log_key.algorithm() == KeyAlgorithm::Ed25519 {
        return log_key.verify(&data, &sig.signature).map_err(bad);
    }
    let digest = match sig.hash_alg {
        4 => DigestAlgorithm::Sha256,
        5 => DigestAlgorithm::Sha384,
        6 => DigestAlgorithm::Sha512,
        other => {
            return Err(SctError::BadSignature(format!(
                "unsupported hash algorithm {other}"
            )));
        }
    };
    log_key
        .verify_prehashed(digest, &digest.digest(&data), &sig.signature)
        .map_err(bad)
}

/// Verifies the SCTs embedded in `cert_der` (issued by the key `issuer_spki_der`) against a CT log
/// key; returns the SCTs from that log that verified. Errors if none did.
pub fn verify_embedded_scts(
    cert_der: &[u8],
    issuer_spki_der: &[u8],
    log_key: &crate::crypto::PublicKey,
) -> Result<Vec<SignedCertificateTimestamp>, SctError> {
    let (tbs_der, scts) = precert_tbs_from_cert(cert_der)?;
    let entry = LogEntry::Precert {
        issuer_key_hash: issuer_key_hash(issuer_spki_der),
        tbs_der,
    };
    let mut last = SctError::WrongLog;
    let mut ok = Vec::new();
    for sct in scts {
        match verify_sct(&sct, &entry, log_key) {
            Ok(()) => ok.push(sct),
            Err(e) => last = e,
        }
    }
    if ok.is_empty() { Err(last) } else { Ok(ok) }
}

// ---- reading -------------------------------------------------------------------------------

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SctError> {
        if self.b.len() < n {
            return Err(SctError::Truncated(what));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SctError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, SctError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes(
            s.try_into().map_err(|_| SctError::Truncated(what))?,
        ))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize, SctError> {
        let s = self.take(3, what)?;
        Ok(s.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, SctError> {
        let s = self.take(8, what)?;
        Ok(u64::from_be_bytes(
            s.try_into().map_err(|_| SctError::Truncated(what))?,
        ))
    }
    fn array32(&mut self, what: &'static str) -> Result<[u8; 32], SctError> {
        self.take(32, what)?
            .try_into()
            .map_err(|_| SctError::Truncated(what))
    }
    fn opaque16(&mut self, what: &'static str) -> Result<&'a [u8], SctError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    fn opaque24(&mut self, what: &'static str) -> Result<&'a [u8], SctError> {
        let n = self.u24(what)?;
        self.take(n, what)
    }
    fn digitally_signed(&mut self) -> Result<DigitallySigned, SctError> {
        let hash_alg = self.u8("hash algorithm")?;
        let sig_alg = self.u8("signature algorithm")?;
        let signature = self.opaque16("signature")?.to_vec();
        Ok(DigitallySigned {
            hash_alg,
            sig_alg,
            signature,
        })
    }
    fn sct(&mut self) -> Result<SignedCertificateTimestamp, SctError> {
        let version = self.u8("SCT version")?;
        if version != 0 {
            return Err(SctError::Version(version));
        }
        let log_id = self.array32("log id")?;
        let timestamp_ms = self.u64("timestamp")?;
        let extensions = self.opaque16("extensions")?.to_vec();
        let signature = self.digitally_signed()?;
        Ok(SignedCertificateTimestamp {
            log_id,
            timestamp_ms,
            extensions,
            signature,
        })
    }
    fn finish(&self, what: &'static str) -> Result<(), SctError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(SctError::Trailing(what, self.b.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedCertificateTimestamp {
        SignedCertificateTimestamp {
            log_id: [7; 32],
            timestamp_ms: 0x0102_0304_0506_0708,
            extensions: vec![],
            signature: DigitallySigned {
                hash_alg: 4,
                sig_alg: 3,
                signature: vec![0x30, 0x02, 0x01, 0x00],
            },
        }
    }

    #[test]
    fn sct_round_trip_and_layout() {
        let sct = sample();
        let b = sct.to_tls_bytes().unwrap();
        // version, log id, timestamp, ext len, hash, sig, sig len, sig
        assert_eq!(b.len(), 1 + 32 + 8 + 2 + 1 + 1 + 2 + 4);
        assert_eq!(b[0], 0);
        assert_eq!(&b[33..41], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[41..43], &[0, 0]);
        assert_eq!(&b[43..47], &[4, 3, 0, 4]);
        assert_eq!(SignedCertificateTimestamp::from_tls_bytes(&b).unwrap(), sct);
        // trailing and truncated bytes are refused
        let mut long = b.clone();
        long.push(0);
        assert!(SignedCertificateTimestamp::from_tls_bytes(&long).is_err());
        for n in 0..b.len() {
            assert!(SignedCertificateTimestamp::from_tls_bytes(&b[..n]).is_err());
        }
    }

    #[test]
    fn sct_list_round_trip() {
        let mut second = sample();
        second.extensions = vec![1, 2, 3];
        let list = encode_sct_list(&[sample(), second.clone()]).unwrap();
        let one = sample().to_tls_bytes().unwrap().len();
        let two = second.to_tls_bytes().unwrap().len();
        assert_eq!(
            u16::from_be_bytes([list[0], list[1]]) as usize,
            one + two + 4
        );
        assert_eq!(decode_sct_list(&list).unwrap(), vec![sample(), second]);
        assert!(decode_sct_list(&list[..list.len() - 1]).is_err());
        assert_eq!(decode_sct_list(&[0, 0]).unwrap(), vec![]);
    }

    #[test]
    fn signed_data_layout() {
        let tbs = [0xAAu8; 5];
        let d = sct_signed_data_precert(9, &[1; 32], &tbs, &[]).unwrap();
        let mut want = vec![0u8, 0];
        want.extend_from_slice(&9u64.to_be_bytes());
        want.extend_from_slice(&[0, 1]);
        want.extend_from_slice(&[1; 32]);
        want.extend_from_slice(&[0, 0, 5]);
        want.extend_from_slice(&tbs);
        want.extend_from_slice(&[0, 0]);
        assert_eq!(d, want);

        let x = sct_signed_data_x509(9, &tbs, &[]).unwrap();
        assert_eq!(&x[10..12], &[0, 0]);
        assert_eq!(&x[12..15], &[0, 0, 5]);
        assert_eq!(x.len(), 2 + 8 + 2 + 3 + 5 + 2);
    }

    #[test]
    fn merkle_leaf_round_trip() {
        let leaf = merkle_tree_leaf_precert(42, &[3; 32], b"tbs", b"ex").unwrap();
        assert_eq!(&leaf[..2], &[0, 0]);
        let parsed = parse_merkle_tree_leaf(&leaf).unwrap();
        assert_eq!(parsed.timestamp_ms, 42);
        assert_eq!(parsed.extensions, b"ex");
        assert_eq!(
            parsed.entry,
            LogEntry::Precert {
                issuer_key_hash: [3; 32],
                tbs_der: b"tbs".to_vec()
            }
        );
        let leaf = merkle_tree_leaf_x509(1, b"cert", b"").unwrap();
        assert_eq!(
            parse_merkle_tree_leaf(&leaf).unwrap().entry,
            LogEntry::X509 {
                cert_der: b"cert".to_vec()
            }
        );
        for n in 0..leaf.len() {
            assert!(parse_merkle_tree_leaf(&leaf[..n]).is_err());
        }
    }

    #[test]
    fn tree_head_layout() {
        let d = tree_head_signed_data(5, 6, &[9; 32]);
        assert_eq!(d.len(), 2 + 8 + 8 + 32);
        assert_eq!(&d[..2], &[0, 1]);
        assert_eq!(&d[10..18], &6u64.to_be_bytes());
    }

    #[test]
    fn json_round_trip() {
        let j = sample().to_json().unwrap();
        let text = serde_json::to_string(&j).unwrap();
        let back: SctJson = serde_json::from_str(&text).unwrap();
        assert_eq!(
            SignedCertificateTimestamp::from_json(&back).unwrap(),
            sample()
        );
    }

    #[test]
    fn verify_sct_signatures() {
        use crate::crypto::{KeyAlgorithm, SigningKey};
        for (alg, codes) in [
            (KeyAlgorithm::EcdsaP256, DigitallySigned::ECDSA_SHA256),
            (KeyAlgorithm::Ed25519, DigitallySigned::ED25519),
        ] {
            let key = SigningKey::generate(alg).unwrap();
            let entry = LogEntry::Precert {
                issuer_key_hash: [5; 32],
                tbs_der: b"tbs".to_vec(),
            };
            let data = sct_signed_data(77, &entry, &[]).unwrap();
            let sct = SignedCertificateTimestamp {
                log_id: key.public_key().key_id(),
                timestamp_ms: 77,
                extensions: vec![],
                signature: DigitallySigned {
                    hash_alg: codes.0,
                    sig_alg: codes.1,
                    signature: key.sign(&data).unwrap(),
                },
            };
            verify_sct(&sct, &entry, &key.public_key()).unwrap();
            // another entry, another time or another log fails
            let other = LogEntry::Precert {
                issuer_key_hash: [6; 32],
                tbs_der: b"tbs".to_vec(),
            };
            assert!(verify_sct(&sct, &other, &key.public_key()).is_err());
            let mut later = sct.clone();
            later.timestamp_ms += 1;
            assert!(verify_sct(&later, &entry, &key.public_key()).is_err());
            let stranger = SigningKey::generate(alg).unwrap().public_key();
            assert_eq!(verify_sct(&sct, &entry, &stranger), Err(SctError::WrongLog));
        }
    }
}
