//! Signing: which services to use, the signer (a key, or an ephemeral key with a certificate from
//! the CA), and signed bundles: the signature timestamped by the TSA and logged in Rekor v1
//! ([`crate::log_v1`]) or v2 ([`crate::log_v2`]).

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_core::bundle::{
    self, Bundle, Envelope, HashAlgorithm, HashOutput, MessageSignature, PublicKeyIdentifier,
    Rfc3161SignedTimestamp, TimestampVerificationData, TransparencyLogEntry, VerificationMaterial,
    X509Certificate,
};
use sigil_core::certs;
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, SigningKey, sha256};
use sigil_core::rekor_v2;
use sigil_core::trust::{Service, SigningConfig, select_services};

use crate::log_v1;

/// The service URLs to use now.
#[derive(Clone, Debug)]
pub struct Services {
    pub ca: Option<String>,
    /// Base URL of the transparency log.
    pub rekor: String,
    /// The log's major API version: 1 (entries with a signed entry timestamp) or 2 (rekor-tiles).
    pub rekor_version: u32,
    /// Full URL of the RFC 3161 timestamp endpoint.
    pub tsa: Option<String>,
    pub oidc: Option<String>,
}

/// The Rekor API versions this client speaks, preferred first (as other Sigstore clients, the
/// newest the signing config offers).
pub const REKOR_VERSIONS: &[u32] = &[2, 1];

impl Services {
    /// Picks a Rekor v1 log, the CA, a TSA and the OIDC issuer from a signing config.
    pub fn from_signing_config(c: &SigningConfig, now: i64) -> Result<Self> {
        Self::select(c, now, &[1])
    }

    /// Picks the first Rekor API version of `rekor_versions` (in that order of preference) that
    /// the signing config lists a usable log for, the CA, a TSA and the OIDC issuer. A Rekor v2
    /// log is usable only with a TSA: its entries carry no signing time.
    pub fn select(c: &SigningConfig, now: i64, rekor_versions: &[u32]) -> Result<Self> {
        let first = |list: &[Service]| {
            select_services(list, now, &[1])
                .first()
                .map(|s| s.url.clone())
        };
        let tsa = first(&c.tsa_urls);
        let mut reasons = Vec::new();
        let mut chosen = None;
        for v in rekor_versions {
            match select_services(&c.rekor_tlog_urls, now, &[*v]).first() {
                None => reasons.push(format!("no Rekor v{v} log valid now")),
                Some(s) if *v == 2 && tsa.is_none() => reasons.push(format!(
                    "its Rekor v2 log ({}) needs a timestamp authority, but it lists no tsaUrls \
                     valid now (add one, or log to a Rekor v1 log: --rekor-version 1)",
                    s.url
                )),
                Some(s) => {
                    chosen = Some((s.url.clone(), *v));
                    break;
                }
            }
        }
        let (rekor, rekor_version) = chosen.ok_or_else(|| {
            anyhow!(
                "the signing config names no usable transparency log: {}",
                reasons.join("; ")
            )
        })?;
        Ok(Self {
            ca: first(&c.ca_urls),
            rekor,
            rekor_version,
            tsa,
            oidc: first(&c.oidc_urls),
        })
    }

    /// Where signatures go: the log and its API version, and the TSA.
    pub fn target(&self) -> LogTarget<'_> {
        LogTarget {
            rekor: &self.rekor,
            rekor_version: self.rekor_version,
            tsa: self.tsa.as_deref(),
        }
    }
}

/// Where a signature is logged and timestamped.
#[derive(Clone, Copy, Debug)]
pub struct LogTarget<'a> {
    pub rekor: &'a str,
    pub rekor_version: u32,
    pub tsa: Option<&'a str>,
}

impl<'a> LogTarget<'a> {
    /// A Rekor v1 log, no timestamp authority (cosign's image signatures).
    pub fn v1(rekor: &'a str) -> Self {
        Self {
            rekor,
            rekor_version: 1,
            tsa: None,
        }
    }
}

/// The signer: an ephemeral key with a CA certificate, or a long-lived key.
pub enum Signer {
    Keyless {
        key: SigningKey,
        chain: Vec<Vec<u8>>,
    },
    Key(SigningKey),
}

impl Signer {
    fn key(&self) -> &SigningKey {
        match self {
            Signer::Keyless { key, .. } | Signer::Key(key) => key,
        }
    }

    /// PEM of what the log records as the verifier (leaf certificate or public key).
    fn verifier_pem(&self) -> String {
        match self {
            Signer::Keyless { chain, .. } => certs::pem_encode(
                "CERTIFICATE",
                chain.first().map(Vec::as_slice).unwrap_or_default(),
            ),
            Signer::Key(k) => k.public_key().to_pem(),
        }
    }

    /// The Rekor v2 `verifier`: the leaf certificate or public key, DER, with its key details.
    /// The Rekor v2 request logging `signature` over `digest`.
    fn v2_request(&self, digest: &[u8], signature: &[u8]) -> Result<Value> {
        let alg = self.key().algorithm();
        if alg == KeyAlgorithm::Ed25519 {
            bail!(
                "a Rekor v2 log records prehashed signatures, which Ed25519 keys cannot make; \
                 use an ECDSA or RSA key, or a Rekor v1 log (--rekor-version 1)"
            );
        }
        let spki;
        let material = match self {
            Signer::Keyless { chain, .. } => rekor_v2::Material::Certificate(
                chain.first().map(Vec::as_slice).unwrap_or_default(),
            ),
            Signer::Key(k) => {
                spki = k.public_key();
                rekor_v2::Material::PublicKey(spki.spki_der())
            }
        };
        let verifier = rekor_v2::Verifier {
            material,
            key_details: alg.key_details(),
        };
        Ok(rekor_v2::request(digest, signature, &verifier))
    }

    fn material(
        &self,
        entry: TransparencyLogEntry,
        timestamps: Vec<Rfc3161SignedTimestamp>,
    ) -> VerificationMaterial {
        let (certificate, public_key) = match self {
            Signer::Keyless { chain, .. } => (
                Some(X509Certificate {
                    raw_bytes: chain.first().cloned().unwrap_or_default(),
                }),
                None,
            ),
            Signer::Key(k) => (
                None,
                Some(PublicKeyIdentifier {
                    hint: Some(STANDARD.encode(sha256(k.public_key().spki_der()))),
                }),
            ),
        };
        VerificationMaterial {
            certificate,
            x509_certificate_chain: None,
            public_key,
            tlog_entries: vec![entry],
            timestamp_verification_data: Some(TimestampVerificationData {
                rfc3161_timestamps: timestamps,
            }),
        }
    }
}

/// A signed and logged bundle, with where it landed.
pub struct Signed {
    pub bundle: Bundle,
    pub uuid: String,
    pub log_index: i64,
}

/// Timestamps `signature` at the TSA, if there is one.
fn timestamps(target: &LogTarget<'_>, signature: &[u8]) -> Result<Vec<Rfc3161SignedTimestamp>> {
    match target.tsa {
        Some(url) => Ok(vec![Rfc3161SignedTimestamp {
            signed_timestamp: crate::tsa::request_timestamp(url, signature)?,
        }]),
        None => Ok(Vec::new()),
    }
}

/// The bundle's tlog entry for a Rekor v2 log: a hashedrekord 0.0.2 over `digest`.
fn log_v2(
    signer: &Signer,
    rekor: &str,
    digest: &[u8],
    signature: &[u8],
) -> Result<TransparencyLogEntry> {
    crate::log_v2::log_entry_v2(rekor, &signer.v2_request(digest, signature)?)
}

fn signed(bundle: Bundle) -> Result<Signed> {
    let tlog = bundle
        .verification_material
        .tlog_entries
        .first()
        .ok_or_else(|| anyhow!("no tlog entry"))?;
    Ok(Signed {
        uuid: hex::encode(sigil_core::merkle::leaf_hash(&tlog.canonicalized_body)),
        log_index: tlog.log_index,
        bundle,
    })
}

/// Signs an artifact (message signature over its digest), timestamps the signature if the
/// target has a TSA, and logs it: a `hashedrekord` 0.0.1 entry on Rekor v1, 0.0.2 on v2.
pub fn sign_blob(signer: &Signer, artifact: &[u8], target: &LogTarget<'_>) -> Result<Signed> {
    let key = signer.key();
    let alg = key
        .algorithm()
        .default_digest()
        .unwrap_or(DigestAlgorithm::Sha256);
    let digest = alg.digest(artifact);
    let signature = match key.algorithm() {
        KeyAlgorithm::Ed25519 => key.sign(artifact)?,
        _ => key.sign_prehashed(alg, &digest)?,
    };
    let algorithm = match alg {
        DigestAlgorithm::Sha256 => HashAlgorithm::Sha2_256,
        DigestAlgorithm::Sha384 => HashAlgorithm::Sha2_384,
        DigestAlgorithm::Sha512 => HashAlgorithm::Sha2_512,
    };
    let ts = timestamps(target, &signature)?;
    let tlog = if target.rekor_version == 2 {
        log_v2(signer, target.rekor, &digest, &signature)?
    } else {
        let proposed = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": STANDARD.encode(&signature),
                    "publicKey": {"content": STANDARD.encode(signer.verifier_pem())},
                },
                "data": {"hash": {"algorithm": alg.name(), "value": hex::encode(&digest)}},
            },
        });
        let (_entry_id, entry) = log_v1::log_entry(target.rekor, &proposed)?;
        log_v1::tlog_entry_from_rekor(&entry, "hashedrekord", "0.0.1")?
    };
    signed(Bundle {
        media_type: bundle::MEDIA_TYPE_V03.into(),
        verification_material: signer.material(tlog, ts),
        message_signature: Some(MessageSignature {
            message_digest: Some(HashOutput { algorithm, digest }),
            signature,
        }),
        dsse_envelope: None,
    })
}

/// Signs a DSSE envelope over `payload`, timestamps it if the target has a TSA, and logs it: a
/// `dsse` 0.0.1 entry on Rekor v1; on v2, which has no DSSE kind, a hashedrekord 0.0.2 over
/// the SHA-256 of the envelope's pre-authentication encoding (as other Sigstore clients do).
pub fn sign_dsse(
    signer: &Signer,
    payload_type: &str,
    payload: &[u8],
    target: &LogTarget<'_>,
) -> Result<Signed> {
    let pae = bundle::pae(payload_type, payload);
    let sig = signer.key().sign(&pae)?;
    let ts = timestamps(target, &sig)?;
    let env = Envelope {
        payload: payload.to_vec(),
        payload_type: payload_type.to_owned(),
        signatures: vec![bundle::DsseSignature { sig, keyid: None }],
    };
    let tlog = if target.rekor_version == 2 {
        let alg = signer
            .key()
            .algorithm()
            .default_digest()
            .unwrap_or(DigestAlgorithm::Sha256);
        let sig = env
            .signatures
            .first()
            .map(|s| s.sig.as_slice())
            .unwrap_or_default();
        log_v2(signer, target.rekor, &alg.digest(&pae), sig)?
    } else {
        let proposed = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {"proposedContent": {
                "envelope": serde_json::to_string(&env)?,
                "verifiers": [STANDARD.encode(signer.verifier_pem())],
            }},
        });
        let (_entry_id, entry) = log_v1::log_entry(target.rekor, &proposed)?;
        log_v1::tlog_entry_from_rekor(&entry, "dsse", "0.0.1")?
    };
    signed(Bundle {
        media_type: bundle::MEDIA_TYPE_V03.into(),
        verification_material: signer.material(tlog, ts),
        message_signature: None,
        dsse_envelope: Some(env),
    })
}

/// A keyless signer: ephemeral P-256 key, certificate from the CA.
pub fn keyless_signer(ca_url: &str, token: &str) -> Result<Signer> {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256)?;
    let chain = crate::ca::request_certificate(ca_url, token, &key)?;
    Ok(Signer::Keyless { key, chain })
}

/// Loads a PKCS#8 private key, encrypted (password from `SIGIL_PASSWORD` / `COSIGN_PASSWORD`) or not.
pub fn load_key(path: &std::path::Path) -> Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        let pw = password()?;
        return SigningKey::from_encrypted_pkcs8_pem(&pem, &pw)
            .with_context(|| format!("decrypting {} (wrong password?)", path.display()));
    }
    SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not a PKCS#8 private key", path.display()))
}

/// The key password from the environment.
pub fn password() -> Result<String> {
    std::env::var("SIGIL_PASSWORD")
        .or_else(|_| std::env::var("COSIGN_PASSWORD"))
        .map_err(|_| anyhow!("set SIGIL_PASSWORD to the private key's password"))
}
