//! Wiring of the CA role from the configuration (kept apart from `ca/`, which knows nothing of
//! the log or of the config file layout), and first-run generation of the CA hierarchy.

use std::path::Path;
use std::sync::Arc;

use crate::routes::Api;
use anyhow::Context;
use sigil_core::crypto::KeyAlgorithm;

use crate::ca::{Ca, CaConfig, CaKeys, CaNames, IssuerConfig, IssuerType, SctMode};
use crate::config::{Config, resolve};

fn passphrase(cfg: &Config) -> anyhow::Result<Option<String>> {
    match &cfg.ca.key_passphrase_env {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).with_context(|| {
            format!("ca.key_passphrase_env: environment variable {var} is not set")
        }),
    }
}

/// The CA's routes and its chain (intermediate first, root last, DER).
pub async fn build(cfg: &Config, data_dir: &Path) -> anyhow::Result<(Api, Vec<Vec<u8>>)> {
    let keys = match cfg.ca.backend.as_str() {
        "ephemeral" => CaKeys::ephemeral(&CaNames::default())?,
        "pkcs11" => crate::ca_token::keys(cfg, data_dir)?,
        _ => CaKeys::from_files(
            &resolve(data_dir, &cfg.ca.intermediate_cert),
            Some(&resolve(data_dir, &cfg.ca.root_cert)),
            &resolve(data_dir, &cfg.ca.intermediate_key),
            passphrase(cfg)?.as_deref(),
        )
        .context(
            "cannot load the CA keys (ca.intermediate_cert / ca.intermediate_key / ca.root_cert)",
        )?,
    };
    let mut issuers = cfg.ca.issuers.clone();
    if cfg.dev_oidc.enabled {
        issuers.push(IssuerConfig::exact(cfg.dev_issuer_url(), IssuerType::Email));
    }
    let ct_key = resolve(data_dir, &cfg.ca.ct_log_public_key);
    let ca_cfg = CaConfig {
        issuers,
        validity_secs: cfg.ca.validity_minutes.saturating_mul(60),
        ct_log_url: Some(cfg.ct_log_url()),
        ct_log_public_key: Some(ct_key.display().to_string()),
        sct_mode: if cfg.ca.sct_mode == "detached" {
            SctMode::Detached
        } else {
            SctMode::Embedded
        },
        max_body_bytes: cfg.server.max_body_bytes,
        ..CaConfig::default()
    };
    let ca = Ca::new(ca_cfg, keys).context("cannot start the CA")?;
    let chain = ca.ca_chain_der();
    Ok((crate::ca::router(Arc::new(ca)), chain))
}

/// The configured chain: intermediate first, root last (DER).
pub fn ca_chain(cfg: &Config, data_dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut chain = crate::app::read_certs(&resolve(data_dir, &cfg.ca.intermediate_cert))?;
    for c in crate::app::read_certs(&resolve(data_dir, &cfg.ca.root_cert))? {
        if !chain.contains(&c) {
            chain.push(c);
        }
    }
    Ok(chain)
}

/// Generate the CA hierarchy unless present: an ECDSA P-384 root and an ECDSA P-256
/// intermediate that issues leaf certificates (keys encrypted when a passphrase is configured).
pub fn ensure_ca(cfg: &Config, data_dir: &Path) -> anyhow::Result<()> {
    if cfg.ca.backend == "pkcs11" {
        return crate::ca_token::ensure_ca(cfg, data_dir, passphrase(cfg)?.as_deref());
    }
    let root_cert = resolve(data_dir, &cfg.ca.root_cert);
    let int_cert = resolve(data_dir, &cfg.ca.intermediate_cert);
    let int_key = resolve(data_dir, &cfg.ca.intermediate_key);
    if root_cert.exists() && int_cert.exists() && int_key.exists() {
        return Ok(());
    }
    let dir = int_key.parent().unwrap_or(data_dir);
    let files = crate::ca::generate_ca(
        dir,
        &CaNames::default(),
        KeyAlgorithm::EcdsaP256,
        passphrase(cfg)?.as_deref(),
    )
    .context("cannot generate the CA")?;
    // The configured names may differ from the generator's defaults.
    for (from, to) in [
        (&files.root_cert, &root_cert),
        (&files.intermediate_cert, &int_cert),
        (&files.intermediate_key, &int_key),
    ] {
        if from != to {
            std::fs::rename(from, to)
                .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}
