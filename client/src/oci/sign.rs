//! Signing images and attaching attestations: the cosign tag scheme (`.sig`, `.att`), plus a
//! Sigstore bundle as an OCI 1.1 referrer where the registry has the referrers API.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use sigil_core::bundle::{Bundle, IN_TOTO_PAYLOAD_TYPE, MEDIA_TYPE_V03};

use super::cosign::{
    self, ANN_PREDICATE_TYPE, ANN_SIGNATURE, DSSE_MEDIA_TYPE, RekorBundle, SIMPLESIGNING_MEDIA_TYPE,
};
use super::error::OciError;
use super::reference::{ImageRef, cosign_tag};
use super::registry::{Descriptor, Fetched, Manifest, OCI_EMPTY, OCI_MANIFEST, Registry};
use crate::sign::{LogTarget, Signer, sign_blob, sign_dsse};

/// The in-toto predicate type cosign 3 uses for an image signature carried in a bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Annotations a bundle referrer manifest carries (cosign 3 writes the same).
pub const ANN_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANN_BUNDLE_PREDICATE: &str = "dev.sigstore.bundle.predicateType";

/// The image a reference points at, resolved to a digest.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The same repository pinned to the digest.
    pub image: ImageRef,
    pub digest: String,
    /// The tag it was resolved from, if the reference was not pinned.
    pub from_tag: Option<String>,
    /// Descriptor of the image manifest (the subject of referrers).
    pub descriptor: Descriptor,
}

/// Resolves a tag to the digest of the manifest the registry serves for it (or checks that a
/// pinned digest exists).
pub fn resolve(reg: &Registry, image: &ImageRef) -> Result<Resolved, OciError> {
    let reference = image.reference();
    let Fetched {
        bytes,
        media_type,
        digest,
    } = reg
        .get_manifest(&image.repository, &reference)?
        .ok_or_else(|| OciError::NotFound(image.to_string()))?;
    Ok(Resolved {
        image: image.with_digest(&digest),
        from_tag: image.digest.is_none().then_some(reference),
        descriptor: Descriptor {
            media_type,
            digest: digest.clone(),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
        },
        digest,
    })
}

/// Where a signature or attestation went.
#[derive(Clone, Debug)]
pub struct Attached {
    pub resolved: Resolved,
    pub log_index: i64,
    pub uuid: String,
    /// The cosign tag (`sha256-<hex>.sig` / `.att`) and the digest of its new manifest.
    pub tag: String,
    pub tag_manifest: String,
    /// Digest of the bundle referrer manifest, where the registry has the referrers API.
    pub referrer: Option<String>,
}

fn chain_of(signer: &Signer) -> &[Vec<u8>] {
    match signer {
        Signer::Keyless { chain, .. } => chain,
        Signer::Key(_) => &[],
    }
}

fn first_entry(bundle: &Bundle) -> Result<RekorBundle> {
    let e = bundle
        .verification_material
        .tlog_entries
        .first()
        .ok_or_else(|| anyhow!("the log returned no entry"))?;
    Ok(RekorBundle::from_entry(e)?)
}

/// Adds a layer to the signature image at `tag` (creating it), as cosign appends signatures.
fn append_layer(
    reg: &Registry,
    repo: &str,
    tag: &str,
    blob: &[u8],
    layer: Descriptor,
) -> Result<String, OciError> {
    let mut layers = match reg.get_manifest(repo, tag)? {
        Some(f) => {
            serde_json::from_slice::<Manifest>(&f.bytes)
                .map_err(|e| {
                    OciError::Format(format!(
                        "existing {repo}:{tag} is not an image manifest: {e}"
                    ))
                })?
                .layers
        }
        None => Vec::new(),
    };
    // Re-signing with an identical layer (same bytes and annotations) adds nothing.
    layers.retain(|l| l != &layer);
    reg.push_blob(repo, blob)?;
    layers.push(layer);
    let config = cosign::signature_config(&layers);
    reg.push_blob(repo, &config)?;
    let manifest = cosign::signature_manifest(&config, layers);
    let bytes = serde_json::to_vec(&manifest).map_err(|e| OciError::Format(e.to_string()))?;
    reg.put_manifest(repo, tag, OCI_MANIFEST, &bytes)
}

/// Pushes a Sigstore bundle as an OCI 1.1 referrer of `subject` (pushed by digest).
pub fn push_bundle_referrer(
    reg: &Registry,
    repo: &str,
    subject: &Descriptor,
    bundle: &Bundle,
    predicate_type: &str,
) -> Result<String, OciError> {
    let json = bundle
        .to_json()
        .map_err(|e| OciError::Format(e.to_string()))?;
    let layer = Descriptor::of(MEDIA_TYPE_V03, json.as_bytes());
    reg.push_blob(repo, json.as_bytes())?;
    let empty = b"{}";
    reg.push_blob(repo, empty)?;
    let content = if bundle.dsse_envelope.is_some() {
        "dsse-envelope"
    } else {
        "message-signature"
    };
    let annotations = BTreeMap::from([
        (ANN_BUNDLE_CONTENT.to_owned(), content.to_owned()),
        (ANN_BUNDLE_PREDICATE.to_owned(), predicate_type.to_owned()),
        (
            "org.opencontainers.image.created".to_owned(),
            crate::verify::x509::fmt_time(crate::config::now()),
        ),
    ]);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(MEDIA_TYPE_V03.to_owned()),
        config: Descriptor::of(OCI_EMPTY, empty),
        layers: vec![layer],
        subject: Some(Descriptor {
            annotations: None,
            artifact_type: None,
            ..subject.clone()
        }),
        annotations: Some(annotations),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| OciError::Format(e.to_string()))?;
    let digest = super::registry::digest_of(&bytes);
    reg.put_manifest(repo, &digest, OCI_MANIFEST, &bytes)
}

/// An in-toto statement about the image digest.
pub fn statement(resolved: &Resolved, predicate_type: &str, predicate: Value) -> Value {
    let hex = resolved.digest.trim_start_matches("sha256:");
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": resolved.image.name(), "digest": {"sha256": hex}}],
        "predicate": predicate,
    })
}

/// Options for [`sign_image`].
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// `-a key=value` pairs for the payload's `optional` section.
    pub annotations: BTreeMap<String, String>,
    /// Skip the bundle referrer even where the registry supports referrers.
    pub no_referrer: bool,
}

/// Signs an image: resolves it to a digest, signs cosign's simple-signing payload, logs a
/// `hashedrekord` entry, and pushes the signature at `sha256-<hex>.sig` (and, where the
/// registry has the referrers API, a Sigstore bundle as a referrer).
pub fn sign_image(
    reg: &Registry,
    image: &ImageRef,
    signer: &Signer,
    rekor_url: &str,
    opts: &SignOptions,
) -> Result<Attached> {
    let resolved = resolve(reg, image)?;
    let repo = &resolved.image.repository;
    let payload =
        cosign::simple_signing_payload(&image.name(), &resolved.digest, &opts.annotations);
    let signed = sign_blob(signer, &payload, &LogTarget::v1(rekor_url))
        .context("signing and logging the image signature")?;
    let sig = signed
        .bundle
        .message_signature
        .as_ref()
        .map(|m| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &m.signature))
        .ok_or_else(|| anyhow!("the signed bundle has no message signature"))?;
    let rekor = first_entry(&signed.bundle)?;
    let mut layer = Descriptor::of(SIMPLESIGNING_MEDIA_TYPE, &payload);
    layer.annotations = Some(cosign::layer_annotations(&sig, chain_of(signer), &rekor)?);
    let tag = cosign_tag(&resolved.digest, "sig");
    let tag_manifest = append_layer(reg, repo, &tag, &payload, layer)?;

    let mut referrer = None;
    if !opts.no_referrer && reg.referrers(repo, &resolved.digest, None)?.is_some() {
        // cosign 3's bundle form: a DSSE statement about the digest, self-contained.
        let stmt = statement(&resolved, COSIGN_SIGN_PREDICATE, json!({}));
        let b = sign_dsse(
            signer,
            IN_TOTO_PAYLOAD_TYPE,
            &serde_json::to_vec(&stmt)?,
            &LogTarget::v1(rekor_url),
        )?;
        referrer = Some(push_bundle_referrer(
            reg,
            repo,
            &resolved.descriptor,
            &b.bundle,
            COSIGN_SIGN_PREDICATE,
        )?);
    }
    Ok(Attached {
        resolved,
        log_index: signed.log_index,
        uuid: signed.uuid,
        tag,
        tag_manifest,
        referrer,
    })
}

/// cosign's `--type` shorthands.
pub fn predicate_type_uri(t: &str) -> String {
    match t {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
    .to_owned()
}

/// The predicate for a `--type`: the file's JSON, or for `custom` with non-JSON content cosign's
/// wrapper `{"Data": text, "Timestamp": …}`.
pub fn predicate_value(type_uri: &str, contents: &[u8]) -> Result<Value> {
    match serde_json::from_slice::<Value>(contents) {
        Ok(v) => Ok(v),
        Err(_) if type_uri == "https://cosign.sigstore.dev/attestation/v1" => Ok(json!({
            "Data": String::from_utf8_lossy(contents),
            "Timestamp": crate::verify::x509::fmt_time(crate::config::now()),
        })),
        Err(e) => Err(anyhow!("the predicate is not JSON: {e}")),
    }
}

/// Attests to an image: an in-toto statement about its digest in a DSSE envelope, logged as a
/// `dsse` entry, pushed as a layer of `sha256-<hex>.att` (and as a bundle referrer).
pub fn attest_image(
    reg: &Registry,
    image: &ImageRef,
    signer: &Signer,
    rekor_url: &str,
    predicate_type: &str,
    predicate: Value,
) -> Result<Attached> {
    let resolved = resolve(reg, image)?;
    let repo = &resolved.image.repository;
    let stmt = serde_json::to_vec(&statement(&resolved, predicate_type, predicate))?;
    let signed = sign_dsse(
        signer,
        IN_TOTO_PAYLOAD_TYPE,
        &stmt,
        &LogTarget::v1(rekor_url),
    )
    .context("signing and logging the attestation")?;
    let env = signed
        .bundle
        .dsse_envelope
        .as_ref()
        .ok_or_else(|| anyhow!("the signed bundle has no DSSE envelope"))?;
    let env_json = serde_json::to_vec(env)?;
    let rekor = first_entry(&signed.bundle)?;
    let mut ann = cosign::layer_annotations("", chain_of(signer), &rekor)?;
    ann.insert(ANN_SIGNATURE.to_owned(), String::new());
    ann.insert(ANN_PREDICATE_TYPE.to_owned(), predicate_type.to_owned());
    let mut layer = Descriptor::of(DSSE_MEDIA_TYPE, &env_json);
    layer.annotations = Some(ann);
    let tag = cosign_tag(&resolved.digest, "att");
    let tag_manifest = append_layer(reg, repo, &tag, &env_json, layer)?;
    let referrer = if reg.referrers(repo, &resolved.digest, None)?.is_some() {
        Some(push_bundle_referrer(
            reg,
            repo,
            &resolved.descriptor,
            &signed.bundle,
            predicate_type,
        )?)
    } else {
        None
    };
    Ok(Attached {
        resolved,
        log_index: signed.log_index,
        uuid: signed.uuid,
        tag,
        tag_manifest,
        referrer,
    })
}
