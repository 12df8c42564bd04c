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

/// Witness policies: one for every log (from `--witness`), and per log (by its log ID, from a
/// deployment's `witnesses.json`), which wins for its log.
#[derive(Clone, Debug, Default)]
pub struct WitnessPolicies {
    pub all_logs: WitnessPolicy,
    pub by_log: Vec<(Vec<u8>, WitnessPolicy)>,
}

impl WitnessPolicies {
    /// The policy an entry of the log with this ID must meet.
    pub fn for_log(&self, log_id: &[u8]) -> &WitnessPolicy {
        self.by_log
            .iter()
            .find(|(id, _)| id == log_id)
            .map_or(&self.all_logs, |(_, p)| p)
    }

    /// Adds the per-log policies of a `witnesses.json` document.
    pub fn add_document(&mut self, doc: &serde_json::Value) -> Result<(), VerifyError> {
        use base64::Engine;
        let bad = |m: &str| VerifyError::Witness(format!("witness policy file: {m}"));
        let logs = doc
            .get("logs")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| bad("no `logs` list"))?;
        for l in logs {
            let id = l
                .pointer("/logId/keyId")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(|| bad("a log without a base64 logId.keyId"))?;
            let vkeys: Vec<String> = l
                .get("witnesses")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.get("vkey")?.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let threshold = l
                .get("threshold")
                .and_then(serde_json::Value::as_u64)
                .map_or(vkeys.len(), |t| usize::try_from(t).unwrap_or(usize::MAX));
            self.by_log
                .push((id, WitnessPolicy::new(&vkeys, threshold)?));
        }
        Ok(())
    }
}
