//! The root role, offline: the first root `init` writes, new root versions (new root keys, new
//! threshold, renewed expiry, new online keys), and signatures added one key at a time.
//!
//! A new root is published into the repository only once it is signed by a threshold of the
//! previous root's root keys and a threshold of its own (the rule TUF clients check when they
//! chain from one root to the next); until then it waits in the staging directory for
//! `sigil-server tuf sign-root`.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sigil_core::crypto::{PublicKey, SigningKey};
use tough::schema::{RoleKeys, RoleType, Root, Signed};

use super::metadata::{self, key_id, next, one, timestamp, tuf_key, write_atomic};

/// The public keys of the online roles.
pub struct OnlinePublicKeys {
    pub targets: PublicKey,
    pub snapshot: PublicKey,
    pub timestamp: PublicKey,
}

/// Root metadata listing `root_keys` (with `threshold`) and the online keys.
pub fn root_metadata(
    version: NonZeroU64,
    expires_unix: i64,
    root_keys: &[PublicKey],
    threshold: u64,
    online: &OnlinePublicKeys,
) -> anyhow::Result<Root> {
    let threshold = NonZeroU64::new(threshold).context("the root threshold must be at least 1")?;
    if threshold.get() > root_keys.len() as u64 {
        bail!(
            "a root threshold of {threshold} needs at least {threshold} root keys ({} given)",
            root_keys.len()
        );
    }
    let mut keys = HashMap::new();
    let mut role = |list: &[&PublicKey], threshold: NonZeroU64| -> anyhow::Result<RoleKeys> {
        let mut keyids = Vec::new();
        for k in list {
            let id = key_id(k)?;
            keys.insert(id.clone(), tuf_key(k)?);
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        Ok(RoleKeys {
            keyids,
            threshold,
            _extra: HashMap::new(),
        })
    };
    let root_list: Vec<&PublicKey> = root_keys.iter().collect();
    let mut roles = HashMap::new();
    roles.insert(RoleType::Root, role(&root_list, threshold)?);
    roles.insert(RoleType::Targets, role(&[&online.targets], one())?);
    roles.insert(RoleType::Snapshot, role(&[&online.snapshot], one())?);
    roles.insert(RoleType::Timestamp, role(&[&online.timestamp], one())?);
    Ok(Root {
        spec_version: metadata::SPEC_VERSION.into(),
        consistent_snapshot: true,
        version,
        expires: timestamp(expires_unix)?,
        keys,
        roles,
        _extra: HashMap::new(),
    })
}

/// Writes `1.root.json` into `repo` unless a root is there: signed by `root_key`, threshold 1.
/// Returns whether it wrote one.
pub fn ensure_first_root(
    repo: &Path,
    root_key: &SigningKey,
    online: &OnlinePublicKeys,
    expiry_secs: i64,
    now: i64,
) -> anyhow::Result<bool> {
    if !metadata::root_versions(repo)?.is_empty() {
        return Ok(false);
    }
    let root = root_metadata(
        one(),
        now + expiry_secs,
        &[root_key.public_key()],
        1,
        online,
    )?;
    let signed = metadata::sign(root, &[root_key])?;
    write_atomic(&repo.join("1.root.json"), &metadata::to_bytes(&signed)?)?;
    Ok(true)
}

/// Where a root is after signing.
#[derive(Debug)]
pub enum RootState {
    /// In the repository, served to clients.
    Published(PathBuf),
    /// In the staging directory, short of signatures: what is missing.
    Staged { path: PathBuf, missing: String },
}

/// Whether `new` is signed well enough to follow `prev` (or to stand alone when first): a
/// threshold of `prev`'s root keys and a threshold of its own. `Err` says what is missing.
fn chain_check(prev: Option<&Root>, new: &Signed<Root>) -> Result<(), String> {
    let mut missing = Vec::new();
    if let Some(prev) = prev
        && let Err(e) = prev.verify_role(new)
    {
        missing.push(format!("root version {}'s keys: {e}", prev.version));
    }
    if let Err(e) = new.signed.verify_role(new) {
        missing.push(format!("its own root keys: {e}"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

/// Publishes `new` if it chains from the newest published root, else stages it.
fn place(repo: &Path, staging: &Path, new: &Signed<Root>) -> anyhow::Result<RootState> {
    let prev = metadata::latest_root(repo)?;
    let version = new.signed.version.get();
    if version != prev.signed.version.get() + 1 {
        bail!(
            "root version {version} cannot follow the published version {}",
            prev.signed.version
        );
    }
    let name = format!("{version}.root.json");
    let bytes = metadata::to_bytes(new)?;
    match chain_check(Some(&prev.signed), new) {
        Ok(()) => {
            let path = repo.join(&name);
            write_atomic(&path, &bytes)?;
            let _ = std::fs::remove_file(staging.join(&name));
            Ok(RootState::Published(path))
        }
        Err(missing) => {
            let path = staging.join(&name);
            write_atomic(&path, &bytes)?;
            Ok(RootState::Staged { path, missing })
        }
    }
}

/// A new root version: `root_keys` (default: the current root keys) with `threshold` (default:
/// the current one), the given online keys, expiring `expiry_secs` from `now`, signed by
/// `signers`. Published if that is enough, else staged.
#[allow(clippy::too_many_arguments)]
pub fn new_root(
    repo: &Path,
    staging: &Path,
    root_keys: Option<Vec<PublicKey>>,
    threshold: Option<u64>,
    online: &OnlinePublicKeys,
    signers: &[SigningKey],
    expiry_secs: i64,
    now: i64,
) -> anyhow::Result<RootState> {
    let prev = metadata::latest_root(repo)?;
    let prev_role = prev
        .signed
        .roles
        .get(&RoleType::Root)
        .context("the published root has no root role")?;
    let keys = match root_keys {
        Some(k) => k,
        None => prev_role
            .keyids
            .iter()
            .filter_map(|id| prev.signed.keys.get(id))
            .map(public_of_tuf_key)
            .collect::<anyhow::Result<_>>()?,
    };
    let threshold = threshold.unwrap_or(prev_role.threshold.get());
    let root = root_metadata(
        next(prev.signed.version),
        now + expiry_secs,
        &keys,
        threshold,
        online,
    )?;
    let refs: Vec<&SigningKey> = signers.iter().collect();
    let signed = metadata::sign(root, &refs)?;
    place(repo, staging, &signed)
}

/// Adds the signatures of `signers` to the staged root (the newest in `staging`), publishing it
/// when it is signed well enough.
pub fn sign_staged(
    repo: &Path,
    staging: &Path,
    signers: &[SigningKey],
) -> anyhow::Result<RootState> {
    let Some(v) = metadata::root_versions(staging)?.first().copied() else {
        bail!(
            "no root waits for signatures in {} (`sigil-server tuf rotate-root` stages one)",
            staging.display()
        );
    };
    let mut signed: Signed<Root> = metadata::read(&staging.join(format!("{v}.root.json")))?;
    let prev = metadata::latest_root(repo)?;
    for k in signers {
        let id = key_id(&k.public_key())?;
        let listed = |r: &Root| {
            r.roles
                .get(&RoleType::Root)
                .is_some_and(|role| role.keyids.contains(&id))
        };
        if !listed(&prev.signed) && !listed(&signed.signed) {
            bail!(
                "key {} is a root key of neither root version {} nor {v}",
                hex::encode(&*id),
                prev.signed.version
            );
        }
    }
    let refs: Vec<&SigningKey> = signers.iter().collect();
    metadata::add_signatures(&mut signed, &refs)?;
    place(repo, staging, &signed)
}

/// The Sigil public key of a key listed in root metadata.
fn public_of_tuf_key(key: &tough::schema::key::Key) -> anyhow::Result<PublicKey> {
    use tough::schema::key::Key;
    match key {
        Key::Ecdsa { keyval, .. } | Key::EcdsaOld { keyval, .. } => {
            let pem = serde_json::to_value(&keyval.public)?;
            let pem = pem.as_str().context("ECDSA key")?;
            if pem.starts_with("-----BEGIN") {
                Ok(PublicKey::from_pem(pem)?)
            } else {
                bail!("root lists an ECDSA key in hex; name the root keys with --root-key")
            }
        }
        Key::Ed25519 { keyval, .. } => Ok(PublicKey::from_ed25519_bytes(&keyval.public)?),
        Key::Rsa { .. } => bail!("root lists an RSA key; name the root keys with --root-key"),
    }
}
