//! C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint): a signed note whose text is
//! `<origin>\n<tree size>\n<base64 root hash>\n[extension lines\n]`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::merkle::Hash;
use crate::note::{Note, NoteError, NoteSigner, NoteVerifier};

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint text must end with a newline")]
    MissingFinalNewline,
    #[error("checkpoint needs an origin, a tree size and a root hash line")]
    TooFewLines,
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    #[error("checkpoint tree size {0:?} is not a decimal number")]
    BadSize(String),
    #[error("checkpoint tree size {0:?} has leading zeros")]
    NonCanonicalSize(String),
    #[error("checkpoint tree size {0:?} does not fit in 64 bits")]
    SizeOverflow(String),
    #[error("checkpoint root hash is not valid base64")]
    BadRootHash,
    #[error("checkpoint root hash is {0} bytes, expected 32")]
    RootHashLength(usize),
    #[error("checkpoint extension line {0} is empty")]
    EmptyExtension(usize),
    #[error("checkpoint contains control character {byte:#04x} at byte {offset}")]
    ControlCharacter { byte: u8, offset: usize },
    #[error("checkpoint {field} contains a newline")]
    Newline { field: &'static str },
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A log's signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash,
    /// Extension lines, without their newlines.
    pub extensions: Vec<String>,
}

/// Rekor v1's origin: `<hostname> - <tree ID>`.
pub fn rekor_v1_origin(hostname: &str, tree_id: i64) -> String {
    format!("{hostname} - {tree_id}")
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, extension lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.origin.len() + 80);
        out.push_str(&self.origin);
        out.push('\n');
        out.push_str(&self.size.to_string());
        out.push('\n');
        out.push_str(&B64.encode(self.root_hash));
        out.push('\n');
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Check that [`Checkpoint::to_text`] would produce a text that parses back to `self`.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if self.origin.contains('\n') {
            return Err(CheckpointError::Newline { field: "origin" });
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension(i));
            }
            if ext.contains('\n') {
                return Err(CheckpointError::Newline {
                    field: "extension line",
                });
            }
        }
        check_controls(&self.origin)?;
        for ext in &self.extensions {
            check_controls(ext)?;
        }
        Ok(())
    }

    /// Parse checkpoint note text (the text of the note, not the signed note).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        check_controls(text)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::TooFewLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size)?;
        let root = B64.decode(root).map_err(|_| CheckpointError::BadRootHash)?;
        let root_hash: Hash = root
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::RootHashLength(root.len()))?;
        let mut extensions = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtension(i));
            }
            extensions.push(line.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root_hash,
            extensions,
        })
    }
}

fn check_controls(s: &str) -> Result<(), CheckpointError> {
    match s
        .as_bytes()
        .iter()
        .enumerate()
        .find(|&(_, &b)| b < 0x20 && b != b'\n')
    {
        Some((offset, &byte)) => Err(CheckpointError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

fn parse_size(s: &str) -> Result<u64, CheckpointError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::BadSize(s.chars().take(40).collect()));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(CheckpointError::NonCanonicalSize(
            s.chars().take(40).collect(),
        ));
    }
    s.parse::<u64>()
        .map_err(|_| CheckpointError::SizeOverflow(s.chars().take(40).collect()))
}

/// Sign a checkpoint into a note with one signature.
pub fn sign_checkpoint(cp: &Checkpoint, signer: &dyn NoteSigner) -> Result<Note, CheckpointError> {
    cp.validate()?;
    Ok(Note::sign(&cp.to_text(), &[signer])?)
}

/// Parse a signed checkpoint note, verify it against `verifiers` and parse its text.
pub fn open_checkpoint(
    note_bytes: &[u8],
    verifiers: &[&dyn NoteVerifier],
) -> Result<(Checkpoint, Note), CheckpointError> {
    let note = Note::parse(note_bytes)?;
    note.verify(verifiers)?;
    let cp = Checkpoint::parse(&note.text)?;
    Ok((cp, note))
}
