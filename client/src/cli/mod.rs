//! The `sigil` command line: one clap tree, one module per command group. `args` holds the
//! argument groups several commands share; `attest` the subject of `attest` and
//! `verify-attestation`, which take a file ([`blob`]) or an image ([`image`]).

pub mod args;
pub mod attest;
pub mod blob;
pub mod conformance;
pub mod image;
pub mod log;
pub mod monitor;
pub mod trust;

use std::process::ExitCode;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use attest::Subject;

/// sigil: sign and verify artifacts with a private Sigstore.
#[derive(Parser)]
#[command(name = "sigil", version, after_help = crate::exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    /// Credential sent to the transparency logs on every request (a log with authenticated
    /// reads, or write admission by token). Without it, a log that answers 401 is asked again
    /// with the token stored by `sigil login`.
    #[arg(long, global = true, env = "SIGIL_LOG_TOKEN", hide_env_values = true)]
    pub log_token: Option<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Trust configuration.
    Trust {
        #[command(subcommand)]
        cmd: trust::TrustCmd,
    },
    /// Get an identity token and store it for later commands.
    Login(trust::LoginArgs),
    /// Sign a file and log the signature; writes a Sigstore bundle.
    SignBlob(blob::SignBlobArgs),
    /// Generate an ECDSA P-256 key pair: <prefix>.key (encrypted with SIGIL_PASSWORD) and <prefix>.pub.
    GenerateKeyPair(blob::GenerateKeyPairArgs),
    /// Verify a file against a bundle, offline.
    VerifyBlob(blob::VerifyBlobArgs),
    /// Sign an in-toto statement (DSSE) about a file, or a container image (at its `.att` tag),
    /// and log it.
    Attest(attest::AttestArgs),
    /// Verify a DSSE attestation bundle (and that the file is one of its subjects), or a
    /// container image's attestations.
    VerifyAttestation(attest::VerifyAttestationArgs),
    /// Read and check the deployment's transparency logs (Rekor v1 and v2) as one.
    Log {
        #[command(subcommand)]
        cmd: log::LogCmd,
    },
    /// Follow the logs: verify each new checkpoint and every new entry, and report entries
    /// whose signers match a watch list (one JSON line per finding and per checkpoint).
    Monitor(monitor::MonitorArgs),
    /// Conformance protocol: sign.
    SignBundle(conformance::SignBundleArgs),
    /// Conformance protocol: verify.
    VerifyBundle(conformance::VerifyBundleArgs),
    /// Container images: sign, verify, policy.
    #[command(flatten)]
    Image(image::ImageCmd),
}

impl Cmd {
    /// Whether the command checks evidence: then a failure that is neither a usage nor a network
    /// error means the evidence did not verify (exit code 1).
    pub fn verifies(&self) -> bool {
        match self {
            Cmd::VerifyBlob(_) | Cmd::VerifyAttestation(_) | Cmd::VerifyBundle(_) => true,
            Cmd::Image(c) => c.verifies(),
            _ => false,
        }
    }
}

/// Runs `sigil` with the process's arguments; the exit code follows [`crate::exit`].
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let verifying = cli.cmd.verifies();
    if let Ok(dir) = crate::config::config_dir() {
        crate::verify::link_cache::set_dir(dir.join("cache"));
    }
    if let Some(t) = cli.log_token.filter(|t| !t.trim().is_empty()) {
        crate::log_http::set_log_token(t.trim().to_owned());
    }
    match misplaced_flags(&cli.cmd, &matches).and_then(|()| run(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::exit::report(&e, verifying),
    }
}

/// `attest` and `verify-attestation` take the flags of both their forms; one given on the
/// command line (not from the environment) that the chosen form does not use is a usage error.
fn misplaced_flags(cmd: &Cmd, matches: &ArgMatches) -> Result<()> {
    let (name, image) = match cmd {
        Cmd::Attest(a) => ("attest", matches!(a.subject(), Subject::Image(_))),
        Cmd::VerifyAttestation(a) => (
            "verify-attestation",
            matches!(a.subject(), Subject::Image(_)),
        ),
        _ => return Ok(()),
    };
    let given = |id: &str| {
        matches
            .subcommand_matches(name)
            .and_then(|m| m.value_source(id))
            == Some(ValueSource::CommandLine)
    };
    if image && name == "attest" && given("rekor_version") {
        return Err(crate::exit::usage(
            "--rekor-version applies to files: an image's attestation goes to a Rekor v1 log, \
             whose signed entry timestamp cosign reads",
        ));
    }
    let registry = [
        "registry_username",
        "registry_password",
        "allow_insecure_registry",
    ];
    if !image && registry.iter().any(|id| given(id)) {
        return Err(crate::exit::usage(format!(
            "--registry-username, --registry-password and --allow-insecure-registry apply to \
             images; `{name}` here is about a file (an existing file, or --bundle/--statement)"
        )));
    }
    Ok(())
}

/// Runs one command.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Trust { cmd } => trust::run(cmd),
        Cmd::Login(a) => trust::login(a),
        Cmd::SignBlob(a) => blob::sign_blob(a),
        Cmd::GenerateKeyPair(a) => blob::generate_key_pair(a),
        Cmd::VerifyBlob(a) => blob::verify_blob(a),
        Cmd::Attest(a) => match a.subject() {
            Subject::Image(i) => image::attest(&a, i),
            Subject::File(f) => blob::attest(&a, f),
        },
        Cmd::VerifyAttestation(a) => match a.subject() {
            Subject::Image(i) => image::verify_attestation(&a, i),
            Subject::File(f) => blob::verify_attestation(&a, f),
        },
        Cmd::Log { cmd } => log::run(cmd),
        Cmd::Monitor(a) => monitor::run(a),
        Cmd::SignBundle(a) => conformance::sign_bundle(a),
        Cmd::VerifyBundle(a) => conformance::verify_bundle(a),
        Cmd::Image(c) => image::run(c),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn misplaced(args: &[&str]) -> Result<()> {
        let m = Cli::command().try_get_matches_from(args).unwrap();
        misplaced_flags(&Cli::from_arg_matches(&m).unwrap().cmd, &m)
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_typed_flag_of_the_other_attestation_form_is_refused() {
        let image = [
            "sigil",
            "attest",
            "registry.example/app:v1",
            "--predicate",
            "p",
        ];
        assert!(misplaced(&image).is_ok());
        let with_version = [&image[..], &["--rekor-version", "1"]].concat();
        assert!(misplaced(&with_version).is_err());
        let file = ["sigil", "attest", "--statement", "s", "--bundle", "b"];
        assert!(misplaced(&file).is_ok());
        assert!(misplaced(&[&file[..], &["--rekor-version", "2"]].concat()).is_ok());
        let with_registry = [&file[..], &["--allow-insecure-registry"]].concat();
        assert!(misplaced(&with_registry).is_err());
        let verify = ["sigil", "verify-attestation", "x", "--bundle", "b"];
        assert!(misplaced(&[&verify[..], &["--registry-username", "u"]].concat()).is_err());
        assert!(misplaced(&["sigil", "verify-attestation", "registry.example/app:v1"]).is_ok());
    }
}
