//! The note key types of a log: Ed25519 (C2SP signed-note) and ECDSA (Rekor-style key ids over the SPKI).

#[allow(unused_imports)]
use super::*;

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
