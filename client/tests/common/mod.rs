//! Fixtures shared by the verifier tests: a Rekor v2 + RFC 3161 bundle and a Rekor v1 bundle
//! signed by a Sigil deployment, its trusted root, the artifact and the signer's identity.

use sigil::verify::{CertificatePolicy, Policy, StringMatcher};

/// The bytes of `client/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The identity policy the fixtures were signed under (`identity.txt`: SAN, then issuer).
pub fn policy() -> Policy {
    let id = String::from_utf8(fixture("identity.txt")).unwrap();
    let mut lines = id.lines();
    Policy::Certificate(CertificatePolicy {
        identity: Some(StringMatcher::Exact(lines.next().unwrap().to_owned())),
        issuer: Some(StringMatcher::Exact(lines.next().unwrap().to_owned())),
        ..CertificatePolicy::default()
    })
}
