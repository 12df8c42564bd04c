//! Signed entry timestamps (SETs). The active shard's sequencer signs each entry's SET once,
//! when it assigns the index and time, and stores it in the entry's `extra` after the log ID it
//! was signed under; a read then copies it instead of signing. An entry stored without one
//! (sequenced before SETs were stored) or under another log ID is signed on read, as before.

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

/// The active shard's sealer: `log ID || SET` for each entry sequenced.
pub fn sealer(key: LogKey, offset: u64) -> Sealer {
    Sealer(Arc::new(move |index, integrated_time, body| {
        let set = sign(&key, body, integrated_time, offset, index)?;
        Ok([&key.log_id[..], &set].concat())
    }))
}

/// The SET stored in `extra`, if it was signed under `log_id`.
pub(super) fn stored<'a>(extra: &'a [u8], log_id: &[u8; 32]) -> Option<&'a [u8]> {
    match extra.split_at_checked(32) {
        Some((id, set)) if id == log_id && !set.is_empty() => Some(set),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sigil_core::crypto::{KeyAlgorithm, SigningKey};

    use super::*;

    fn key() -> LogKey {
        LogKey::new(SigningKey::generate(KeyAlgorithm::EcdsaP256).expect("key"))
    }

    #[test]
    fn a_sealed_set_verifies_and_is_used_only_under_its_own_log_id() {
        let (k, other) = (key(), key());
        let body = br#"{"kind":"hashedrekord"}"#;
        let extra = (sealer(key_clone(&k), 100).0)(5, 1_700_000_000, body).expect("seal");
        let set = stored(&extra, &k.log_id).expect("stored under its own log ID");
        // Signed over the global index (offset + index), as a client checks it.
        let payload = rekor::set_payload(body, 1_700_000_000, &k.log_id_hex(), 105);
        k.key
            .public_key()
            .verify(&payload, set)
            .expect("SET verifies");
        assert!(stored(&extra, &other.log_id).is_none(), "another key's SET");
        assert!(stored(&[], &k.log_id).is_none(), "nothing stored");
        assert!(
            stored(&k.log_id, &k.log_id).is_none(),
            "a log ID and no SET"
        );
        assert!(stored(&extra[..31], &k.log_id).is_none(), "truncated");
    }

    fn key_clone(k: &LogKey) -> LogKey {
        LogKey::new(SigningKey::from_pkcs8_der(&k.key.to_pkcs8_der().expect("der")).expect("key"))
    }
}
