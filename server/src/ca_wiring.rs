//! Wiring of the CA role from the configuration (kept apart from `ca/`, which knows nothing of
//! the log or of the config file layout).

use std::path::Path;

use axum::Router;

use crate::config::Config;

/// The CA's routes and its chain (intermediate first, root last, DER).
pub async fn build(cfg: &Config, data_dir: &Path) -> anyhow::Result<(Router, Vec<Vec<u8>>)> {
    let chain = vec![
        crate::app::read_certs(&crate::config::resolve(data_dir, &cfg.ca.intermediate_cert))?,
        crate::app::read_certs(&crate::config::resolve(data_dir, &cfg.ca.root_cert))?,
    ]
    .concat();
    Ok((Router::new(), chain))
}

/// Generate the CA root and intermediate unless present.
pub fn ensure_ca(cfg: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let root = crate::config::resolve(data_dir, &cfg.ca.root_cert);
    if root.exists() {
        return Ok(());
    }
    anyhow::bail!("CA generation is not wired yet")
}
