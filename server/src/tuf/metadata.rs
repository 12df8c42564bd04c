//! TUF metadata as files: tough's schema types, signed with Sigil's keys (aws-lc-rs) over
//! tough's canonical form and checked with tough's threshold verification.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::{EcdsaKey, EcdsaScheme, Ed25519Key, Ed25519Scheme, Key};
use tough::schema::{Role, Root, Signature, Signed};

/// The TUF specification version written into every role.
pub const SPEC_VERSION: &str = "1.0.31";

/// A public key as TUF metadata lists it: ECDSA P-256 (`ecdsa`, PEM, as Sigstore's own
/// repository) or Ed25519 (`ed25519`, hex).
pub fn tuf_key(public: &PublicKey) -> anyhow::Result<Key> {
    match public.algorithm() {
        KeyAlgorithm::EcdsaP256 => {
            let spki = x509_cert::spki::SubjectPublicKeyInfoRef::try_from(public.spki_der())
                .context("ECDSA public key: bad SubjectPublicKeyInfo")?;
            Ok(Key::Ecdsa {
                keyval: EcdsaKey {
                    public: Decoded::from(spki.subject_public_key.raw_bytes().to_vec()),
                    _extra: HashMap::new(),
                },
                scheme: EcdsaScheme::EcdsaSha2Nistp256,
                _extra: HashMap::new(),
            })
        }
        KeyAlgorithm::Ed25519 => {
            let raw = public
                .ed25519_bytes()
                .context("Ed25519 public key without its 32 bytes")?;
            Ok(Key::Ed25519 {
                keyval: Ed25519Key {
                    public: Decoded::from(raw.to_vec()),
                    _extra: HashMap::new(),
                },
                scheme: Ed25519Scheme::Ed25519,
                _extra: HashMap::new(),
            })
        }
        other => bail!("TUF keys must be ECDSA P-256 or Ed25519, not {other}"),
    }
}

/// The key ID TUF clients know `public` by.
pub fn key_id(public: &PublicKey) -> anyhow::Result<Decoded<Hex>> {
    tuf_key(public)?.key_id().context("computing a TUF key ID")
}

/// Signs the canonical form of `role` with each key.
pub fn sign<T: Role + Serialize>(role: T, keys: &[&SigningKey]) -> anyhow::Result<Signed<T>> {
    let mut signed = Signed {
        signed: role,
        signatures: Vec::new(),
    };
    add_signatures(&mut signed, keys)?;
    Ok(signed)
}

/// Adds (or replaces) the signatures of `keys` on already signed metadata.
pub fn add_signatures<T: Role + Serialize>(
    signed: &mut Signed<T>,
    keys: &[&SigningKey],
) -> anyhow::Result<()> {
    let message = signed
        .signed
        .canonical_form()
        .context("canonical JSON of a TUF role")?;
    for key in keys {
        let keyid = key_id(&key.public_key())?;
        let sig = key.sign(&message).context("signing TUF metadata")?;
        signed.signatures.retain(|s| s.keyid != keyid);
        signed.signatures.push(Signature {
            keyid,
            sig: Decoded::from(sig),
        });
    }
    Ok(())
}

/// Metadata bytes as written and served (hashed into the role that lists them).
pub fn to_bytes<T: Serialize>(signed: &Signed<T>) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(signed).context("serialising TUF metadata")?;
    out.push(b'\n');
    Ok(out)
}

/// Reads signed metadata from a file.
pub fn read<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Signed<T>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not TUF metadata of the expected role",
            path.display()
        )
    })
}

pub use crate::keyfile::write_atomic;

/// `1`, for versions that start a role.
pub fn one() -> NonZeroU64 {
    NonZeroU64::MIN
}

/// `v + 1`.
pub fn next(v: NonZeroU64) -> NonZeroU64 {
    v.saturating_add(1)
}

/// Unix seconds as the timestamp type tough's schema uses.
pub fn timestamp(unix: i64) -> anyhow::Result<jiff::Timestamp> {
    jiff::Timestamp::from_second(unix).with_context(|| format!("time {unix} out of range"))
}

/// The root metadata version files in `dir` (`N.root.json`), highest first.
pub fn root_versions(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let mut versions = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(versions),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let name = entry?.file_name();
        if let Some(v) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".root.json"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            versions.push(v);
        }
    }
    versions.sort_unstable_by(|a, b| b.cmp(a));
    Ok(versions)
}

/// The newest root in `dir`.
pub fn latest_root(dir: &Path) -> anyhow::Result<Signed<Root>> {
    let Some(v) = root_versions(dir)?.first().copied() else {
        bail!(
            "no TUF root metadata (N.root.json) in {}: run `sigil-server init`",
            dir.display()
        );
    };
    read(&dir.join(format!("{v}.root.json")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tough::schema::{RoleKeys, RoleType};

    #[test]
    fn signatures_verify_with_tough_and_thresholds_count() {
        let a = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let b = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let ids = [
            key_id(&a.public_key()).unwrap(),
            key_id(&b.public_key()).unwrap(),
        ];
        let mut keys = HashMap::new();
        keys.insert(ids[0].clone(), tuf_key(&a.public_key()).unwrap());
        keys.insert(ids[1].clone(), tuf_key(&b.public_key()).unwrap());
        let role_keys = RoleKeys {
            keyids: ids.to_vec(),
            threshold: NonZeroU64::new(2).unwrap(),
            _extra: HashMap::new(),
        };
        let roles = [
            RoleType::Root,
            RoleType::Targets,
            RoleType::Snapshot,
            RoleType::Timestamp,
        ]
        .into_iter()
        .map(|r| (r, role_keys.clone()))
        .collect();
        let root = Root {
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: one(),
            expires: timestamp(4_000_000_000).unwrap(),
            keys,
            roles,
            _extra: HashMap::new(),
        };
        let mut signed = sign(root.clone(), &[&a]).unwrap();
        assert!(root.verify_role(&signed).is_err(), "1 of 2 signatures");
        add_signatures(&mut signed, &[&b]).unwrap();
        root.verify_role(&signed).unwrap();
        // Round trip through the bytes served.
        let back: Signed<Root> = serde_json::from_slice(&to_bytes(&signed).unwrap()).unwrap();
        root.verify_role(&back).unwrap();
        let mut tampered = back;
        tampered.signed.version = next(tampered.signed.version);
        assert!(root.verify_role(&tampered).is_err());
    }
}
