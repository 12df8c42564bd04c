//! The Sigstore conformance protocol: `sign-bundle` and `verify-bundle`, the commands the
//! conformance suite and the interop tests drive.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use sigil_core::bundle::IN_TOTO_PAYLOAD_TYPE;
use sigil_core::crypto::DigestAlgorithm;

use super::args::{
    IdentityArgs, Output, TokenArgs, TrustArgs, load_bundle, read, signer, write_bundle,
};
use super::blob::{report, verify_with};
use crate::sign;
use crate::verify::Artifact;

#[derive(Args, Clone, Debug)]
pub struct SignBundleArgs {
    #[arg(long)]
    staging: bool,
    #[arg(long)]
    in_toto: bool,
    #[arg(long)]
    identity_token: String,
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    file: PathBuf,
}

#[derive(Args, Clone, Debug)]
pub struct VerifyBundleArgs {
    #[arg(long)]
    staging: bool,
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    identity: IdentityArgs,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    trust: TrustArgs,
    /// A file, or `sha256:<hex>`.
    file: String,
}

/// `sign-bundle`: keyless, with the given token, on the newest log the signing config lists.
pub fn sign_bundle(a: SignBundleArgs) -> Result<()> {
    let data = read(&a.file)?;
    let token = TokenArgs {
        identity_token: Some(a.identity_token),
        sign_in: Default::default(),
    };
    let (signer, svc) = signer(None, &token, &a.trust, sign::REKOR_VERSIONS)?;
    let signed = if a.in_toto {
        sign::sign_dsse(&signer, IN_TOTO_PAYLOAD_TYPE, &data, &svc.target())?
    } else {
        sign::sign_blob(&signer, &data, &svc.target())?
    };
    write_bundle(&a.bundle, &signed.bundle)
}

/// `verify-bundle`: a bundle for a file or a digest.
pub fn verify_bundle(a: VerifyBundleArgs) -> Result<()> {
    let data;
    let artifact = if let Some(h) = a.file.strip_prefix("sha256:") {
        Artifact::Digest {
            algorithm: DigestAlgorithm::Sha256,
            digest: hex::decode(h).context("sha256:<hex>")?,
        }
    } else {
        data = read(Path::new(&a.file))?;
        Artifact::Bytes(&data)
    };
    let b = load_bundle(&a.bundle)?;
    // In-toto bundles are checked against their subjects; a file that is the statement itself is not a subject.
    let artifact = match (&b.dsse_envelope, &artifact) {
        (Some(env), Artifact::Bytes(d)) if env.payload == *d => Artifact::None,
        _ => artifact,
    };
    let v = verify_with(
        &b,
        &artifact,
        &a.identity.policy()?,
        &a.trust,
        &Default::default(),
    )?;
    report(&v, a.output);
    Ok(())
}
