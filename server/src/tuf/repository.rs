//! The online side of the TUF repository: publishes target files under a new targets version and
//! keeps snapshot and timestamp signed, each re-signed when half of its lifetime is gone.
//!
//! On disk (and as served): `N.root.json`, `N.targets.json`, `N.snapshot.json` (consistent
//! snapshots), `timestamp.json`, and `targets/<sha256>.<name>`. Writers take a lock file, so the
//! server's background re-signing and an offline command (`trust export --tuf`, `rotate`) never
//! interleave; every file is replaced atomically, the timestamp last.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use sigil_core::crypto::{SigningKey, sha256};
use tough::TargetName;
use tough::schema::decoded::Decoded;
use tough::schema::{
    Hashes, Metafile, Role, RoleType, Root, Signed, Snapshot, Target, Targets, Timestamp,
};

use super::metadata::{self, key_id, next, one, timestamp, write_atomic};

/// How long each role stays valid once signed, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Expiry {
    pub root: i64,
    pub targets: i64,
    pub snapshot: i64,
    pub timestamp: i64,
}

/// The online keys.
pub struct OnlineKeys {
    pub targets: SigningKey,
    pub snapshot: SigningKey,
    pub timestamp: SigningKey,
}

/// What an update did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Signed3 {
    pub targets: Option<u64>,
    pub snapshot: Option<u64>,
    pub timestamp: Option<u64>,
}

impl Signed3 {
    pub fn any(&self) -> bool {
        self.targets.is_some() || self.snapshot.is_some() || self.timestamp.is_some()
    }
}

/// The repository in a directory.
pub struct Repository {
    dir: PathBuf,
    keys: OnlineKeys,
    expiry: Expiry,
}

/// A role read from disk: its metadata, the bytes' hash and length, and whether the newest
/// root's keys still sign it.
struct Current<T> {
    signed: Signed<T>,
    length: u64,
    sha256: [u8; 32],
    valid: bool,
}

fn read_current<T: Role + Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    root: &Root,
) -> anyhow::Result<Option<Current<T>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let signed: Signed<T> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not TUF {} metadata", path.display(), T::TYPE))?;
    let valid = root.verify_role(&signed).is_ok();
    Ok(Some(Current {
        length: bytes.len() as u64,
        sha256: sha256(&bytes),
        signed,
        valid,
    }))
}

/// Whether metadata that expires at `expires` should be re-signed at `now`: less than half of
/// `lifetime` left.
fn due(expires: jiff::Timestamp, lifetime: i64, now: i64) -> bool {
    expires.as_second() - now < lifetime / 2
}

fn meta(version: NonZeroU64, length: u64, sha: &[u8]) -> Metafile {
    Metafile {
        length: Some(length),
        hashes: Some(Hashes {
            sha256: Decoded::from(sha.to_vec()),
            _extra: HashMap::new(),
        }),
        version,
        _extra: HashMap::new(),
    }
}

fn target(bytes: &[u8]) -> Target {
    Target {
        length: bytes.len() as u64,
        hashes: Hashes {
            sha256: Decoded::from(sha256(bytes).to_vec()),
            _extra: HashMap::new(),
        },
        custom: HashMap::new(),
        _extra: HashMap::new(),
    }
}

/// Snapshots older than this many versions are deleted (a client mid-update may still fetch
/// the one before the newest).
const SNAPSHOTS_KEPT: u64 = 8;

impl Repository {
    pub fn new(dir: PathBuf, keys: OnlineKeys, expiry: Expiry) -> Self {
        Repository { dir, keys, expiry }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// Holds the repository's writer lock until dropped.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.dir.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(f)
    }

    /// Brings the repository up to date at `now` (Unix seconds): with `targets`, publishes
    /// them (a new targets version if any differs from the current ones); then re-signs each
    /// role that is missing, near its expiry, no longer signed by the newest root's keys, or
    /// below a role it lists that changed.
    pub fn update(&self, targets: Option<&[(&str, &[u8])]>, now: i64) -> anyhow::Result<Signed3> {
        let _lock = self.lock()?;
        let root = metadata::latest_root(&self.dir)?;
        let root = &root.signed;
        for (role, key) in [
            (RoleType::Targets, &self.keys.targets),
            (RoleType::Snapshot, &self.keys.snapshot),
            (RoleType::Timestamp, &self.keys.timestamp),
        ] {
            let id = key_id(&key.public_key())?;
            if !root
                .roles
                .get(&role)
                .is_some_and(|r| r.keyids.contains(&id))
            {
                bail!(
                    "the online {role} key is not a {role} key of root version {} in {}: \
                     sign a new root listing it (`sigil-server tuf rotate-root`)",
                    root.version,
                    self.dir.display()
                );
            }
        }
        let mut done = Signed3::default();

        let ts: Option<Current<Timestamp>> = read_current(&self.dir.join("timestamp.json"), root)?;
        let snap_version = ts
            .as_ref()
            .and_then(|t| t.signed.signed.meta.get("snapshot.json"))
            .map(|m| m.version);
        let snap: Option<Current<Snapshot>> = match snap_version {
            Some(v) => read_current(&self.dir.join(format!("{v}.snapshot.json")), root)?,
            None => None,
        };
        let targets_version = snap
            .as_ref()
            .and_then(|s| s.signed.signed.meta.get("targets.json"))
            .map(|m| m.version);
        let tgt: Option<Current<Targets>> = match targets_version {
            Some(v) => read_current(&self.dir.join(format!("{v}.targets.json")), root)?,
            None => None,
        };

        // Targets.
        let wanted: HashMap<TargetName, Target> = match targets {
            Some(list) => list
                .iter()
                .map(|(name, bytes)| {
                    TargetName::new(*name)
                        .map(|n| (n, target(bytes)))
                        .map_err(|e| anyhow::anyhow!("target name {name:?}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
            None => match &tgt {
                Some(t) => t.signed.signed.targets.clone(),
                None => bail!(
                    "the TUF repository in {} has no targets yet: start the server once (it publishes them)",
                    self.dir.display()
                ),
            },
        };
        let resign_targets = match &tgt {
            None => true,
            Some(t) => {
                !t.valid
                    || t.signed.signed.targets != wanted
                    || due(t.signed.signed.expires, self.expiry.targets, now)
            }
        };
        let (targets_version, targets_len, targets_sha) = if resign_targets {
            if let Some(list) = targets {
                for (name, bytes) in list {
                    let file = format!("{}.{name}", hex::encode(sha256(bytes)));
                    let path = self.dir.join("targets").join(file);
                    if !path.exists() {
                        write_atomic(&path, bytes)?;
                    }
                }
            }
            let version = tgt
                .as_ref()
                .map_or(one(), |t| next(t.signed.signed.version));
            let mut role = Targets::new(
                metadata::SPEC_VERSION.into(),
                version,
                timestamp(now + self.expiry.targets)?,
            );
            role.delegations = None;
            role.targets = wanted;
            let bytes = metadata::to_bytes(&metadata::sign(role, &[&self.keys.targets])?)?;
            write_atomic(&self.dir.join(format!("{version}.targets.json")), &bytes)?;
            done.targets = Some(version.get());
            (version, bytes.len() as u64, sha256(&bytes))
        } else {
            let t = tgt.as_ref().context("targets present")?;
            (t.signed.signed.version, t.length, t.sha256)
        };

        // Snapshot.
        let resign_snapshot = resign_targets
            || match &snap {
                None => true,
                Some(s) => !s.valid || due(s.signed.signed.expires, self.expiry.snapshot, now),
            };
        let (snap_version, snap_len, snap_sha) = if resign_snapshot {
            let version = snap
                .as_ref()
                .map_or(one(), |s| next(s.signed.signed.version));
            let mut role = Snapshot::new(
                metadata::SPEC_VERSION.into(),
                version,
                timestamp(now + self.expiry.snapshot)?,
            );
            role.meta.insert(
                "targets.json".into(),
                meta(targets_version, targets_len, &targets_sha),
            );
            let bytes = metadata::to_bytes(&metadata::sign(role, &[&self.keys.snapshot])?)?;
            write_atomic(&self.dir.join(format!("{version}.snapshot.json")), &bytes)?;
            done.snapshot = Some(version.get());
            (version, bytes.len() as u64, sha256(&bytes))
        } else {
            let s = snap.as_ref().context("snapshot present")?;
            (s.signed.signed.version, s.length, s.sha256)
        };

        // Timestamp, last: it is what makes the rest visible.
        let resign_ts = resign_snapshot
            || match &ts {
                None => true,
                Some(t) => !t.valid || due(t.signed.signed.expires, self.expiry.timestamp, now),
            };
        if resign_ts {
            let version = ts.as_ref().map_or(one(), |t| next(t.signed.signed.version));
            let mut role = Timestamp::new(
                metadata::SPEC_VERSION.into(),
                version,
                timestamp(now + self.expiry.timestamp)?,
            );
            role.meta.insert(
                "snapshot.json".into(),
                meta(snap_version, snap_len, &snap_sha),
            );
            let bytes = metadata::to_bytes(&metadata::sign(role, &[&self.keys.timestamp])?)?;
            write_atomic(&self.dir.join("timestamp.json"), &bytes)?;
            done.timestamp = Some(version.get());
        }
        if done.snapshot.is_some() {
            self.prune_snapshots(snap_version.get());
        }
        Ok(done)
    }

    /// Deletes snapshot versions older than the newest [`SNAPSHOTS_KEPT`]; failures only cost
    /// disk space.
    fn prune_snapshots(&self, newest: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let old = name
                .to_str()
                .and_then(|n| n.strip_suffix(".snapshot.json"))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|v| v + SNAPSHOTS_KEPT <= newest);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Expiry (Unix seconds) of each role as published: root, targets, snapshot, timestamp.
    pub fn expiries(&self) -> anyhow::Result<Vec<(RoleType, i64)>> {
        let root = metadata::latest_root(&self.dir)?;
        let mut out = vec![(RoleType::Root, root.signed.expires.as_second())];
        let ts: Option<Current<Timestamp>> =
            read_current(&self.dir.join("timestamp.json"), &root.signed)?;
        if let Some(ts) = ts {
            out.push((RoleType::Timestamp, ts.signed.signed.expires.as_second()));
            if let Some(m) = ts.signed.signed.meta.get("snapshot.json") {
                let snap: Option<Current<Snapshot>> = read_current(
                    &self.dir.join(format!("{}.snapshot.json", m.version)),
                    &root.signed,
                )?;
                if let Some(snap) = snap {
                    out.push((RoleType::Snapshot, snap.signed.signed.expires.as_second()));
                    if let Some(m) = snap.signed.signed.meta.get("targets.json") {
                        let t: Option<Current<Targets>> = read_current(
                            &self.dir.join(format!("{}.targets.json", m.version)),
                            &root.signed,
                        )?;
                        if let Some(t) = t {
                            out.push((RoleType::Targets, t.signed.signed.expires.as_second()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}
