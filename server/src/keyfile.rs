//! Key and certificate files: reading them with messages that name the file, writing new ones
//! (secrets readable by the owner only), and resolving configured paths against the data dir.
//! Below every role's setup, so that none of them depends on another to read a file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sigil_core::crypto::{PublicKey, SigningKey};

/// Resolve a configured path against the data dir.
pub fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

/// Read a PKCS#8 PEM key, with a message naming the file on failure.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("key file {} is not a usable PKCS#8 PEM key", path.display()))
}

pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key file {}", path.display()))?;
    PublicKey::from_pem(&pem).with_context(|| format!("{} is not a PEM public key", path.display()))
}

/// DER certificates from a PEM file.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?;
    let certs = sigil_core::certs::parse_pem_certificates(&text)
        .with_context(|| format!("{} does not hold PEM certificates", path.display()))?;
    Ok(certs.into_iter().map(|(der, _)| der).collect())
}

/// Creates `path` (never overwriting) with `contents`; a secret is readable by the owner only.
pub fn write_new(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a file so that readers see the old or the new bytes, never a part: a temp file in the
/// same directory, synced, then renamed over the name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
