//! Signed entry timestamps (SETs). The active shard's sequencer signs each entry's SET once,
//! when it assigns the index and time, and stores it in the entry's `extra` as
//! `log ID (32 bytes) || shard offset (8, big-endian) || SET`: what it was signed under, so a
//! read copies it only when both are the serving shard's, and `fsck` can check it without
//! knowing the shards. An entry stored without one (sequenced before SETs were stored) is
//! signed on read, as before.

use std::sync::Arc;

use sigil_core::rekor;

use super::LogKey;
use crate::log::engine::Sealer;

/// The SET of entry `index` of the shard whose first global index is `offset`.
pub(super) fn sign(
    key: &LogKey,
    body: &[u8],
    integrated_time: i64,
    offset: u64,
    index: u64,
) -> Result<Vec<u8>, String> {
    let payload = rekor::set_payload(body, integrated_time, &key.log_id_hex(), offset + index);
    key.key.sign(&payload).map_err(|e| e.to_string())
}

/// The active shard's sealer: `log ID || offset || SET` for each entry sequenced.
pub fn sealer(key: LogKey, offset: u64) -> Sealer {
    Sealer(Arc::new(move |index, integrated_time, body| {
        let set = sign(&key, body, integrated_time, offset, index)?;
        Ok([&key.log_id[..], &offset.to_be_bytes(), &set].concat())
    }))
}

/// A stored SET: the log ID and shard offset it was signed under, and the signature.
pub struct Stored<'a> {
    pub log_id: &'a [u8],
    pub offset: u64,
    pub set: &'a [u8],
}

/// `extra` read as a stored SET, if it has the shape of one.
pub fn parse(extra: &[u8]) -> Option<Stored<'_>> {
    let (log_id, rest) = extra.split_at_checked(32)?;
    let (offset, set) = rest.split_at_checked(8)?;
    let offset = u64::from_be_bytes(offset.try_into().ok()?);
    (!set.is_empty()).then_some(Stored {
        log_id,
        offset,
        set,
    })
}

/// The SET stored in `extra`, if it was signed under `log_id` for the shard at `offset`.
pub(super) fn stored<'a>(extra: &'a [u8], log_id: &[u8; 32], offset: u64) -> Option<&'a [u8]> {
    parse(extra)
        .filter(|s| s.log_id == log_id && s.offset == offset)
        .map(|s| s.set)
}

/// Whether a stored SET verifies for entry `index` with `key` (whose log ID it names).
pub fn verifies(
    stored: &Stored<'_>,
    key: &sigil_core::crypto::PublicKey,
    body: &[u8],
    integrated_time: i64,
    index: u64,
) -> bool {
    let payload = rekor::set_payload(
        body,
        integrated_time,
        &hex::encode(stored.log_id),
        stored.offset + index,
    );
    key.verify(&payload, stored.set).is_ok()
}

#[cfg(test)]
mod tests {
    use sigil_core::crypto::{KeyAlgorithm, SigningKey};

    use super::*;

    fn key() -> LogKey {
        LogKey::new(SigningKey::generate(KeyAlgorithm::EcdsaP256).expect("key"))
    }

    #[test]
    fn a_sealed_set_verifies_and_is_used_only_under_its_own_log_id_and_offset() {
        let (k, other) = (key(), key());
        let (public, other_public) = (k.key.public_key(), other.key.public_key());
        let body = br#"{"kind":"hashedrekord"}"#;
        let t = 1_700_000_000;
        let extra = (sealer(key_clone(&k), 100).0)(5, t, body).expect("seal");
        let set = stored(&extra, &k.log_id, 100).expect("stored under its own log ID");
        // Signed over the global index (offset + index), as a client checks it.
        let payload = rekor::set_payload(body, t, &k.log_id_hex(), 105);
        public.verify(&payload, set).expect("SET verifies");
        let p = parse(&extra).expect("parses");
        assert!(verifies(&p, &public, body, t, 5));
        assert!(!verifies(&p, &public, body, t, 6), "another index");
        assert!(!verifies(&p, &public, body, t + 1, 5), "another time");
        assert!(!verifies(&p, &public, b"{}", t, 5), "another body");
        assert!(!verifies(&p, &other_public, body, t, 5), "another key");
        assert!(
            stored(&extra, &other.log_id, 100).is_none(),
            "another key's SET"
        );
        assert!(
            stored(&extra, &k.log_id, 0).is_none(),
            "another shard offset"
        );
        assert!(stored(&[], &k.log_id, 100).is_none(), "nothing stored");
        assert!(stored(&extra[..40], &k.log_id, 100).is_none(), "no SET");
        assert!(stored(&extra[..31], &k.log_id, 100).is_none(), "truncated");
    }

    fn key_clone(k: &LogKey) -> LogKey {
        LogKey::new(SigningKey::from_pkcs8_der(&k.key.to_pkcs8_der().expect("der")).expect("key"))
    }
}
