//! C2SP signed notes (c2sp.org/signed-note): text followed by a blank line and one or more
//! `— <key name> base64(key id ‖ signature)` lines.
//!
//! Parsing is strict so that a parsed note re-serialises to exactly the bytes it came from:
//! UTF-8 only, no control characters but newline, canonical padded base64, at most 1 MiB.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::crypto::{CryptoError, KeyAlgorithm, PublicKey, SigningKey, sha256};

/// Largest note accepted.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Most signature lines accepted (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// C2SP signature type byte of Ed25519 note keys.
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is {size} bytes, more than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("note is not valid UTF-8")]
    NotUtf8,
    #[error("note contains control character {byte:#04x} at byte {offset}")]
    ControlCharacter { byte: u8, offset: usize },
    #[error("note has no blank line separating the text from the signatures")]
    MissingBlankLine,
    #[error("note has no signature lines")]
    NoSignatures,
    #[error("note does not end with a newline")]
    MissingFinalNewline,
    #[error("malformed signature line {line:?}: {reason}")]
    MalformedSignatureLine { line: String, reason: &'static str },
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    InvalidKeyName(String),
    #[error("signature from {name:?} is not valid base64")]
    BadBase64 { name: String },
    #[error(
        "signature from {name:?} is too short ({len} bytes; a key id and a signature are needed)"
    )]
    SignatureTooShort { name: String, len: usize },
    #[error("note has more than {max} signatures")]
    TooManySignatures { max: usize },
    #[error("note text must be non-empty and end with a newline")]
    TextMissingNewline,
    #[error("note text contains control character {byte:#04x} at byte {offset}")]
    TextControlCharacter { byte: u8, offset: usize },
    #[error("no signature from a known key verified the note")]
    NoVerifiedSignature,
    #[error("signature by known key {name}+{key_id:08x} is invalid")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("duplicate signatures by key {name}+{key_id:08x}")]
    DuplicateSignature { name: String, key_id: u32 },
    #[error("note key {name:?} has no private key and cannot sign")]
    NoSigningKey { name: String },
    #[error("note key is {found}, expected {expected}")]
    WrongKeyType {
        found: KeyAlgorithm,
        expected: &'static str,
    },
    #[error("cosignature timestamp {0} is not below 2^63")]
    CosignatureTimestamp(u64),
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Something that signs note text under a key name and 32-bit key id.
pub trait NoteSigner {
    fn name(&self) -> &str;
    fn key_id(&self) -> u32;
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, NoteError>;
}

/// Something that verifies note signatures by one key.
pub trait NoteVerifier {
    fn name(&self) -> &str;
    fn key_id(&self) -> u32;
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool;
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature proper, without the 4-byte key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The `— name base64` line, with its newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

/// Key names must be non-empty, without Unicode spaces or `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::TextMissingNewline);
    }
    if let Some((offset, &byte)) = text
        .as_bytes()
        .iter()
        .enumerate()
        .find(|&(_, &b)| b < 0x20 && b != b'\n')
    {
        return Err(NoteError::TextControlCharacter { byte, offset });
    }
    Ok(())
}

impl Note {
    /// Parse a signed note (syntax only; see [`Note::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: bytes.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        if let Some((offset, &byte)) = bytes
            .iter()
            .enumerate()
            .find(|&(_, &b)| b < 0x20 && b != b'\n')
        {
            return Err(NoteError::ControlCharacter { byte, offset });
        }
        // The text ends at the last blank line; the text keeps its final newline.
        let split = s.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
        let (text, rest) = s.split_at(split + 1);
        let sigs = rest.get(1..).unwrap_or("");
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        if !sigs.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        let mut signatures = Vec::new();
        for line in sigs.split_terminator('\n') {
            if signatures.len() >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// The wire form: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.text.len() + 1 + 128 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for sig in &self.signatures {
            out.push_str(&sig.to_line());
        }
        out.into_bytes()
    }

    /// Sign `text` (which must end with a newline) with each signer, in order.
    pub fn sign(text: &str, signers: &[&dyn NoteSigner]) -> Result<Note, NoteError> {
        check_text(text)?;
        let mut note = Note {
            text: text.to_string(),
            signatures: Vec::with_capacity(signers.len()),
        };
        for signer in signers {
            note.add_signature(*signer)?;
        }
        Ok(note)
    }

    /// Add (or replace, for the same name and key id) a signature.
    pub fn add_signature(&mut self, signer: &dyn NoteSigner) -> Result<(), NoteError> {
        check_text(&self.text)?;
        let name = signer.name();
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let signature = signer.sign(self.text.as_bytes())?;
        let sig = NoteSignature {
            name: name.to_string(),
            key_id: signer.key_id(),
            signature,
        };
        self.signatures
            .retain(|s| !(s.name == sig.name && s.key_id == sig.key_id));
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            });
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Verify: returns the signatures that verified with a known verifier. Signatures from
    /// unknown keys (name or id differs) are ignored; it is an error if a known key's signature
    /// is invalid, if a known key signed twice, or if no known key signed.
    pub fn verify(
        &self,
        verifiers: &[&dyn NoteVerifier],
    ) -> Result<Vec<&NoteSignature>, NoteError> {
        let mut seen: HashSet<(&str, u32)> = HashSet::new();
        let mut verified = Vec::new();
        for sig in &self.signatures {
            let Some(v) = verifiers
                .iter()
                .find(|v| v.name() == sig.name && v.key_id() == sig.key_id)
            else {
                continue;
            };
            if !seen.insert((sig.name.as_str(), sig.key_id)) {
                return Err(NoteError::DuplicateSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !v.verify(self.text.as_bytes(), &sig.signature) {
                return Err(NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            verified.push(sig);
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature);
        }
        Ok(verified)
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let malformed = |reason| NoteError::MalformedSignatureLine {
        line: line.chars().take(200).collect(),
        reason,
    };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("does not start with an em dash and a space"))?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| malformed("no space between key name and signature"))?;
    if !is_valid_key_name(name) {
        return Err(NoteError::InvalidKeyName(name.to_string()));
    }
    let raw = B64.decode(b64).map_err(|_| NoteError::BadBase64 {
        name: name.to_string(),
    })?;
    let (id, signature) = match raw.split_first_chunk::<4>() {
        Some((id, sig)) if !sig.is_empty() => (u32::from_be_bytes(*id), sig.to_vec()),
        _ => {
            return Err(NoteError::SignatureTooShort {
                name: name.to_string(),
                len: raw.len(),
            });
        }
    };
    Ok(NoteSignature {
        name: name.to_string(),
        key_id: id,
        signature,
    })
}

fn key_id_prefix(h: [u8; 32]) -> u32 {
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// C2SP Ed25519 key id: SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4], big-endian.
pub fn ed25519_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    typed_key_id(name, ED25519_SIGNATURE_TYPE, public_key)
}

/// Rekor-style ECDSA key id: SHA-256(SPKI DER)[:4], big-endian.
pub fn spki_key_id(spki_der: &[u8]) -> u32 {
    key_id_prefix(sha256(spki_der))
}

fn parse_key_id_hex(id_hex: &str) -> Result<u32, NoteError> {
    let bad = || NoteError::BadVerifierKey("key id must be 8 lower-case hex digits".into());
    if id_hex.len() != 8
        || !id_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    u32::from_str_radix(id_hex, 16).map_err(|_| bad())
}

/// An Ed25519 note key: a verifier, and a signer when built from a private key.
pub struct Ed25519NoteKey {
    name: String,
    key_id: u32,
    public: PublicKey,
    raw: [u8; 32],
    signer: Option<SigningKey>,
}

impl fmt::Debug for Ed25519NoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519NoteKey")
            .field("vkey", &self.vkey())
            .field("can_sign", &self.signer.is_some())
            .finish()
    }
}

impl Ed25519NoteKey {
    /// A verifier for `public` under `name`.
    pub fn verifier(name: &str, public: PublicKey) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let raw = public.ed25519_bytes().ok_or(NoteError::WrongKeyType {
            found: public.algorithm(),
            expected: "Ed25519",
        })?;
        Ok(Ed25519NoteKey {
            name: name.to_string(),
            key_id: ed25519_key_id(name, &raw),
            public,
            raw,
            signer: None,
        })
    }

    /// A signer (and verifier) for `key` under `name`.
    pub fn signer(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let mut k = Ed25519NoteKey::verifier(name, key.public_key())?;
        k.signer = Some(key);
        Ok(k)
    }

    /// Parse the C2SP verifier key form `<name>+<hex key id>+<base64(0x01 ‖ key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::BadVerifierKey(m.to_string());
        let (name, rest) = vkey
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let id = parse_key_id_hex(id_hex)?;
        let key = B64
            .decode(key_b64)
            .map_err(|_| bad("key is not valid base64"))?;
        let raw = match key.split_first() {
            Some((&ED25519_SIGNATURE_TYPE, raw)) if raw.len() == 32 => raw,
            Some((&ED25519_SIGNATURE_TYPE, _)) => return Err(bad("Ed25519 key must be 32 bytes")),
            _ => return Err(bad("not an Ed25519 (type 0x01) key")),
        };
        let public = PublicKey::from_ed25519_bytes(raw)?;
        let k = Ed25519NoteKey::verifier(name, public)?;
        if k.key_id != id {
            return Err(NoteError::BadVerifierKey(format!(
                "key id {id:08x} does not match the key (expected {:08x})",
                k.key_id
            )));
        }
        Ok(k)
    }

    /// Parse the Go `sumdb/note` signer key form
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ 32-byte seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::BadVerifierKey(m.to_string());
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("signer key must start with PRIVATE+KEY+"))?;
        let (name, rest) = rest
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let id = parse_key_id_hex(id_hex)?;
        let key = B64
            .decode(key_b64)
            .map_err(|_| bad("key is not valid base64"))?;
        let seed = match key.split_first() {
            Some((&ED25519_SIGNATURE_TYPE, seed)) if seed.len() == 32 => seed,
            Some((&ED25519_SIGNATURE_TYPE, _)) => return Err(bad("Ed25519 seed must be 32 bytes")),
            _ => return Err(bad("not an Ed25519 (type 0x01) key")),
        };
        let k = Ed25519NoteKey::signer(name, SigningKey::from_ed25519_seed(seed)?)?;
        if k.key_id != id {
            return Err(NoteError::BadVerifierKey(format!(
                "key id {id:08x} does not match the key (expected {:08x})",
                k.key_id
            )));
        }
        Ok(k)
    }

    /// The Go `sumdb/note` signer key form, for keys that can sign.
    pub fn skey(&self) -> Option<String> {
        let seed = self.signer.as_ref()?.ed25519_seed()?;
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_SIGNATURE_TYPE);
        key.extend_from_slice(&seed);
        Some(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            B64.encode(key)
        ))
    }

    /// The C2SP verifier key form `<name>+<hex key id>+<base64(0x01 ‖ key)>`.
    pub fn vkey(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ED25519_SIGNATURE_TYPE);
        key.extend_from_slice(&self.raw);
        format!("{}+{:08x}+{}", self.name, self.key_id, B64.encode(key))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id that prefixes its signatures.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl NoteSigner for Ed25519NoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, NoteError> {
        let key = self
            .signer
            .as_ref()
            .ok_or_else(|| NoteError::NoSigningKey {
                name: self.name.clone(),
            })?;
        Ok(key.sign(msg)?)
    }
}

impl NoteVerifier for Ed25519NoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.public.verify(msg, sig).is_ok()
    }
}

/// An ECDSA note key as Rekor (and C2SP type 0x02) uses it: key id = SHA-256(SPKI DER)[:4],
/// signature = DER ECDSA over the note text.
pub struct EcdsaNoteKey {
    name: String,
    key_id: u32,
    public: PublicKey,
    signer: Option<SigningKey>,
}

impl fmt::Debug for EcdsaNoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaNoteKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("algorithm", &self.public.algorithm())
            .field("can_sign", &self.signer.is_some())
            .finish()
    }
}

impl EcdsaNoteKey {
    /// A verifier for `public` (P-256 or P-384) under `name`.
    pub fn verifier(name: &str, public: PublicKey) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        match public.algorithm() {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {}
            found => {
                return Err(NoteError::WrongKeyType {
                    found,
                    expected: "ECDSA P-256 or P-384",
                });
            }
        }
        Ok(EcdsaNoteKey {
            name: name.to_string(),
            key_id: spki_key_id(public.spki_der()),
            public,
            signer: None,
        })
    }

    /// A signer (and verifier) for `key` under `name`.
    pub fn signer(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let mut k = EcdsaNoteKey::verifier(name, key.public_key())?;
        k.signer = Some(key);
        Ok(k)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id that prefixes its signatures.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl NoteSigner for EcdsaNoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, NoteError> {
        let key = self
            .signer
            .as_ref()
            .ok_or_else(|| NoteError::NoSigningKey {
                name: self.name.clone(),
            })?;
        Ok(key.sign(msg)?)
    }
}

impl NoteVerifier for EcdsaNoteKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if self.public.verify(msg, sig).is_ok() {
            return true;
        }
        // Go signers (Rekor's, transparency-dev's witness) hash with SHA-256 whatever the
        // curve; P-384 signatures made that way are accepted too. Signing uses SHA-384.
        self.public.algorithm() == KeyAlgorithm::EcdsaP384
            && self
                .public
                .verify_prehashed(crate::crypto::DigestAlgorithm::Sha256, &sha256(msg), sig)
                .is_ok()
    }
}

/// C2SP signature type byte of timestamped Ed25519 witness cosignatures (tlog-cosignature).
pub const COSIGNATURE_V1_SIGNATURE_TYPE: u8 = 0x04;

/// C2SP key id with an explicit signature type: SHA-256(name ‖ "\n" ‖ type ‖ key)[:4].
pub fn typed_key_id(name: &str, signature_type: u8, public_key: &[u8]) -> u32 {
    key_id_prefix(typed_key_hash(name, signature_type, public_key))
}

/// The full SHA-256(name ‖ "\n" ‖ type ‖ key). Rekor v2 publishes the Ed25519 (type 0x01)
/// hash as its log ID.
pub fn typed_key_hash(name: &str, signature_type: u8, public_key: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(name.len() + 2 + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(signature_type);
    buf.extend_from_slice(public_key);
    sha256(&buf)
}

/// The message a tlog-cosignature/v1 signature covers.
pub fn cosignature_v1_message(timestamp: u64, checkpoint_text: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(checkpoint_text);
    msg
}

/// An Ed25519 witness cosigner key (c2sp.org/tlog-cosignature, type 0x04). Signatures carry the
/// cosigning time, so signing takes it as an argument ([`CosignatureV1Key::cosign`]); as a
/// [`NoteVerifier`] it checks the timestamped signature.
pub struct CosignatureV1Key {
    name: String,
    key_id: u32,
    public: PublicKey,
    raw: [u8; 32],
    signer: Option<SigningKey>,
}

impl fmt::Debug for CosignatureV1Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignatureV1Key")
            .field("vkey", &self.vkey())
            .field("can_sign", &self.signer.is_some())
            .finish()
    }
}

impl CosignatureV1Key {
    pub fn verifier(name: &str, public: PublicKey) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let raw = public.ed25519_bytes().ok_or(NoteError::WrongKeyType {
            found: public.algorithm(),
            expected: "Ed25519",
        })?;
        Ok(CosignatureV1Key {
            name: name.to_string(),
            key_id: typed_key_id(name, COSIGNATURE_V1_SIGNATURE_TYPE, &raw),
            public,
            raw,
            signer: None,
        })
    }

    pub fn signer(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let mut k = CosignatureV1Key::verifier(name, key.public_key())?;
        k.signer = Some(key);
        Ok(k)
    }

    /// Parse a type-0x04 verifier key `<name>+<hex id>+<base64(0x04 ‖ key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::BadVerifierKey(m.to_string());
        let (name, rest) = vkey
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let (id_hex, key_b64) = rest
            .split_once('+')
            .ok_or_else(|| bad("expected name+id+key"))?;
        let id = parse_key_id_hex(id_hex)?;
        let key = B64
            .decode(key_b64)
            .map_err(|_| bad("key is not valid base64"))?;
        let raw = match key.split_first() {
            Some((&COSIGNATURE_V1_SIGNATURE_TYPE, raw)) if raw.len() == 32 => raw,
            Some((&COSIGNATURE_V1_SIGNATURE_TYPE, _)) => {
                return Err(bad("Ed25519 key must be 32 bytes"));
            }
            _ => return Err(bad("not an Ed25519 cosignature (type 0x04) key")),
        };
        let k = CosignatureV1Key::verifier(name, PublicKey::from_ed25519_bytes(raw)?)?;
        if k.key_id != id {
            return Err(NoteError::BadVerifierKey(format!(
                "key id {id:08x} does not match the key (expected {:08x})",
                k.key_id
            )));
        }
        Ok(k)
    }

    pub fn vkey(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(COSIGNATURE_V1_SIGNATURE_TYPE);
        key.extend_from_slice(&self.raw);
        format!("{}+{:08x}+{}", self.name, self.key_id, B64.encode(key))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A cosignature of `checkpoint_text` made at `timestamp` (POSIX seconds, < 2^63).
    pub fn cosign(
        &self,
        checkpoint_text: &str,
        timestamp: u64,
    ) -> Result<NoteSignature, NoteError> {
        let key = self
            .signer
            .as_ref()
            .ok_or_else(|| NoteError::NoSigningKey {
                name: self.name.clone(),
            })?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::CosignatureTimestamp(timestamp));
        }
        check_text(checkpoint_text)?;
        let sig = key.sign(&cosignature_v1_message(
            timestamp,
            checkpoint_text.as_bytes(),
        ))?;
        let mut signature = Vec::with_capacity(8 + sig.len());
        signature.extend_from_slice(&timestamp.to_be_bytes());
        signature.extend_from_slice(&sig);
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature,
        })
    }

    /// The timestamp a cosignature claims (without verifying it).
    pub fn timestamp(signature: &NoteSignature) -> Option<u64> {
        let (ts, _) = signature.signature.split_first_chunk::<8>()?;
        Some(u64::from_be_bytes(*ts))
    }
}

impl NoteVerifier for CosignatureV1Key {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((ts, ed_sig)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let ts = u64::from_be_bytes(*ts);
        if ts > i64::MAX as u64 || ed_sig.len() != 64 {
            return false;
        }
        self.public
            .verify(&cosignature_v1_message(ts, msg), ed_sig)
            .is_ok()
    }
}
