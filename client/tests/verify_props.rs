//! Properties of the bundle verifier over arbitrary input: it never panics, and nothing but the
//! genuine bundle (however re-encoded), the genuine trusted root and the genuine artifact
//! together verify. Fixtures: a Rekor v2 + RFC 3161 bundle and a Rekor v1 bundle from a Sigil
//! deployment (client/tests/fixtures).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use sigil::verify::{Artifact, Options, verify_bundle};
use sigil_core::bundle::Bundle;
use sigil_core::trust::TrustedRoot;

mod common;
use common::{fixture, policy};

/// Whether the bytes given as bundle, trusted root and artifact verify.
fn verifies(bundle: &[u8], root: &[u8], artifact: &[u8]) -> bool {
    let (Ok(b), Ok(r)) = (
        Bundle::from_json(bundle),
        serde_json::from_slice::<TrustedRoot>(root),
    ) else {
        return false;
    };
    verify_bundle(
        &b,
        &Artifact::Bytes(artifact),
        &r,
        &policy(),
        &Options::default(),
    )
    .is_ok()
}

/// One edit of a byte string: flip bits, overwrite, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(p, m)| Edit::Flip(p, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
    ]
}

fn apply(data: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut d = data.to_vec();
    for e in edits {
        let len = d.len().max(1);
        match *e {
            Edit::Flip(p, m) => {
                if let Some(b) = d.get_mut(p % len) {
                    *b ^= m;
                }
            }
            Edit::Set(p, v) => {
                if let Some(b) = d.get_mut(p % len) {
                    *b = v;
                }
            }
            Edit::Insert(p, v) => d.insert(p % (d.len() + 1), v),
            Edit::Delete(p, n) => {
                let start = p % len;
                let end = (start + n).min(d.len());
                if start < end {
                    d.drain(start..end);
                }
            }
        }
    }
    d
}

const BUNDLES: [&str; 2] = ["v2-tsa.sigstore.json", "v1.sigstore.json"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let root = fixture("trusted_root.json");
        let artifact = fixture("artifact.txt");
        prop_assert!(!verifies(&bytes, &root, &artifact), "arbitrary bytes verified as a bundle");
        for name in BUNDLES {
            let bundle = fixture(name);
            prop_assert!(!verifies(&bundle, &bytes, &artifact), "arbitrary bytes verified as the trusted root");
            if bytes != artifact {
                prop_assert!(!verifies(&bundle, &root, &bytes), "another artifact verified");
            }
        }
    }

    #[test]
    fn an_edited_bundle_verifies_only_if_it_still_says_the_same(
        which in 0usize..2,
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let genuine = fixture(BUNDLES[which]);
        let mutant = apply(&genuine, &edits);
        let (root, artifact) = (fixture("trusted_root.json"), fixture("artifact.txt"));
        if verifies(&mutant, &root, &artifact) {
            // Whitespace, escapes and base64 spellings may change; the content may not.
            prop_assert!(
                Bundle::from_json(&mutant).ok() == Bundle::from_json(&genuine).ok(),
                "an edited bundle with other content verified ({}): {:?}", BUNDLES[which], edits
            );
        }
    }

    #[test]
    fn an_edited_trusted_root_verifies_only_with_the_genuine_keys(
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let genuine: TrustedRoot = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
        let mutant_bytes = apply(&fixture("trusted_root.json"), &edits);
        for name in BUNDLES {
            let bundle = fixture(name);
            if !verifies(&bundle, &mutant_bytes, &fixture("artifact.txt")) {
                continue;
            }
            // An edit to a field this bundle does not use may keep it verifying; the log key,
            // CA chain and CT log key it was checked with must then be the genuine ones.
            let mutant: TrustedRoot = serde_json::from_slice(&mutant_bytes).unwrap();
            let b = Bundle::from_json(&bundle).unwrap();
            let log_id = &b.verification_material.tlog_entries[0].log_id.key_id;
            let key_of = |r: &TrustedRoot| {
                r.tlogs
                    .iter()
                    .filter(|l| &l.log_id.key_id == log_id)
                    .map(|l| l.public_key.raw_bytes.clone())
                    .collect::<Vec<_>>()
            };
            prop_assert!(key_of(&mutant).iter().all(|k| key_of(&genuine).contains(k)),
                "{name} verified with an edited log key: {:?}", edits);
            // The anchor (last certificate) is trusted as listed, its self-signature unchecked:
            // what trust derives from is its name, key and validity.
            let chains = |r: &TrustedRoot| {
                r.certificate_authorities
                    .iter()
                    .map(|c| {
                        let certs = &c.cert_chain.certificates;
                        let n = certs.len().saturating_sub(1);
                        let mut v: Vec<Vec<u8>> =
                            certs[..n].iter().map(|c| c.raw_bytes.clone()).collect();
                        if let Some(last) = certs.last() {
                            v.push(anchor_tbs(&last.raw_bytes));
                        }
                        v
                    })
                    .collect::<Vec<_>>()
            };
            prop_assert!(chains(&mutant).iter().any(|c| chains(&genuine).contains(c)),
                "{name} verified with no genuine CA chain: {:?}", edits);
            let ct = |r: &TrustedRoot| {
                r.ctlogs.iter().map(|c| c.public_key.raw_bytes.clone()).collect::<Vec<_>>()
            };
            prop_assert!(ct(&mutant).iter().any(|c| ct(&genuine).contains(c)),
                "{name} verified with no genuine CT log key: {:?}", edits);
        }
    }
}

/// An anchor's subject, key and validity as DER (or its bytes, if it does not parse): a serial
/// number or an unused field may change without changing whom it trusts.
fn anchor_tbs(der: &[u8]) -> Vec<u8> {
    use x509_cert::der::{Decode, Encode};
    x509_cert::Certificate::from_der(der)
        .ok()
        .and_then(|c| {
            let t = c.tbs_certificate;
            let mut v = t.subject.to_der().ok()?;
            v.extend(t.subject_public_key_info.to_der().ok()?);
            v.extend(t.validity.to_der().ok()?);
            Some(v)
        })
        .unwrap_or_else(|| der.to_vec())
}
