//! Offline verification of real public-good and staging Sigstore bundles with the public
//! trusted roots, plus tampering that each check must catch.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil::verify::{
    Artifact, CertificatePolicy, Claim, Options, Policy, StringMatcher, VerifyError, verify_bundle,
};
use sigil_core::bundle::Bundle;
use sigil_core::trust::TrustedRoot;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../core/tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn root(name: &str) -> TrustedRoot {
    TrustedRoot::from_json(&data(name)).unwrap()
}

const GH_ID: &str =
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";
const GH_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn gh_policy() -> Policy {
    Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::Exact(GH_ID.into())),
        issuer: Some(StringMatcher::Exact(GH_ISSUER.into())),
        claims: vec![(
            Claim::GithubWorkflowRepository,
            "trailofbits/rfc8785.py".into(),
        )],
    })
}

fn whl() -> (Bundle, Vec<u8>) {
    let b = Bundle::from_json(&data("rfc8785-0.1.2-py3-none-any.whl.sigstore.json")).unwrap();
    (b, data("rfc8785-0.1.2-py3-none-any.whl"))
}

#[test]
fn public_good_github_bundle_verifies_offline() {
    let (b, file) = whl();
    let v = verify_bundle(
        &b,
        &Artifact::Bytes(&file),
        &root("trusted_root.public.json"),
        &gh_policy(),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(v.signing_time, 1_710_888_076);
    assert_eq!(v.tlog_entries[0].log_index, 79_605_083);
    assert!(v.tlog_entries[0].inclusion_proof && v.tlog_entries[0].set);
    let id = v.certificate.unwrap();
    assert_eq!(id.issuer.as_deref(), Some(GH_ISSUER));
    assert_eq!(id.subject_alternative_names, vec![GH_ID.to_string()]);
}

#[test]
fn staging_v03_and_v01_bundles_verify() {
    let r = root("trusted_root.staging.json");
    let b = Bundle::from_json(&data("bundle_v3.txt.sigstore.json")).unwrap();
    let policy = Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::regex("@yossarian\\.net$").unwrap()),
        issuer: Some(StringMatcher::Exact(
            "https://github.com/login/oauth".into(),
        )),
        claims: vec![],
    });
    verify_bundle(
        &b,
        &Artifact::Bytes(&data("bundle_v3.txt")),
        &r,
        &policy,
        &Options::default(),
    )
    .unwrap();
    let b1 = Bundle::from_json(&data("bundle.txt.sigstore.json")).unwrap();
    let any = Policy::Certificate(CertificatePolicy::default());
    verify_bundle(
        &b1,
        &Artifact::Bytes(&data("bundle.txt")),
        &r,
        &any,
        &Options::default(),
    )
    .unwrap();
}

#[test]
fn npm_provenance_dsse_intoto_verifies_with_set_only() {
    let b = Bundle::from_json(&data("npm-provenance.sigstore.json")).unwrap();
    let policy = Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::regex("^https://github.com/sigstore/sigstore-js/").unwrap()),
        issuer: Some(StringMatcher::Exact(GH_ISSUER.into())),
        claims: vec![],
    });
    let v = verify_bundle(
        &b,
        &Artifact::None,
        &root("trusted_root.public.json"),
        &policy,
        &Options::default(),
    )
    .unwrap();
    assert!(v.tlog_entries[0].set && !v.tlog_entries[0].inclusion_proof);
    assert_eq!(
        v.statement.unwrap()["subject"][0]["name"],
        "pkg:npm/sigstore@1.3.0"
    );
}

fn expect_err(b: &Bundle, file: &[u8], r: &TrustedRoot, p: &Policy) -> VerifyError {
    verify_bundle(b, &Artifact::Bytes(file), r, p, &Options::default())
        .expect_err("verification must fail")
}

#[test]
fn tampering_is_caught_by_the_right_check() {
    let r = root("trusted_root.public.json");
    let (b, file) = whl();

    let mut modified = file.clone();
    modified[100] ^= 1;
    let e = expect_err(&b, &modified, &r, &gh_policy());
    assert!(matches!(e, VerifyError::DigestMismatch { .. }), "{e}");

    let wrong_id = Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::Exact("someone@example.com".into())),
        issuer: None,
        claims: vec![],
    });
    let e = expect_err(&b, &file, &r, &wrong_id);
    assert!(matches!(e, VerifyError::IdentityMismatch { .. }), "{e}");
    assert!(e.to_string().contains("someone@example.com") && e.to_string().contains(GH_ID));

    let wrong_issuer = Policy::Certificate(CertificatePolicy {
        identity: None,
        issuer: Some(StringMatcher::Exact("https://accounts.google.com".into())),
        claims: vec![],
    });
    let e = expect_err(&b, &file, &r, &wrong_issuer);
    assert!(matches!(e, VerifyError::IssuerMismatch { .. }), "{e}");

    let mut t = b.clone();
    t.verification_material.tlog_entries[0]
        .inclusion_proof
        .as_mut()
        .unwrap()
        .hashes[0][0] ^= 1;
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(matches!(e, VerifyError::InclusionProof(_)), "{e}");

    let mut t = b.clone();
    t.verification_material.tlog_entries[0]
        .inclusion_promise
        .as_mut()
        .unwrap()
        .signed_entry_timestamp[10] ^= 1;
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(matches!(e, VerifyError::Set(_)), "{e}");

    let mut t = b.clone();
    t.verification_material.tlog_entries[0].integrated_time += 1;
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(matches!(e, VerifyError::Set(_)), "{e}");

    let mut t = b.clone();
    let cp = t.verification_material.tlog_entries[0]
        .inclusion_proof
        .as_mut()
        .unwrap()
        .checkpoint
        .as_mut()
        .unwrap();
    cp.envelope = cp.envelope.replacen("\n", "\n1", 1);
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(matches!(e, VerifyError::Checkpoint(_)), "{e}");

    let mut t = b.clone();
    let ms = t.message_signature.as_mut().unwrap();
    ms.signature[20] ^= 1;
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(
        matches!(e, VerifyError::BodyMismatch { ref field, .. } if field == "spec.signature.content"),
        "{e}"
    );

    let mut no_ca = r.clone();
    no_ca.certificate_authorities.clear();
    let e = expect_err(&b, &file, &no_ca, &gh_policy());
    assert!(matches!(e, VerifyError::UntrustedCertificate { .. }), "{e}");

    let mut no_ct = r.clone();
    no_ct.ctlogs.clear();
    let e = expect_err(&b, &file, &no_ct, &gh_policy());
    assert!(matches!(e, VerifyError::Sct(_)), "{e}");

    let mut no_tlog = r.clone();
    no_tlog.tlogs.clear();
    let e = expect_err(&b, &file, &no_tlog, &gh_policy());
    assert!(matches!(e, VerifyError::UnknownLog(_)), "{e}");

    // A certificate byte flipped inside the signature breaks the chain.
    let mut t = b.clone();
    let chain = t
        .verification_material
        .x509_certificate_chain
        .as_mut()
        .unwrap();
    let n = chain.certificates[0].raw_bytes.len();
    chain.certificates[0].raw_bytes[n - 5] ^= 1;
    let e = expect_err(&t, &file, &r, &gh_policy());
    assert!(matches!(e, VerifyError::UntrustedCertificate { .. }), "{e}");
    assert!(e.to_string().contains("sigstore-intermediate"), "{e}");
}

#[test]
fn rfc3161_timestamp_outside_the_tsa_validity_is_refused() {
    let cfg =
        sigil_core::trust::ClientTrustConfig::from_json(&data("tsa_trust_config.json")).unwrap();
    let b = Bundle::from_json(&data("tsa_bundle.txt.sigstore.json")).unwrap();
    let file = data("tsa_bundle.txt");
    let any = Policy::Certificate(CertificatePolicy::default());
    // The timestamp (2024-10-31) predates the TSA's listed validity (from 2024-11-07).
    let e = verify_bundle(
        &b,
        &Artifact::Bytes(&file),
        &cfg.trusted_root,
        &any,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::Timestamp(_)), "{e}");
    assert!(e.to_string().contains("not valid at 2024-10-31"), "{e}");
    let mut no_tsa = cfg.trusted_root.clone();
    no_tsa.timestamp_authorities.clear();
    let e = verify_bundle(
        &b,
        &Artifact::Bytes(&file),
        &no_tsa,
        &any,
        &Options::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("the trusted root lists none"), "{e}");
}
