//! Property tests: parsers never panic on arbitrary input; sign → serialise → parse → verify
//! round-trips for Ed25519 and ECDSA P-256 notes and checkpoints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use proptest::prelude::*;
use sigil_core::checkpoint::{Checkpoint, open_checkpoint, sign_checkpoint};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_core::note::{EcdsaNoteKey, Ed25519NoteKey, Note, NoteSigner, NoteVerifier};

fn ed_key() -> &'static Ed25519NoteKey {
    static K: OnceLock<Ed25519NoteKey> = OnceLock::new();
    K.get_or_init(|| {
        Ed25519NoteKey::signer(
            "prop.example/log",
            SigningKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        )
        .unwrap()
    })
}

fn ec_key() -> &'static EcdsaNoteKey {
    static K: OnceLock<EcdsaNoteKey> = OnceLock::new();
    K.get_or_init(|| {
        EcdsaNoteKey::signer(
            "prop.example",
            SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        )
        .unwrap()
    })
}

/// Note-like inputs: mostly the characters that matter to the grammar.
fn notey() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\n".to_string()),
            Just("\u{2014} ".to_string()),
            Just(" ".to_string()),
            Just("+".to_string()),
            Just("=".to_string()),
            "[A-Za-z0-9/+]{1,12}",
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

/// Valid note text: lines of printable characters, each ending in a newline.
fn note_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[^\\x00-\\x1f\\x7f]{0,30}", 1..6)
        .prop_map(|lines| lines.iter().map(|l| format!("{l}\n")).collect::<String>())
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        "[^\\x00-\\x1f\\x7f]{1,40}",
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[^\\x00-\\x1f\\x7f]{1,30}", 0..3),
    )
        .prop_map(|(origin, size, root_hash, extensions)| Checkpoint {
            origin,
            size,
            root_hash,
            extensions,
        })
}

proptest! {
    #[test]
    fn note_parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(n) = Note::parse(&bytes) {
            // Whatever parses re-serialises to the same bytes.
            prop_assert_eq!(n.to_bytes(), bytes);
        }
    }

    #[test]
    fn note_parse_never_panics_on_notey_text(s in notey()) {
        if let Ok(n) = Note::parse(s.as_bytes()) {
            prop_assert_eq!(n.to_bytes(), s.as_bytes().to_vec());
            let _ = n.verify(&[ed_key(), ec_key()]);
        }
    }

    #[test]
    fn checkpoint_parse_never_panics(s in notey()) {
        if let Ok(c) = Checkpoint::parse(&s) {
            prop_assert_eq!(c.to_text(), s);
        }
    }

    #[test]
    fn checkpoint_parse_never_panics_on_near_checkpoints(
        origin in "[^\\n]{0,10}", size in "[0-9+\\-]{0,22}", root in "[A-Za-z0-9+/=]{0,50}",
        tail in notey(),
    ) {
        let s = format!("{origin}\n{size}\n{root}\n{tail}");
        if let Ok(c) = Checkpoint::parse(&s) {
            prop_assert_eq!(c.to_text(), s);
        }
    }

    #[test]
    fn public_key_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), s in notey()) {
        let _ = PublicKey::from_spki_der(&bytes);
        let _ = PublicKey::from_pem(&s);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{s}\n-----END PUBLIC KEY-----\n");
        let _ = PublicKey::from_pem(&pem);
        let _ = SigningKey::from_pkcs8_der(&bytes);
        let _ = SigningKey::from_encrypted_pkcs8_der(&bytes, "x");
        let _ = Ed25519NoteKey::from_vkey(&s);
    }

    #[test]
    fn spki_mutations_never_panic(i in 0usize..91, x in 1u8..=255, cut in 0usize..92) {
        // Mutate a real P-256 SPKI: every single-byte change and truncation is handled.
        let der = ec_key().public_key().spki_der().to_vec();
        let mut m = der.clone();
        let i = i % m.len();
        m[i] ^= x;
        let _ = PublicKey::from_spki_der(&m);
        let _ = PublicKey::from_spki_der(&der[..cut.min(der.len())]);
    }

    #[test]
    fn ed25519_note_round_trip(text in note_text()) {
        let k = ed_key();
        let note = Note::sign(&text, &[k]).unwrap();
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &note);
        let ok = parsed.verify(&[k]).unwrap();
        prop_assert_eq!(ok.len(), 1);
        prop_assert_eq!(ok[0].key_id, NoteSigner::key_id(k));
    }

    #[test]
    fn ecdsa_p256_note_round_trip(text in note_text()) {
        let k = ec_key();
        let note = Note::sign(&text, &[k]).unwrap();
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        prop_assert_eq!(&parsed, &note);
        prop_assert_eq!(parsed.verify(&[k]).unwrap().len(), 1);
        // Both keys together: each verifies its own signature.
        let mut both = parsed.clone();
        both.add_signature(ed_key()).unwrap();
        let both = Note::parse(&both.to_bytes()).unwrap();
        prop_assert_eq!(both.verify(&[ed_key() as &dyn NoteVerifier, k]).unwrap().len(), 2);
    }

    #[test]
    fn checkpoint_round_trip(cp in checkpoint()) {
        for signer in [ed_key() as &dyn NoteSigner, ec_key()] {
            let note = sign_checkpoint(&cp, signer).unwrap();
            let bytes = note.to_bytes();
            let (opened, n) = open_checkpoint(&bytes, &[ed_key() as &dyn NoteVerifier, ec_key()]).unwrap();
            prop_assert_eq!(&opened, &cp);
            prop_assert_eq!(n.to_bytes(), bytes.clone());
            // Exactly one blank line when there are no empty lines in the text.
            prop_assert_eq!(String::from_utf8(bytes).unwrap().matches("\n\n").count(), 1);
        }
    }
}
