//! The bundle verifier on arbitrary bundles: no panic, and no bundle other than the genuine one
//! (re-encoded as it may be) verifies for the fixture artifact. The first input byte picks the
//! mode: bytes as the bundle, or bytes as the trusted root for the genuine bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil::verify::{Artifact, CertificatePolicy, Options, Policy, StringMatcher, verify_bundle};
use sigil_core::bundle::Bundle;
use sigil_core::trust::TrustedRoot;

const BUNDLE: &[u8] = include_bytes!("../../client/tests/fixtures/v2-tsa.sigstore.json");
const ROOT: &[u8] = include_bytes!("../../client/tests/fixtures/trusted_root.json");
const ARTIFACT: &[u8] = include_bytes!("../../client/tests/fixtures/artifact.txt");
const IDENTITY: &str = include_str!("../../client/tests/fixtures/identity.txt");

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let genuine = Bundle::from_json(BUNDLE).ok();
    let (bundle, root) = if mode & 1 == 0 {
        (Bundle::from_json(rest), serde_json::from_slice::<TrustedRoot>(ROOT))
    } else {
        (Bundle::from_json(BUNDLE), serde_json::from_slice::<TrustedRoot>(rest))
    };
    let (Ok(bundle), Ok(root)) = (bundle, root) else {
        return;
    };
    let mut lines = IDENTITY.lines();
    let (Some(id), Some(iss)) = (lines.next(), lines.next()) else {
        return;
    };
    let policy = Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::Exact(id.to_owned())),
        issuer: Some(StringMatcher::Exact(iss.to_owned())),
        ..CertificatePolicy::default()
    });
    let ok = verify_bundle(&bundle, &Artifact::Bytes(ARTIFACT), &root, &policy, &Options::default()).is_ok();
    if ok && mode & 1 == 0 {
        assert_eq!(Some(&bundle), genuine.as_ref(), "a different bundle verified");
    }
});
