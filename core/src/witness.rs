//! C2SP tlog-witness `add-checkpoint`: the request a log sends a witness (an old size line,
//! up to 63 consistency proof lines, an empty line, the signed checkpoint) and the witness's
//! decision rules, without I/O. The witness server and the logs that ask for cosignatures both
//! build on this.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Hash};

/// Most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Content type of a 409 answer's body (the witness's latest size).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent.
    pub checkpoint: Vec<u8>,
}

/// Why a request body is malformed (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the body must start with an `old <size>` line")]
    NoOldLine,
    #[error("the old size {0:?} is not a decimal without leading zeroes")]
    BadOldSize(String),
    #[error("consistency proof line {0} is not a base64 SHA-256 hash")]
    BadProofLine(usize),
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("no empty line before the checkpoint")]
    NoCheckpoint,
}

impl AddCheckpoint {
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let mut rest = body;
        let line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
            let n = rest.iter().position(|&b| b == b'\n')?;
            let (l, r) = rest.split_at(n);
            *rest = r.get(1..).unwrap_or_default();
            Some(l.to_vec())
        };
        let first = line(&mut rest).ok_or(RequestError::NoOldLine)?;
        let first = String::from_utf8(first).map_err(|_| RequestError::NoOldLine)?;
        let size = first.strip_prefix("old ").ok_or(RequestError::NoOldLine)?;
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let old_size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| RequestError::BadOldSize(size.chars().take(40).collect()))?;
        let mut proof = Vec::new();
        loop {
            let l = line(&mut rest).ok_or(RequestError::NoCheckpoint)?;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let h: Hash = B64
                .decode(&l)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(RequestError::BadProofLine(proof.len() + 1))?;
            proof.push(h);
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(B64.encode(h).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// What the witness answers to a checkpoint whose signature verified, given the latest
/// checkpoint it cosigned for the origin (size and root; `None`: never).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Consistent: record it and cosign.
    Cosign,
    /// 400: the old size is above the checkpoint's.
    OldSizeAboveCheckpoint,
    /// 409: the old size is not the latest cosigned size (which the answer carries).
    Conflict(u64),
    /// 422: the proof does not verify, or a size-zero checkpoint has another root.
    Unprocessable(String),
}

/// The tlog-witness rules, in the specification's order.
pub fn decide(req: &AddCheckpoint, cp: &Checkpoint, latest: Option<(u64, Hash)>) -> Decision {
    if req.old_size > cp.size {
        return Decision::OldSizeAboveCheckpoint;
    }
    let (latest_size, latest_root) = latest.unwrap_or((0, merkle::empty_root()));
    if req.old_size != latest_size {
        return Decision::Conflict(latest_size);
    }
    if cp.size == 0 && cp.root_hash != merkle::empty_root() {
        return Decision::Unprocessable(
            "a checkpoint of size 0 must have the empty tree's root".into(),
        );
    }
    if req.old_size == 0 && !req.proof.is_empty() {
        return Decision::Unprocessable("the proof must be empty when the old size is 0".into());
    }
    if req.old_size == cp.size && latest_root != cp.root_hash {
        return Decision::Unprocessable(format!(
            "a different root was already cosigned for size {}",
            cp.size
        ));
    }
    match merkle::verify_consistency(
        req.old_size,
        cp.size,
        &latest_root,
        &cp.root_hash,
        &req.proof,
    ) {
        Ok(()) => Decision::Cosign,
        Err(e) => Decision::Unprocessable(format!(
            "the consistency proof from size {} does not verify: {e}",
            req.old_size
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_malformed_ones_are_refused() {
        let req = AddCheckpoint {
            old_size: 20,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: b"o\n21\nAAAA\n\n- sig\n".to_vec(),
        };
        assert_eq!(AddCheckpoint::parse(&req.to_bytes()).unwrap(), req);
        assert_eq!(
            AddCheckpoint::parse(b"old 01\n\n"),
            Err(RequestError::BadOldSize("01".into()))
        );
        assert_eq!(
            AddCheckpoint::parse(b"new 1\n\n"),
            Err(RequestError::NoOldLine)
        );
        assert_eq!(
            AddCheckpoint::parse(b"old 1\nAAAA\n"),
            Err(RequestError::BadProofLine(1))
        );
        assert_eq!(
            AddCheckpoint::parse(b"old 1\n"),
            Err(RequestError::NoCheckpoint)
        );
        let many = format!(
            "old 1\n{}\nx",
            format!("{}\n", B64.encode([0u8; 32])).repeat(64)
        );
        assert_eq!(
            AddCheckpoint::parse(many.as_bytes()),
            Err(RequestError::TooManyProofLines)
        );
    }

    #[test]
    fn decisions_follow_the_specification() {
        let leaves: Vec<Hash> = (0u8..8).map(|i| merkle::leaf_hash(&[i])).collect();
        let root = |n: usize| merkle::root_from_leaves(leaves.get(..n).unwrap());
        let cp = |n: usize| Checkpoint {
            origin: "o".into(),
            size: n as u64,
            root_hash: root(n),
            extensions: vec![],
        };
        let req = |old: u64, proof: Vec<Hash>| AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: vec![],
        };
        assert_eq!(decide(&req(0, vec![]), &cp(5), None), Decision::Cosign);
        assert_eq!(
            decide(&req(6, vec![]), &cp(5), None),
            Decision::OldSizeAboveCheckpoint
        );
        assert_eq!(
            decide(&req(3, vec![]), &cp(5), Some((4, root(4)))),
            Decision::Conflict(4)
        );
        assert_eq!(
            decide(&req(0, vec![]), &cp(5), Some((4, root(4)))),
            Decision::Conflict(4)
        );
        assert!(matches!(
            decide(&req(0, vec![[0; 32]]), &cp(5), None),
            Decision::Unprocessable(_)
        ));
        assert!(matches!(
            decide(&req(4, vec![[0; 32]]), &cp(5), Some((4, root(4)))),
            Decision::Unprocessable(_)
        ));
        // Same size: the same root is fine, another is not.
        assert_eq!(
            decide(&req(5, vec![]), &cp(5), Some((5, root(5)))),
            Decision::Cosign
        );
        assert!(matches!(
            decide(&req(5, vec![]), &cp(5), Some((5, root(4)))),
            Decision::Unprocessable(_)
        ));
        let mut zero = cp(0);
        zero.root_hash = [9; 32];
        assert!(matches!(
            decide(&req(0, vec![]), &zero, None),
            Decision::Unprocessable(_)
        ));
    }
}
