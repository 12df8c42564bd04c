//! Reading an artifact for verification: hashed in pieces as it is read, in the one algorithm
//! the bundle needs, so a large file costs one pass of the hash and no copy in memory. The bytes
//! themselves are read only where a signature covers them directly (Ed25519 over the message).
//! Also the artifact as verification sees it, and the digest a message signature is over.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sigil_core::bundle::{Bundle, Content, HashAlgorithm, MessageSignature, SigningMaterial};
use sigil_core::crypto::{DigestAlgorithm, KeyAlgorithm};

use super::error::VerifyError;
use super::policy::Policy;
use super::x509::ParsedCert;

/// What was signed, as the verifier knows it.
#[derive(Clone, Debug)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// Only the artifact's digest (conformance `sha256:<hex>`).
    Digest {
        algorithm: DigestAlgorithm,
        digest: Vec<u8>,
    },
    /// Nothing: only for DSSE bundles, whose payload is self-contained.
    None,
}

/// Size of each read: large enough that syscalls are noise next to hashing.
const CHUNK: usize = 1 << 20;
/// What a file of at most [`CHUNK`] bytes is read in, on the hashing thread.
const SMALL_PIECE: usize = 64 << 10;

/// An artifact as the verifier will see it, owning its data.
#[derive(Debug)]
pub enum LoadedArtifact {
    Bytes(Vec<u8>),
    Digest {
        algorithm: DigestAlgorithm,
        digest: Vec<u8>,
    },
}

impl LoadedArtifact {
    /// Borrowed, for [`crate::verify::verify_bundle`].
    pub fn as_artifact(&self) -> Artifact<'_> {
        match self {
            LoadedArtifact::Bytes(b) => Artifact::Bytes(b),
            LoadedArtifact::Digest { algorithm, digest } => Artifact::Digest {
                algorithm: *algorithm,
                digest: digest.clone(),
            },
        }
    }
}

/// Hashes the file at `path` with `algorithm`, reading it in pieces. Reading (a copy out of the
/// page cache) runs on a second thread so that it overlaps hashing: the hash sets the pace.
pub fn hash_file(path: &Path, algorithm: DigestAlgorithm) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    if f.metadata()?.len() <= CHUNK as u64 {
        // One small buffer, reused: a buffer the size of the file would cost a page fault per
        // 4 KiB of fresh memory, which at 1 MiB took longer than hashing it.
        let mut h = algorithm.hasher();
        let mut buf = vec![0u8; SMALL_PIECE];
        loop {
            let n = read_full(&mut f, &mut buf)?;
            let Some(piece) = buf.get(..n) else { break };
            if n == 0 {
                break;
            }
            h.update(piece);
        }
        return Ok(h.finish());
    }
    // Full buffers go to the hasher, empty ones come back: two in flight, no allocation per chunk.
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        while let Ok(mut buf) = empty_rx.recv() {
            buf.resize(CHUNK, 0);
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if full_tx.send(buf).is_err() {
                return Ok(());
            }
        }
        Ok(())
    });
    let mut h = algorithm.hasher();
    for buf in full_rx {
        h.update(&buf);
        let _ = empty_tx.send(buf);
    }
    drop(empty_tx);
    reader
        .join()
        .map_err(|_| std::io::Error::other("the file reader thread failed"))??;
    Ok(h.finish())
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..) {
        if rest.is_empty() {
            break;
        }
        match f.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Loads the artifact at `path` in the form `bundle` needs under `policy`.
pub fn load(path: &Path, bundle: &Bundle, policy: &Policy) -> std::io::Result<LoadedArtifact> {
    let algorithm = match bundle.content() {
        Ok(Content::MessageSignature(ms)) => {
            if signs_message_itself(bundle, policy) {
                return std::fs::read(path).map(LoadedArtifact::Bytes);
            }
            match ms.message_digest.as_ref().map(|d| d.algorithm) {
                Some(HashAlgorithm::Sha2_384) => DigestAlgorithm::Sha384,
                Some(HashAlgorithm::Sha2_512) => DigestAlgorithm::Sha512,
                _ => DigestAlgorithm::Sha256,
            }
        }
        // In-toto subjects name their digests; SHA-256 unless the statement only has SHA-512.
        Ok(Content::Dsse(env)) => {
            let p = String::from_utf8_lossy(&env.payload);
            if !p.contains("\"sha256\"") && p.contains("\"sha512\"") {
                DigestAlgorithm::Sha512
            } else {
                DigestAlgorithm::Sha256
            }
        }
        // The verifier reports what is wrong with the bundle; the bytes are enough for that.
        Err(_) => return std::fs::read(path).map(LoadedArtifact::Bytes),
    };
    Ok(LoadedArtifact::Digest {
        algorithm,
        digest: hash_file(path, algorithm)?,
    })
}

/// Whether the signature is over the message rather than its digest (Ed25519).
fn signs_message_itself(bundle: &Bundle, policy: &Policy) -> bool {
    let key_alg = match (bundle.signing_material(), policy) {
        (Ok(SigningMaterial::Certificate { leaf, .. }), _) => {
            ParsedCert::from_der(leaf).map(|c| c.key.algorithm())
        }
        (_, Policy::Key(k)) => Ok(k.algorithm()),
        _ => return false,
    };
    matches!(key_alg, Ok(KeyAlgorithm::Ed25519))
}

/// The artifact digest in the algorithm the bundle uses.
fn artifact_digest(
    artifact: &Artifact<'_>,
    alg: DigestAlgorithm,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match artifact {
        Artifact::Bytes(b) => Ok(Some(alg.digest(b))),
        Artifact::Digest { algorithm, digest } if *algorithm == alg => Ok(Some(digest.clone())),
        Artifact::Digest { algorithm, .. } => Err(VerifyError::DigestMismatch {
            algorithm: alg.name().into(),
            bundle: format!("a {} digest", alg.name()),
            artifact: format!("a {} digest", algorithm.name()),
        }),
        Artifact::None => Ok(None),
    }
}

fn digest_alg(h: HashAlgorithm) -> Result<DigestAlgorithm, VerifyError> {
    match h {
        HashAlgorithm::Sha2_256 => Ok(DigestAlgorithm::Sha256),
        HashAlgorithm::Sha2_384 => Ok(DigestAlgorithm::Sha384),
        HashAlgorithm::Sha2_512 => Ok(DigestAlgorithm::Sha512),
        other => Err(VerifyError::Signature(format!(
            "unsupported message digest algorithm {other:?}"
        ))),
    }
}

/// The (algorithm, digest) the message signature is over, after checking it against the artifact.
pub(crate) fn message_digest(
    ms: &MessageSignature,
    artifact: &Artifact<'_>,
) -> Result<(DigestAlgorithm, Vec<u8>), VerifyError> {
    let alg = match &ms.message_digest {
        Some(md) => digest_alg(md.algorithm)?,
        None => DigestAlgorithm::Sha256,
    };
    let computed = artifact_digest(artifact, alg)?;
    match (&ms.message_digest, computed) {
        (Some(md), Some(c)) if md.digest != c => Err(VerifyError::DigestMismatch {
            algorithm: alg.name().into(),
            bundle: hex::encode(&md.digest),
            artifact: hex::encode(&c),
        }),
        (_, Some(c)) => Ok((alg, c)),
        (Some(md), None) => Ok((alg, md.digest.clone())),
        (None, None) => Err(VerifyError::Signature(
            "no artifact and no message digest to verify against".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_files_hash_in_pieces_like_one_shot() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            SMALL_PIECE - 1,
            SMALL_PIECE,
            SMALL_PIECE + 1,
            CHUNK - 3,
            CHUNK,
        ] {
            let p = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
                assert_eq!(
                    hash_file(&p, alg).unwrap(),
                    alg.digest(&data),
                    "{len} bytes"
                );
            }
        }
    }

    #[test]
    fn hash_file_matches_one_shot_digest_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        for alg in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            assert_eq!(hash_file(&p, alg).unwrap(), alg.digest(&data));
        }
    }
}
