//! Test harness shared by Sigil's end-to-end tests: a throwaway PostgreSQL, temp SQLite
//! databases, a real OpenID Provider, and server processes started from the workspace's binaries.

pub mod ca;
mod interop;
pub mod log;
mod oidc;
mod postgres;
mod process;
mod registry;
mod sigil;

pub use interop::{CmdResult, js_dir, record_interop, run, venv_tool};
pub use sigil::{ExtraIssuer, SigilStack, StackOptions, TrustFiles};

pub use oidc::{CLIENT_ID, Consent, ID_TOKEN_GRANT, OidcProvider, jwt_parts, oidc_dir};
pub use postgres::{KeptPostgres, Postgres, Standby};
pub use process::{ServerProcess, free_port, workspace_bin, workspace_root};
pub use registry::{DockerRegistry, find_tool};

use anyhow::{Context, Result};
use tempfile::TempDir;

/// Installs aws-lc-rs as the test process's TLS crypto provider (reqwest is built without one,
/// see the workspace Cargo.toml). The harness's entry points call it, so a test that uses reqwest
/// after any of them needs nothing more; call it first otherwise.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A temp dir holding an SQLite database file, and its sqlx URL (`sqlite://...?mode=rwc`, so the
/// file is created on first connect). The directory is removed when the `TempDir` is dropped.
pub fn temp_sqlite() -> Result<(TempDir, String)> {
    install_crypto_provider();
    let dir = tempfile::Builder::new()
        .prefix("sigil-sqlite-")
        .tempdir()
        .context("creating a temp dir for SQLite")?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sigil.db").display()
    );
    Ok((dir, url))
}

/// A random lowercase suffix for names that must not collide across tests and processes.
pub(crate) fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS per process; pid and a counter separate the rest.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:016x}", h.finish())
}
