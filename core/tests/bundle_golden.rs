//! Real public Sigstore bundles parse and re-serialise to semantically equal JSON.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use sigil_core::bundle::{Bundle, BundleVersion, Content, SigningMaterial};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

/// Parses, re-serialises, and compares as JSON values (field order and whitespace aside).
fn round_trip(name: &str) -> Bundle {
    let raw = data(name);
    let b = Bundle::from_json(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Protobuf-JSON treats an explicit null as an absent field.
    let original = strip_nulls(serde_json::from_slice(&raw).unwrap());
    let again: serde_json::Value = serde_json::from_str(&b.to_json().unwrap()).unwrap();
    assert!(
        original == again,
        "{name} changed on re-serialisation:\n{again:#}"
    );
    assert_eq!(
        Bundle::from_json(b.to_json().unwrap().as_bytes()).unwrap(),
        b
    );
    b
}

#[test]
fn v01_bundle_with_chain() {
    let b = round_trip("bundle.txt.sigstore.json");
    assert_eq!(b.version().unwrap(), BundleVersion::V01);
    assert!(matches!(
        b.signing_material().unwrap(),
        SigningMaterial::Certificate { .. }
    ));
    assert!(matches!(b.content().unwrap(), Content::MessageSignature(_)));
}

#[test]
fn v02_github_bundle() {
    let b = round_trip("rfc8785-0.1.2-py3-none-any.whl.sigstore.json");
    assert_eq!(b.version().unwrap(), BundleVersion::V02);
    let e = &b.verification_material.tlog_entries[0];
    assert_eq!(e.log_index, 79_605_083);
    assert_eq!(e.integrated_time, 1_710_888_076);
    assert_eq!(e.kind_version.kind, "hashedrekord");
    let p = e.inclusion_proof.as_ref().unwrap();
    assert_eq!(p.root_hash.len(), 32);
    assert!(p.hashes.iter().all(|h| h.len() == 32));
    assert!(
        p.checkpoint
            .as_ref()
            .unwrap()
            .envelope
            .contains("rekor.sigstore.dev")
    );
}

#[test]
fn v03_bundles() {
    for name in [
        "bundle_v3.txt.sigstore.json",
        "tsa_bundle.txt.sigstore.json",
    ] {
        let b = round_trip(name);
        assert_eq!(b.version().unwrap(), BundleVersion::V03);
        assert!(b.verification_material.certificate.is_some());
    }
    let tsa = round_trip("tsa_bundle.txt.sigstore.json");
    let ts = tsa
        .verification_material
        .timestamp_verification_data
        .unwrap();
    assert!(!ts.rfc3161_timestamps.is_empty());
}

#[test]
fn dsse_bundles() {
    let b = round_trip("npm-provenance.sigstore.json");
    let Content::Dsse(env) = b.content().unwrap() else {
        panic!("expected DSSE")
    };
    assert_eq!(env.payload_type, "application/vnd.in-toto+json");
    let pae = env.pae();
    assert!(pae.starts_with(b"DSSEv1 28 application/vnd.in-toto+json "));
    assert!(pae.ends_with(&env.payload));
    let k = round_trip("npm-publish.sigstore.json");
    assert!(matches!(
        k.signing_material().unwrap(),
        SigningMaterial::PublicKey { .. }
    ));
}
