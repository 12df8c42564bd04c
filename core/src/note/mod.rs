//! C2SP signed notes (c2sp.org/signed-note): text followed by a blank line and one or more
//! `— <key name> base64(key id ‖ signature)` lines.
//!
//! Parsing is strict so that a parsed note re-serialises to exactly the bytes it came from:
//! UTF-8 only, no control characters but newline, canonical padded base64, at most 1 MiB.

mod keys;
pub use keys::*;
mod cosignature;
pub use cosignature::*;

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
