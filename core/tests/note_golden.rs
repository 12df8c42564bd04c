//! Real signed notes and checkpoints from public logs: parsed, verified, re-serialised byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sigil_core::checkpoint::{Checkpoint, CheckpointError, open_checkpoint, rekor_v1_origin};
use sigil_core::crypto::PublicKey;
use sigil_core::note::{
    CosignatureV1Key, EcdsaNoteKey, Ed25519NoteKey, Note, NoteError, NoteSigner, NoteVerifier,
    spki_key_id, typed_key_hash,
};

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn golden_str(name: &str) -> String {
    String::from_utf8(golden(name)).unwrap()
}

fn sumdb_key() -> Ed25519NoteKey {
    Ed25519NoteKey::from_vkey(golden_str("sumdb.vkey").trim()).unwrap()
}

#[test]
fn sum_golang_org_checkpoints_verify_byte_exact() {
    let key = sumdb_key();
    assert_eq!(key.name(), "sum.golang.org");
    assert_eq!(NoteVerifier::key_id(&key), 0x033d_e0ae);
    // The verifier key string round-trips exactly as Go publishes it.
    assert_eq!(key.vkey(), golden_str("sumdb.vkey").trim());

    for (file, size, root_b64) in [
        (
            "sumdb-31700353.note",
            31_700_353u64,
            "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=",
        ),
        (
            "sumdb-65209736.note",
            65_209_736,
            "5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=",
        ),
        (
            "sumdb-65664258.note",
            65_664_258,
            "WVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=",
        ),
    ] {
        let bytes = golden(file);
        let (cp, note) = open_checkpoint(&bytes, &[&key]).unwrap();
        assert_eq!(cp.origin, "go.sum database tree", "{file}");
        assert_eq!(cp.size, size, "{file}");
        assert_eq!(
            cp.root_hash.to_vec(),
            B64.decode(root_b64).unwrap(),
            "{file}"
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(note.to_bytes(), bytes, "{file} re-serialises byte for byte");
        assert_eq!(
            cp.to_text(),
            note.text,
            "{file} checkpoint text round-trips"
        );
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].key_id, 0x033d_e0ae);
        assert_eq!(note.signatures[0].signature.len(), 64);

        // One changed digit of the size breaks the signature.
        let bent = String::from_utf8(bytes.clone()).unwrap().replacen(
            &size.to_string(),
            &(size + 1).to_string(),
            1,
        );
        assert_eq!(
            open_checkpoint(bent.as_bytes(), &[&key]).unwrap_err(),
            CheckpointError::Note(NoteError::InvalidSignature {
                name: "sum.golang.org".into(),
                key_id: 0x033d_e0ae
            })
        );
    }
}

fn rekor_key(pem: &str, name: &str) -> EcdsaNoteKey {
    let pk = PublicKey::from_pem(&golden_str(pem)).unwrap();
    EcdsaNoteKey::verifier(name, pk).unwrap()
}

#[test]
fn rekor_v1_checkpoints_verify_byte_exact() {
    let prod = rekor_key("rekor-sigstore-dev.pem", "rekor.sigstore.dev");
    let staging = rekor_key("rekor-sigstage-dev.pem", "rekor.sigstage.dev");
    // The key hint is the first four bytes of the log ID (SHA-256 of the SPKI DER) that the
    // trusted root publishes.
    assert_eq!(
        NoteVerifier::key_id(&prod).to_be_bytes().to_vec(),
        B64.decode("wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=")
            .unwrap()[..4]
    );
    assert_eq!(
        NoteVerifier::key_id(&staging),
        spki_key_id(staging.public_key().spki_der())
    );
    assert_eq!(
        staging.public_key().key_id().to_vec(),
        B64.decode("0y8wo8MtY5wrdiIFohx7sHeI5oKDpK5vQhGHI6G+pJY=")
            .unwrap()
    );

    type Case<'a> = (&'a str, &'a EcdsaNoteKey, &'a str, i64, u64, Vec<&'a str>);
    let cases: [Case; 3] = [
        (
            "rekor-sigstore-dev-75441653.note",
            &prod,
            "rekor.sigstore.dev",
            2_605_736_670_972_794_746,
            75_441_653,
            vec![],
        ),
        (
            "rekor-sigstage-dev-7376159.note",
            &staging,
            "rekor.sigstage.dev",
            8_050_909_264_565_447_525,
            7_376_159,
            vec!["Timestamp: 1682468469199678948"],
        ),
        (
            "rekor-sigstage-dev-25901138.note",
            &staging,
            "rekor.sigstage.dev",
            8_050_909_264_565_447_525,
            25_901_138,
            vec![],
        ),
    ];
    for (file, key, host, tree_id, size, ext) in cases {
        let bytes = golden(file);
        let (cp, note) = open_checkpoint(&bytes, &[key]).unwrap();
        assert_eq!(cp.origin, rekor_v1_origin(host, tree_id), "{file}");
        assert_eq!(cp.size, size, "{file}");
        assert_eq!(cp.extensions, ext, "{file}");
        assert_eq!(note.to_bytes(), bytes, "{file} re-serialises byte for byte");
        // sigstore-python wants exactly one blank line.
        assert_eq!(
            String::from_utf8(bytes.clone())
                .unwrap()
                .matches("\n\n")
                .count(),
            1
        );
        // The other instance's key does not vouch for it.
        let other = if std::ptr::eq(key, &prod) {
            &staging
        } else {
            &prod
        };
        assert_eq!(
            open_checkpoint(&bytes, &[other]).unwrap_err(),
            CheckpointError::Note(NoteError::NoVerifiedSignature)
        );
    }
}

#[test]
fn go_note_test_vector_two_signers() {
    let bytes = golden("go-note-two-signers.note");
    let vkeys = golden_str("go-note.vkeys");
    let keys: Vec<Ed25519NoteKey> = vkeys
        .lines()
        .map(|l| Ed25519NoteKey::from_vkey(l).unwrap())
        .collect();
    let note = Note::parse(&bytes).unwrap();
    assert_eq!(note.to_bytes(), bytes);
    assert_eq!(note.signatures.len(), 2);

    // Each signer alone verifies its own signature and ignores the other.
    let peter = note.verify(&[&keys[0]]).unwrap();
    assert_eq!(peter.len(), 1);
    assert_eq!(peter[0].name, "PeterNeumann");
    assert_eq!(peter[0].key_id, 0xc74f_20a3);
    let both = note.verify(&[&keys[0], &keys[1]]).unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[1].name, "EnochRoot");
    assert_eq!(
        note.verify(&[]).unwrap_err(),
        NoteError::NoVerifiedSignature
    );

    // Signing the same text with the published test signing key reproduces the exact bytes
    // (Ed25519 is deterministic).
    let signer = Ed25519NoteKey::from_skey(golden_str("go-note-peter.skey").trim()).unwrap();
    assert_eq!(
        signer.skey().unwrap(),
        golden_str("go-note-peter.skey").trim()
    );
    assert_eq!(signer.vkey(), vkeys.lines().next().unwrap());
    let signed = Note::sign(&note.text, &[&signer]).unwrap();
    let want: Vec<u8> = {
        let s = String::from_utf8(bytes.clone()).unwrap();
        let cut = s.find("\u{2014} EnochRoot").unwrap();
        s.as_bytes()[..cut].to_vec()
    };
    assert_eq!(signed.to_bytes(), want);
    // A signer's name and id match its verifier's.
    assert_eq!(NoteSigner::key_id(&signer), NoteVerifier::key_id(&keys[0]));
}

#[test]
fn golden_checkpoint_text_parses_alone() {
    let note = Note::parse(&golden("rekor-sigstage-dev-7376159.note")).unwrap();
    let cp = Checkpoint::parse(&note.text).unwrap();
    assert_eq!(cp.to_text(), note.text);
}

#[test]
fn rekor_v2_ed25519_checkpoints_verify_byte_exact() {
    let pk = PublicKey::from_pem(&golden_str("rekor-log2025-1.pem")).unwrap();
    let origin = "log2025-1.rekor.sigstore.dev";
    let key = Ed25519NoteKey::verifier(origin, pk.clone()).unwrap();
    // Rekor v2's log ID in the trusted root is the full C2SP Ed25519 key hash.
    assert_eq!(
        typed_key_hash(origin, 0x01, &pk.ed25519_bytes().unwrap()).to_vec(),
        B64.decode("zxGZFVvd0FEmjR8WrFwMdcAJ9vtaY/QXf44Y1wUeP6A=")
            .unwrap()
    );
    for (file, size) in [
        ("rekor-v2-log2025-1-412115.note", 412_115u64),
        ("rekor-v2-log2025-1-34356369.note", 34_356_369),
        ("rekor-v2-log2025-1-139911860-witnessed.note", 139_911_860),
    ] {
        let bytes = golden(file);
        let (cp, note) = open_checkpoint(&bytes, &[&key]).unwrap();
        assert_eq!(cp.origin, origin);
        assert_eq!(cp.size, size);
        assert_eq!(note.to_bytes(), bytes, "{file} re-serialises byte for byte");
    }
}

#[test]
fn real_witness_cosignature_verifies() {
    let bytes = golden("rekor-v2-log2025-1-139911860-witnessed.note");
    let witness = CosignatureV1Key::from_vkey(
        "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    )
    .unwrap();
    let log = Ed25519NoteKey::verifier(
        "log2025-1.rekor.sigstore.dev",
        PublicKey::from_pem(&golden_str("rekor-log2025-1.pem")).unwrap(),
    )
    .unwrap();
    let note = Note::parse(&bytes).unwrap();
    // The witness alone, the log alone, and both.
    let w = note.verify(&[&witness]).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].name, "witness.stagemole.eu");
    let ts = CosignatureV1Key::timestamp(w[0]).unwrap();
    assert!(ts > 1_700_000_000, "{ts}");
    assert_eq!(note.verify(&[&log, &witness]).unwrap().len(), 2);
    // The cosignature does not verify as a plain Ed25519 note signature, and a changed timestamp
    // breaks it.
    let mut bent = note.clone();
    bent.signatures[1].signature[7] ^= 1;
    assert!(matches!(
        bent.verify(&[&witness]),
        Err(NoteError::InvalidSignature { .. })
    ));
}
