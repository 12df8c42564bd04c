//! Signed notes and checkpoints: parsing never panics, whatever parses re-serialises to the same
//! bytes, and verification with real keys on arbitrary notes never panics either.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_core::checkpoint::{Checkpoint, open_checkpoint};
use sigil_core::crypto::{KeyAlgorithm, PublicKey, SigningKey};
use sigil_core::note::{CosignatureV1Key, EcdsaNoteKey, Ed25519NoteKey, Note, NoteVerifier};

struct Keys {
    ed: Ed25519NoteKey,
    ec: EcdsaNoteKey,
    cosig: CosignatureV1Key,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys {
        // The Go checksum database key, so notes with its name and key id reach verification.
        ed: Ed25519NoteKey::from_vkey(
            "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
        )
        .expect("valid vkey"),
        ec: EcdsaNoteKey::signer(
            "log.example",
            SigningKey::generate(KeyAlgorithm::EcdsaP256).expect("key generation"),
        )
        .expect("valid name"),
        cosig: CosignatureV1Key::signer(
            "witness.example",
            SigningKey::generate(KeyAlgorithm::Ed25519).expect("key generation"),
        )
        .expect("valid name"),
    })
}

fuzz_target!(|data: &[u8]| {
    let k = keys();
    let verifiers: [&dyn NoteVerifier; 3] = [&k.ed, &k.ec, &k.cosig];
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_bytes(), data);
        let _ = note.verify(&verifiers);
        if let Ok(cp) = Checkpoint::parse(&note.text) {
            assert_eq!(cp.to_text(), note.text);
        }
    }
    let _ = open_checkpoint(data, &verifiers);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(text) {
            assert_eq!(cp.to_text(), text);
        }
        let _ = Ed25519NoteKey::from_vkey(text);
        let _ = CosignatureV1Key::from_vkey(text);
        let _ = PublicKey::from_pem(text);
    }
    let _ = PublicKey::from_spki_der(data);
});
