//! `<data-dir>/trust-history.json`: what rotations left behind (retired chains and keys with the
//! window they were valid in, and when each current key became valid), read by the trust files
//! and written by `rotate`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

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

/// What rotations left behind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct History {
    /// When the current key of each role became valid (absent: [`FIRST_START`]).
    #[serde(default)]
    pub current_start: BTreeMap<String, String>,
    #[serde(default)]
    pub retired: Vec<Retired>,
}

impl History {
    pub fn load(data_dir: &Path) -> anyhow::Result<History> {
        let path = data_dir.join(HISTORY_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{} is not a trust history", path.display())),
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

    pub fn retired(&self, role: &str) -> impl Iterator<Item = &Retired> {
        let role = role.to_string();
        self.retired.iter().filter(move |r| r.role == role)
    }
}
