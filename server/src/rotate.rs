//! `sigil-server rotate ca | tsa`: a new CA hierarchy or TSA chain replaces the old one; the old
//! one stays in the trusted root with its `validFor` window closed at the rotation, so signatures
//! made before keep verifying, and the TUF repository publishes the new trust.
//!
//! The history lives in `<data-dir>/trust-history.json` (`trust_history.rs`); the retired files move to
//! `keys/retired/<role>-<unix time>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::config::Config;
use crate::keyfile::resolve;
use crate::trust_history::{History, Retired};

/// Moves `files` into a fresh `keys/retired/<role>-<now>/` directory.
fn retire_files(data_dir: &Path, role: &str, now: i64, files: &[PathBuf]) -> anyhow::Result<()> {
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
    Ok(())
}

/// Rotates `role` (`ca` or `tsa`) at `now` (Unix seconds) and publishes the new trust through
/// TUF (when enabled). Restart the server to sign with the new keys.
pub fn rotate(cfg: &Config, data_dir: &Path, role: &str, now: i64) -> anyhow::Result<String> {
    let mut history = History::load(data_dir)?;
    let now_text = sigil_core::trust::format_rfc3339(now);
    let old_chain = match role {
        "ca" => {
            if cfg.ca.backend != crate::ca::setup::CaBackend::File {
                bail!(
                    "rotate ca generates file keys; with ca.backend = {:?} rotate the key in the token and re-run init",
                    cfg.ca.backend
                );
            }
            let chain = crate::ca::setup::ca_chain(&cfg.ca, data_dir)?;
            let int_key = resolve(data_dir, &cfg.ca.intermediate_key);
            // The root's key, written beside the intermediate's by the generator.
            let root_key = int_key.parent().unwrap_or(data_dir).join("ca-root.pem");
            retire_files(
                data_dir,
                role,
                now,
                &[
                    resolve(data_dir, &cfg.ca.root_cert),
                    resolve(data_dir, &cfg.ca.intermediate_cert),
                    int_key,
                    root_key,
                ],
            )?;
            crate::ca::setup::ensure_ca(&cfg.ca, data_dir)?;
            chain
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
            chain
        }
        "rekor" | "rekor-v2" | "ct" => bail!(
            "rotate {role} (a new log shard) is not implemented yet; rotate ca and rotate tsa are"
        ),
        other => bail!("rotate {other:?}: use ca or tsa"),
    };
    history.retired.push(Retired {
        role: role.into(),
        chain: old_chain.iter().map(|c| STANDARD.encode(c)).collect(),
        start: history.start(role),
        end: now_text.clone(),
    });
    history.current_start.insert(role.into(), now_text.clone());
    history.save(data_dir)?;

    let mut msg = format!(
        "rotated {role}: the old one is valid until {now_text} in the trusted root, the new one from then on"
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
