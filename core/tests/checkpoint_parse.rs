//! Checkpoint text: strict parsing with typed errors, signing and opening.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_core::checkpoint::{
    Checkpoint, CheckpointError, open_checkpoint, rekor_v1_origin, sign_checkpoint,
};
use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, NoteError, NoteVerifier};

const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

fn cp(text: &str) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::parse(text)
}

#[test]
fn parses_the_spec_example() {
    let c = cp(&format!("example.com/behind-the-sofa\n20852163\n{ROOT}\n")).unwrap();
    assert_eq!(c.origin, "example.com/behind-the-sofa");
    assert_eq!(c.size, 20_852_163);
    assert!(c.extensions.is_empty());
    assert_eq!(
        c.to_text(),
        format!("example.com/behind-the-sofa\n20852163\n{ROOT}\n")
    );
    // Extension lines are kept in order.
    let c = cp(&format!("o\n0\n{ROOT}\next one\next two\n")).unwrap();
    assert_eq!(c.size, 0);
    assert_eq!(c.extensions, vec!["ext one", "ext two"]);
    assert_eq!(c.to_text(), format!("o\n0\n{ROOT}\next one\next two\n"));
    // The largest size.
    assert_eq!(
        cp(&format!("o\n18446744073709551615\n{ROOT}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
}

#[test]
fn size_errors() {
    assert_eq!(
        cp(&format!("o\n18446744073709551616\n{ROOT}\n")).unwrap_err(),
        CheckpointError::SizeOverflow("18446744073709551616".into())
    );
    assert_eq!(
        cp(&format!("o\n01\n{ROOT}\n")).unwrap_err(),
        CheckpointError::NonCanonicalSize("01".into())
    );
    assert_eq!(
        cp(&format!("o\n00\n{ROOT}\n")).unwrap_err(),
        CheckpointError::NonCanonicalSize("00".into())
    );
    for bad in ["", "-1", "+1", "1.0", " 1", "1e3", "0x10", "١"] {
        assert_eq!(
            cp(&format!("o\n{bad}\n{ROOT}\n")).unwrap_err(),
            CheckpointError::BadSize(bad.into()),
            "{bad:?}"
        );
    }
}

#[test]
fn root_hash_errors() {
    assert_eq!(
        cp("o\n1\nAAAA\n").unwrap_err(),
        CheckpointError::RootHashLength(3)
    );
    assert_eq!(
        cp("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").unwrap_err(),
        CheckpointError::RootHashLength(36)
    );
    assert_eq!(
        cp("o\n1\nnot base64!\n").unwrap_err(),
        CheckpointError::BadRootHash
    );
    // Unpadded base64 of 32 bytes is not the canonical form.
    assert_eq!(
        cp("o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n").unwrap_err(),
        CheckpointError::BadRootHash
    );
}

#[test]
fn structure_errors() {
    assert_eq!(
        cp(&format!("o\n1\n{ROOT}")).unwrap_err(),
        CheckpointError::MissingFinalNewline
    );
    assert_eq!(cp("o\n1\n").unwrap_err(), CheckpointError::TooFewLines);
    assert_eq!(cp("\n").unwrap_err(), CheckpointError::TooFewLines);
    assert_eq!(
        cp(&format!("\n1\n{ROOT}\n")).unwrap_err(),
        CheckpointError::EmptyOrigin
    );
    assert_eq!(
        cp(&format!("o\n1\n{ROOT}\n\n")).unwrap_err(),
        CheckpointError::EmptyExtension(0)
    );
    assert_eq!(
        cp(&format!("o\r\n1\n{ROOT}\n")).unwrap_err(),
        CheckpointError::ControlCharacter {
            byte: b'\r',
            offset: 1
        }
    );
}

#[test]
fn validate_refuses_unserialisable_checkpoints() {
    let good = Checkpoint {
        origin: "o".into(),
        size: 1,
        root_hash: [0; 32],
        extensions: vec![],
    };
    good.validate().unwrap();
    let mut c = good.clone();
    c.origin = String::new();
    assert_eq!(c.validate().unwrap_err(), CheckpointError::EmptyOrigin);
    let mut c = good.clone();
    c.origin = "a\nb".into();
    assert!(matches!(c.validate(), Err(CheckpointError::Newline { .. })));
    let mut c = good.clone();
    c.extensions = vec![String::new()];
    assert_eq!(
        c.validate().unwrap_err(),
        CheckpointError::EmptyExtension(0)
    );
    let mut c = good.clone();
    c.extensions = vec!["x\ty".into()];
    assert!(matches!(
        c.validate(),
        Err(CheckpointError::ControlCharacter { .. })
    ));
    let k =
        Ed25519NoteKey::signer("o", SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()).unwrap();
    assert!(sign_checkpoint(&c, &k).is_err());
}

#[test]
fn sign_and_open_rekor_style() {
    let sk = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let log_id = sk.public_key().key_id();
    let key = EcdsaNoteKey::signer("rekor.example.com", sk).unwrap();
    let c = Checkpoint {
        origin: rekor_v1_origin("rekor.example.com", 1_193_050_959_916_656_506),
        size: 12_345,
        root_hash: [7; 32],
        extensions: vec![],
    };
    assert_eq!(c.origin, "rekor.example.com - 1193050959916656506");
    let note = sign_checkpoint(&c, &key).unwrap();
    let bytes = note.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    // Exactly one blank line, and the key hint is the log ID's first four bytes (what
    // sigstore-python checks).
    assert_eq!(text.matches("\n\n").count(), 1);
    assert_eq!(note.signatures[0].key_id.to_be_bytes(), log_id[..4]);

    let (opened, n2) = open_checkpoint(&bytes, &[&key]).unwrap();
    assert_eq!(opened, c);
    assert_eq!(n2, note);

    // A different key does not open it; tampering is caught.
    let other = EcdsaNoteKey::verifier(
        "rekor.example.com",
        SigningKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .public_key(),
    )
    .unwrap();
    assert_eq!(
        open_checkpoint(&bytes, &[&other]).unwrap_err(),
        CheckpointError::Note(NoteError::NoVerifiedSignature)
    );
    let bent = text.replace("12345", "12346");
    assert_eq!(
        open_checkpoint(bent.as_bytes(), &[&key]).unwrap_err(),
        CheckpointError::Note(NoteError::InvalidSignature {
            name: "rekor.example.com".into(),
            key_id: NoteVerifier::key_id(&key)
        })
    );
}

#[test]
fn open_reports_checkpoint_errors_after_verification() {
    let k =
        Ed25519NoteKey::signer("o", SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()).unwrap();
    // A validly signed note whose text is not a checkpoint.
    let note = sigil_core::note::Note::sign("o\n01\nAAAA\n", &[&k]).unwrap();
    assert_eq!(
        open_checkpoint(&note.to_bytes(), &[&k]).unwrap_err(),
        CheckpointError::NonCanonicalSize("01".into())
    );
    // Checkpoint with a witness cosignature from an unknown key still opens.
    let c = Checkpoint {
        origin: "o".into(),
        size: 3,
        root_hash: [1; 32],
        extensions: vec![],
    };
    let w = Ed25519NoteKey::signer(
        "witness.example",
        SigningKey::generate(KeyAlgorithm::Ed25519).unwrap(),
    )
    .unwrap();
    let mut note = sign_checkpoint(&c, &k).unwrap();
    note.add_signature(&w).unwrap();
    let (opened, _) = open_checkpoint(&note.to_bytes(), &[&k]).unwrap();
    assert_eq!(opened, c);
    let (_, n) = open_checkpoint(&note.to_bytes(), &[&k, &w]).unwrap();
    assert_eq!(n.verify(&[&k, &w]).unwrap().len(), 2);
}
