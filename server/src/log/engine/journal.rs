//! The checkpoint journal: an append-only file per log, outside the database (and outside its
//! backups), holding every checkpoint this process published and, by default, the entries of
//! each batch. A batch is journaled (written and fsynced) after its commit and before anyone
//! is answered, so every checkpoint a client may hold from this process is in the journal.
//!
//! At start the database must contain the journal's last checkpoint: a database restored from
//! an old backup is behind what clients hold, and serving it would fork the log, so the log
//! refuses to open. `recover` (`recover.rs`) re-appends the missing batches from the journal,
//! byte for byte (entries, timestamps and the signed checkpoints), which rebuilds the same tree.
//!
//! One JSON object per line; a line cut short by a crash was never acknowledged and is dropped
//! when the journal is opened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sigil_core::merkle::Hash;

use crate::storage::Batch;

/// One committed batch.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub old_size: u64,
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub root: Hash,
    pub timestamp_ms: i64,
    pub integrated_time: i64,
    #[serde(with = "b64")]
    pub checkpoint: Vec<u8>,
    /// The batch's entries, in index order; absent when the journal keeps checkpoints only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<RecordEntry>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordEntry {
    #[serde(with = "hex_hash")]
    pub leaf: Hash,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    #[serde(with = "b64", default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// Where a log's journal lives.
pub fn path(dir: &Path, log_name: &str) -> PathBuf {
    dir.join(format!("{log_name}.journal"))
}

/// An open journal, appended to by the sequencer.
pub struct Journal {
    file: File,
    path: PathBuf,
    entries: bool,
}

impl Journal {
    /// Opens (creating) the journal of `log_name` in `dir`, dropping a torn last line; returns
    /// it and its last record.
    pub fn open(
        dir: &Path,
        log_name: &str,
        entries: bool,
    ) -> Result<(Journal, Option<Record>), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the journal directory {}: {e}", dir.display()))?;
        let path = path(dir, log_name);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| format!("cannot open the journal {}: {e}", path.display()))?;
        if created {
            // The new file's name must survive a crash too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
        }
        let last = last_record(&mut file, &path)?;
        Ok((
            Journal {
                file,
                path,
                entries,
            },
            last,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a committed batch and waits until it is on disk.
    pub fn append(&mut self, b: &Batch<'_>) -> Result<(), String> {
        let record = Record {
            old_size: b.old_size,
            size: b.new_size,
            root: b.root_hash,
            timestamp_ms: b.timestamp_ms,
            integrated_time: b.integrated_time,
            checkpoint: b.checkpoint.to_vec(),
            entries: self.entries.then(|| {
                b.entries
                    .iter()
                    .map(|e| RecordEntry {
                        leaf: e.leaf_hash,
                        data: e.data.to_vec(),
                        extra: e.extra.to_vec(),
                        keys: e.search_keys.to_vec(),
                    })
                    .collect()
            }),
        };
        let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("writing the journal {}: {e}", self.path.display()))
    }
}

/// Every record of a journal file, in order (for recovery). A torn last line is skipped.
pub fn read_all(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut lines = text.split(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(r) => out.push(r),
            // Only the unterminated last line may be torn.
            Err(_) if lines.peek().is_none() => break,
            Err(e) => return Err(format!("{} line {n}: {e}", path.display())),
        }
    }
    Ok(out)
}

/// The last complete record; a torn tail (no final newline) is cut off the file first.
fn last_record(file: &mut File, path: &Path) -> Result<Option<Record>, String> {
    let io = |e: std::io::Error| format!("reading the journal {}: {e}", path.display());
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    // Read backwards until the buffer holds the newline before the last complete line.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    let complete_end = loop {
        let step = pos.min(64 * 1024);
        pos -= step;
        let mut chunk = vec![0u8; usize::try_from(step).map_err(|e| e.to_string())?];
        file.seek(SeekFrom::Start(pos)).map_err(io)?;
        file.read_exact(&mut chunk).map_err(io)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        // The end of the last complete line in `tail`, if the tail holds one.
        let end = tail.iter().rposition(|b| *b == b'\n');
        let start = end.and_then(|e| tail.get(..e)?.iter().rposition(|b| *b == b'\n'));
        if start.is_some() || pos == 0 {
            break end;
        }
    };
    let Some(end) = complete_end else {
        if len > 0 {
            file.set_len(0).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        return Ok(None);
    };
    let good_len = pos + end as u64 + 1;
    if good_len < len {
        tracing::warn!(journal = %path.display(), bytes = len - good_len, "dropping a torn journal record");
        file.set_len(good_len).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    let line_start = tail
        .get(..end)
        .and_then(|t| t.iter().rposition(|b| *b == b'\n'))
        .map_or(0, |s| s + 1);
    let line = tail.get(line_start..end).unwrap_or_default();
    serde_json::from_slice(line)
        .map(Some)
        .map_err(|e| format!("the journal {}'s last record: {e}", path.display()))
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use sigil_core::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| D::Error::custom("not a 32-byte hex hash"))
    }
}

mod b64 {
    use super::B64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_record(old: u64, new: u64) -> Vec<u8> {
        let r = Record {
            old_size: old,
            size: new,
            root: [new as u8; 32],
            timestamp_ms: 1,
            integrated_time: 0,
            checkpoint: b"note".to_vec(),
            entries: None,
        };
        let mut v = serde_json::to_vec(&r).unwrap_or_default();
        v.push(b'\n');
        v
    }

    #[test]
    fn the_last_record_survives_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = path(dir.path(), "rekor");
        let mut bytes = Vec::new();
        for i in 0..3000u64 {
            bytes.extend(batch_record(i, i + 1));
        }
        let good = bytes.len() as u64;
        bytes.extend_from_slice(b"{\"old_size\":3000,\"si");
        std::fs::write(&p, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let (_, last) = Journal::open(dir.path(), "rekor", true).unwrap_or_else(|e| panic!("{e}"));
        let last = last.unwrap_or_else(|| panic!("no last record"));
        assert_eq!((last.old_size, last.size), (2999, 3000));
        assert_eq!(std::fs::metadata(&p).map(|m| m.len()).ok(), Some(good));
        assert_eq!(read_all(&p).map(|r| r.len()).ok(), Some(3000));
    }

    #[test]
    fn an_empty_or_torn_only_journal_has_no_record() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, last) = Journal::open(dir.path(), "a", true).unwrap_or_else(|e| panic!("{e}"));
        assert!(last.is_none());
        std::fs::write(path(dir.path(), "b"), b"{\"old_si").unwrap_or_else(|e| panic!("{e}"));
        let (_, last) = Journal::open(dir.path(), "b", true).unwrap_or_else(|e| panic!("{e}"));
        assert!(last.is_none());
        assert_eq!(
            std::fs::metadata(path(dir.path(), "b"))
                .map(|m| m.len())
                .ok(),
            Some(0)
        );
    }
}
