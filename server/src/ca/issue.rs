//! Issuance: token → identity, proof of possession, precertificate → SCT → final certificate.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::AnyRef;
use der::{Decode, Encode, SliceReader};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm, PublicKey};
use sigil_core::oid;
use sigil_core::sct::{self, SctJson};

use super::cert::{self, LeafRequest};
use super::config::{CaConfig, SctMode, load_pem_source};
use super::ct::CtClient;
use super::error::CaError;
use super::identity::{self, Claims, Identity};
use super::oidc::{OidcVerifier, VerifiedToken};
use super::signer::CaKeys;

/// How the caller proves it holds the private key.
#[derive(Debug, Clone)]
pub enum KeyProof {
    /// A PKCS#10 request (PEM or DER); its signature is the proof.
    Csr(Vec<u8>),
    /// A public key (PEM or DER SPKI) and a signature by it over the identity's challenge.
    PublicKey { key: Vec<u8>, proof: Vec<u8> },
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub leaf_der: Vec<u8>,
    /// PEM: leaf, intermediate(s), root.
    pub chain_pem: Vec<String>,
    /// The SCT, in detached mode (RFC 6962 JSON, as Fulcio returns it).
    pub detached_sct: Option<SctJson>,
}

/// The certificate authority.
pub struct Ca {
    config: CaConfig,
    oidc: OidcVerifier,
    keys: CaKeys,
    ct: Option<CtClient>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ca {
    /// Builds the CA from its configuration and keys; loads the CT log key.
    pub fn new(config: CaConfig, keys: CaKeys) -> Result<Self, CaError> {
        config.validate()?;
        for iss in &config.issuers {
            if let Some(t) = &iss.ci_provider {
                identity::validate_ci_templates(t)?;
            }
        }
        let ct = match (&config.ct_log_url, &config.ct_log_public_key) {
            (Some(url), Some(key)) => {
                let pem = load_pem_source(key)?;
                let key = PublicKey::from_pem(&pem)
                    .map_err(|e| CaError::Config(format!("CT log public key: {e}")))?;
                Some(CtClient::new(url, key)?)
            }
            _ => {
                tracing::warn!(
                    "the CA has no CT log configured: certificates carry no SCT and Sigstore clients will refuse them"
                );
                None
            }
        };
        let oidc = OidcVerifier::new(
            config.issuers.clone(),
            config.clock_skew_secs,
            config.jwks_refresh_min_secs,
        )?;
        Ok(Self {
            config,
            oidc,
            keys,
            ct,
        })
    }

    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    pub fn oidc(&self) -> &OidcVerifier {
        &self.oidc
    }

    pub fn keys(&self) -> &CaKeys {
        &self.keys
    }

    /// DER chain, intermediate first, root last (for trusted_root.json).
    pub fn ca_chain_der(&self) -> Vec<Vec<u8>> {
        self.keys.chain_der().to_vec()
    }

    /// Verifies the token and maps it to the identity the certificate will carry.
    pub async fn authenticate(&self, token: &str) -> Result<(VerifiedToken, Identity), CaError> {
        let vt = self.oidc.verify(token).await?;
        let id = identity::identity_from_claims(&Claims {
            issuer: &vt.issuer,
            subject: &vt.subject,
            map: &vt.claims,
            config: &vt.config,
        })?;
        Ok((vt, id))
    }

    /// Issues a certificate for the holder of `token` and of the key in `proof`.
    pub async fn issue(&self, token: &str, proof: KeyProof) -> Result<Issued, CaError> {
        let (vt, identity) = self.authenticate(token).await?;
        let key = match proof {
            KeyProof::Csr(bytes) => verify_csr(&bytes)?,
            KeyProof::PublicKey { key, proof } => {
                let key = parse_public_key(&key)?;
                check_key_policy(&key)?;
                if proof.is_empty() {
                    return Err(CaError::bad_request(
                        "proofOfPossession is missing: sign the challenge claim with your key",
                    ));
                }
                // Fulcio's challenge is the e-mail for e-mail issuers, but clients such as
                // sigstore-js sign `sub` for issuers they do not know: accept either.
                key.verify(identity.challenge.as_bytes(), &proof)
                    .or_else(|e| {
                        if vt.subject == identity.challenge {
                            Err(e)
                        } else {
                            key.verify(vt.subject.as_bytes(), &proof)
                        }
                    })
                    .map_err(|_| {
                    CaError::bad_request(format!(
                        "proof of possession does not verify: it must be a {} signature by the submitted key over the token's `{}` claim",
                        key.algorithm(),
                        vt.config.challenge_claim()
                    ))
                })?;
                key
            }
        };
        let issued = self.issue_for_key(&identity, &key).await?;
        crate::metrics::cert_issued(vt.config.label());
        Ok(issued)
    }

    /// Issues a certificate for a verified identity and an accepted key.
    pub async fn issue_for_key(
        &self,
        identity: &Identity,
        key: &PublicKey,
    ) -> Result<Issued, CaError> {
        let issuer = self.keys.issuer();
        let signer = self.keys.signer();
        let tbs = cert::leaf_tbs(
            issuer,
            &LeafRequest {
                subject_spki_der: key.spki_der(),
                identity,
                not_before: now_secs(),
                validity_secs: self.config.validity_secs,
            },
        )?;
        let chain = self.keys.chain_der();
        let (leaf_der, detached_sct) = match (&self.ct, self.config.sct_mode) {
            (Some(ct), SctMode::Embedded) => {
                let tbs_der = tbs
                    .to_der()
                    .map_err(|e| CaError::Internal(format!("TBS: {e}")))?;
                let precert = cert::with_extension(&tbs, cert::poison_extension()?);
                let precert_der = cert::sign_tbs(&precert, |d| signer.sign(d))?;
                let (sct, _) = ct
                    .add_pre_chain(&precert_der, chain, &issuer.spki_der, &tbs_der)
                    .await?;
                let list = sct::encode_sct_list(&[sct])
                    .map_err(|e| CaError::Internal(format!("SCT list: {e}")))?;
                let final_tbs = cert::with_extension(&tbs, cert::sct_list_extension(list)?);
                (cert::sign_tbs(&final_tbs, |d| signer.sign(d))?, None)
            }
            (Some(ct), SctMode::Detached) => {
                let der = cert::sign_tbs(&tbs, |d| signer.sign(d))?;
                let (_, json) = ct.add_chain(&der, chain).await?;
                (der, Some(json))
            }
            (None, _) => (cert::sign_tbs(&tbs, |d| signer.sign(d))?, None),
        };
        let mut chain_pem = Vec::with_capacity(chain.len() + 1);
        chain_pem.push(sigil_core::certs::pem_encode("CERTIFICATE", &leaf_der));
        chain_pem.extend(self.keys.chain_pem());
        Ok(Issued {
            leaf_der,
            chain_pem,
            detached_sct,
        })
    }
}

/// Fulcio's default key policy (`client-signing-algorithms`): ECDSA P-256/P-384/P-521, Ed25519,
/// RSA 2048–4096 bits in whole bytes.
fn check_key_policy(key: &PublicKey) -> Result<(), CaError> {
    match key.algorithm() {
        KeyAlgorithm::Rsa { bits } if bits > 4096 || bits % 8 != 0 => {
            Err(CaError::bad_request(format!(
                "RSA key of {bits} bits is not accepted: use 2048 to 4096 bits (a multiple of 8)"
            )))
        }
        _ => Ok(()),
    }
}

fn key_error(e: sigil_core::crypto::CryptoError) -> CaError {
    CaError::bad_request(format!(
        "public key not accepted: {e} (accepted: ECDSA P-256, P-384 or P-521, Ed25519, RSA 2048-4096)"
    ))
}

/// A public key given as PEM (`PUBLIC KEY`) or DER SPKI.
pub fn parse_public_key(bytes: &[u8]) -> Result<PublicKey, CaError> {
    if bytes.is_empty() {
        return Err(CaError::bad_request("publicKey.content is missing"));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => PublicKey::from_pem(text).map_err(key_error),
        _ => PublicKey::from_spki_der(bytes).map_err(|e| match e {
            sigil_core::crypto::CryptoError::MalformedPublicKey(_) => CaError::bad_request(
                "publicKey.content is neither a PEM `PUBLIC KEY` block nor a DER SubjectPublicKeyInfo",
            ),
            other => key_error(other),
        }),
    }
}

/// Parses a PKCS#10 request (PEM or DER), checks its key and signature, returns the key.
pub fn verify_csr(bytes: &[u8]) -> Result<PublicKey, CaError> {
    let der = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            let block = pem::parse(text).map_err(|e| {
                CaError::bad_request(format!("certificateSigningRequest is not valid PEM: {e}"))
            })?;
            if !block.tag().ends_with("CERTIFICATE REQUEST") {
                return Err(CaError::bad_request(format!(
                    "certificateSigningRequest holds a {:?} PEM block, expected CERTIFICATE REQUEST",
                    block.tag()
                )));
            }
            block.into_contents()
        }
        _ => bytes.to_vec(),
    };
    let bad = |what: &str| CaError::bad_request(format!("certificateSigningRequest: {what}"));
    let csr = x509_cert::request::CertReq::from_der(&der)
        .map_err(|e| bad(&format!("not a valid PKCS#10 request: {e}")))?;
    // The signature covers the CertificationRequestInfo exactly as sent.
    let outer = AnyRef::from_der(&der).map_err(|e| bad(&e.to_string()))?;
    let mut reader = SliceReader::new(outer.value()).map_err(|e| bad(&e.to_string()))?;
    let info_der = AnyRef::decode(&mut reader)
        .and_then(|a| a.to_der())
        .map_err(|e| bad(&e.to_string()))?;
    let spki_der = csr
        .info
        .public_key
        .to_der()
        .map_err(|e| bad(&e.to_string()))?;
    let key = PublicKey::from_spki_der(&spki_der).map_err(key_error)?;
    check_key_policy(&key)?;
    let sig = csr
        .signature
        .as_bytes()
        .ok_or_else(|| bad("signature BIT STRING has unused bits"))?;
    let alg = csr.algorithm.oid;
    let digest = if alg == oid::ECDSA_WITH_SHA256 || alg == oid::SHA256_WITH_RSA {
        Some(DigestAlgorithm::Sha256)
    } else if alg == oid::ECDSA_WITH_SHA384 || alg == oid::SHA384_WITH_RSA {
        Some(DigestAlgorithm::Sha384)
    } else if alg == oid::ECDSA_WITH_SHA512 || alg == oid::SHA512_WITH_RSA {
        Some(DigestAlgorithm::Sha512)
    } else if alg == oid::ED25519 || alg == oid::RSASSA_PSS {
        None
    } else {
        return Err(bad(&format!("unsupported signature algorithm {alg}")));
    };
    let family_ok = match key.algorithm() {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521 => [
            oid::ECDSA_WITH_SHA256,
            oid::ECDSA_WITH_SHA384,
            oid::ECDSA_WITH_SHA512,
        ]
        .contains(&alg),
        KeyAlgorithm::Ed25519 => alg == oid::ED25519,
        KeyAlgorithm::Rsa { .. } => [
            oid::SHA256_WITH_RSA,
            oid::SHA384_WITH_RSA,
            oid::SHA512_WITH_RSA,
            oid::RSASSA_PSS,
        ]
        .contains(&alg),
    };
    if !family_ok {
        return Err(bad(&format!(
            "signature algorithm {alg} does not fit its {} key",
            key.algorithm()
        )));
    }
    let verified = match digest {
        Some(d) => key.verify_prehashed(d, &d.digest(&info_der), sig),
        None => key.verify(&info_der, sig),
    };
    verified.map_err(|_| {
        bad("its signature does not verify with the public key it contains (it must be signed by that key)")
    })?;
    Ok(key)
}

/// Shares the CA between handlers.
pub type SharedCa = Arc<Ca>;
