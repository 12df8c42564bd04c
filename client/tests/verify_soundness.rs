//! The verifier refuses what a present-but-wrong field says, even when other evidence is valid:
//! each case starts from a genuine bundle (fixtures signed by a Sigil deployment: Rekor v1 with a
//! SET and an inclusion proof, and Rekor v2 with an RFC 3161 timestamp) and changes one thing.

// Test code: a failed unwrap or index is a test failure with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil::verify::{Artifact, Options, verify_bundle};
use sigil_core::bundle::Bundle;
use sigil_core::trust::TrustedRoot;

mod common;
use common::{fixture, policy};

/// Verifies `bundle` (JSON) for the fixture artifact; the error text on failure.
fn verify(bundle: &Value) -> Result<(), String> {
    let b = Bundle::from_json(bundle.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let root: TrustedRoot = serde_json::from_slice(&fixture("trusted_root.json")).unwrap();
    verify_bundle(
        &b,
        &Artifact::Bytes(&fixture("artifact.txt")),
        &root,
        &policy(),
        &Options::default(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

fn v1() -> Value {
    serde_json::from_slice(&fixture("v1.sigstore.json")).unwrap()
}

fn v2() -> Value {
    serde_json::from_slice(&fixture("v2-tsa.sigstore.json")).unwrap()
}

fn refused(b: &Value, wanted: &[&str]) {
    let err = verify(b).expect_err("the changed bundle verified");
    for w in wanted {
        assert!(err.contains(w), "error {err:?} lacks {w:?}");
    }
}

#[test]
fn genuine_fixtures_verify() {
    verify(&v1()).unwrap();
    verify(&v2()).unwrap();
}

#[test]
fn a_proof_from_another_position_without_checkpoint_fails_despite_a_valid_set() {
    let mut b = v1();
    let e = &mut b["verificationMaterial"]["tlogEntries"][0];
    let p = e["inclusionProof"].as_object_mut().unwrap();
    p.remove("checkpoint");
    // An old proof: another leaf's position and path in a smaller tree.
    p.insert("logIndex".into(), json!("0"));
    p.insert("treeSize".into(), json!("1"));
    p.insert("hashes".into(), json!([]));
    p.insert("rootHash".into(), json!(STANDARD.encode([7u8; 32])));
    refused(&b, &["inclusion proof", "logIndex"]);
}

#[test]
fn a_proof_whose_hashes_do_not_lead_to_its_root_fails_even_with_a_set() {
    let mut b = v1();
    let p = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
    p.as_object_mut().unwrap().remove("checkpoint");
    p["rootHash"] = json!(STANDARD.encode([9u8; 32]));
    refused(&b, &["inclusion proof", "rootHash"]);
}

#[test]
fn a_correct_proof_without_its_checkpoint_is_refused() {
    let mut b = v1();
    b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        .as_object_mut()
        .unwrap()
        .remove("checkpoint");
    refused(&b, &["checkpoint"]);
}

#[test]
fn a_proof_for_another_index_than_the_entry_is_refused() {
    for b in [v1(), v2()] {
        let mut b = b;
        let e = &mut b["verificationMaterial"]["tlogEntries"][0];
        let idx: i64 = e["logIndex"].as_str().unwrap().parse().unwrap();
        e["logIndex"] = json!((idx + 1).to_string());
        refused(&b, &["logIndex"]);
    }
}

#[test]
fn a_checkpoint_for_another_tree_is_refused() {
    let mut b = v1();
    let p = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
    let size: i64 = p["treeSize"].as_str().unwrap().parse().unwrap();
    p["treeSize"] = json!((size + 1).to_string());
    assert!(verify(&b).is_err());
}

#[test]
fn an_unsigned_integrated_time_is_refused() {
    let mut b = v2();
    b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = json!("1700000000");
    refused(&b, &["integratedTime", "SET"]);
}

#[test]
fn a_second_tlog_entry_is_refused() {
    let mut b = v1();
    let e = b["verificationMaterial"]["tlogEntries"][0].clone();
    b["verificationMaterial"]["tlogEntries"]
        .as_array_mut()
        .unwrap()
        .push(e);
    refused(&b, &["2 tlog entries"]);
}

#[test]
fn a_duplicated_timestamp_is_refused() {
    let mut b = v2();
    let ts = b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0].clone();
    b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array_mut()
        .unwrap()
        .push(ts);
    refused(&b, &["duplicate"]);
}

#[test]
fn unknown_fields_are_refused_not_ignored() {
    for path in [
        "",
        "/verificationMaterial",
        "/verificationMaterial/tlogEntries/0",
        "/verificationMaterial/tlogEntries/0/inclusionProof",
        "/messageSignature",
    ] {
        let mut b = v2();
        b.pointer_mut(path)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("unexpected".into(), json!("x"));
        refused(&b, &["unknown field"]);
    }
}

#[test]
fn an_unsupported_entry_kind_is_refused() {
    let mut b = v1();
    b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"] = json!("0.0.9");
    refused(&b, &["0.0.9"]);
}

#[test]
fn a_v2_bundle_without_timestamp_or_set_is_refused() {
    let mut b = v2();
    b["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("timestampVerificationData");
    assert!(verify(&b).is_err());
}

#[test]
fn a_timestamp_over_something_else_is_refused() {
    let mut b = v2();
    let sig = b["messageSignature"]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut raw = STANDARD.decode(sig).unwrap();
    raw[10] ^= 1;
    b["messageSignature"]["signature"] = json!(STANDARD.encode(raw));
    assert!(verify(&b).is_err());
}
