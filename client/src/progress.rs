//! Progress of long operations on stderr, only when stderr is a terminal: piped or captured
//! output stays free of it. `SIGIL_NO_PROGRESS=1` turns it off on a terminal too.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const REDRAW: Duration = Duration::from_millis(100);
/// Files smaller than this are read without a progress line.
const SHOW_FROM_BYTES: u64 = 8 << 20;

/// Whether progress is shown: stderr is a terminal and the user did not turn it off.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("SIGIL_NO_PROGRESS").is_none_or(|v| v.is_empty() || v == "0")
}

/// One progress line: `label done/total unit (pct%)`, redrawn in place.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    /// Divisor and name of the unit shown (bytes as MiB, or counted items).
    unit: (u64, &'static str),
    shown: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(label: &str, total: u64, unit: (u64, &'static str), shown: bool) -> Self {
        Self {
            label: label.to_string(),
            total,
            done: 0,
            unit,
            shown,
            last: None,
        }
    }

    /// Progress over `total` items (entries, tiles, blobs).
    pub fn items(label: &str, total: u64) -> Self {
        Self::new(label, total, (1, ""), enabled())
    }

    /// Progress over `total` bytes; shown only for large amounts.
    pub fn bytes(label: &str, total: u64) -> Self {
        Self::new(
            label,
            total,
            (1 << 20, " MiB"),
            enabled() && total >= SHOW_FROM_BYTES,
        )
    }

    pub fn advance(&mut self, n: u64) {
        self.done = self.done.saturating_add(n).min(self.total.max(self.done));
        if !self.shown {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < REDRAW) && self.done < self.total {
            return;
        }
        self.last = Some(now);
        let pct = self
            .done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let (div, name) = self.unit;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {}/{}{name} ({pct}%)",
            self.label,
            self.done / div,
            self.total / div
        );
        let _ = err.flush();
    }

    /// Clears the line (the command's own output follows).
    pub fn finish(self) {
        if self.shown && self.last.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

static STATUS_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A one-line status of a step in progress (e.g. a registry upload), replaced by the next one.
pub fn status(message: &str) {
    if !enabled() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{message}");
    let _ = err.flush();
    STATUS_SHOWN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Clears the status line, if one is shown.
pub fn clear_status() {
    if STATUS_SHOWN.swap(false, std::sync::atomic::Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

/// Reads a whole file, showing progress for large files.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut p = Progress::bytes(&format!("Reading {}", path.display()), len);
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        out.extend_from_slice(chunk);
        p.advance(u64::try_from(n).unwrap_or(0));
    }
    p.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_returns_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(read_file(&p).unwrap(), data);
        assert!(read_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn progress_counts_without_a_terminal() {
        let mut p = Progress::new("x", 10, (1, ""), false);
        p.advance(4);
        p.advance(100);
        assert_eq!(p.done, 10);
        p.finish();
    }
}
