//! The offline check of an audit log (`hsm-daemon audit verify`): every line
//! parses, hashes to the hash it claims, links to the line before, and
//! continues the sequence without a gap.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use super::{AUDIT_FILE, GENESIS, Record};

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub path: PathBuf,
    pub records: u64,
    /// The last record's hash (the genesis value for an empty log): keep it
    /// elsewhere to detect a rewritten tail later.
    pub head: String,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} records, chain intact, head {}", self.path.display(), self.records, self.head)
    }
}

/// Where and why a log is not intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: line {line}{}: {reason}", path.display(), seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct Broken {
    pub path: PathBuf,
    /// 1-based.
    pub line: u64,
    /// The sequence number the line claims, when it could be read.
    pub seq: Option<u64>,
    pub reason: String,
}

/// Checks the log at `path`.
pub fn verify_file(path: &Path) -> Result<Verified, Broken> {
    let broken = |line: u64, seq: Option<u64>, reason: String| Broken { path: path.to_owned(), line, seq, reason };
    let bytes = std::fs::read(path).map_err(|e| broken(0, None, format!("cannot be read: {e}")))?;
    verify_bytes(&bytes).map_err(|(line, seq, reason)| broken(line, seq, reason)).map(|(records, head)| Verified {
        path: path.to_owned(),
        records,
        head,
    })
}

/// The audit logs under `dir`: its own `audit.log`, or else those of its
/// immediate subdirectories (a cluster's or `dev`'s directory holding one
/// data directory per HSM), sorted. Empty when there are none.
pub fn logs_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let own = dir.join(AUDIT_FILE);
    if own.is_file() {
        return Ok(vec![own]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let candidate = entry?.path().join(AUDIT_FILE);
        if candidate.is_file() {
            found.push(candidate);
        }
    }
    found.sort();
    Ok(found)
}

/// Checks a whole log: the record count and head, or the first bad line
/// (1-based), its sequence number if readable, and why.
pub(super) fn verify_bytes(bytes: &[u8]) -> Result<(u64, String), (u64, Option<u64>, String)> {
    let mut head = GENESIS.to_owned();
    let mut count = 0u64;
    let mut rest = bytes;
    while !rest.is_empty() {
        let line_no = count + 1;
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Err((line_no, None, "incomplete last line (no newline: a crash while writing it)".into()));
        };
        let (line, after) = (&rest[..end], &rest[end + 1..]);
        rest = after;
        let line = std::str::from_utf8(line).map_err(|_| (line_no, None, "unparsable line: not UTF-8".to_owned()))?;
        let record = Record::parse(line).map_err(|why| (line_no, None, format!("unparsable line: {why}")))?;
        let seq = record.body.seq;
        let at = |reason: String| (line_no, Some(seq), reason);
        if seq != line_no {
            return Err(at(format!("sequence gap: expected seq {line_no}, found {seq}")));
        }
        if !record.intact {
            return Err(at(format!("hash mismatch: the line's contents do not hash to {}", record.hash)));
        }
        if record.body.prev != head {
            return Err(at(format!("broken link: prev is {}, the previous record's hash is {head}", record.body.prev)));
        }
        head = record.hash;
        count += 1;
    }
    Ok((count, head))
}
