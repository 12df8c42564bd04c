//! `sigil monitor`: follow the deployment's Rekor v1 logs (or the `--log` URLs) and report
//! entries whose signers match a watch list; see [`crate::monitor`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::args::TrustArgs;
use crate::config::now;
use crate::logs::Log;
use crate::monitor::{Sink, State, WatchList, compare, compare_witness, default_state, follow};
use sigil_core::note::CosignatureV1Key;

#[derive(Args, Clone, Debug)]
pub struct MonitorArgs {
    /// A Rekor v1 log to follow (repeat for several); default: the signing config's logs.
    #[arg(long = "log", value_name = "URL")]
    logs: Vec<String>,
    /// A Rekor v2 log (read from its tiles) to follow.
    #[arg(long = "log-v2", value_name = "URL")]
    logs_v2: Vec<String>,
    /// Where the monitor keeps its place (default: monitor-state.json in sigil's config dir).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Report entries signed by a certificate identity matching this (`*` matches anything).
    #[arg(long = "watch-identity", value_name = "PATTERN")]
    identities: Vec<String>,
    /// Report entries whose certificate names this OIDC issuer (pattern).
    #[arg(long = "watch-issuer", value_name = "PATTERN")]
    issuers: Vec<String>,
    /// Report entries signed with this key (SHA-256 hex of its SubjectPublicKeyInfo DER).
    #[arg(long = "watch-key", value_name = "SHA256")]
    keys: Vec<String>,
    /// Report every certificate identity that matches none of these patterns.
    #[arg(long = "allow-identity", value_name = "PATTERN")]
    allowed: Vec<String>,
    /// POST each finding (the JSON line) to this URL too.
    #[arg(long)]
    webhook: Option<String>,
    /// Another URL of the first Rekor v1 log (a mirror, a second region): its checkpoint must
    /// be consistent with the first's, or the log shows readers different views.
    #[arg(long, value_name = "URL")]
    compare: Option<String>,
    /// A witness of the followed logs (`sigil-server witness`): the checkpoint it last cosigned
    /// for each log must be consistent with the log's own (needs --witness-key).
    #[arg(long = "compare-witness", value_name = "URL", requires = "witness_key")]
    compare_witness: Option<String>,
    /// The witness's verifier key (`name+id+base64`, as it prints at start).
    #[arg(long = "witness-key", value_name = "VKEY")]
    witness_key: Option<String>,
    /// One pass up to the current checkpoints, then exit.
    #[arg(long)]
    once: bool,
    /// Seconds between passes.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    #[command(flatten)]
    trust: TrustArgs,
}

pub fn run(a: MonitorArgs) -> Result<()> {
    let sources = a.trust.sources();
    let root = sources.trusted_root()?;
    let logs: Vec<Log> = if a.logs.is_empty() && a.logs_v2.is_empty() {
        crate::logs::deployment_logs(&sources.signing_config()?, now(), None)?
    } else {
        let v1 = a.logs.iter().map(|u| Log {
            url: u.trim_end_matches('/').to_owned(),
            version: 1,
        });
        let v2 = a.logs_v2.iter().map(|u| Log {
            url: u.trim_end_matches('/').to_owned(),
            version: 2,
        });
        v1.chain(v2).collect()
    };
    if logs.is_empty() {
        bail!("no log to follow: pass --log URL or --log-v2 URL");
    }
    let watch = WatchList {
        identities: a.identities.clone(),
        issuers: a.issuers.clone(),
        keys: a.keys.clone(),
        allowed_identities: a.allowed.clone(),
    };
    let state_path = match &a.state {
        Some(p) => p.clone(),
        None => default_state()?,
    };
    let witness = match (&a.compare_witness, &a.witness_key) {
        (Some(url), Some(vkey)) => Some((
            url.clone(),
            CosignatureV1Key::from_vkey(vkey).map_err(|e| {
                anyhow::anyhow!("--witness-key {vkey:?} is not a cosignature/v1 key: {e}")
            })?,
        )),
        _ => None,
    };
    let mut state = State::load(&state_path)?;
    let sink = Sink {
        webhook: a.webhook.clone(),
    };
    loop {
        for log in &logs {
            follow(log, &root, &watch, &mut state, &state_path, &sink)?;
        }
        if let (Some(other), Some(first)) = (&a.compare, logs.iter().find(|l| l.version == 1)) {
            compare(&first.url, other, &root, &sink)?;
        }
        if let Some((url, key)) = &witness {
            for log in &logs {
                compare_witness(log, url, key, &root, &sink)?;
            }
        }
        if a.once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(a.interval.max(1)));
    }
}
