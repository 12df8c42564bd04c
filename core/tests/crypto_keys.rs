//! Keys and signatures: every key type signs and verifies, digests agree with messages, OpenSSL's
//! keys and signatures interoperate, and bad keys and signatures are refused with clear errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigil_core::crypto::{
    CryptoError, DigestAlgorithm, KeyAlgorithm, PublicKey, RsaPadding, SigningKey, sha256,
};

fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn key_str(name: &str) -> String {
    String::from_utf8(key_file(name)).unwrap()
}

fn flip(b: &[u8], i: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    let i = i % v.len();
    v[i] ^= 0x01;
    v
}

#[test]
fn sha256_and_digest_names() {
    assert_eq!(
        hex::encode(sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    for (name, alg, len) in [
        ("sha256", DigestAlgorithm::Sha256, 32),
        ("SHA384", DigestAlgorithm::Sha384, 48),
        ("sha512", DigestAlgorithm::Sha512, 64),
    ] {
        let parsed = DigestAlgorithm::parse(name).unwrap();
        assert_eq!(parsed, alg);
        assert_eq!(parsed.len(), len);
        assert_eq!(parsed.digest(b"x").len(), len);
        assert_eq!(name.parse::<DigestAlgorithm>().unwrap(), alg);
        assert_eq!(DigestAlgorithm::parse(alg.name()).unwrap(), alg);
    }
    assert_eq!(
        DigestAlgorithm::parse("md5").unwrap_err(),
        CryptoError::UnknownDigest("md5".into())
    );
    assert_eq!(
        DigestAlgorithm::Sha256.digest(b"abc"),
        sha256(b"abc").to_vec()
    );
}

fn check_sign_verify(alg: KeyAlgorithm) {
    let key = SigningKey::generate(alg).unwrap();
    assert_eq!(key.algorithm(), alg);
    let pk = key.public_key();
    assert_eq!(pk.algorithm(), alg);
    let msg = b"the quick brown fox";
    let sig = key.sign(msg).unwrap();
    pk.verify(msg, &sig).unwrap();

    // Tampering with the message or the signature is caught.
    assert_eq!(
        pk.verify(b"the quick brown fox.", &sig).unwrap_err(),
        CryptoError::BadSignature(alg)
    );
    for i in [0, sig.len() / 2, sig.len() - 1] {
        assert!(
            pk.verify(msg, &flip(&sig, i)).is_err(),
            "{alg} flipped byte {i}"
        );
    }
    // Another key of the same type does not verify it.
    let other = SigningKey::generate(alg).unwrap().public_key();
    assert!(other.verify(msg, &sig).is_err());

    // PEM round trips, public and private.
    let again = PublicKey::from_pem(&pk.to_pem()).unwrap();
    assert_eq!(again, pk);
    assert_eq!(again.spki_der(), pk.spki_der());
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let reloaded = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(reloaded.public_key(), pk);
    pk.verify(msg, &reloaded.sign(msg).unwrap()).unwrap();
    assert_eq!(
        SigningKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap())
            .unwrap()
            .public_key(),
        pk
    );
    // Debug output never shows private material.
    let dbg = format!("{key:?}");
    assert!(dbg.contains("SigningKey"));
    assert!(!dbg.contains(&hex::encode(key.to_pkcs8_der().unwrap())));
}

#[test]
fn ecdsa_p256_signs_and_verifies() {
    check_sign_verify(KeyAlgorithm::EcdsaP256);
}

#[test]
fn ecdsa_p384_signs_and_verifies() {
    check_sign_verify(KeyAlgorithm::EcdsaP384);
}

#[test]
fn ed25519_signs_and_verifies() {
    check_sign_verify(KeyAlgorithm::Ed25519);
}

#[test]
fn rsa_signs_and_verifies() {
    check_sign_verify(KeyAlgorithm::Rsa { bits: 2048 });
}

#[test]
fn ecdsa_prehashed_agrees_with_verify() {
    for (alg, digest) in [
        (KeyAlgorithm::EcdsaP256, DigestAlgorithm::Sha256),
        (KeyAlgorithm::EcdsaP384, DigestAlgorithm::Sha384),
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let pk = key.public_key();
        let msg = b"hashedrekord artifact";
        let d = digest.digest(msg);

        // A signature over the message verifies from its digest, and vice versa.
        let sig = key.sign(msg).unwrap();
        pk.verify(msg, &sig).unwrap();
        pk.verify_prehashed(digest, &d, &sig).unwrap();
        let sig2 = key.sign_prehashed(digest, &d).unwrap();
        pk.verify(msg, &sig2).unwrap();
        pk.verify_prehashed(digest, &d, &sig2).unwrap();

        // A different digest, a flipped signature byte, the wrong length: all refused.
        let other = digest.digest(b"another artifact");
        assert_eq!(
            pk.verify_prehashed(digest, &other, &sig).unwrap_err(),
            CryptoError::BadSignature(alg)
        );
        assert!(pk.verify_prehashed(digest, &d, &flip(&sig, 10)).is_err());
        assert_eq!(
            pk.verify_prehashed(digest, &d[1..], &sig).unwrap_err(),
            CryptoError::DigestLength {
                algorithm: digest,
                expected: digest.len(),
                actual: digest.len() - 1
            }
        );
        // The same bytes claimed to be another digest algorithm do not verify.
        let as512 = DigestAlgorithm::Sha512.digest(msg);
        assert!(
            pk.verify_prehashed(DigestAlgorithm::Sha512, &as512, &sig)
                .is_err()
        );
    }
}

#[test]
fn rsa_prehashed_agrees_with_verify_for_pkcs1_and_pss() {
    let key = SigningKey::generate(KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let pk = key.public_key();
    assert_eq!(pk.algorithm(), KeyAlgorithm::Rsa { bits: 2048 });
    let msg = b"an RSA-signed artifact";
    for padding in [RsaPadding::Pkcs1v15, RsaPadding::Pss] {
        for digest in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            let sig = key.sign_rsa(padding, digest, msg).unwrap();
            pk.verify(msg, &sig)
                .unwrap_or_else(|e| panic!("{padding:?} {digest}: {e}"));
            pk.verify_prehashed(digest, &digest.digest(msg), &sig)
                .unwrap_or_else(|e| panic!("{padding:?} {digest} prehashed: {e}"));
            assert!(pk.verify(b"other", &sig).is_err());
            assert!(
                pk.verify_prehashed(digest, &digest.digest(b"other"), &sig)
                    .is_err()
            );
            assert!(pk.verify(msg, &flip(&sig, 100)).is_err());
        }
    }
    // sign_prehashed (PKCS#1 v1.5) matches sign (deterministic padding).
    let d = DigestAlgorithm::Sha256.digest(msg);
    assert_eq!(
        key.sign_prehashed(DigestAlgorithm::Sha256, &d).unwrap(),
        key.sign(msg).unwrap()
    );
    // Only RSA keys use sign_rsa.
    let ec = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert!(matches!(
        ec.sign_rsa(RsaPadding::Pss, DigestAlgorithm::Sha256, msg),
        Err(CryptoError::Unsupported(_))
    ));
}

#[test]
fn ed25519_prehashed_is_a_clear_error() {
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let pk = key.public_key();
    let err = pk
        .verify_prehashed(
            DigestAlgorithm::Sha256,
            &sha256(b"m"),
            &key.sign(b"m").unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err, CryptoError::Unsupported(_)));
    assert!(err.to_string().contains("Ed25519"), "{err}");
    assert!(
        key.sign_prehashed(DigestAlgorithm::Sha256, &sha256(b"m"))
            .is_err()
    );
}

#[test]
fn openssl_keys_and_signatures_interoperate() {
    let msg = key_file("message.txt");
    let cases: [(&str, &str, KeyAlgorithm, Option<DigestAlgorithm>); 9] = [
        (
            "p256.pub.pem",
            "p256-sha256.sig",
            KeyAlgorithm::EcdsaP256,
            Some(DigestAlgorithm::Sha256),
        ),
        (
            "p256.pub.pem",
            "p256-sha384.sig",
            KeyAlgorithm::EcdsaP256,
            Some(DigestAlgorithm::Sha384),
        ),
        (
            "p384.pub.pem",
            "p384-sha384.sig",
            KeyAlgorithm::EcdsaP384,
            Some(DigestAlgorithm::Sha384),
        ),
        (
            "ed25519.pub.pem",
            "ed25519.sig",
            KeyAlgorithm::Ed25519,
            None,
        ),
        (
            "rsa2048.pub.pem",
            "rsa2048.pkcs1-sha256.sig",
            KeyAlgorithm::Rsa { bits: 2048 },
            Some(DigestAlgorithm::Sha256),
        ),
        (
            "rsa2048.pub.pem",
            "rsa2048.pkcs1-sha384.sig",
            KeyAlgorithm::Rsa { bits: 2048 },
            Some(DigestAlgorithm::Sha384),
        ),
        (
            "rsa2048.pub.pem",
            "rsa2048.pss-sha256-digestsalt.sig",
            KeyAlgorithm::Rsa { bits: 2048 },
            Some(DigestAlgorithm::Sha256),
        ),
        (
            "rsa2048.pub.pem",
            "rsa2048.pss-sha512-maxsalt.sig",
            KeyAlgorithm::Rsa { bits: 2048 },
            Some(DigestAlgorithm::Sha512),
        ),
        // The P-256 key over SHA-384 only verifies from the digest (whole messages use SHA-256).
        (
            "p256.pub.pem",
            "p256-sha256.sig",
            KeyAlgorithm::EcdsaP256,
            None,
        ),
    ];
    for (pubfile, sigfile, alg, digest) in cases {
        let pk = PublicKey::from_pem(&key_str(pubfile)).unwrap();
        assert_eq!(pk.algorithm(), alg, "{pubfile}");
        let sig = key_file(sigfile);
        if sigfile != "p256-sha384.sig" {
            pk.verify(&msg, &sig)
                .unwrap_or_else(|e| panic!("{sigfile}: {e}"));
        }
        if let Some(d) = digest {
            pk.verify_prehashed(d, &d.digest(&msg), &sig)
                .unwrap_or_else(|e| panic!("{sigfile} prehashed: {e}"));
        }
        assert!(pk.verify(b"not the message", &sig).is_err(), "{sigfile}");
    }
    // A SHA-384 ECDSA signature by a P-256 key is not accepted as a whole-message signature.
    let p256 = PublicKey::from_pem(&key_str("p256.pub.pem")).unwrap();
    assert!(p256.verify(&msg, &key_file("p256-sha384.sig")).is_err());

    // Private keys in the forms OpenSSL writes load and match their public keys.
    for (private, public) in [
        ("p256.sec1.pem", "p256.pub.pem"),
        ("p384.pkcs8.pem", "p384.pub.pem"),
        ("p521.pkcs8.pem", "p521.pub.pem"),
        ("ed25519.pkcs8.pem", "ed25519.pub.pem"),
        ("rsa2048.pkcs8.pem", "rsa2048.pub.pem"),
    ] {
        let sk = SigningKey::from_pkcs8_pem(&key_str(private))
            .unwrap_or_else(|e| panic!("{private}: {e}"));
        let pk = PublicKey::from_pem(&key_str(public)).unwrap();
        assert_eq!(sk.public_key(), pk, "{private}");
        pk.verify(&msg, &sk.sign(&msg).unwrap()).unwrap();
        // And our PEM matches OpenSSL's byte for byte (64-column lines).
        assert_eq!(pk.to_pem(), key_str(public), "{public}");
    }
}

#[test]
fn small_rsa_and_unsupported_curves_are_refused_clearly() {
    let err = PublicKey::from_pem(&key_str("rsa1024.pub.pem")).unwrap_err();
    assert_eq!(err, CryptoError::RsaKeyTooSmall { bits: 1024 });
    let msg = err.to_string();
    assert!(msg.contains("1024") && msg.contains("2048"), "{msg}");

    let err = PublicKey::from_pem(&key_str("secp256k1.pub.pem")).unwrap_err();
    assert!(matches!(err, CryptoError::UnsupportedAlgorithm(_)));
    assert!(err.to_string().contains("P-521"), "{err}");

    assert!(matches!(
        SigningKey::generate(KeyAlgorithm::Rsa { bits: 1024 }),
        Err(CryptoError::RsaKeyTooSmall { bits: 1024 })
    ));
}

#[test]
fn malformed_keys_are_errors() {
    assert!(matches!(
        PublicKey::from_spki_der(b"\x30\x03\x02\x01\x01"),
        Err(CryptoError::MalformedPublicKey(_))
    ));
    assert!(matches!(
        PublicKey::from_pem("hello"),
        Err(CryptoError::Pem(_))
    ));
    let cert_label = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    assert_eq!(
        PublicKey::from_pem(cert_label).unwrap_err(),
        CryptoError::PemLabel {
            found: "CERTIFICATE".into(),
            expected: "PUBLIC KEY"
        }
    );
    // Trailing bytes after the SPKI are refused.
    let mut der = PublicKey::from_pem(&key_str("p256.pub.pem"))
        .unwrap()
        .spki_der()
        .to_vec();
    der.push(0);
    assert!(PublicKey::from_spki_der(&der).is_err());
    // An EC point that is not on the curve.
    let mut der = PublicKey::from_pem(&key_str("p256.pub.pem"))
        .unwrap()
        .spki_der()
        .to_vec();
    let n = der.len();
    der[n - 1] ^= 0xff;
    assert!(matches!(
        PublicKey::from_spki_der(&der),
        Err(CryptoError::MalformedPublicKey(_))
    ));
    assert!(SigningKey::from_pkcs8_der(b"\x30\x00").is_err());
    assert!(SigningKey::from_pkcs8_pem(&key_str("p256.pub.pem")).is_err());
}

#[test]
fn ed25519_raw_bytes_round_trip() {
    let key = SigningKey::generate(KeyAlgorithm::Ed25519).unwrap();
    let pk = key.public_key();
    let raw = pk.ed25519_bytes().unwrap();
    assert_eq!(PublicKey::from_ed25519_bytes(&raw).unwrap(), pk);
    let seed = key.ed25519_seed().unwrap();
    assert_eq!(
        SigningKey::from_ed25519_seed(&seed).unwrap().public_key(),
        pk
    );
    assert!(PublicKey::from_ed25519_bytes(&raw[..31]).is_err());
    assert_eq!(
        SigningKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .public_key()
            .ed25519_bytes(),
        None
    );
}

#[test]
fn key_ids_and_details() {
    let pk = PublicKey::from_pem(&key_str("p256.pub.pem")).unwrap();
    assert_eq!(pk.key_id(), sha256(pk.spki_der()));
    assert_eq!(pk.algorithm().key_details(), "PKIX_ECDSA_P256_SHA_256");
    assert_eq!(KeyAlgorithm::Ed25519.key_details(), "PKIX_ED25519");
    assert_eq!(
        KeyAlgorithm::Rsa { bits: 3072 }.key_details(),
        "PKIX_RSA_PKCS1V15_3072_SHA256"
    );
    assert_eq!(KeyAlgorithm::Rsa { bits: 4096 }.to_string(), "RSA-4096");
}

#[test]
fn p521_keys_verify_openssl_signatures_and_sign() {
    let msg = key_file("message.txt");
    let pk = PublicKey::from_pem(&key_str("p521.pub.pem")).unwrap();
    assert_eq!(pk.algorithm(), KeyAlgorithm::EcdsaP521);
    assert_eq!(pk.algorithm().key_details(), "PKIX_ECDSA_P521_SHA_512");
    let sig = key_file("p521-sha512.sig");
    pk.verify(&msg, &sig).unwrap();
    pk.verify_prehashed(
        DigestAlgorithm::Sha512,
        &DigestAlgorithm::Sha512.digest(&msg),
        &sig,
    )
    .unwrap();
    assert!(pk.verify(&flip(&msg, 0), &sig).is_err());

    let fresh = SigningKey::generate(KeyAlgorithm::EcdsaP521).unwrap();
    let again = SigningKey::from_pkcs8_pem(&fresh.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(again.public_key(), fresh.public_key());
    let d = DigestAlgorithm::Sha512.digest(&msg);
    let s = fresh.sign_prehashed(DigestAlgorithm::Sha512, &d).unwrap();
    fresh.public_key().verify(&msg, &s).unwrap();
}
