//! Witness cosignatures (C2SP tlog-cosignature): the cosignature/v1 key type, its typed key ids and the message it signs.

#[allow(unused_imports)]
use super::*;

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
