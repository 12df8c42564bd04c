//! A witness policy: the checkpoint an entry's inclusion proof leads to must carry valid
//! C2SP `cosignature/v1` lines from at least `threshold` of the given witnesses, so that a log
//! showing this client a view nobody else saw is caught.

use std::sync::Arc;

use sigil_core::note::{CosignatureV1Key, Note, NoteVerifier};

use super::error::VerifyError;

/// Which witnesses must have cosigned; the default (threshold 0) asks for none.
#[derive(Clone, Debug, Default)]
pub struct WitnessPolicy {
    pub witnesses: Arc<Vec<CosignatureV1Key>>,
    pub threshold: usize,
}

impl WitnessPolicy {
    /// From verifier keys (`name+id+base64`) and the number of them that must have cosigned.
    pub fn new(vkeys: &[String], threshold: usize) -> Result<Self, VerifyError> {
        let witnesses = vkeys
            .iter()
            .map(|v| {
                CosignatureV1Key::from_vkey(v).map_err(|e| {
                    VerifyError::Witness(format!(
                        "witness key {v:?} is not a cosignature/v1 key: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if threshold > witnesses.len() {
            return Err(VerifyError::Witness(format!(
                "a threshold of {threshold} needs at least as many witness keys (got {})",
                witnesses.len()
            )));
        }
        Ok(Self {
            witnesses: Arc::new(witnesses),
            threshold,
        })
    }

    pub fn required(&self) -> bool {
        self.threshold > 0
    }

    /// Checks a signed checkpoint's cosignatures; returns how many witnesses cosigned it.
    pub fn check(&self, checkpoint: &[u8]) -> Result<usize, VerifyError> {
        let note = Note::parse(checkpoint)
            .map_err(|e| VerifyError::Witness(format!("the checkpoint does not parse: {e}")))?;
        let verifiers: Vec<&dyn NoteVerifier> = self
            .witnesses
            .iter()
            .map(|w| w as &dyn NoteVerifier)
            .collect();
        let cosigned = match note.verify(&verifiers) {
            Ok(sigs) => sigs.len(),
            Err(sigil_core::note::NoteError::NoVerifiedSignature) => 0,
            Err(e) => {
                return Err(VerifyError::Witness(format!(
                    "a witness cosignature on the checkpoint is invalid: {e}"
                )));
            }
        };
        if cosigned < self.threshold {
            return Err(VerifyError::Witness(format!(
                "the checkpoint carries {cosigned} valid cosignature(s) of the {} trusted \
                 witness(es); {} required",
                self.witnesses.len(),
                self.threshold
            )));
        }
        Ok(cosigned)
    }
}
