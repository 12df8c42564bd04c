//! Wiring of the `pkcs11` CA backend from the configuration: the token settings and PIN, the CA
//! keys at start-up, and `init`'s path from an empty token to a working CA (a key pair generated
//! in the token, its intermediate certificate signed by the root).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use sigil_core::crypto::KeyAlgorithm;

use crate::ca::pkcs11::{self, AuthPin, Pkcs11Signer, TokenConfig};
use crate::ca::{CaFiles, CaKeys, CaNames, CaSigner, SoftwareSigner};
use crate::config::{CaSection, Config, ConfigError, resolve};

/// The environment variable read for the PIN when neither `pkcs11_pin_env` nor
/// `pkcs11_pin_file` is set. Not `SIGIL_CA_…`: those are config overrides.
pub const DEFAULT_PIN_ENV: &str = "SIGIL_PKCS11_PIN";
const DEFAULT_KEY_LABEL: &str = "sigil-ca-intermediate";
const DEFAULT_SESSIONS: usize = 4;

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

fn key_type(name: Option<&str>) -> Result<KeyAlgorithm, ConfigError> {
    Ok(match name.unwrap_or("ecdsa-p256") {
        "ecdsa-p256" => KeyAlgorithm::EcdsaP256,
        "ecdsa-p384" => KeyAlgorithm::EcdsaP384,
        "ed25519" => KeyAlgorithm::Ed25519,
        "rsa-2048" => KeyAlgorithm::Rsa { bits: 2048 },
        "rsa-3072" => KeyAlgorithm::Rsa { bits: 3072 },
        "rsa-4096" => KeyAlgorithm::Rsa { bits: 4096 },
        other => {
            return Err(invalid(
                "ca.pkcs11_key_type",
                format!(
                    "{other:?}: use ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072 or rsa-4096"
                ),
            ));
        }
    })
}

fn key_id(ca: &CaSection) -> Result<Option<Vec<u8>>, ConfigError> {
    ca.pkcs11_key_id
        .as_deref()
        .map(|h| {
            hex::decode(h.trim_start_matches("0x")).map_err(|e| {
                invalid(
                    "ca.pkcs11_key_id",
                    format!("{h:?} is not hex (the key's CKA_ID, e.g. 01a2): {e}"),
                )
            })
        })
        .transpose()
}

/// Checks of the `pkcs11_*` keys that need no I/O.
pub fn validate(ca: &CaSection) -> Result<(), ConfigError> {
    if ca.pkcs11_module.is_none() {
        return Err(invalid(
            "ca.pkcs11_module",
            "the pkcs11 backend needs the PKCS#11 module's path, e.g. /usr/lib/softhsm/libsofthsm2.so",
        ));
    }
    if ca.pkcs11_token_label.is_none() && ca.pkcs11_slot.is_none() {
        return Err(invalid(
            "ca.pkcs11_token_label",
            "the pkcs11 backend needs the token's label (or ca.pkcs11_slot)",
        ));
    }
    if ca.pkcs11_pin_env.is_some() && ca.pkcs11_pin_file.is_some() {
        return Err(invalid(
            "ca.pkcs11_pin_env",
            "set either pkcs11_pin_env or pkcs11_pin_file, not both",
        ));
    }
    if ca.pkcs11_sessions == Some(0) {
        return Err(invalid("ca.pkcs11_sessions", "must be at least 1"));
    }
    key_id(ca)?;
    key_type(ca.pkcs11_key_type.as_deref())?;
    Ok(())
}

/// The PIN and where it came from (for messages). Never logged.
fn pin(ca: &CaSection, data_dir: &Path) -> anyhow::Result<(AuthPin, String)> {
    if let Some(file) = &ca.pkcs11_pin_file {
        let path = resolve(data_dir, file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "ca.pkcs11_pin_file: cannot read the token PIN from {}",
                path.display()
            )
        })?;
        let pin = text.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            bail!("ca.pkcs11_pin_file: {} is empty", path.display());
        }
        return Ok((
            AuthPin::from(pin.to_string()),
            format!("the file {} (ca.pkcs11_pin_file)", path.display()),
        ));
    }
    let var = ca.pkcs11_pin_env.as_deref().unwrap_or(DEFAULT_PIN_ENV);
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok((AuthPin::from(p), format!("the environment variable {var}"))),
        _ => bail!(
            "the PKCS#11 token PIN is not set: put it in the environment variable {var} (or \
             name another with ca.pkcs11_pin_env, or a file with ca.pkcs11_pin_file)"
        ),
    }
}

/// The token settings of the configuration, with the PIN read.
pub fn token_config(cfg: &Config, data_dir: &Path) -> anyhow::Result<TokenConfig> {
    let ca = &cfg.ca;
    validate(ca)?;
    let (pin, pin_source) = pin(ca, data_dir)?;
    let key_id = key_id(ca)?;
    let key_label = match (&ca.pkcs11_key_label, &key_id) {
        (None, None) => Some(DEFAULT_KEY_LABEL.to_string()),
        (l, _) => l.clone(),
    };
    Ok(TokenConfig {
        module: ca.pkcs11_module.clone().unwrap_or_default(),
        token_label: ca.pkcs11_token_label.clone(),
        slot: ca.pkcs11_slot,
        pin,
        pin_source,
        key_label,
        key_id,
        max_sessions: ca.pkcs11_sessions.unwrap_or(DEFAULT_SESSIONS),
    })
}

/// The CA keys: the issuing key in the token, the chain from `intermediate_cert`/`root_cert`.
pub fn keys(cfg: &Config, data_dir: &Path) -> anyhow::Result<CaKeys> {
    let chain = crate::ca_wiring::ca_chain(cfg, data_dir).context(
        "the pkcs11 backend reads the chain from ca.intermediate_cert and ca.root_cert \
         (`sigil-server init` creates them)",
    )?;
    let cert_spki = chain.first().and_then(|c| {
        use der::{Decode, Encode};
        x509_cert::Certificate::from_der(c)
            .ok()?
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .ok()
    });
    let tc = token_config(cfg, data_dir)?;
    let signer = Pkcs11Signer::open(tc, cert_spki.as_deref())
        .context("cannot use the CA key in the PKCS#11 token (ca.pkcs11_*)")?;
    tracing::info!(
        token = signer.token_label(),
        algorithm = %signer.algorithm(),
        "CA issuing key is in a PKCS#11 token"
    );
    CaKeys::new(Arc::new(signer), chain).context(
        "the key in the PKCS#11 token does not fit ca.intermediate_cert (move the certificate \
         away and run `sigil-server init` to certify the token key)",
    )
}

fn write_new(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
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

/// `init` for the pkcs11 backend: unless `intermediate_cert` exists, uses (or generates) the root
/// as PEM files, finds the configured key in the token or generates it there
/// (`pkcs11_key_type`), and writes the intermediate certificate the root signs for it.
pub fn ensure_ca(cfg: &Config, data_dir: &Path, passphrase: Option<&str>) -> anyhow::Result<()> {
    let int_cert = resolve(data_dir, &cfg.ca.intermediate_cert);
    if int_cert.exists() {
        // The token key is checked against it when the CA starts.
        return Ok(());
    }
    let root_cert = resolve(data_dir, &cfg.ca.root_cert);
    // Where the file backend keeps it: beside the (unused) intermediate key path.
    let int_key = resolve(data_dir, &cfg.ca.intermediate_key);
    let root_key = CaFiles::in_dir(int_key.parent().unwrap_or(data_dir)).root_key;
    let names = CaNames::default();
    let alg = key_type(cfg.ca.pkcs11_key_type.as_deref())?;
    let tc = token_config(cfg, data_dir)?;

    let (root, root_der): (SoftwareSigner, Vec<u8>) = match (root_cert.exists(), root_key.exists())
    {
        (true, true) => {
            let signer = SoftwareSigner::from_pem_file(&root_key, passphrase)?;
            let der = crate::app::read_certs(&root_cert)?
                .into_iter()
                .next()
                .with_context(|| format!("{} holds no certificate", root_cert.display()))?;
            (signer, der)
        }
        (false, false) => {
            // Only the root (P-384) is kept; the software intermediate made with it is dropped.
            let g = crate::ca::generate_in_memory(&names, KeyAlgorithm::EcdsaP256)?;
            if let Some(dir) = root_key.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let pem = match passphrase {
                Some(p) => g.root_key.to_encrypted_pkcs8_pem(p)?,
                None => g.root_key.to_pkcs8_pem()?,
            };
            write_new(&root_key, &pem, true)?;
            write_new(
                &root_cert,
                &sigil_core::certs::pem_encode("CERTIFICATE", &g.root_der),
                false,
            )?;
            (SoftwareSigner::new(g.root_key), g.root_der)
        }
        (true, false) => bail!(
            "{} is missing and certifying the token key needs the root's key {}: put it back \
             (or remove {} to start a new CA)",
            int_cert.display(),
            root_key.display(),
            root_cert.display()
        ),
        (false, true) => bail!(
            "{} exists without its certificate {}: remove it to start a new CA",
            root_key.display(),
            root_cert.display()
        ),
    };

    let token_name = tc
        .token_label
        .clone()
        .unwrap_or_else(|| format!("slot {}", tc.slot.unwrap_or_default()));
    let public = match pkcs11::find_key(&tc)? {
        Some(k) => {
            eprintln!(
                "PKCS#11 token {token_name}: certifying its existing {} key",
                k.algorithm()
            );
            k
        }
        None => {
            let k = pkcs11::generate_key(&tc, alg)?;
            eprintln!(
                "PKCS#11 token {token_name}: generated an {alg} key pair ({})",
                tc.key_label
                    .as_deref()
                    .map(|l| format!("label {l:?}"))
                    .unwrap_or_else(|| "by id".into())
            );
            k
        }
    };
    let der = pkcs11::certify_intermediate(&root, &root_der, public.spki_der(), &names)?;
    if let Some(dir) = int_cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_new(
        &int_cert,
        &sigil_core::certs::pem_encode("CERTIFICATE", &der),
        false,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkcs11_config() -> Config {
        let mut cfg = Config::default();
        cfg.ca.backend = "pkcs11".into();
        cfg.ca.pkcs11_module = Some("/usr/lib/softhsm/libsofthsm2.so".into());
        cfg.ca.pkcs11_token_label = Some("sigil-ca".into());
        cfg
    }

    #[test]
    fn validation_names_the_key_to_fix() {
        pkcs11_config().validate().unwrap();
        type Break = fn(&mut CaSection);
        let cases: [(&str, Break); 6] = [
            ("ca.pkcs11_module", |c| c.pkcs11_module = None),
            ("ca.pkcs11_token_label", |c| c.pkcs11_token_label = None),
            ("ca.pkcs11_key_id", |c| c.pkcs11_key_id = Some("zz".into())),
            ("ca.pkcs11_key_type", |c| {
                c.pkcs11_key_type = Some("dsa-1024".into())
            }),
            ("ca.pkcs11_pin_env", |c| {
                c.pkcs11_pin_env = Some("PIN".into());
                c.pkcs11_pin_file = Some("pin".into());
            }),
            ("ca.pkcs11_sessions", |c| c.pkcs11_sessions = Some(0)),
        ];
        for (key, break_it) in cases {
            let mut cfg = pkcs11_config();
            break_it(&mut cfg.ca);
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn token_settings_default_the_key_label_and_read_the_pin_file() {
        let dir = std::env::temp_dir().join(format!("sigil-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pin"), "s3cret\n").unwrap();
        let mut cfg = pkcs11_config();
        cfg.ca.pkcs11_pin_file = Some("pin".into());
        cfg.ca.pkcs11_key_id = Some("0a0b".into());
        let tc = token_config(&cfg, &dir).unwrap();
        assert_eq!(tc.key_id, Some(vec![0x0a, 0x0b]));
        assert_eq!(tc.key_label, None, "an id alone selects the key");
        assert!(
            !format!("{tc:?}").contains("s3cret"),
            "the PIN never prints"
        );
        cfg.ca.pkcs11_key_id = None;
        let tc = token_config(&cfg, &dir).unwrap();
        assert_eq!(tc.key_label.as_deref(), Some(DEFAULT_KEY_LABEL));
        std::fs::write(dir.join("pin"), "\n").unwrap();
        let err = token_config(&cfg, &dir).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
