//! `attest` and `verify-attestation` take a file or a container image as their subject: one set
//! of flags (the union of both forms), the form decided after parsing. A subject that names an
//! existing file, or `--bundle`/`--statement` (which only files use), makes it the file form;
//! an image reference makes it the image form.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{IdentityArgs, LogArgs, Output, RegistryArgs, TokenArgs, TrustArgs};
use crate::oci::looks_like_image;

#[derive(Args, Clone, Debug)]
pub struct AttestArgs {
    /// The subject: a file, or an image IMAGE[:TAG|@sha256:DIGEST] in an OCI registry.
    pub subject: Option<PathBuf>,
    /// Predicate JSON (with --type; for an image, any text with --type custom) …
    #[arg(long)]
    pub predicate: Option<PathBuf>,
    /// The predicate type URI [file default: https://slsa.dev/provenance/v1]; for an image
    /// also slsaprovenance, slsaprovenance1, spdx, spdxjson, cyclonedx, vuln, openvex or custom
    /// [image default: custom].
    #[arg(long = "type", value_name = "TYPE")]
    pub predicate_type: Option<String>,
    /// … or a complete in-toto statement (file form).
    #[arg(long)]
    pub statement: Option<PathBuf>,
    /// Where to write the bundle (file form; an image's attestation goes to its `.att` tag).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Sign with this private key (PKCS#8 PEM; password in SIGIL_PASSWORD) instead of keyless.
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub token: TokenArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Clone, Debug)]
pub struct VerifyAttestationArgs {
    /// The subject: a file (optional with --bundle), or an image IMAGE[:TAG|@sha256:DIGEST].
    pub subject: Option<PathBuf>,
    /// The attestation bundle (file form).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Required predicate type (for an image, a shorthand such as slsaprovenance or a URI).
    #[arg(long = "type", value_name = "TYPE")]
    pub predicate_type: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub witness: crate::cli::args::WitnessArgs,
}

/// What an attestation command is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A file (or none: `--statement`, or a bundle checked on its own).
    File(Option<&'a Path>),
    /// A container image reference.
    Image(&'a str),
}

/// An image reference that is not an existing file, unless a file-only flag says otherwise.
fn subject(arg: Option<&Path>, file_flags: bool) -> Subject<'_> {
    match arg.and_then(Path::to_str) {
        Some(s) if !file_flags && looks_like_image(s) => Subject::Image(s),
        _ => Subject::File(arg),
    }
}

impl AttestArgs {
    pub fn subject(&self) -> Subject<'_> {
        subject(
            self.subject.as_deref(),
            self.bundle.is_some() || self.statement.is_some(),
        )
    }
}

impl VerifyAttestationArgs {
    pub fn subject(&self) -> Subject<'_> {
        subject(self.subject.as_deref(), self.bundle.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_or_a_file_flag_makes_the_file_form() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("registry.example:5000");
        std::fs::write(&f, b"x").unwrap();
        let f = f.as_path();
        assert_eq!(subject(Some(f), false), Subject::File(Some(f)));
        let image = Path::new("registry.example/team/app:v1");
        assert_eq!(
            subject(Some(image), false),
            Subject::Image("registry.example/team/app:v1")
        );
        assert_eq!(subject(Some(image), true), Subject::File(Some(image)));
        assert_eq!(
            subject(Some(Path::new("plain-name")), false),
            Subject::File(Some(Path::new("plain-name")))
        );
        assert_eq!(subject(None, false), Subject::File(None));
    }
}
