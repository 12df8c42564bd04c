//! Verifying image signatures and attestations found by both schemes: cosign's tags
//! (`sha256-<hex>.sig` / `.att`) and Sigstore bundles attached as OCI 1.1 referrers.
//!
//! Each signature is checked as a blob bundle is (`crate::verify::verify_bundle`: chain, SCT,
//! identity, log entry and SET/proof, signature), then its claims are matched to the image: the
//! signed digest must be the image's and the signed repository the image's repository.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigil_core::bundle::{
    Bundle, Envelope, HashAlgorithm, HashOutput, IN_TOTO_PAYLOAD_TYPE, MEDIA_TYPE_V01,
    MEDIA_TYPE_V03, MessageSignature, PublicKeyIdentifier, VerificationMaterial, X509Certificate,
    X509CertificateChain,
};
use sigil_core::crypto::{DigestAlgorithm, sha256};
use sigil_core::trust::TrustedRoot;

use super::cosign::{
    self, ANN_BUNDLE, ANN_CERTIFICATE, ANN_SIGNATURE, DSSE_MEDIA_TYPE, RekorBundle,
    SIMPLESIGNING_MEDIA_TYPE,
};
use super::error::OciError;
use super::reference::{ImageRef, cosign_tag};
use super::registry::{Descriptor, Manifest, Registry};
use super::sign::{COSIGN_SIGN_PREDICATE, Resolved, resolve};
use crate::verify::{Artifact, Options, Policy, Verified, VerifyError, verify_bundle};

/// Why one signature or attestation was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Registry(#[from] OciError),
    #[error(
        "the signature is for image digest {signed}, but {image} is {actual} (it belongs to another image)"
    )]
    DigestMismatch {
        signed: String,
        image: String,
        actual: String,
    },
    #[error("the signature is for repository {signed:?}, but the image is in {actual:?}")]
    ReferenceMismatch { signed: String, actual: String },
    #[error("the signature layer has no {0} annotation")]
    MissingAnnotation(&'static str),
    #[error("{0}")]
    Malformed(String),
}

/// Why an image did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ImageVerifyError {
    #[error(transparent)]
    Registry(#[from] OciError),
    #[error(
        "no signatures found for {image} ({digest}): no {tag} tag and no signature bundles among its referrers"
    )]
    NoSignatures {
        image: String,
        digest: String,
        tag: String,
    },
    #[error(
        "no attestations found for {image} ({digest}): no {tag} tag and no attestation bundles among its referrers"
    )]
    NoAttestations {
        image: String,
        digest: String,
        tag: String,
    },
    #[error(
        "none of the {found} signature(s) of {image} ({digest}) verified:{}",
        list(failures)
    )]
    NoneValid {
        image: String,
        digest: String,
        found: usize,
        failures: Vec<String>,
    },
    #[error(
        "none of the {found} attestation(s) of {image} ({digest}) has predicate type {wanted}; found {seen:?}"
    )]
    NoPredicate {
        image: String,
        digest: String,
        found: usize,
        wanted: String,
        seen: Vec<String>,
    },
}

fn list(failures: &[String]) -> String {
    failures.iter().map(|f| format!("\n  - {f}")).collect()
}

/// Where a verified signature came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A layer of the cosign tag.
    Tag { tag: String, layer: String },
    /// A bundle referrer manifest.
    Referrer { manifest: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Tag { tag, layer } => write!(f, "layer {layer} of tag {tag}"),
            Source::Referrer { manifest } => write!(f, "bundle referrer {manifest}"),
        }
    }
}

/// One verified signature or attestation.
#[derive(Clone, Debug)]
pub struct VerifiedSignature {
    pub source: Source,
    /// The signed payload (simple-signing JSON or the in-toto statement).
    pub payload: Value,
    /// The DSSE envelope, for attestations.
    pub envelope: Option<Envelope>,
    pub verified: Verified,
    /// The cosign bundle annotation, where the signature came from a tag.
    pub rekor_bundle: Option<RekorBundle>,
    /// PEM of the signing certificate, if any.
    pub certificate_pem: Option<String>,
}

/// The outcome: the image digest and every signature that verified.
#[derive(Clone, Debug)]
pub struct VerifiedImage {
    pub resolved: Resolved,
    pub signatures: Vec<VerifiedSignature>,
    /// Signatures found that did not verify (with why).
    pub rejected: Vec<String>,
}

/// Verification material from a layer's certificate annotation, or the key policy's hint.
fn material(
    ann: &std::collections::BTreeMap<String, String>,
    rekor: &RekorBundle,
) -> Result<(VerificationMaterial, Option<String>), SignatureError> {
    let entry = rekor.to_entry()?;
    let cert_pem = ann
        .get(ANN_CERTIFICATE)
        .filter(|c| !c.trim().is_empty())
        .cloned();
    let mut vm = VerificationMaterial {
        tlog_entries: vec![entry],
        ..Default::default()
    };
    match &cert_pem {
        Some(pem) => {
            let der = sigil_core::certs::pem_decode_all(pem.as_bytes())
                .map_err(|e| {
                    SignatureError::Malformed(format!("{ANN_CERTIFICATE} is not PEM: {e}"))
                })?
                .into_iter()
                .find(|(label, _)| label == "CERTIFICATE")
                .map(|(_, der)| der)
                .ok_or_else(|| {
                    SignatureError::Malformed(format!("{ANN_CERTIFICATE} holds no certificate"))
                })?;
            vm.x509_certificate_chain = Some(X509CertificateChain {
                certificates: vec![X509Certificate { raw_bytes: der }],
            });
        }
        None => vm.public_key = Some(PublicKeyIdentifier { hint: None }),
    }
    Ok((vm, cert_pem))
}

fn rekor_annotation(
    ann: &std::collections::BTreeMap<String, String>,
) -> Result<RekorBundle, SignatureError> {
    let raw = ann
        .get(ANN_BUNDLE)
        .ok_or(SignatureError::MissingAnnotation(ANN_BUNDLE))?;
    serde_json::from_str(raw)
        .map_err(|e| SignatureError::Malformed(format!("{ANN_BUNDLE} is not a Rekor bundle: {e}")))
}

fn check_reference(image: &ImageRef, signed: &str) -> Result<(), SignatureError> {
    let same = ImageRef::parse(signed)
        .map(|r| r.name())
        .is_ok_and(|n| n == image.name());
    if same {
        Ok(())
    } else {
        Err(SignatureError::ReferenceMismatch {
            signed: signed.to_owned(),
            actual: image.name(),
        })
    }
}

/// Verifies one `.sig` layer.
fn verify_sig_layer(
    reg: &Registry,
    resolved: &Resolved,
    layer: &Descriptor,
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<VerifiedSignature, SignatureError> {
    if layer.media_type != SIMPLESIGNING_MEDIA_TYPE {
        return Err(SignatureError::Malformed(format!(
            "layer media type {} is not {SIMPLESIGNING_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    let empty = Default::default();
    let ann = layer.annotations.as_ref().unwrap_or(&empty);
    let sig_b64 = ann
        .get(ANN_SIGNATURE)
        .ok_or(SignatureError::MissingAnnotation(ANN_SIGNATURE))?;
    let signature = STANDARD
        .decode(sig_b64.trim())
        .map_err(|e| SignatureError::Malformed(format!("{ANN_SIGNATURE} is not base64: {e}")))?;
    let payload = reg.get_blob(&resolved.image.repository, &layer.digest)?;
    let rekor = rekor_annotation(ann)?;
    let (vm, cert_pem) = material(ann, &rekor)?;
    let bundle = Bundle {
        media_type: MEDIA_TYPE_V01.to_owned(),
        verification_material: vm,
        message_signature: Some(MessageSignature {
            message_digest: Some(HashOutput {
                algorithm: HashAlgorithm::Sha2_256,
                digest: sha256(&payload).to_vec(),
            }),
            signature,
        }),
        dsse_envelope: None,
    };
    let verified = verify_bundle(
        &bundle,
        &Artifact::Bytes(&payload),
        root,
        policy,
        &Options::default(),
    )?;
    let claims = cosign::parse_payload(&payload)?;
    if claims.digest != resolved.digest {
        return Err(SignatureError::DigestMismatch {
            signed: claims.digest,
            image: resolved.image.name(),
            actual: resolved.digest.clone(),
        });
    }
    check_reference(&resolved.image, &claims.docker_reference)?;
    let payload: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Ok(VerifiedSignature {
        source: Source::Tag {
            tag: cosign_tag(&resolved.digest, "sig"),
            layer: layer.digest.clone(),
        },
        payload,
        envelope: None,
        verified,
        rekor_bundle: Some(rekor),
        certificate_pem: cert_pem,
    })
}

fn digest_artifact(resolved: &Resolved) -> Result<Artifact<'static>, SignatureError> {
    let hex = resolved.digest.trim_start_matches("sha256:");
    let digest =
        hex::decode(hex).map_err(|e| SignatureError::Malformed(format!("image digest: {e}")))?;
    Ok(Artifact::Digest {
        algorithm: DigestAlgorithm::Sha256,
        digest,
    })
}

/// Checks the statement's subjects name this repository (the digest was checked by
/// `verify_bundle` against the image digest).
fn check_statement_subject(resolved: &Resolved, stmt: &Value) -> Result<(), SignatureError> {
    let hex = resolved.digest.trim_start_matches("sha256:");
    let names: Vec<&str> = stmt
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.pointer("/digest/sha256").and_then(Value::as_str) == Some(hex))
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .collect();
    if names
        .iter()
        .any(|n| check_reference(&resolved.image, n).is_ok())
    {
        return Ok(());
    }
    Err(SignatureError::ReferenceMismatch {
        signed: names.join(", "),
        actual: resolved.image.name(),
    })
}

/// Verifies one `.att` layer (a DSSE envelope with cosign annotations).
fn verify_att_layer(
    reg: &Registry,
    resolved: &Resolved,
    layer: &Descriptor,
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<VerifiedSignature, SignatureError> {
    if layer.media_type != DSSE_MEDIA_TYPE {
        return Err(SignatureError::Malformed(format!(
            "layer media type {} is not {DSSE_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    let empty = Default::default();
    let ann = layer.annotations.as_ref().unwrap_or(&empty);
    let blob = reg.get_blob(&resolved.image.repository, &layer.digest)?;
    let envelope: Envelope = serde_json::from_slice(&blob).map_err(|e| {
        SignatureError::Malformed(format!("attestation layer is not a DSSE envelope: {e}"))
    })?;
    let rekor = rekor_annotation(ann)?;
    let (vm, cert_pem) = material(ann, &rekor)?;
    let bundle = Bundle {
        media_type: MEDIA_TYPE_V01.to_owned(),
        verification_material: vm,
        message_signature: None,
        dsse_envelope: Some(envelope.clone()),
    };
    verified_statement(
        resolved,
        bundle,
        envelope,
        root,
        policy,
        Source::Tag {
            tag: cosign_tag(&resolved.digest, "att"),
            layer: layer.digest.clone(),
        },
        Some(rekor),
        cert_pem,
    )
}

#[allow(clippy::too_many_arguments)]
fn verified_statement(
    resolved: &Resolved,
    bundle: Bundle,
    envelope: Envelope,
    root: &TrustedRoot,
    policy: &Policy,
    source: Source,
    rekor: Option<RekorBundle>,
    cert_pem: Option<String>,
) -> Result<VerifiedSignature, SignatureError> {
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(SignatureError::Malformed(format!(
            "DSSE payload type {} is not in-toto",
            envelope.payload_type
        )));
    }
    let verified = verify_bundle(
        &bundle,
        &digest_artifact(resolved)?,
        root,
        policy,
        &Options::default(),
    )?;
    let stmt = verified.statement.clone().unwrap_or(Value::Null);
    check_statement_subject(resolved, &stmt)?;
    Ok(VerifiedSignature {
        source,
        payload: stmt,
        envelope: Some(envelope),
        verified,
        rekor_bundle: rekor,
        certificate_pem: cert_pem,
    })
}

/// Bundle referrers of the image (artifact type bundle v0.3), with their bundles.
/// A candidate's label and its outcome.
type Labeled<T> = (String, Result<T, SignatureError>);

fn referrer_bundles(reg: &Registry, resolved: &Resolved) -> Result<Vec<Labeled<Bundle>>, OciError> {
    let repo = &resolved.image.repository;
    let Some(descs) = reg.referrers(repo, &resolved.digest, Some(MEDIA_TYPE_V03))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for d in descs {
        let bundle = (|| -> Result<Bundle, SignatureError> {
            let m = reg
                .get_manifest(repo, &d.digest)?
                .ok_or_else(|| OciError::NotFound(format!("{repo}@{}", d.digest)))?;
            let m: Manifest = serde_json::from_slice(&m.bytes).map_err(|e| {
                SignatureError::Malformed(format!("referrer is not a manifest: {e}"))
            })?;
            let layer = m.layers.first().ok_or_else(|| {
                SignatureError::Malformed("referrer manifest has no layers".into())
            })?;
            let blob = reg.get_blob(repo, &layer.digest)?;
            Bundle::from_json(&blob).map_err(|e| SignatureError::Verify(VerifyError::Bundle(e)))
        })();
        out.push((d.digest, bundle));
    }
    Ok(out)
}

fn statement_predicate(b: &Bundle) -> Option<String> {
    let env = b.dsse_envelope.as_ref()?;
    let v: Value = serde_json::from_slice(&env.payload).ok()?;
    v.get("predicateType")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The layers of a cosign tag, if it exists.
fn tag_layers(
    reg: &Registry,
    resolved: &Resolved,
    suffix: &str,
) -> Result<(String, Vec<Descriptor>), OciError> {
    let tag = cosign_tag(&resolved.digest, suffix);
    let layers = match reg.get_manifest(&resolved.image.repository, &tag)? {
        Some(f) => {
            serde_json::from_slice::<Manifest>(&f.bytes)
                .map_err(|e| OciError::Format(format!("{tag} is not an image manifest: {e}")))?
                .layers
        }
        None => Vec::new(),
    };
    Ok((tag, layers))
}

/// Finds and verifies the image's signatures; succeeds if at least one verifies.
pub fn verify_image(
    reg: &Registry,
    image: &ImageRef,
    root: &TrustedRoot,
    policy: &Policy,
) -> Result<VerifiedImage, ImageVerifyError> {
    let resolved = resolve(reg, image)?;
    let (tag, layers) = tag_layers(reg, &resolved, "sig")?;
    let mut results: Vec<Labeled<VerifiedSignature>> = layers
        .iter()
        .map(|l| {
            (
                format!("layer {} of {tag}", l.digest),
                verify_sig_layer(reg, &resolved, l, root, policy),
            )
        })
        .collect();
    for (digest, bundle) in referrer_bundles(reg, &resolved)? {
        let label = format!("bundle referrer {digest}");
        let r = bundle.and_then(|b| {
            let env = b.dsse_envelope.clone().ok_or_else(|| {
                SignatureError::Malformed("image signature bundles carry a DSSE statement".into())
            })?;
            verified_statement(
                &resolved,
                b,
                env,
                root,
                policy,
                Source::Referrer {
                    manifest: digest.clone(),
                },
                None,
                None,
            )
        });
        // Attestation bundles share the artifact type; only signature statements count here.
        if let Ok(v) = &r
            && v.payload.get("predicateType").and_then(Value::as_str) != Some(COSIGN_SIGN_PREDICATE)
        {
            continue;
        }
        results.push((label, r));
    }
    finish(resolved, tag, results, true)
}

fn finish(
    resolved: Resolved,
    tag: String,
    results: Vec<Labeled<VerifiedSignature>>,
    signatures: bool,
) -> Result<VerifiedImage, ImageVerifyError> {
    let (image, digest) = (resolved.image.name(), resolved.digest.clone());
    if results.is_empty() {
        return Err(if signatures {
            ImageVerifyError::NoSignatures { image, digest, tag }
        } else {
            ImageVerifyError::NoAttestations { image, digest, tag }
        });
    }
    let found = results.len();
    let mut ok = Vec::new();
    let mut rejected = Vec::new();
    for (label, r) in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => rejected.push(format!("{label}: {e}")),
        }
    }
    if ok.is_empty() {
        return Err(ImageVerifyError::NoneValid {
            image,
            digest,
            found,
            failures: rejected,
        });
    }
    Ok(VerifiedImage {
        resolved,
        signatures: ok,
        rejected,
    })
}

/// Finds and verifies the image's attestations (`.att` tag and referrers); with
/// `predicate_type`, only statements of that type count.
pub fn verify_attestations(
    reg: &Registry,
    image: &ImageRef,
    root: &TrustedRoot,
    policy: &Policy,
    predicate_type: Option<&str>,
) -> Result<VerifiedImage, ImageVerifyError> {
    let resolved = resolve(reg, image)?;
    let (tag, layers) = tag_layers(reg, &resolved, "att")?;
    let mut results: Vec<Labeled<VerifiedSignature>> = layers
        .iter()
        .map(|l| {
            (
                format!("layer {} of {tag}", l.digest),
                verify_att_layer(reg, &resolved, l, root, policy),
            )
        })
        .collect();
    for (digest, bundle) in referrer_bundles(reg, &resolved)? {
        if let Ok(b) = &bundle
            && statement_predicate(b).as_deref() == Some(COSIGN_SIGN_PREDICATE)
        {
            continue;
        }
        let r = bundle.and_then(|b| {
            let env = b.dsse_envelope.clone().ok_or_else(|| {
                SignatureError::Malformed("attestation bundles carry a DSSE statement".into())
            })?;
            verified_statement(
                &resolved,
                b,
                env,
                root,
                policy,
                Source::Referrer {
                    manifest: digest.clone(),
                },
                None,
                None,
            )
        });
        results.push((format!("bundle referrer {digest}"), r));
    }
    let mut out = finish(resolved, tag, results, false)?;
    if let Some(want) = predicate_type {
        let seen: Vec<String> = out
            .signatures
            .iter()
            .filter_map(|s| {
                s.payload
                    .get("predicateType")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let found = out.signatures.len();
        out.signatures
            .retain(|s| s.payload.get("predicateType").and_then(Value::as_str) == Some(want));
        if out.signatures.is_empty() {
            return Err(ImageVerifyError::NoPredicate {
                image: out.resolved.image.name(),
                digest: out.resolved.digest,
                found,
                wanted: want.to_owned(),
                seen,
            });
        }
    }
    Ok(out)
}
