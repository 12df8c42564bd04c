//! The CA role set up from its `[ca]` section: the typed section itself, the keys at start-up
//! (PEM files, ephemeral, or a PKCS#11 token: the token settings and PIN, and `init`'s path from
//! an empty token to a working CA, a key pair generated in the token and its intermediate
//! certificate signed by the root), first-run generation of the CA hierarchy, and the routes.
//! Knows nothing of the rest of the configuration: what it needs from it comes as [`Wiring`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sigil_core::crypto::KeyAlgorithm;

use super::pkcs11::{self, AuthPin, Pkcs11Signer, TokenConfig};
use super::{
    Ca, CaConfig, CaFiles, CaKeys, CaNames, CaSigner, IssuerConfig, IssuerType, SctMode,
    SoftwareSigner,
};
use crate::keyfile::{read_certs, resolve, write_new};
use crate::routes::Api;

/// Where the CA's issuing key lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaBackend {
    /// PEM files (encrypted when a passphrase is configured).
    #[default]
    File,
    /// The intermediate key in a PKCS#11 token.
    Pkcs11,
    /// Development only: keys made at start-up that vanish on restart.
    Ephemeral,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Root certificate (PEM).
    #[serde(default = "default_ca_root_cert")]
    pub root_cert: PathBuf,
    /// Intermediate certificate (PEM) and its PKCS#8 key.
    #[serde(default = "default_ca_int_cert")]
    pub intermediate_cert: PathBuf,
    #[serde(default = "default_ca_int_key")]
    pub intermediate_key: PathBuf,
    /// Name of an environment variable holding the passphrase of an encrypted key.
    #[serde(default)]
    pub key_passphrase_env: Option<String>,
    /// `file` (default), `pkcs11` (the intermediate key in an HSM token, see `pkcs11_*`) or
    /// `ephemeral` (development only: keys vanish on restart).
    #[serde(default)]
    pub backend: CaBackend,
    /// `pkcs11` backend: the module (shared library), the token (label or slot id), the key
    /// (label and/or hex id), the PIN's source (an environment variable, default
    /// `SIGIL_PKCS11_PIN`, or a file; never the config), the type `init` generates
    /// (`ecdsa-p256`, `ecdsa-p384`, `ed25519`, `rsa-2048`/`3072`/`4096`) and the session pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_module: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_token_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_slot: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_key_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_pin_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_pin_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_key_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11_sessions: Option<usize>,
    /// Certificate validity in minutes.
    #[serde(default = "default_validity")]
    pub validity_minutes: u64,
    /// CT log base URL (default: this server) and its public key (PEM).
    #[serde(default)]
    pub ct_log_url: Option<String>,
    #[serde(default = "default_ct_pub")]
    pub ct_log_public_key: PathBuf,
    /// `embedded` (default) or `detached` SCTs.
    #[serde(default)]
    pub sct_mode: SctMode,
    /// Trusted OIDC issuers (the dev issuer is added automatically when enabled).
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

/// A `[ca]` key whose value cannot work, and why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        key,
        message: message.into(),
    }
}

/// What the CA needs from the rest of the configuration.
pub struct Wiring {
    /// The development OIDC issuer's URL, when it runs (trusted as an e-mail issuer).
    pub dev_issuer: Option<String>,
    /// The CT log the CA submits (pre)certificates to.
    pub ct_log_url: String,
    pub max_body_bytes: usize,
}

fn yes() -> bool {
    true
}
fn default_ca_root_cert() -> PathBuf {
    "keys/ca-root.crt.pem".into()
}
fn default_ca_int_cert() -> PathBuf {
    "keys/ca-intermediate.crt.pem".into()
}
fn default_ca_int_key() -> PathBuf {
    "keys/ca-intermediate.pem".into()
}
fn default_validity() -> u64 {
    10
}
fn default_ct_pub() -> PathBuf {
    "keys/ctlog.pub.pem".into()
}

fn passphrase(ca: &CaSection) -> anyhow::Result<Option<String>> {
    match &ca.key_passphrase_env {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).with_context(|| {
            format!("ca.key_passphrase_env: environment variable {var} is not set")
        }),
    }
}

/// The CA's routes and its chain (intermediate first, root last, DER).
pub async fn build(
    ca: &CaSection,
    data_dir: &Path,
    wiring: &Wiring,
) -> anyhow::Result<(Api, Vec<Vec<u8>>)> {
    let keys = match ca.backend {
        CaBackend::Ephemeral => CaKeys::ephemeral(&CaNames::default())?,
        CaBackend::Pkcs11 => keys(ca, data_dir)?,
        CaBackend::File => CaKeys::from_files(
            &resolve(data_dir, &ca.intermediate_cert),
            Some(&resolve(data_dir, &ca.root_cert)),
            &resolve(data_dir, &ca.intermediate_key),
            passphrase(ca)?.as_deref(),
        )
        .context(
            "cannot load the CA keys (ca.intermediate_cert / ca.intermediate_key / ca.root_cert)",
        )?,
    };
    let mut issuers = ca.issuers.clone();
    if let Some(dev) = &wiring.dev_issuer {
        issuers.push(IssuerConfig::exact(dev.clone(), IssuerType::Email));
    }
    let ct_key = resolve(data_dir, &ca.ct_log_public_key);
    let ca_cfg = CaConfig {
        issuers,
        validity_secs: ca.validity_minutes.saturating_mul(60),
        ct_log_url: Some(wiring.ct_log_url.clone()),
        ct_log_public_key: Some(ct_key.display().to_string()),
        sct_mode: ca.sct_mode,
        max_body_bytes: wiring.max_body_bytes,
        ..CaConfig::default()
    };
    let built = Ca::new(ca_cfg, keys).context("cannot start the CA")?;
    let chain = built.ca_chain_der();
    Ok((super::router(Arc::new(built)), chain))
}

/// The configured chain: intermediate first, root last (DER).
pub fn ca_chain(ca: &CaSection, data_dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut chain = read_certs(&resolve(data_dir, &ca.intermediate_cert))?;
    for c in read_certs(&resolve(data_dir, &ca.root_cert))? {
        if !chain.contains(&c) {
            chain.push(c);
        }
    }
    Ok(chain)
}

/// Generate the CA hierarchy unless present: an ECDSA P-384 root and an ECDSA P-256
/// intermediate that issues leaf certificates (keys encrypted when a passphrase is configured).
pub fn ensure_ca(ca: &CaSection, data_dir: &Path) -> anyhow::Result<()> {
    if ca.backend == CaBackend::Pkcs11 {
        return ensure_token_ca(ca, data_dir, passphrase(ca)?.as_deref());
    }
    let root_cert = resolve(data_dir, &ca.root_cert);
    let int_cert = resolve(data_dir, &ca.intermediate_cert);
    let int_key = resolve(data_dir, &ca.intermediate_key);
    if root_cert.exists() && int_cert.exists() && int_key.exists() {
        return Ok(());
    }
    let dir = int_key.parent().unwrap_or(data_dir);
    let files = super::generate_ca(
        dir,
        &CaNames::default(),
        KeyAlgorithm::EcdsaP256,
        passphrase(ca)?.as_deref(),
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

/// The environment variable read for the PIN when neither `pkcs11_pin_env` nor
/// `pkcs11_pin_file` is set. Not `SIGIL_CA_…`: those are config overrides.
pub const DEFAULT_PIN_ENV: &str = "SIGIL_PKCS11_PIN";
const DEFAULT_KEY_LABEL: &str = "sigil-ca-intermediate";
const DEFAULT_SESSIONS: usize = 4;

fn key_type(name: Option<&str>) -> Result<KeyAlgorithm, Invalid> {
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

fn key_id(ca: &CaSection) -> Result<Option<Vec<u8>>, Invalid> {
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

/// Checks of the `[ca]` keys that need no I/O.
pub fn validate(ca: &CaSection) -> Result<(), Invalid> {
    if let Some(u) = &ca.ct_log_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(invalid(
            "ca.ct_log_url",
            format!("{u:?} is not an http(s) URL"),
        ));
    }
    for iss in &ca.issuers {
        iss.validate()
            .map_err(|e| invalid("ca.issuers", e.to_string()))?;
    }
    if ca.backend == CaBackend::Pkcs11 {
        validate_token(ca)?;
    }
    Ok(())
}

/// Checks of the `pkcs11_*` keys that need no I/O.
fn validate_token(ca: &CaSection) -> Result<(), Invalid> {
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
pub fn token_config(ca: &CaSection, data_dir: &Path) -> anyhow::Result<TokenConfig> {
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
fn keys(ca: &CaSection, data_dir: &Path) -> anyhow::Result<CaKeys> {
    let chain = ca_chain(ca, data_dir).context(
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
    let tc = token_config(ca, data_dir)?;
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

/// `init` for the pkcs11 backend: unless `intermediate_cert` exists, uses (or generates) the root
/// as PEM files, finds the configured key in the token or generates it there
/// (`pkcs11_key_type`), and writes the intermediate certificate the root signs for it.
fn ensure_token_ca(
    ca: &CaSection,
    data_dir: &Path,
    passphrase: Option<&str>,
) -> anyhow::Result<()> {
    let int_cert = resolve(data_dir, &ca.intermediate_cert);
    if int_cert.exists() {
        // The token key is checked against it when the CA starts.
        return Ok(());
    }
    let root_cert = resolve(data_dir, &ca.root_cert);
    // Where the file backend keeps it: beside the (unused) intermediate key path.
    let int_key = resolve(data_dir, &ca.intermediate_key);
    let root_key = CaFiles::in_dir(int_key.parent().unwrap_or(data_dir)).root_key;
    let names = CaNames::default();
    let alg = key_type(ca.pkcs11_key_type.as_deref())?;
    let tc = token_config(ca, data_dir)?;

    let (root, root_der): (SoftwareSigner, Vec<u8>) = match (root_cert.exists(), root_key.exists())
    {
        (true, true) => {
            let signer = SoftwareSigner::from_pem_file(&root_key, passphrase)?;
            let der = read_certs(&root_cert)?
                .into_iter()
                .next()
                .with_context(|| format!("{} holds no certificate", root_cert.display()))?;
            (signer, der)
        }
        (false, false) => {
            // Only the root (P-384) is kept; the software intermediate made with it is dropped.
            let g = super::generate_in_memory(&names, KeyAlgorithm::EcdsaP256)?;
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

    fn pkcs11_config() -> CaSection {
        let mut ca = crate::config::Config::default().ca;
        ca.backend = CaBackend::Pkcs11;
        ca.pkcs11_module = Some("/usr/lib/softhsm/libsofthsm2.so".into());
        ca.pkcs11_token_label = Some("sigil-ca".into());
        ca
    }

    #[test]
    fn validation_names_the_key_to_fix() {
        validate(&pkcs11_config()).unwrap();
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
            let mut ca = pkcs11_config();
            break_it(&mut ca);
            let err = validate(&ca).unwrap_err();
            assert_eq!(err.key, key, "{}", err.message);
        }
    }

    #[test]
    fn token_settings_default_the_key_label_and_read_the_pin_file() {
        let dir = std::env::temp_dir().join(format!("sigil-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pin"), "s3cret\n").unwrap();
        let mut ca = pkcs11_config();
        ca.pkcs11_pin_file = Some("pin".into());
        ca.pkcs11_key_id = Some("0a0b".into());
        let tc = token_config(&ca, &dir).unwrap();
        assert_eq!(tc.key_id, Some(vec![0x0a, 0x0b]));
        assert_eq!(tc.key_label, None, "an id alone selects the key");
        assert!(
            !format!("{tc:?}").contains("s3cret"),
            "the PIN never prints"
        );
        ca.pkcs11_key_id = None;
        let tc = token_config(&ca, &dir).unwrap();
        assert_eq!(tc.key_label.as_deref(), Some(DEFAULT_KEY_LABEL));
        std::fs::write(dir.join("pin"), "\n").unwrap();
        let err = token_config(&ca, &dir).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
