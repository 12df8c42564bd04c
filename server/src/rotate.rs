//! `sigil-server rotate ca | tsa | rekor | rekor-v2 | ct`: a new CA hierarchy, TSA chain or log shard replaces
//! the old one; the old one stays in the trusted root with its `validFor` window closed at the
//! rotation, so signatures made before keep verifying, and the TUF repository publishes the new
//! trust. A rotated log is a new shard (new key, new tree) at the same URL. The Rekor v1 API
//! serves its old shards itself (`inactiveShards`, entry IDs by tree, log indexes that count
//! across shards, as Rekor does); old Rekor v2 and CT shards are served read-only at
//! `<log url>/shards/<name>`.
//!
//! The history lives in `<data-dir>/trust-history.json` (`trust_history.rs`); the retired files move to
//! `keys/retired/<role>-<unix time>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;
use crate::keyfile::resolve;
use crate::trust_history::{History, Retired, RetiredLog};

/// The end of a retired key's window for a rotation at `now` (whole seconds): the next second,
/// so that what it signed earlier in that second (timestamps carry fractions) stays inside. The
/// new key's window starts at `now`; both keys are this deployment's, so the overlap of under a
/// second trusts nothing new.
fn window_end(now: i64) -> String {
    sigil_core::trust::format_rfc3339(now.saturating_add(1))
}

/// Moves `files` into a fresh `keys/retired/<role>-<now>/` directory.
fn retire_files(
    data_dir: &Path,
    role: &str,
    now: i64,
    files: &[PathBuf],
) -> anyhow::Result<PathBuf> {
    let dir = data_dir
        .join("keys")
        .join("retired")
        .join(format!("{role}-{now}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in files.iter().filter(|f| f.exists()) {
        let name = f.file_name().context("a key file name")?;
        std::fs::rename(f, dir.join(name))
            .with_context(|| format!("cannot move {} to {}", f.display(), dir.display()))?;
    }
    Ok(dir)
}

/// Retires a log's current shard (`role` rekor, rekor-v2 or ct, first named `first_name` in the
/// database): its key (and `also`, files derived from it) moves to `keys/retired/`, the next
/// start opens a new shard (`<first_name>-<now>`) with a new key.
fn retire_log(
    data_dir: &Path,
    history: &mut History,
    (role, first_name): (&str, &str),
    key_path: &Path,
    also: &[PathBuf],
    now: i64,
) -> anyhow::Result<sigil_core::crypto::SigningKey> {
    let old = crate::keyfile::read_key(key_path)?;
    let log_name = history.log_name(role, first_name);
    let mut files = vec![key_path.to_path_buf()];
    files.extend_from_slice(also);
    let dir = retire_files(data_dir, role, now, &files)?;
    let file = key_path.file_name().context("a key file name")?;
    let key_file = dir.join(file);
    let key_file = key_file
        .strip_prefix(data_dir)
        .map_or(key_file.clone(), Path::to_path_buf);
    history.retired_logs.push(RetiredLog {
        role: role.into(),
        log_name,
        key_file,
        public_key: STANDARD.encode(old.public_key().spki_der()),
        start: history.start(role),
        end: window_end(now),
    });
    history
        .current_log
        .insert(role.into(), format!("{first_name}-{now}"));
    crate::init::ensure_key(key_path)
}

/// Rotates `role` (`ca`, `tsa`, `rekor`, `rekor-v2` or `ct`) at `now` (Unix seconds) and publishes the new trust through
/// TUF (when enabled). Restart the server to sign with the new keys.
pub fn rotate(cfg: &Config, data_dir: &Path, role: &str, now: i64) -> anyhow::Result<String> {
    let mut history = History::load(data_dir)?;
    let now_text = sigil_core::trust::format_rfc3339(now);
    let end_text = window_end(now);
    let old_chain = match role {
        "rekor-v2" => {
            if !cfg.rekor_v2.enabled {
                bail!("rotate rekor-v2: the Rekor v2 log is not enabled ([rekor_v2] enabled)");
            }
            let key = resolve(data_dir, &cfg.rekor_v2.key);
            let first = (role, crate::log::rekor_v2::LOG_NAME);
            retire_log(data_dir, &mut history, first, &key, &[], now)?;
            None
        }
        "ct" => {
            if !cfg.ct.enabled {
                bail!("rotate ct: the CT log is not enabled ([ct] enabled)");
            }
            let key = resolve(data_dir, &cfg.ct.key);
            let public = resolve(data_dir, &cfg.ca.ct_log_public_key);
            let first = (role, crate::log::setup::CT_LOG_NAME);
            let also = std::slice::from_ref(&public);
            let new = retire_log(data_dir, &mut history, first, &key, also, now)?;
            // The CA checks SCTs with this copy of the CT log's public key.
            crate::keyfile::write_new(&public, &new.public_key().to_pem(), false)?;
            None
        }
        "ca" => {
            if cfg.ca.backend == crate::ca::setup::CaBackend::Ephemeral {
                bail!(
                    "rotate ca: an ephemeral CA makes new keys at every start; there is nothing to rotate"
                );
            }
            let chain = crate::ca::setup::ca_chain(&cfg.ca, data_dir)?;
            let int_key = resolve(data_dir, &cfg.ca.intermediate_key);
            // The root's key, written beside the intermediate's by the generator.
            let root_key = int_key.parent().unwrap_or(data_dir).join("ca-root.pem");
            // With the token backend the issuing key stays in the token: a new root certifies
            // the key `pkcs11_key_label` names (a new label: a new key pair made in the token).
            let mut files = vec![
                resolve(data_dir, &cfg.ca.root_cert),
                resolve(data_dir, &cfg.ca.intermediate_cert),
                root_key,
            ];
            if cfg.ca.backend != crate::ca::setup::CaBackend::Pkcs11 {
                files.push(int_key);
            }
            retire_files(data_dir, role, now, &files)?;
            crate::ca::setup::ensure_ca(&cfg.ca, data_dir)?;
            Some(chain)
        }
        "tsa" => {
            let chain = crate::keyfile::read_certs(&resolve(data_dir, &cfg.tsa.cert_chain))?;
            let files = [
                resolve(data_dir, &cfg.tsa.key),
                resolve(data_dir, &cfg.tsa.cert_chain),
                resolve(data_dir, &cfg.tsa.root_key),
            ];
            retire_files(data_dir, role, now, &files)?;
            crate::tsa::setup::ensure_tsa(&files[0], &files[1], &files[2])?;
            Some(chain)
        }
        "rekor" => {
            if !cfg.log.enabled {
                bail!("rotate rekor: the log is not enabled ([log] enabled)");
            }
            let key = resolve(data_dir, &cfg.log.key);
            let first = (role, crate::log::setup::REKOR_LOG_NAME);
            retire_log(data_dir, &mut history, first, &key, &[], now)?;
            None
        }
        other => bail!("rotate {other:?}: use ca, tsa, rekor, rekor-v2 or ct"),
    };
    if let Some(chain) = old_chain {
        history.retired.push(Retired {
            role: role.into(),
            chain: chain.iter().map(|c| STANDARD.encode(c)).collect(),
            start: history.start(role),
            end: end_text.clone(),
        });
    }
    history.current_start.insert(role.into(), now_text.clone());
    history.save(data_dir)?;

    let mut msg = format!(
        "rotated {role}: the old one is valid until {end_text} in the trusted root, the new one from {now_text} on"
    );
    if cfg.tuf.enabled {
        let trust = crate::init::trust_inputs(cfg, data_dir)?;
        let repo = crate::tuf::open(cfg, data_dir)?;
        let done = crate::tuf::publish(&repo, &trust)?;
        if let Some(v) = done.targets {
            msg.push_str(&format!("; TUF targets version {v} published"));
        }
    }
    msg.push_str("; restart the server to sign with the new keys");
    Ok(msg)
}
