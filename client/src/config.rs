//! Where the client's trust material comes from: explicit files, a client trust config, or the
//! files `sigil trust init` stored in the user's config dir.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use sigil_core::trust::{ClientTrustConfig, SigningConfig, TrustedRoot};

/// The user's Sigil config dir: `$SIGIL_HOME`, else `$XDG_CONFIG_HOME/sigil`, else `~/.config/sigil`.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("SIGIL_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(x).join("sigil"));
    }
    let home =
        std::env::var_os("HOME").ok_or_else(|| anyhow!("neither SIGIL_HOME nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".config").join("sigil"))
}

/// The trust material a command was given.
#[derive(Clone, Debug, Default)]
pub struct TrustSources {
    pub trusted_root: Option<PathBuf>,
    pub signing_config: Option<PathBuf>,
    pub trust_config: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl TrustSources {
    /// The trusted root: `--trusted-root`, else the trust config's, else the stored one.
    pub fn trusted_root(&self) -> Result<TrustedRoot> {
        if let Some(p) = &self.trusted_root {
            return TrustedRoot::from_json(&read(p)?)
                .with_context(|| format!("trusted root {}", p.display()));
        }
        if let Some(p) = &self.trust_config {
            let c = ClientTrustConfig::from_json(&read(p)?)
                .with_context(|| format!("trust config {}", p.display()))?;
            return Ok(c.trusted_root);
        }
        let dir = config_dir()?;
        crate::tuf::refresh_stored(&dir)?;
        let p = dir.join("trusted_root.json");
        if !p.exists() {
            return Err(crate::exit::usage(format!(
                "no trusted root: pass --trusted-root or --trust-config, or run `sigil trust init --url <server>` ({} does not exist)",
                p.display()
            )));
        }
        TrustedRoot::from_json(&read(&p)?).with_context(|| format!("trusted root {}", p.display()))
    }

    /// The signing config: `--signing-config`, else the trust config's, else the stored one.
    pub fn signing_config(&self) -> Result<SigningConfig> {
        if let Some(p) = &self.signing_config {
            return SigningConfig::from_json(&read(p)?)
                .with_context(|| format!("signing config {}", p.display()));
        }
        if let Some(p) = &self.trust_config {
            let c = ClientTrustConfig::from_json(&read(p)?)
                .with_context(|| format!("trust config {}", p.display()))?;
            return Ok(c.signing_config);
        }
        let dir = config_dir()?;
        crate::tuf::refresh_stored(&dir)?;
        let p = dir.join("signing_config.json");
        if !p.exists() {
            return Err(crate::exit::usage(format!(
                "no signing config: pass --signing-config or --trust-config, or run `sigil trust init --url <server>` ({} does not exist)",
                p.display()
            )));
        }
        SigningConfig::from_json(&read(&p)?)
            .with_context(|| format!("signing config {}", p.display()))
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
