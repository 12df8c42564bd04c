//! Rekor v1 entry kinds: validation, signature verification and the canonical bodies Rekor
//! stores (RFC 8785 JSON), so that clients rebuilding a body from a bundle get the same bytes.
//!
//! Supported: `hashedrekord` 0.0.1, `dsse` 0.0.1, `intoto` 0.0.1 and 0.0.2.

mod hashedrekord;
pub use hashedrekord::*;
mod envelopes;
pub use envelopes::*;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Map, Value, json};

use crate::certs::{self, San};
use crate::crypto::{DigestAlgorithm, PublicKey};
use crate::jcs;
use crate::merkle::{Hash, leaf_hash};

/// The kinds and versions accepted, for error messages.
pub const SUPPORTED_KINDS: &str = "hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.1, intoto 0.0.2";

/// Why a proposed entry was rejected. Every variant is the caller's to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unsupported entry kind/version {kind} {version}; supported: {SUPPORTED_KINDS}")]
    Unsupported { kind: String, version: String },
    #[error("signature verification failed: {0}")]
    Signature(String),
}

fn invalid(field: &'static str, reason: impl std::fmt::Display) -> EntryError {
    EntryError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

/// A validated entry: the body to store and the keys to index it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalEntry {
    pub kind: &'static str,
    pub api_version: &'static str,
    /// RFC 8785 JSON, exactly what Rekor would store; the Merkle leaf is this body.
    pub body: Vec<u8>,
    /// Search index keys: `sha256:<hex>` artifact/payload and key hashes, lower-cased e-mails and URIs.
    pub search_keys: Vec<String>,
    /// What signed the entry (each verifier a signature was checked with): what a log's
    /// admission policy judges.
    pub signers: Vec<Signer>,
}

/// The key material an entry's signature was verified with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A certificate chain as given (DER, the signing certificate first).
    Certificate(Vec<Vec<u8>>),
    /// A bare public key (SubjectPublicKeyInfo DER).
    PublicKey(Vec<u8>),
}

impl CanonicalEntry {
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.body)
    }
    /// The entry UUID: hex of the leaf hash.
    pub fn uuid(&self) -> String {
        hex::encode(self.leaf_hash())
    }
}

/// Validate and canonicalize a proposed entry `{apiVersion, kind, spec}`, verifying its signatures.
pub fn canonicalize(proposed: &Value) -> Result<CanonicalEntry, EntryError> {
    let obj = proposed
        .as_object()
        .ok_or_else(|| invalid("entry", "must be a JSON object {apiVersion, kind, spec}"))?;
    let kind = str_field(obj, "kind", "kind")?;
    let version = str_field(obj, "apiVersion", "apiVersion")?;
    let spec = obj
        .get("spec")
        .and_then(Value::as_object)
        .ok_or(EntryError::Missing("spec"))?;
    match (kind, version) {
        ("hashedrekord", "0.0.1") => hashedrekord(spec),
        ("dsse", "0.0.1") => dsse(spec),
        ("intoto", "0.0.1") => intoto_v001(spec),
        ("intoto", "0.0.2") => intoto(spec),
        (k, v) => Err(EntryError::Unsupported {
            kind: k.to_string(),
            version: v.to_string(),
        }),
    }
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a str, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EntryError::Missing(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(name, "must be a string")),
    }
}

fn obj_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<&'a Map<String, Value>, EntryError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EntryError::Missing(name)),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(invalid(name, "must be an object")),
    }
}

fn b64_field(
    obj: &Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<Vec<u8>, EntryError> {
    let s = str_field(obj, key, name)?;
    decode_b64(s).map_err(|e| invalid(name, format!("not valid base64: {e}")))
}

fn decode_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD
        .decode(s)
        .or_else(|e| URL_SAFE.decode(s).map_err(|_| e))
}

/// A verification key as given in an entry (PEM certificate(s) or PEM public key), with its
/// canonical PEM and the identities it carries.
pub struct Verifier {
    pub key: PublicKey,
    /// Go `pem.Encode` form: what Rekor stores.
    pub canonical_pem: String,
    /// SAN e-mails / URIs of the certificate (empty for bare keys).
    pub subjects: Vec<String>,
    pub signer: Signer,
}

/// Parse a PEM certificate (chain: the first is the signer) or PEM public key.
pub fn parse_verifier(pem_bytes: &[u8], field: &'static str) -> Result<Verifier, EntryError> {
    let blocks = certs::pem_decode_all(pem_bytes).map_err(|e| invalid(field, e))?;
    let (label, first_der) = blocks.first().ok_or(EntryError::Missing(field))?;
    match label.as_str() {
        "CERTIFICATE" => {
            let mut canonical_pem = String::new();
            let mut chain = Vec::with_capacity(blocks.len());
            let mut leaf = None;
            for (label, der) in &blocks {
                if label != "CERTIFICATE" {
                    return Err(invalid(
                        field,
                        format!("unexpected PEM block {label:?} in a certificate chain"),
                    ));
                }
                let cert = certs::parse_certificate(der).map_err(|e| invalid(field, e))?;
                canonical_pem.push_str(&certs::pem_encode("CERTIFICATE", der));
                chain.push(der.clone());
                if leaf.is_none() {
                    leaf = Some(cert);
                }
            }
            let leaf = leaf.ok_or(EntryError::Missing(field))?;
            let spki = certs::spki_der(&leaf).map_err(|e| invalid(field, e))?;
            let key = PublicKey::from_spki_der(&spki).map_err(|e| invalid(field, e))?;
            let subjects = rekor_subjects(&leaf);
            Ok(Verifier {
                key,
                canonical_pem,
                subjects,
                signer: Signer::Certificate(chain),
            })
        }
        "PUBLIC KEY" => {
            let key = PublicKey::from_spki_der(first_der).map_err(|e| invalid(field, e))?;
            Ok(Verifier {
                canonical_pem: certs::pem_encode("PUBLIC KEY", first_der),
                key,
                subjects: Vec::new(),
                signer: Signer::PublicKey(first_der.clone()),
            })
        }
        other => Err(invalid(
            field,
            format!("expected a PEM CERTIFICATE or PUBLIC KEY, found {other:?}"),
        )),
    }
}

/// The SAN values Rekor indexes a certificate under (and `subject` searches match): e-mail
/// addresses, URIs, otherName UTF8Strings (Fulcio's username SAN), DNS names, IP addresses.
fn rekor_subjects(cert: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let mut out: Vec<String> = certs::subject_alt_names(cert)
        .iter()
        .map(|s: &San| s.value().to_string())
        .collect();
    if let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() {
        for name in &san.0 {
            match name {
                GeneralName::DnsName(d) => out.push(d.to_string()),
                GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let addr = <[u8; 4]>::try_from(b)
                        .map(std::net::IpAddr::from)
                        .or_else(|_| <[u8; 16]>::try_from(b).map(std::net::IpAddr::from));
                    if let Ok(a) = addr {
                        out.push(a.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The search keys of a verifier: the SHA-256 of its canonical PEM and its identities, lowercase.
pub fn verifier_search_keys(v: &Verifier) -> Vec<String> {
    let mut keys = Vec::new();
    key_search_keys(v, &mut keys);
    keys
}

fn key_search_keys(v: &Verifier, keys: &mut Vec<String>) {
    keys.push(format!(
        "sha256:{}",
        hex::encode(crate::crypto::sha256(v.canonical_pem.as_bytes()))
    ));
    keys.extend(v.subjects.iter().map(|s| s.to_lowercase()));
}

fn finish(
    kind: &'static str,
    api_version: &'static str,
    spec: Value,
    mut search_keys: Vec<String>,
    signers: Vec<Signer>,
) -> Result<CanonicalEntry, EntryError> {
    let body = json!({"apiVersion": api_version, "kind": kind, "spec": spec});
    let body = jcs::to_canonical_vec(&body).map_err(|e| invalid("spec", e))?;
    search_keys.sort();
    search_keys.dedup();
    Ok(CanonicalEntry {
        kind,
        api_version,
        body,
        search_keys,
        signers,
    })
}

/// The bytes a signed entry timestamp signs: RFC 8785 JSON of body, integratedTime, logID, logIndex.
pub fn set_payload(body: &[u8], integrated_time: i64, log_id_hex: &str, log_index: u64) -> Vec<u8> {
    let v = json!({
        "body": STANDARD.encode(body),
        "integratedTime": integrated_time,
        "logID": log_id_hex,
        "logIndex": log_index,
    });
    jcs::to_canonical_vec(&v).unwrap_or_default()
}

/// Entry ID as Rekor prints it: 16 hex digits of the tree ID followed by the UUID.
pub fn entry_id(tree_id: u64, uuid: &str) -> String {
    format!("{tree_id:016x}{uuid}")
}

/// Accepts a 64-hex UUID or an 80-hex entry ID; returns the leaf hash.
pub fn parse_uuid_or_entry_id(s: &str) -> Option<Hash> {
    let hex_part = match s.len() {
        64 => s,
        80 => s.get(16..)?,
        _ => return None,
    };
    let bytes = hex::decode(hex_part).ok()?;
    bytes.try_into().ok()
}

/// A reference to a Rekor v1 entry as clients give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRef {
    /// 64 hex digits: the leaf hash, in whichever tree holds it.
    Uuid(Hash),
    /// 80 hex digits: the tree (shard) ID, then the leaf hash.
    EntryId { tree_id: i64, leaf: Hash },
}

impl EntryRef {
    pub fn leaf(&self) -> Hash {
        match self {
            EntryRef::Uuid(h) | EntryRef::EntryId { leaf: h, .. } => *h,
        }
    }
}

/// Parse a UUID or entry ID with Rekor's rules: the tree ID of an entry ID is a positive
/// 64-bit signed integer in 16 hex digits; anything else is a malformed ID.
pub fn parse_entry_ref(s: &str) -> Result<EntryRef, String> {
    let bytes = hex::decode(s).map_err(|_| {
        format!("{s:?} is not hexadecimal: give a 64-hex UUID or an 80-hex entry ID")
    })?;
    match bytes.len() {
        32 => bytes
            .try_into()
            .map(EntryRef::Uuid)
            .map_err(|_| "UUID must be 32 bytes".to_string()),
        40 => {
            let (tree, leaf) = bytes.split_at(8);
            let tree: [u8; 8] = tree
                .try_into()
                .map_err(|_| "tree ID must be 8 bytes".to_string())?;
            let tree_id = i64::from_be_bytes(tree);
            if tree_id <= 0 {
                return Err(format!(
                    "{} is not a valid tree ID (a positive 64-bit integer)",
                    hex::encode(tree)
                ));
            }
            let leaf: Hash = leaf
                .try_into()
                .map_err(|_| "UUID must be 32 bytes".to_string())?;
            Ok(EntryRef::EntryId { tree_id, leaf })
        }
        n => Err(format!(
            "an entry UUID has 64 hex digits and an entry ID 80, this has {}",
            n * 2
        )),
    }
}

/// The search-index key of a hash as Rekor's `/api/v1/index/retrieve` takes it: `alg:hex`, or
/// bare hex whose length names the algorithm (40 sha1, 64 sha256, 96 sha384, 128 sha512).
/// The prefix of an identity search key stored as a keyed hash (see the server's search index).
pub const KEYED_IDENTITY_PREFIX: &str = "identity-hmac:";

/// Whether a search key names an identity (a certificate subject, stored lowercase) rather than
/// a digest (`<alg>:<hex>`: an artifact or a public key) or an already keyed identity.
pub fn is_identity_key(key: &str) -> bool {
    if key.starts_with(KEYED_IDENTITY_PREFIX) {
        return false;
    }
    let digest = key.split_once(':').is_some_and(|(alg, h)| {
        let want = match alg {
            "sha1" => 40,
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return false,
        };
        h.len() == want && h.bytes().all(|b| b.is_ascii_hexdigit())
    });
    !digest
}

pub fn search_hash_key(input: &str) -> Result<String, String> {
    let lower = input.to_ascii_lowercase();
    let (alg, hex_part) = match lower.split_once(':') {
        Some((alg, h)) => (alg, h),
        None => match lower.len() {
            40 => ("sha1", lower.as_str()),
            64 => ("sha256", lower.as_str()),
            96 => ("sha384", lower.as_str()),
            128 => ("sha512", lower.as_str()),
            n => {
                return Err(format!(
                    "hash {input:?} has {n} characters: give <sha1|sha256|sha384|sha512>:<hex> \
                     or 40, 64, 96 or 128 hex digits"
                ));
            }
        },
    };
    let want = match alg {
        "sha1" => 40,
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(format!(
                "hash algorithm {other:?} is not one of sha1, sha256, sha384, sha512"
            ));
        }
    };
    if hex_part.len() != want || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("a {alg} hash is {want} hex digits, got {input:?}"));
    }
    Ok(format!("{alg}:{hex_part}"))
}
