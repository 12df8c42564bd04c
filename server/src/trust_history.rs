//! `<data-dir>/trust-history.json`: what rotations left behind (retired chains and keys with the
//! window they were valid in, and when each current key became valid), read by the trust files
//! and written by `rotate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sigil_core::crypto::PublicKey;

const HISTORY_FILE: &str = "trust-history.json";
/// The start of every window that no rotation has set.
pub const FIRST_START: &str = "2020-01-01T00:00:00Z";

/// A chain (DER, issuing certificate first) that is no longer used, and when it was.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retired {
    pub role: String,
    /// Base64 DER certificates.
    pub chain: Vec<String>,
    pub start: String,
    pub end: String,
}

impl Retired {
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain
            .iter()
            .filter_map(|c| STANDARD.decode(c).ok())
            .collect()
    }
}

/// A log shard that takes no more writes (`rotate rekor-v2`): still served read-only and listed
/// in the trusted root with its window closed at the rotation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetiredLog {
    pub role: String,
    /// The shard's name in the database (`log_name`).
    pub log_name: String,
    /// Its checkpoint key (PKCS#8 PEM), relative to the data dir.
    pub key_file: PathBuf,
    /// Base64 SPKI DER of that key.
    pub public_key: String,
    pub start: String,
    pub end: String,
}

impl RetiredLog {
    pub fn key(&self) -> anyhow::Result<PublicKey> {
        let der = STANDARD
            .decode(&self.public_key)
            .with_context(|| format!("retired log {}: key is not base64", self.log_name))?;
        PublicKey::from_spki_der(&der)
            .with_context(|| format!("retired log {}: key is not a public key", self.log_name))
    }
}

/// What rotations left behind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct History {
    /// When the current key of each role became valid (absent: [`FIRST_START`]).
    #[serde(default)]
    pub current_start: BTreeMap<String, String>,
    #[serde(default)]
    pub retired: Vec<Retired>,
    #[serde(default)]
    pub retired_logs: Vec<RetiredLog>,
    /// The database name of each rotated log's current shard (absent: the log's first name).
    #[serde(default)]
    pub current_log: BTreeMap<String, String>,
}

impl History {
    pub fn load(data_dir: &Path) -> anyhow::Result<History> {
        let path = data_dir.join(HISTORY_FILE);
        match std::fs::read(&path) {
            Ok(b) => {
                let h: History = serde_json::from_slice(&b)
                    .with_context(|| format!("{} is not a trust history", path.display()))?;
                for l in &h.retired_logs {
                    l.key().with_context(|| path.display().to_string())?;
                }
                Ok(h)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::keyfile::write_atomic(&data_dir.join(HISTORY_FILE), &bytes)
    }

    /// When the current key of `role` became valid.
    pub fn start(&self, role: &str) -> String {
        self.current_start
            .get(role)
            .cloned()
            .unwrap_or_else(|| FIRST_START.into())
    }

    /// The database name of `role`'s current shard; `first` until the log was rotated.
    pub fn log_name(&self, role: &str, first: &str) -> String {
        self.current_log
            .get(role)
            .cloned()
            .unwrap_or_else(|| first.into())
    }

    pub fn retired_logs(&self, role: &str) -> impl Iterator<Item = &RetiredLog> {
        let role = role.to_string();
        self.retired_logs.iter().filter(move |r| r.role == role)
    }

    pub fn retired(&self, role: &str) -> impl Iterator<Item = &Retired> {
        let role = role.to_string();
        self.retired.iter().filter(move |r| r.role == role)
    }
}
