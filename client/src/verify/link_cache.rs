//! Signatures between two certificates of the trusted root (a CA's or a TSA's intermediate
//! under its root) are the same on every run: `sigil` checks each once, then remembers it in
//! `<config dir>/cache/trusted-links`, one SHA-256 per line. Those roots are P-384, and two
//! P-384 verifications were a fifth of a small file's verification.
//!
//! Only links inside the trusted root are remembered, never a link from a bundle's certificate:
//! a line in the file can only vouch for certificates the user already trusts by listing them
//! (whoever can change the trusted root can replace its root key anyway), so a tampered cache
//! cannot make a forged signing certificate, timestamp or entry pass. Each line binds the
//! child's whole DER and the issuer's key. Without a configured directory (library use) the
//! memory of one process is all there is.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use sigil_core::crypto::sha256;

static DIR: OnceLock<PathBuf> = OnceLock::new();
static KNOWN: OnceLock<Mutex<HashSet<[u8; 32]>>> = OnceLock::new();

const FILE: &str = "trusted-links";

/// Where the remembered links are kept (set once, by the CLI, before verifying).
pub fn set_dir(dir: PathBuf) {
    let _ = DIR.set(dir);
}

fn known() -> &'static Mutex<HashSet<[u8; 32]>> {
    KNOWN.get_or_init(|| {
        let mut set = HashSet::new();
        if let Some(text) = DIR
            .get()
            .and_then(|d| std::fs::read_to_string(d.join(FILE)).ok())
        {
            for line in text.lines() {
                if let Some(h) = hex::decode(line.trim())
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                {
                    set.insert(h);
                }
            }
        }
        Mutex::new(set)
    })
}

fn link_id(child_der: &[u8], issuer_spki: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(32 + child_der.len() + issuer_spki.len());
    input.extend_from_slice(b"sigil trusted link v1\0");
    input.extend_from_slice(&(child_der.len() as u64).to_be_bytes());
    input.extend_from_slice(child_der);
    input.extend_from_slice(issuer_spki);
    sha256(&input)
}

/// `check` (the signature verification of `child_der` by the key `issuer_spki`), unless this
/// exact link was checked before.
pub fn checked(
    child_der: &[u8],
    issuer_spki: &[u8],
    check: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let id = link_id(child_der, issuer_spki);
    if known().lock().map(|k| k.contains(&id)).unwrap_or(false) {
        return Ok(());
    }
    check()?;
    if let Ok(mut k) = known().lock() {
        k.insert(id);
    }
    if let Some(dir) = DIR.get() {
        // Best effort: a cache that cannot be written costs only the check next time.
        let _ = std::fs::create_dir_all(dir).and_then(|()| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(FILE))?;
            f.write_all(format!("{}\n", hex::encode(id)).as_bytes())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_checked_once_and_a_failure_is_not_remembered() {
        let mut calls = 0;
        let mut run = |ok: bool| {
            checked(b"child-a", b"key-a", || {
                calls += 1;
                if ok { Ok(()) } else { Err("bad".into()) }
            })
        };
        assert!(run(false).is_err());
        assert!(run(true).is_ok());
        assert!(run(false).is_ok(), "remembered after one success");
        assert_eq!(calls, 2);
        // Another key for the same child is another link.
        assert!(checked(b"child-a", b"key-b", || Err("bad".into())).is_err());
    }
}
