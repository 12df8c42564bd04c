//! Identities in the search index are stored as keyed hashes, not as themselves: the index that
//! answers "entries signed by alice@example.org" holds `identity-hmac:<HMAC-SHA256(secret,
//! identity)>`, with a secret kept beside the deployment's keys and never in the database. A
//! copy of the database (a backup, a replica, a leaked dump) does not list who signs; a search
//! still finds the entries of an identity its caller names. Digests (of artifacts and public
//! keys) stay as they are: they name no one by themselves.
//!
//! `off` stores no identity at all, and a search by identity is refused.
//!
//! What the entries themselves hold is not changed: a signing certificate names its identity,
//! and verification needs the certificate.

use aws_lc_rs::hmac;
use sigil_core::rekor::{KEYED_IDENTITY_PREFIX, is_identity_key};

use super::EngineError;
use crate::storage::{LogStore, StorageError};

/// How identities are indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitySearch {
    /// As keyed hashes (the default).
    Keyed,
    /// Not at all.
    Off,
}

/// The search-key transform of a deployment.
pub struct SearchPrivacy {
    key: hmac::Key,
    mode: IdentitySearch,
}

impl std::fmt::Debug for SearchPrivacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchPrivacy")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The name of the setting that records that a log's index holds no plaintext identity.
const SETTING: &str = "identity_search";

impl SearchPrivacy {
    pub fn new(secret: &[u8], mode: IdentitySearch) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            mode,
        }
    }

    fn keyed(&self, identity: &str) -> String {
        let tag = hmac::sign(&self.key, identity.as_bytes());
        format!("{KEYED_IDENTITY_PREFIX}{}", hex::encode(tag.as_ref()))
    }

    /// The keys to store for an entry's search keys.
    pub(super) fn store_keys(&self, keys: Vec<String>) -> Vec<String> {
        keys.into_iter()
            .filter_map(|k| match (is_identity_key(&k), self.mode) {
                (false, _) => Some(k),
                (true, IdentitySearch::Keyed) => Some(self.keyed(&k)),
                (true, IdentitySearch::Off) => None,
            })
            .collect()
    }

    /// The stored key to look up for a search key.
    pub(super) fn query_key(&self, key: &str) -> Result<String, EngineError> {
        match (is_identity_key(key), self.mode) {
            (false, _) => Ok(key.to_string()),
            (true, IdentitySearch::Keyed) => Ok(self.keyed(key)),
            (true, IdentitySearch::Off) => Err(EngineError::InvalidArgs(
                "search by identity (email, subject) is turned off on this log \
                 (log.identity_search = \"off\"); search by hash or public key"
                    .into(),
            )),
        }
    }

    fn setting_value(&self) -> &'static str {
        match self.mode {
            IdentitySearch::Keyed => "keyed",
            IdentitySearch::Off => "off",
        }
    }

    /// Rewrites the identities a log's index holds in plaintext (written before keyed
    /// hashing, or by `recover` from an old journal) into keyed hashes, or deletes them when
    /// identity search is off; once done, the log records it and later opens skip the scan.
    pub(super) async fn upgrade_index(
        &self,
        store: &dyn LogStore,
        log_name: &str,
    ) -> Result<u64, StorageError> {
        if store.setting(log_name, SETTING).await?.as_deref() == Some(self.setting_value()) {
            return Ok(0);
        }
        let mut changed = 0;
        let mut after = String::new();
        loop {
            let keys = store.search_keys_after(log_name, &after, 1000).await?;
            let Some(last) = keys.last() else { break };
            after = last.clone();
            for k in keys.iter().filter(|k| is_identity_key(k)) {
                let new = match self.mode {
                    IdentitySearch::Keyed => Some(self.keyed(k)),
                    IdentitySearch::Off => None,
                };
                changed += store.rename_search_key(log_name, k, new.as_deref()).await?;
            }
            if self.mode == IdentitySearch::Off {
                // Keyed identities go too.
                for k in keys.iter().filter(|k| k.starts_with(KEYED_IDENTITY_PREFIX)) {
                    changed += store.rename_search_key(log_name, k, None).await?;
                }
            }
        }
        store
            .set_setting(log_name, SETTING, self.setting_value())
            .await?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn identities_are_keyed_and_digests_kept() {
        let p = SearchPrivacy::new(&[7; 32], IdentitySearch::Keyed);
        let stored = p.store_keys(vec![
            DIGEST.into(),
            "alice@example.org".into(),
            "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main".into(),
        ]);
        assert_eq!(stored[0], DIGEST);
        assert!(
            stored[1..]
                .iter()
                .all(|k| k.starts_with(KEYED_IDENTITY_PREFIX))
        );
        assert!(
            !stored
                .iter()
                .any(|k| k.contains("alice") || k.contains("github"))
        );
        // A search finds what was stored; another secret does not.
        assert_eq!(
            p.query_key("alice@example.org").ok().as_ref(),
            Some(&stored[1])
        );
        let other = SearchPrivacy::new(&[8; 32], IdentitySearch::Keyed);
        assert_ne!(
            other.query_key("alice@example.org").ok().as_ref(),
            Some(&stored[1])
        );
        assert_eq!(p.query_key(DIGEST).ok().as_deref(), Some(DIGEST));
    }

    #[test]
    fn off_stores_no_identity_and_refuses_identity_searches() {
        let p = SearchPrivacy::new(&[7; 32], IdentitySearch::Off);
        assert_eq!(
            p.store_keys(vec![DIGEST.into(), "alice@example.org".into()]),
            vec![DIGEST.to_string()]
        );
        assert!(matches!(
            p.query_key("alice@example.org"),
            Err(EngineError::InvalidArgs(_))
        ));
        assert!(p.query_key(DIGEST).is_ok());
    }
}
