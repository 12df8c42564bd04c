//! CA key backends behind a small signer trait (file PEM, optionally encrypted; ephemeral), the
//! CA certificate chain, and generation of a root + intermediate for `sigil-server init`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use der::Decode;
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};

use super::cert::{self, CaNames, IssuerInfo};
use super::error::CaError;

/// Something that signs certificates for the CA. A PKCS#11 or KMS backend implements this.
pub trait CaSigner: Send + Sync {
    /// Signs `tbs` (the DER TBSCertificate) with the algorithm [`cert::signature_algorithm`]
    /// names for [`Self::algorithm`]: ECDSA DER signatures, Ed25519, RSA PKCS#1 v1.5 SHA-256.
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, CaError>;
    fn public_key(&self) -> &PublicKey;
    fn algorithm(&self) -> KeyAlgorithm {
        self.public_key().algorithm()
    }
}

/// A key held in process memory (loaded from a file, or generated).
pub struct SoftwareSigner {
    key: SigningKey,
    public: PublicKey,
}

impl SoftwareSigner {
    pub fn new(key: SigningKey) -> Self {
        let public = key.public_key();
        Self { key, public }
    }

    /// Loads a PEM private key; `ENCRYPTED PRIVATE KEY` blocks need `passphrase`.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, CaError> {
        let key = if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let pass = passphrase.ok_or_else(|| {
                CaError::Config("the CA key is encrypted: provide its passphrase".into())
            })?;
            SigningKey::from_encrypted_pkcs8_pem(pem, pass)
        } else {
            SigningKey::from_pkcs8_pem(pem)
        }
        .map_err(|e| CaError::Config(format!("CA key: {e}")))?;
        Ok(Self::new(key))
    }

    pub fn from_pem_file(path: &Path, passphrase: Option<&str>) -> Result<Self, CaError> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| CaError::Config(format!("reading CA key {}: {e}", path.display())))?;
        Self::from_pem(&pem, passphrase)
    }
}

impl CaSigner for SoftwareSigner {
    fn sign(&self, tbs: &[u8]) -> Result<Vec<u8>, CaError> {
        self.key.sign(tbs).map_err(CaError::internal)
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// The CA's issuing key and its chain.
#[derive(Clone)]
pub struct CaKeys {
    signer: Arc<dyn CaSigner>,
    /// DER certificates: the issuing certificate first, the root last.
    chain: Vec<Vec<u8>>,
    issuer: IssuerInfo,
}

impl std::fmt::Debug for CaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaKeys")
            .field("algorithm", &self.signer.algorithm())
            .field("chain_len", &self.chain.len())
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl CaKeys {
    /// A signer and its chain (issuing certificate first, root last). Checks that the key
    /// matches the issuing certificate and that the certificate may issue code-signing leaves.
    pub fn new(signer: Arc<dyn CaSigner>, chain: Vec<Vec<u8>>) -> Result<Self, CaError> {
        let first = chain
            .first()
            .ok_or_else(|| CaError::Config("the CA chain is empty".into()))?;
        let issuer = IssuerInfo::from_cert_der(first, signer.algorithm())?;
        if issuer.spki_der != signer.public_key().spki_der() {
            return Err(CaError::Config(
                "the CA key does not match the issuing certificate's public key".into(),
            ));
        }
        let cert = x509_cert::Certificate::from_der(first)
            .map_err(|e| CaError::Config(format!("CA certificate: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let is_ca = tbs
            .get::<x509_cert::ext::pkix::BasicConstraints>()
            .ok()
            .flatten()
            .is_some_and(|(_, bc)| bc.ca);
        if !is_ca {
            return Err(CaError::Config(
                "the issuing certificate is not a CA (BasicConstraints CA:TRUE)".into(),
            ));
        }
        if chain.len() > 1 {
            let eku_ok = tbs
                .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
                .ok()
                .flatten()
                .is_some_and(|(_, eku)| eku.0.contains(&sigil_core::oid::KP_CODE_SIGNING));
            if !eku_ok {
                return Err(CaError::Config(
                    "the intermediate certificate must have the codeSigning extended key usage"
                        .into(),
                ));
            }
        }
        if issuer.not_after <= now_secs() {
            return Err(CaError::Config(
                "the issuing certificate has expired".into(),
            ));
        }
        Ok(Self {
            signer,
            chain,
            issuer,
        })
    }

    /// Loads PEM files: the issuing certificate (it may carry the rest of the chain), optional
    /// further chain certificates (the root), and the issuing key.
    pub fn from_files(
        issuing_cert: &Path,
        rest_of_chain: Option<&Path>,
        key: &Path,
        passphrase: Option<&str>,
    ) -> Result<Self, CaError> {
        let mut chain = read_pem_certs(issuing_cert)?;
        if let Some(rest) = rest_of_chain {
            for c in read_pem_certs(rest)? {
                if !chain.contains(&c) {
                    chain.push(c);
                }
            }
        }
        let signer = SoftwareSigner::from_pem_file(key, passphrase)?;
        Self::new(Arc::new(signer), chain)
    }

    /// A throwaway root and intermediate in memory. Certificates from it chain to nothing
    /// anybody trusts after a restart: development and tests only.
    pub fn ephemeral(names: &CaNames) -> Result<Self, CaError> {
        tracing::warn!(
            "EPHEMERAL CA KEYS: the CA root and intermediate live only in memory and change at every \
             restart; certificates will not verify later. Never use this in production."
        );
        let g = generate_in_memory(names, KeyAlgorithm::EcdsaP256)?;
        let signer = SoftwareSigner::new(g.intermediate_key);
        Self::new(Arc::new(signer), vec![g.intermediate_der, g.root_der])
    }

    pub fn signer(&self) -> &dyn CaSigner {
        self.signer.as_ref()
    }

    pub fn issuer(&self) -> &IssuerInfo {
        &self.issuer
    }

    /// DER certificates, issuing certificate first, root last (for trusted_root.json).
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// PEM certificates in chain order.
    pub fn chain_pem(&self) -> Vec<String> {
        self.chain
            .iter()
            .map(|d| sigil_core::certs::pem_encode("CERTIFICATE", d))
            .collect()
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, CaError> {
    let text = std::fs::read(path)
        .map_err(|e| CaError::Config(format!("reading {}: {e}", path.display())))?;
    let certs = sigil_core::certs::parse_pem_certificates(&text)
        .map_err(|e| CaError::Config(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CaError::Config(format!(
            "{} holds no CERTIFICATE block",
            path.display()
        )));
    }
    Ok(certs.into_iter().map(|(der, _)| der).collect())
}

/// A freshly generated root and intermediate.
pub struct GeneratedCa {
    pub root_key: SigningKey,
    pub root_der: Vec<u8>,
    pub intermediate_key: SigningKey,
    pub intermediate_der: Vec<u8>,
}

/// Generates an ECDSA P-384 self-signed root and an intermediate (`intermediate_alg`: P-256 or
/// P-384) signed by it, valid from an hour ago (clock skew) for the configured days.
pub fn generate_in_memory(
    names: &CaNames,
    intermediate_alg: KeyAlgorithm,
) -> Result<GeneratedCa, CaError> {
    let gen_err =
        |e: sigil_core::crypto::CryptoError| CaError::Internal(format!("key generation: {e}"));
    let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP384).map_err(gen_err)?;
    let intermediate_key = SigningKey::generate(intermediate_alg).map_err(gen_err)?;
    let not_before = now_secs().saturating_sub(3600);

    let root_name = cert::name(&names.root_common_name, &names.organization)?;
    let root_spki = root_key.public_key().spki_der().to_vec();
    let root_self = IssuerInfo {
        name: root_name.clone(),
        key_id: cert::key_identifier(&root_spki)?,
        spki_der: root_spki.clone(),
        signature_algorithm: cert::signature_algorithm(KeyAlgorithm::EcdsaP384)?,
        not_after: u64::MAX,
    };
    let root_signer = SoftwareSigner::new(root_key);
    let root_tbs = cert::ca_tbs(
        root_name,
        &root_spki,
        &root_self,
        true,
        not_before,
        names.root_validity_days * 86400,
    )?;
    let root_der = cert::sign_tbs(&root_tbs, |d| root_signer.sign(d))?;
    let root_issuer = IssuerInfo::from_cert_der(&root_der, KeyAlgorithm::EcdsaP384)?;

    let int_name = cert::name(&names.intermediate_common_name, &names.organization)?;
    let int_tbs = cert::ca_tbs(
        int_name,
        intermediate_key.public_key().spki_der(),
        &root_issuer,
        false,
        not_before,
        names.intermediate_validity_days * 86400,
    )?;
    let intermediate_der = cert::sign_tbs(&int_tbs, |d| root_signer.sign(d))?;
    Ok(GeneratedCa {
        root_key: root_signer.key,
        root_der,
        intermediate_key,
        intermediate_der,
    })
}

/// Paths written by [`generate_ca`].
#[derive(Debug, Clone)]
pub struct CaFiles {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
}

impl CaFiles {
    /// The file names inside a key directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            root_cert: dir.join("ca-root.crt.pem"),
            root_key: dir.join("ca-root.pem"),
            intermediate_cert: dir.join("ca-intermediate.crt.pem"),
            intermediate_key: dir.join("ca-intermediate.pem"),
        }
    }
}

/// Generates a root and an intermediate into `dir` as PEM (keys PKCS#8, encrypted when a
/// passphrase is given, mode 0600). Refuses to overwrite existing files.
pub fn generate_ca(
    dir: &Path,
    names: &CaNames,
    intermediate_alg: KeyAlgorithm,
    passphrase: Option<&str>,
) -> Result<CaFiles, CaError> {
    let files = CaFiles::in_dir(dir);
    for p in [
        &files.root_cert,
        &files.root_key,
        &files.intermediate_cert,
        &files.intermediate_key,
    ] {
        if p.exists() {
            return Err(CaError::Config(format!(
                "{} already exists; remove it to generate a new CA",
                p.display()
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CaError::Config(format!("creating {}: {e}", dir.display())))?;
    let g = generate_in_memory(names, intermediate_alg)?;
    let key_pem = |k: &SigningKey| -> Result<String, CaError> {
        match passphrase {
            Some(p) => k.to_encrypted_pkcs8_pem(p),
            None => k.to_pkcs8_pem(),
        }
        .map_err(CaError::internal)
    };
    write_file(&files.root_key, &key_pem(&g.root_key)?, true)?;
    write_file(
        &files.intermediate_key,
        &key_pem(&g.intermediate_key)?,
        true,
    )?;
    write_file(
        &files.root_cert,
        &sigil_core::certs::pem_encode("CERTIFICATE", &g.root_der),
        false,
    )?;
    write_file(
        &files.intermediate_cert,
        &sigil_core::certs::pem_encode("CERTIFICATE", &g.intermediate_der),
        false,
    )?;
    Ok(files)
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CaError> {
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
        .map_err(|e| CaError::Config(format!("writing {}: {e}", path.display())))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| CaError::Config(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sigil-ca-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn generated_ca_loads_back_and_refuses_overwrite() {
        for (tag, pass) in [("plain", None), ("encrypted", Some("correct horse"))] {
            let dir = temp_dir(tag);
            let files =
                generate_ca(&dir, &CaNames::default(), KeyAlgorithm::EcdsaP256, pass).unwrap();
            let key_pem = std::fs::read_to_string(&files.intermediate_key).unwrap();
            assert_eq!(key_pem.contains("ENCRYPTED"), pass.is_some());
            let keys = CaKeys::from_files(
                &files.intermediate_cert,
                Some(&files.root_cert),
                &files.intermediate_key,
                pass,
            )
            .unwrap();
            assert_eq!(keys.chain_der().len(), 2);
            assert_eq!(keys.signer().algorithm(), KeyAlgorithm::EcdsaP256);
            let root = x509_cert::Certificate::from_der(&keys.chain_der()[1]).unwrap();
            let root_key = PublicKey::from_spki_der(
                &der::Encode::to_der(&root.tbs_certificate.subject_public_key_info).unwrap(),
            )
            .unwrap();
            assert_eq!(root_key.algorithm(), KeyAlgorithm::EcdsaP384);
            if pass.is_some() {
                assert!(
                    CaKeys::from_files(
                        &files.intermediate_cert,
                        None,
                        &files.intermediate_key,
                        Some("wrong")
                    )
                    .is_err()
                );
                assert!(
                    CaKeys::from_files(
                        &files.intermediate_cert,
                        None,
                        &files.intermediate_key,
                        None
                    )
                    .is_err()
                );
            }
            assert!(generate_ca(&dir, &CaNames::default(), KeyAlgorithm::EcdsaP256, pass).is_err());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&files.intermediate_key)
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn key_must_match_the_issuing_certificate() {
        let g = generate_in_memory(&CaNames::default(), KeyAlgorithm::EcdsaP256).unwrap();
        let other = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let err = CaKeys::new(
            Arc::new(SoftwareSigner::new(other)),
            vec![g.intermediate_der.clone(), g.root_der.clone()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        // The root itself is a CA but has no codeSigning EKU: it may only issue as a lone root.
        let root_signer = SoftwareSigner::new(g.root_key);
        assert!(CaKeys::new(Arc::new(root_signer), vec![g.root_der.clone()]).is_ok());
    }
}
