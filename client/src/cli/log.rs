//! `sigil log get|search|verify`: the deployment's Rekor v1 and v2 logs read as one
//! ([`crate::logs`]); every answer names the log that gave it.
//!
//! An index names one entry per log, so `log get --index N` prints the entry N of every log that
//! has one (each headed by its log); `--rekor-version` asks one log only. A UUID names one entry.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sigil_core::crypto::sha256;
use sigil_core::trust::TrustedRoot;

use super::args::{Output, TrustArgs, print_json};
use crate::config::{config_dir, now};
use crate::exit;
use crate::logs::{self, Criterion, Entry, Hit, Log, Operator};
use crate::progress::Progress;

/// The deployment's logs (one API version, with `only`) and the trusted root.
fn deployment(trust: &TrustArgs, only: Option<u32>) -> Result<(Vec<Log>, TrustedRoot)> {
    let logs = logs::deployment_logs(&trust.sources().signing_config()?, now(), only)?;
    Ok((logs, trust.sources().trusted_root()?))
}

/// Which of the deployment's logs to ask.
#[derive(Args, Clone, Debug, Default)]
pub struct LogChoice {
    /// Ask only the Rekor v1 or v2 log (default: every log the signing config lists).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub rekor_version: Option<u32>,
}

/// What to look for (as `rekor-cli search`).
#[derive(Args, Clone, Debug, Default)]
pub struct SearchArgs {
    /// Entries for this file's SHA-256.
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// Entries for this digest: `sha256:<hex>` or bare hex (also sha384:, sha512:).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Entries signed by this identity (a certificate's e-mail SAN).
    #[arg(long, alias = "identity")]
    pub email: Option<String>,
    /// Entries signed with this public key or certificate (PEM file).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// How several criteria combine: `or` (the union, the default, as rekor-cli) or `and`.
    #[arg(long, value_enum, default_value_t)]
    pub operator: OperatorArg,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum OperatorArg {
    #[default]
    Or,
    And,
}

impl SearchArgs {
    fn criteria(&self) -> Result<Vec<Criterion>> {
        let mut c = Vec::new();
        if let Some(f) = &self.artifact {
            let data = crate::progress::read_file(f)?;
            c.push(Criterion::Hash(format!(
                "sha256:{}",
                hex::encode(sha256(&data))
            )));
        }
        if let Some(h) = &self.sha256 {
            let h = h.trim().to_ascii_lowercase();
            let (alg, hex_part) = h.split_once(':').unwrap_or(("sha256", h.as_str()));
            let len = match alg {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => 0,
            };
            if hex_part.len() != len || hex::decode(hex_part).is_err() {
                return Err(exit::usage(format!(
                    "--sha256 {h:?}: give sha256:<64 hex digits> (or sha384:/sha512:)"
                )));
            }
            c.push(Criterion::Hash(format!("{alg}:{hex_part}")));
        }
        if let Some(e) = &self.email {
            if !e.contains('@') {
                return Err(exit::usage(format!(
                    "--email {e:?} is not an e-mail address"
                )));
            }
            c.push(Criterion::Email(e.clone()));
        }
        if let Some(p) = &self.public_key {
            let pem = std::fs::read_to_string(p)
                .map_err(|e| exit::usage(format!("--public-key {}: {e}", p.display())))?;
            c.push(Criterion::PublicKey(pem));
        }
        Ok(c)
    }

    fn operator(&self) -> Operator {
        match self.operator {
            OperatorArg::Or => Operator::Or,
            OperatorArg::And => Operator::And,
        }
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum LogCmd {
    /// Fetch an entry from whichever log holds it and verify its inclusion proof.
    Get {
        /// The entry's index (every log with an entry at this index answers).
        #[arg(long, required_unless_present = "uuid", conflicts_with = "uuid")]
        index: Option<u64>,
        /// The entry's UUID, as sign-blob prints it.
        #[arg(long)]
        uuid: Option<String>,
        #[command(flatten)]
        choice: LogChoice,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Find entries by artifact, digest, identity or key in every log.
    Search {
        #[command(flatten)]
        search: SearchArgs,
        #[command(flatten)]
        choice: LogChoice,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Check each log's checkpoint is consistent with the last one seen; with search criteria or
    /// --uuid, also find those entries and verify their inclusion proofs.
    Verify {
        #[command(flatten)]
        search: SearchArgs,
        /// Also verify this entry's inclusion.
        #[arg(long)]
        uuid: Option<String>,
        #[command(flatten)]
        choice: LogChoice,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        trust: TrustArgs,
        /// Each log's checkpoint must carry these witnesses' cosignatures.
        #[command(flatten)]
        witness: super::args::WitnessArgs,
    },
}

fn print_entry(e: &Entry) -> Result<()> {
    println!("Found in the {}", e.log.describe());
    println!("LogID: {}", hex::encode(&e.log_id));
    println!("Index: {}", e.index);
    println!("UUID: {}", e.uuid);
    if let Some(t) = e.integrated_time {
        println!("IntegratedTime: {}", crate::verify::x509::fmt_time(t));
    }
    let source = if e.log.version == 2 {
        ", from the log's tiles"
    } else {
        ""
    };
    println!(
        "Inclusion proof: verified against checkpoint of size {} (root {}){source}",
        e.tree_size,
        hex::encode(e.root_hash)
    );
    let body: Value = serde_json::from_slice(&e.body).unwrap_or(Value::Null);
    println!("Body: {}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

fn asked(logs: &[Log]) -> String {
    logs.iter()
        .map(Log::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a `sigil log` command.
pub fn run(cmd: LogCmd) -> Result<()> {
    match cmd {
        LogCmd::Get {
            index,
            uuid,
            choice,
            output,
            trust,
        } => {
            let (logs, root) = deployment(&trust, choice.rekor_version)?;
            let mut found = Vec::new();
            for log in &logs {
                let e = match (index, &uuid) {
                    (Some(i), _) => logs::get_by_index(log, i, &root)?,
                    (None, Some(u)) => logs::get_by_uuid(log, u, &root)?,
                    (None, None) => return Err(exit::usage("pass --index or --uuid")),
                };
                found.extend(e);
                // A UUID names one entry: stop at the log that has it.
                if uuid.is_some() && !found.is_empty() {
                    break;
                }
            }
            if found.is_empty() {
                let what = match (index, &uuid) {
                    (Some(i), _) => format!("an entry at index {i}"),
                    (_, u) => format!("an entry with UUID {}", u.as_deref().unwrap_or("")),
                };
                return Err(anyhow!(
                    "no log of this deployment has {what} (asked: {})",
                    asked(&logs)
                ));
            }
            if output == Output::Json {
                return print_json(&Value::Array(found.iter().map(Entry::to_json).collect()));
            }
            if found.len() > 1 {
                eprintln!(
                    "{} logs have an entry at this index; --rekor-version picks one.",
                    found.len()
                );
            }
            for (n, e) in found.iter().enumerate() {
                if n > 0 {
                    println!();
                }
                print_entry(e)?;
            }
            Ok(())
        }
        LogCmd::Search {
            search,
            choice,
            output,
            trust,
        } => {
            let (logs, _) = deployment(&trust, choice.rekor_version)?;
            let criteria = search.criteria()?;
            let mut hits: Vec<Hit> = Vec::new();
            for log in &logs {
                hits.extend(logs::search(log, &criteria, search.operator())?);
            }
            if output == Output::Json {
                return print_json(&Value::Array(hits.iter().map(Hit::to_json).collect()));
            }
            if hits.is_empty() {
                println!("No entries found (asked: {})", asked(&logs));
            }
            for h in &hits {
                let index = h.index.map(|i| format!(" index {i}")).unwrap_or_default();
                println!("{}  ({}{index})", h.uuid, h.log.describe());
            }
            Ok(())
        }
        LogCmd::Verify {
            search,
            uuid,
            choice,
            output,
            trust,
            witness,
        } => {
            let (logs, root) = deployment(&trust, choice.rekor_version)?;
            let state_dir = config_dir()?;
            let witnesses = witness.policy()?;
            let mut checked = Vec::new();
            for log in &logs {
                let c = logs::check_consistency(log, &root, &state_dir)?;
                let (note, log_id) = logs::signed_checkpoint(log, &root)?;
                let policy = witnesses.for_log(&log_id);
                if policy.required() {
                    let n = policy
                        .check(note.as_bytes())
                        .map_err(|e| exit::verification(format!("{}: {e}", log.describe())))?;
                    if output == Output::Text {
                        println!(
                            "Checkpoint cosigned by {n} trusted witness(es): {}",
                            log.describe()
                        );
                    }
                }
                if output == Output::Text {
                    if let Some(prev) = c.previous {
                        println!(
                            "Consistent with the last seen checkpoint (size {prev}): {}",
                            log.describe()
                        );
                    }
                    println!(
                        "Verified checkpoint: size {}, root {}: {}",
                        c.size,
                        hex::encode(c.root_hash),
                        log.describe()
                    );
                }
                checked.push(c);
            }
            // Entries asked for: found in whichever log holds them, each proof checked.
            let criteria = search.criteria()?;
            let mut targets: Vec<Hit> = Vec::new();
            if !criteria.is_empty() {
                for log in &logs {
                    targets.extend(logs::search(log, &criteria, search.operator())?);
                }
            }
            let mut entries = Vec::new();
            if let Some(u) = &uuid {
                let e = logs
                    .iter()
                    .find_map(|l| logs::get_by_uuid(l, u, &root).transpose())
                    .transpose()?
                    .ok_or_else(|| {
                        anyhow!(
                            "no log of this deployment has the entry {u} (asked: {})",
                            asked(&logs)
                        )
                    })?;
                entries.push(e);
            }
            let mut progress = Progress::items(
                "Verifying entries",
                u64::try_from(targets.len()).unwrap_or(0),
            );
            for h in &targets {
                let e = match h.index {
                    Some(i) => logs::get_by_index(&h.log, i, &root)?,
                    None => logs::get_by_uuid(&h.log, &h.uuid, &root)?,
                };
                entries.push(e.ok_or_else(|| {
                    exit::verification(format!(
                        "{} listed entry {} in its index but does not serve it",
                        h.log.describe(),
                        h.uuid
                    ))
                })?);
                progress.advance(1);
            }
            progress.finish();
            if output == Output::Json {
                return print_json(&json!({
                    "logs": checked.iter().map(logs::Consistency::to_json).collect::<Vec<_>>(),
                    "entries": entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
                }));
            }
            for e in &entries {
                println!(
                    "Entry {} at index {} in the {}: inclusion proof verified (checkpoint size {})",
                    e.uuid,
                    e.index,
                    e.log.describe(),
                    e.tree_size
                );
            }
            if !criteria.is_empty() && entries.is_empty() {
                println!("No entries matched the search (asked: {})", asked(&logs));
            }
            Ok(())
        }
    }
}
