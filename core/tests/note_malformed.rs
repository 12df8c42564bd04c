//! Malformed signed notes are refused with typed errors; signing and verification rules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_core::crypto::{KeyAlgorithm, SigningKey};
use sigil_core::note::{
    EcdsaNoteKey, Ed25519NoteKey, MAX_NOTE_SIZE, MAX_SIGNATURES, Note, NoteError, NoteSigner,
    NoteVerifier, ed25519_key_id,
};

fn ed_key(name: &str) -> Ed25519NoteKey {
    Ed25519NoteKey::signer(name, SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()).unwrap()
}

fn signed(text: &str, key: &Ed25519NoteKey) -> Vec<u8> {
    Note::sign(text, &[key]).unwrap().to_bytes()
}

fn parse_err(bytes: &[u8]) -> NoteError {
    Note::parse(bytes).unwrap_err()
}

#[test]
fn well_formed_note_round_trips() {
    let k = ed_key("example.com/log");
    let bytes = signed("hello\n\nworld\n", &k);
    let note = Note::parse(&bytes).unwrap();
    assert_eq!(note.text, "hello\n\nworld\n");
    assert_eq!(note.to_bytes(), bytes);
    assert_eq!(note.verify(&[&k]).unwrap().len(), 1);
}

#[test]
fn missing_blank_line() {
    assert_eq!(
        parse_err("text\n\u{2014} k AAAAAAA=\n".as_bytes()),
        NoteError::MissingBlankLine
    );
    assert_eq!(parse_err(b"no newline at all"), NoteError::MissingBlankLine);
}

#[test]
fn no_signatures() {
    assert_eq!(parse_err(b"text\n\n"), NoteError::NoSignatures);
    assert_eq!(parse_err(b"text\n\n\n"), NoteError::NoSignatures);
}

#[test]
fn missing_final_newline() {
    let k = ed_key("k");
    let mut b = signed("text\n", &k);
    b.pop();
    assert_eq!(parse_err(&b), NoteError::MissingFinalNewline);
}

#[test]
fn bad_base64() {
    assert_eq!(
        parse_err("text\n\n\u{2014} k not*base64\n".as_bytes()),
        NoteError::BadBase64 { name: "k".into() }
    );
    // Non-canonical padding bits would not re-serialise to the same bytes.
    assert_eq!(
        parse_err("text\n\n\u{2014} k AAAAAAB=\n".as_bytes()),
        NoteError::BadBase64 { name: "k".into() }
    );
    // Unpadded.
    assert_eq!(
        parse_err("text\n\n\u{2014} k AAAAAAA\n".as_bytes()),
        NoteError::BadBase64 { name: "k".into() }
    );
}

#[test]
fn malformed_signature_lines() {
    assert!(matches!(
        parse_err(b"text\n\n- k AAAAAAA=\n"),
        NoteError::MalformedSignatureLine { .. }
    ));
    assert!(matches!(
        parse_err("text\n\n\u{2014} kAAAAAAA=\n".as_bytes()),
        NoteError::MalformedSignatureLine { .. }
    ));
    assert_eq!(
        parse_err("text\n\n\u{2014} a+b AAAAAAA=\n".as_bytes()),
        NoteError::InvalidKeyName("a+b".into())
    );
    assert_eq!(
        parse_err("text\n\n\u{2014}  AAAAAAA=\n".as_bytes()),
        NoteError::InvalidKeyName(String::new())
    );
    // Only a key id, no signature.
    assert_eq!(
        parse_err("text\n\n\u{2014} k AAAAAA==\n".as_bytes()),
        NoteError::SignatureTooShort {
            name: "k".into(),
            len: 4
        }
    );
    // A stray line after the signatures.
    let k = ed_key("k");
    let mut b = signed("text\n", &k);
    b.extend_from_slice(b"Unexpected line.\n");
    assert!(matches!(
        parse_err(&b),
        NoteError::MalformedSignatureLine { .. }
    ));
}

#[test]
fn too_large() {
    let text = "a".repeat(MAX_NOTE_SIZE);
    let bytes = format!("{text}\n\n\u{2014} k AAAAAAA=\n");
    assert_eq!(
        parse_err(bytes.as_bytes()),
        NoteError::TooLarge {
            size: bytes.len(),
            max: MAX_NOTE_SIZE
        }
    );
}

#[test]
fn too_many_signatures() {
    let k = ed_key("k");
    let one = signed("text\n", &k);
    let line = &one["text\n\n".len()..];
    let mut bytes = b"text\n\n".to_vec();
    for _ in 0..MAX_SIGNATURES {
        bytes.extend_from_slice(line);
    }
    assert_eq!(
        Note::parse(&bytes).unwrap().signatures.len(),
        MAX_SIGNATURES
    );
    bytes.extend_from_slice(line);
    assert_eq!(
        parse_err(&bytes),
        NoteError::TooManySignatures {
            max: MAX_SIGNATURES
        }
    );
}

#[test]
fn not_utf8_and_control_characters() {
    let k = ed_key("k");
    let good = signed("text\n", &k);
    let mut bad = b"\xff".to_vec();
    bad.extend_from_slice(&good);
    assert_eq!(parse_err(&bad), NoteError::NotUtf8);

    for c in [0x00u8, 0x01, b'\r', b'\t', 0x1f] {
        let mut bad = vec![b'a', c];
        bad.extend_from_slice(&good);
        assert_eq!(
            parse_err(&bad),
            NoteError::ControlCharacter { byte: c, offset: 1 },
            "{c:#04x}"
        );
    }
    // Signing refuses the same texts.
    assert_eq!(
        Note::sign("a\rb\n", &[&k]).unwrap_err(),
        NoteError::TextControlCharacter {
            byte: b'\r',
            offset: 1
        }
    );
}

#[test]
fn sign_requires_final_newline_and_valid_names() {
    let k = ed_key("k");
    assert_eq!(
        Note::sign("no newline", &[&k]).unwrap_err(),
        NoteError::TextMissingNewline
    );
    assert_eq!(
        Note::sign("", &[&k]).unwrap_err(),
        NoteError::TextMissingNewline
    );
    assert!(matches!(
        Ed25519NoteKey::signer(
            "bad name",
            SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()
        ),
        Err(NoteError::InvalidKeyName(_))
    ));
    assert!(matches!(
        Ed25519NoteKey::signer("a+b", SigningKey::generate(KeyAlgorithm::Ed25519).unwrap()),
        Err(NoteError::InvalidKeyName(_))
    ));
    // A verifier-only key cannot sign.
    let v = Ed25519NoteKey::verifier("k", k.public_key().clone()).unwrap();
    assert_eq!(
        Note::sign("text\n", &[&v]).unwrap_err(),
        NoteError::NoSigningKey { name: "k".into() }
    );
    // Key types are checked.
    assert!(matches!(
        EcdsaNoteKey::verifier("k", k.public_key().clone()),
        Err(NoteError::WrongKeyType { .. })
    ));
}

#[test]
fn unknown_keys_are_ignored_known_bad_signatures_rejected() {
    let a = ed_key("a.example");
    let b = ed_key("b.example");
    let note = Note::sign("text\n", &[&a, &b]).unwrap();

    // Only b is known: a's signature is ignored.
    let ok = note.verify(&[&b]).unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].name, "b.example");

    // No known key at all.
    let c = ed_key("c.example");
    assert_eq!(
        note.verify(&[&c]).unwrap_err(),
        NoteError::NoVerifiedSignature
    );

    // A key with the same name but another id is unknown, not invalid.
    let a2 = ed_key("a.example");
    assert_eq!(
        note.verify(&[&a2]).unwrap_err(),
        NoteError::NoVerifiedSignature
    );

    // A known key's bad signature rejects the whole note even if another verifies.
    let mut tampered = note.clone();
    tampered.signatures[0].signature[0] ^= 1;
    assert_eq!(
        tampered.verify(&[&a, &b]).unwrap_err(),
        NoteError::InvalidSignature {
            name: "a.example".into(),
            key_id: NoteVerifier::key_id(&a)
        }
    );
    // A changed text fails.
    let mut changed = note.clone();
    changed.text = "texT\n".into();
    assert!(matches!(
        changed.verify(&[&a]).unwrap_err(),
        NoteError::InvalidSignature { .. }
    ));
}

#[test]
fn duplicate_signatures() {
    let a = ed_key("a.example");
    let note = Note::sign("text\n", &[&a]).unwrap();
    let mut dup = note.clone();
    dup.signatures.push(note.signatures[0].clone());
    // Parses (syntax is fine) and round-trips…
    let bytes = dup.to_bytes();
    assert_eq!(Note::parse(&bytes).unwrap(), dup);
    // …but a known key signing twice is an error.
    assert_eq!(
        Note::parse(&bytes).unwrap().verify(&[&a]).unwrap_err(),
        NoteError::DuplicateSignature {
            name: "a.example".into(),
            key_id: NoteVerifier::key_id(&a)
        }
    );
    // Duplicates of unknown keys are ignored.
    let b = ed_key("b.example");
    let mut with_b = Note::sign("text\n", &[&a, &b]).unwrap();
    let bsig = with_b.signatures[1].clone();
    with_b.signatures.push(bsig);
    assert_eq!(with_b.verify(&[&a]).unwrap().len(), 1);

    // add_signature replaces an existing signature from the same key.
    let mut n = Note::sign("text\n", &[&a]).unwrap();
    n.add_signature(&a).unwrap();
    assert_eq!(n.signatures.len(), 1);
    n.add_signature(&b).unwrap();
    assert_eq!(n.signatures.len(), 2);
    assert_eq!(n.verify(&[&a, &b]).unwrap().len(), 2);
}

#[test]
fn ecdsa_note_keys_sign_and_verify() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let sk = SigningKey::generate(alg).unwrap();
        let spki = sk.public_key().spki_der().to_vec();
        let k = EcdsaNoteKey::signer("log.example - 42", sk);
        // Names with spaces are invalid note key names; Rekor's key name is the hostname.
        assert!(k.is_err());
        let sk = SigningKey::generate(alg).unwrap();
        let spki_id = sigil_core::note::spki_key_id(sk.public_key().spki_der());
        let k = EcdsaNoteKey::signer("log.example", sk).unwrap();
        assert_eq!(NoteSigner::key_id(&k), spki_id);
        assert_ne!(spki_id, sigil_core::note::spki_key_id(&spki));
        let note = Note::sign(
            "log.example - 42\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            &[&k],
        )
        .unwrap();
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(parsed.verify(&[&k]).unwrap().len(), 1);
        // The signature is a DER ECDSA signature over the text.
        assert_eq!(parsed.signatures[0].signature[0], 0x30);
        k.public_key()
            .verify(parsed.text.as_bytes(), &parsed.signatures[0].signature)
            .unwrap();
    }
}

#[test]
fn vkey_parse_and_format() {
    let k = ed_key("example.com/witness");
    let vkey = k.vkey();
    let parsed = Ed25519NoteKey::from_vkey(&vkey).unwrap();
    assert_eq!(parsed.vkey(), vkey);
    assert_eq!(parsed.key_id(), k.key_id());
    assert_eq!(
        parsed.key_id(),
        ed25519_key_id(
            "example.com/witness",
            &k.public_key().ed25519_bytes().unwrap()
        )
    );
    // Signer key form round-trips too.
    let skey = k.skey().unwrap();
    assert!(skey.starts_with("PRIVATE+KEY+example.com/witness+"));
    assert_eq!(Ed25519NoteKey::from_skey(&skey).unwrap().vkey(), vkey);

    // Every truncation and every single-byte change of a real key is refused.
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    Ed25519NoteKey::from_vkey(vkey).unwrap();
    let b = vkey.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i == 0 && j == b.len() {
                continue;
            }
            if let Ok(s) = std::str::from_utf8(&b[i..j]) {
                assert!(Ed25519NoteKey::from_vkey(s).is_err(), "{s}");
            }
        }
    }
    for i in 0..b.len() {
        let mut m = b.to_vec();
        m[i] = m[i].wrapping_add(1);
        if let Ok(s) = std::str::from_utf8(&m) {
            assert!(Ed25519NoteKey::from_vkey(s).is_err(), "{s}");
        }
    }
    // Wrong-length key and unknown algorithm, each with a matching key id.
    for bad in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(matches!(
            Ed25519NoteKey::from_vkey(bad),
            Err(NoteError::BadVerifierKey(_))
        ));
    }
}

#[test]
fn cosignature_v1_round_trip() {
    use sigil_core::note::{CosignatureV1Key, cosignature_v1_message};
    let w = CosignatureV1Key::signer(
        "witness.example/w1",
        SigningKey::generate(KeyAlgorithm::Ed25519).unwrap(),
    )
    .unwrap();
    let log = ed_key("example.com/log");
    let text = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let mut note = Note::sign(text, &[&log]).unwrap();
    let cosig = w.cosign(text, 1_679_315_147).unwrap();
    assert_eq!(CosignatureV1Key::timestamp(&cosig), Some(1_679_315_147));
    assert_eq!(cosig.signature.len(), 8 + 64);
    // The Ed25519 signature covers the cosignature/v1 header, the time and the text.
    w.public_key()
        .verify(
            &cosignature_v1_message(1_679_315_147, text.as_bytes()),
            &cosig.signature[8..],
        )
        .unwrap();
    note.signatures.push(cosig);
    let parsed = Note::parse(&note.to_bytes()).unwrap();
    assert_eq!(parsed.verify(&[&log, &w]).unwrap().len(), 2);
    // The vkey round-trips and differs from a plain Ed25519 key id for the same key.
    let v = CosignatureV1Key::from_vkey(&w.vkey()).unwrap();
    assert_eq!(v.key_id(), w.key_id());
    let plain = Ed25519NoteKey::verifier("witness.example/w1", w.public_key().clone()).unwrap();
    assert_ne!(plain.key_id(), w.key_id());
    assert!(Ed25519NoteKey::from_vkey(&w.vkey()).is_err());
    assert!(CosignatureV1Key::from_vkey(&plain.vkey()).is_err());
    // Timestamps must be below 2^63.
    assert_eq!(
        w.cosign(text, 1 << 63).unwrap_err(),
        NoteError::CosignatureTimestamp(1 << 63)
    );
}

#[test]
fn ecdsa_p384_note_accepts_sha256_signatures_from_go_signers() {
    use sigil_core::crypto::PublicKey;
    let dir = format!("{}/tests/golden/keys", env!("CARGO_MANIFEST_DIR"));
    let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap();
    let pk = PublicKey::from_pem(&String::from_utf8(read("p384.pub.pem")).unwrap()).unwrap();
    let v = EcdsaNoteKey::verifier("o", pk).unwrap();
    let msg = read("message.txt");
    // SHA-384 (the key's own digest) and SHA-256 (what Go note signers use) are accepted,
    // other digests are not.
    assert!(v.verify(&msg, &read("p384-sha384.sig")));
    assert!(v.verify(&msg, &read("p384-sha256.sig")));
    assert!(!v.verify(&msg, &read("p384-sha512.sig")));
    assert!(!v.verify(b"other", &read("p384-sha256.sig")));
}
