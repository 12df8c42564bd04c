//! Passphrase-encrypted PKCS#8 (PBES2): reads OpenSSL's, writes what OpenSSL reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Stdio};

use sigil_core::crypto::{CryptoError, KeyAlgorithm, PublicKey, SigningKey};

fn key_str(name: &str) -> String {
    let path = format!("{}/tests/golden/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn reads_openssl_encrypted_keys() {
    for (enc, public) in [
        ("p256.encrypted.pem", "p256.pub.pem"),
        ("ed25519.encrypted.pem", "ed25519.pub.pem"),
    ] {
        let sk = SigningKey::from_encrypted_pkcs8_pem(&key_str(enc), "correct-horse")
            .unwrap_or_else(|e| panic!("{enc}: {e}"));
        assert_eq!(
            sk.public_key(),
            PublicKey::from_pem(&key_str(public)).unwrap()
        );
        let err = SigningKey::from_encrypted_pkcs8_pem(&key_str(enc), "wrong-horse").unwrap_err();
        assert!(
            matches!(
                err,
                CryptoError::Decryption(_) | CryptoError::MalformedPrivateKey(_)
            ),
            "{enc}: {err}"
        );
    }
    // The plain loader says the key is encrypted instead of failing obscurely.
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&key_str("p256.encrypted.pem")),
        Err(CryptoError::Decryption(_))
    ));
    // And the encrypted loader refuses a plain key.
    assert!(matches!(
        SigningKey::from_encrypted_pkcs8_pem(&key_str("p384.pkcs8.pem"), "x"),
        Err(CryptoError::PemLabel { .. })
    ));
}

#[test]
fn encrypted_round_trip() {
    let sk = SigningKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    let pem = sk.to_encrypted_pkcs8_pem("s3cret passphrase").unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
    let back = SigningKey::from_encrypted_pkcs8_pem(&pem, "s3cret passphrase").unwrap();
    assert_eq!(back.public_key(), sk.public_key());
    assert!(SigningKey::from_encrypted_pkcs8_pem(&pem, "S3cret passphrase").is_err());
    // Salt and IV are fresh each time.
    assert_ne!(pem, sk.to_encrypted_pkcs8_pem("s3cret passphrase").unwrap());
}

#[test]
fn openssl_reads_our_encrypted_keys() {
    let sk = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let pem = sk.to_encrypted_pkcs8_pem("hunter2").unwrap();
    let child = Command::new("openssl")
        .args(["pkey", "-passin", "pass:hunter2", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("the openssl CLI is needed for this test ({e}); install it with `apt-get install openssl`")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        sk.public_key().to_pem()
    );
}
