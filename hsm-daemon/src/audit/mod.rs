//! The HSM's audit log: an append-only, hash-chained record of what CloudHSM
//! audits (logins, user and key management, denials), kept beside the store
//! as `DATA_DIR/audit.log`, or in memory for an ephemeral HSM.
//!
//! The file is JSON Lines, one record per line, so that people can read it
//! with ordinary tools. Each line is the record's fields in a fixed order
//! followed by `"hash"`: the SHA-256 (hex) of the line's bytes up to that
//! field, with the closing brace put back. Those bytes include `prev`, the
//! previous record's hash (64 zeros for the first), so changing, removing or
//! reordering any byte of any record breaks the chain at that record; only
//! the newest head can be recomputed by someone who rewrites the tail, which
//! is why `audit verify` prints the head to keep elsewhere.
//!
//! # Layout
//! - [`AuditLog`]: the open log; [`AuditLog::append`] assigns the sequence
//!   number, chains and writes a record durably (a thread of its own syncs,
//!   one `fdatasync` for every record written since the last: group commit,
//!   see `crate::commit`), [`AuditLog::read`] pages through it.
//! - [`Event`]: what the service layer reports; [`Record`]: a stored line.
//! - [`verify`]: the offline check behind `hsm-daemon audit verify`.
//! - `time`: RFC 3339 timestamps without a date library.

mod time;
pub mod verify;

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::SystemTime,
};

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::commit::GroupCommit;

/// The audit log's file name inside the data directory.
pub const AUDIT_FILE: &str = "audit.log";

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The opcode of the record each start of the HSM appends.
pub const START_OPCODE: &str = "HSM_START";

/// What separates a line's hashed part from its hash.
const HASH_FIELD: &str = ",\"hash\":\"";

/// How much of the file's end start-up reads to find the last record; records
/// are well under a kilobyte.
const TAIL_BYTES: u64 = 64 * 1024;

/// Why the audit log could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("audit log {path}: the last record is damaged ({detail}); run `hsm-daemon audit verify`")]
    DamagedTail { path: PathBuf, detail: String },
    #[error("audit log {path}: an earlier write failed ({detail}); restart the daemon")]
    Failed { path: PathBuf, detail: String },
}

/// One audited event, as the service layer reports it. Holds names and
/// references only: never a password, a token or key material.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub opcode: &'static str,
    /// `/package.Service/Method`.
    pub rpc: &'static str,
    pub session: Option<u64>,
    pub user: Option<String>,
    pub role: Option<&'static str>,
    /// The user the operation acted on.
    pub target: Option<String>,
    pub key_refs: Vec<String>,
    /// The gRPC status code's name (`OK`, `PERMISSION_DENIED`, ...).
    pub response: &'static str,
    pub denied: bool,
}

/// One record of the log: a line of `audit.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub body: Body,
    /// The hash the line claims.
    pub hash: String,
    /// Whether that hash is the hash of the line's contents.
    pub intact: bool,
}

impl Record {
    /// Parses one line (without its newline), or says why it cannot.
    pub fn parse(line: &str) -> Result<Record, String> {
        let (body_json, hash) = split_line(line).map_err(str::to_owned)?;
        let body: Body = serde_json::from_str(&body_json).map_err(|e| e.to_string())?;
        let intact = hash_hex(body_json.as_bytes()) == hash;
        Ok(Record { body, hash: hash.to_owned(), intact })
    }
}

/// A record without its hash: the part the hash covers. The field order is
/// the order on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub seq: u64,
    pub time: String,
    pub boot: u64,
    pub hsm_id: String,
    pub opcode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_refs: Vec<String>,
    pub response: String,
    pub success: bool,
    pub denied: bool,
    pub prev: String,
}

impl Body {
    /// The record's line (without its newline) and hash.
    fn seal(&self) -> Result<(String, String), serde_json::Error> {
        let json = serde_json::to_string(self)?;
        let hash = hash_hex(json.as_bytes());
        // `json` is an object, so it ends with `}`.
        let open = json.strip_suffix('}').unwrap_or(&json);
        Ok((format!("{open}{HASH_FIELD}{hash}\"}}"), hash))
    }
}

/// Splits a line into its hashed body (closing brace restored) and the hash
/// it claims, or says why it cannot.
fn split_line(line: &str) -> Result<(String, &str), &'static str> {
    let at = line.rfind(HASH_FIELD).ok_or("no \"hash\" field at the end")?;
    let hash = line[at + HASH_FIELD.len()..].strip_suffix("\"}").ok_or("the line does not end after its hash")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("the hash is not 64 lower-case hex digits");
    }
    Ok((format!("{}}}", &line[..at]), hash))
}

fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// The open audit log of one HSM.
#[derive(Debug)]
pub struct AuditLog {
    hsm_id: String,
    /// For messages: the file, or `<memory>`.
    path: PathBuf,
    chain: Mutex<Chain>,
    /// The file, shared with the thread that syncs it.
    file: Option<Arc<File>>,
    /// Syncs the file off the async workers, once for every record written
    /// since its last sync; `None` for an in-memory log.
    syncs: Option<GroupCommit<()>>,
}

/// The head of the chain and where lines go.
#[derive(Debug)]
struct Chain {
    last_seq: u64,
    head: String,
    boot: u64,
    /// An ephemeral HSM's lines.
    memory: Vec<String>,
    /// Set when a write failed: the file may end in a partial line, so no
    /// record may follow it until a restart truncates it.
    failed: Option<String>,
}

impl AuditLog {
    /// Opens (or creates) `DIR/audit.log`, or an in-memory log when `dir` is
    /// `None`, continues the chain from its last record, truncating a torn
    /// last line (a crash mid-write) with a warning, and appends this start's
    /// record.
    pub fn open(dir: Option<&Path>, hsm_id: &str) -> Result<Self, AuditError> {
        let Some(dir) = dir else {
            let log = AuditLog::new(hsm_id, PathBuf::from("<memory>"), None, Tail::default());
            log.append_start()?;
            return Ok(log);
        };
        let path = dir.join(AUDIT_FILE);
        let io = |e: std::io::Error| AuditError::Io { path: path.clone(), detail: e.to_string() };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let tail = read_tail(&mut file, &path)?;
        let file = Arc::new(file);
        let syncs = {
            let file = Arc::clone(&file);
            GroupCommit::start("hsm-audit-sync", move |_: Vec<()>| file.sync_data().map_err(|e| e.to_string()))
                .map_err(io)?
        };
        let log = AuditLog::new(hsm_id, path, Some((file, syncs)), tail);
        log.append_start()?;
        Ok(log)
    }

    fn new(hsm_id: &str, path: PathBuf, file: Option<(Arc<File>, GroupCommit<()>)>, tail: Tail) -> Self {
        let chain =
            Chain { last_seq: tail.last_seq, head: tail.head, boot: tail.boot + 1, memory: Vec::new(), failed: None };
        let (file, syncs) = file.unzip();
        AuditLog { hsm_id: hsm_id.to_owned(), path, chain: Mutex::new(chain), file, syncs }
    }

    /// Writes this start's record and syncs it on the calling thread (start-up
    /// may run inside an async runtime, where a ticket cannot be waited on).
    fn append_start(&self) -> Result<u64, AuditError> {
        let event = Event { opcode: START_OPCODE, response: "OK", ..Event::default() };
        let seq = self.write(&event)?;
        if let Some(file) = &self.file {
            file.sync_data().map_err(|e| self.fail(&e))?;
        }
        Ok(seq)
    }

    /// Appends `event` as the next record and returns its sequence number
    /// once the record is on disk. The sync happens on the log's own thread,
    /// shared with every record written meanwhile; waiting for it holds no
    /// lock.
    pub async fn append(&self, event: &Event) -> Result<u64, AuditError> {
        let seq = self.write(event)?;
        // Submitted after the write, so the sync that answers covers it.
        if let Some(syncs) = &self.syncs {
            syncs.submit(()).await.map_err(|e| self.fail(&e))?;
        }
        Ok(seq)
    }

    /// As [`Self::append`], blocking: for tests outside a runtime.
    #[cfg(test)]
    pub(crate) fn append_blocking(&self, event: &Event) -> Result<u64, AuditError> {
        let seq = self.write(event)?;
        if let Some(syncs) = &self.syncs {
            syncs.submit(()).wait().map_err(|e| self.fail(&e))?;
        }
        Ok(seq)
    }

    /// Chains `event` as the next record and writes it (not yet synced).
    fn write(&self, event: &Event) -> Result<u64, AuditError> {
        let seq = {
            let mut chain = self.chain();
            if let Some(detail) = &chain.failed {
                return Err(AuditError::Failed { path: self.path.clone(), detail: detail.clone() });
            }
            let seq = chain.last_seq + 1;
            let body = Body {
                seq,
                time: time::rfc3339(SystemTime::now()),
                boot: chain.boot,
                hsm_id: self.hsm_id.clone(),
                opcode: event.opcode.to_owned(),
                rpc: (!event.rpc.is_empty()).then(|| event.rpc.to_owned()),
                session: event.session,
                user: event.user.clone(),
                role: event.role.map(str::to_owned),
                target: event.target.clone(),
                key_refs: event.key_refs.clone(),
                response: event.response.to_owned(),
                success: event.response == "OK",
                denied: event.denied,
                prev: chain.head.clone(),
            };
            let (mut line, hash) =
                body.seal().map_err(|e| AuditError::Io { path: self.path.clone(), detail: e.to_string() })?;
            match &self.file {
                Some(file) => {
                    line.push('\n');
                    if let Err(e) = (&**file).write_all(line.as_bytes()) {
                        return Err(fail(&mut chain, &self.path, &e));
                    }
                }
                None => chain.memory.push(line),
            }
            chain.last_seq = seq;
            chain.head = hash;
            seq
        };
        Ok(seq)
    }

    fn fail(&self, error: &dyn std::fmt::Display) -> AuditError {
        fail(&mut self.chain(), &self.path, error)
    }

    /// Up to `limit` records from `from_seq` on, and the newest record's
    /// sequence number. Reads the file from the start: for an emulator's
    /// logs that is fast enough, and it needs no index.
    pub fn read(&self, from_seq: u64, limit: usize) -> Result<(Vec<Record>, u64), AuditError> {
        let (last_seq, memory) = {
            let chain = self.chain();
            let memory = self.file.is_none().then(|| {
                let skip = usize::try_from(from_seq.saturating_sub(1)).unwrap_or(usize::MAX);
                chain.memory.iter().skip(skip).take(limit).cloned().collect::<Vec<_>>()
            });
            (chain.last_seq, memory)
        };
        let parse = |line: &str| {
            Record::parse(line).map_err(|detail| AuditError::DamagedTail { path: self.path.clone(), detail })
        };
        let mut records = Vec::new();
        if let Some(lines) = memory {
            for line in &lines {
                records.push(parse(line)?);
            }
            return Ok((records, last_seq));
        }
        if from_seq > last_seq || limit == 0 {
            return Ok((records, last_seq));
        }
        let io = |e: std::io::Error| AuditError::Io { path: self.path.clone(), detail: e.to_string() };
        let file = File::open(&self.path).map_err(io)?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io)?;
            // Lines start with `{"seq":N,`: skip earlier ones unparsed.
            if leading_seq(&line).is_some_and(|seq| seq < from_seq) {
                continue;
            }
            let record = parse(&line)?;
            let seq = record.body.seq;
            records.push(record);
            // Lines past `last_seq` may be half-written by an append now.
            if records.len() >= limit || seq >= last_seq {
                break;
            }
        }
        Ok((records, last_seq))
    }

    /// The newest record's sequence number.
    pub fn last_seq(&self) -> u64 {
        self.chain().last_seq
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        // Appends change the chain only after the write succeeded, so a
        // panic while the lock was held leaves it consistent.
        self.chain.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn leading_seq(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

/// What start-up learns from the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    last_seq: u64,
    head: String,
    /// The boot of the last record: this start is the next.
    boot: u64,
}

impl Default for Tail {
    fn default() -> Self {
        Tail { last_seq: 0, head: GENESIS.to_owned(), boot: 0 }
    }
}

/// Refuses every later record: after a failed write or sync the file may
/// end in a partial line, which only a restart truncates.
fn fail(chain: &mut Chain, path: &Path, error: &dyn std::fmt::Display) -> AuditError {
    let detail = error.to_string();
    chain.failed = Some(detail.clone());
    AuditError::Io { path: path.to_owned(), detail }
}

/// Reads the last record, after cutting off a torn last line.
fn read_tail(file: &mut File, path: &Path) -> Result<Tail, AuditError> {
    let io = |e: std::io::Error| AuditError::Io { path: path.to_owned(), detail: e.to_string() };
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(Tail::default());
    }
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
    if complete < bytes.len() {
        if complete > 0 || start == 0 {
            let keep = start + complete as u64;
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - complete,
                "the audit log ends in a partial record (a crash while writing it); truncating it"
            );
            file.set_len(keep).map_err(io)?;
            file.sync_data().map_err(io)?;
            bytes.truncate(complete);
        } else {
            return Err(AuditError::DamagedTail {
                path: path.to_owned(),
                detail: format!("no complete line in its last {TAIL_BYTES} bytes"),
            });
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| AuditError::DamagedTail { path: path.to_owned(), detail: "not UTF-8".into() })?;
    let Some(last) = text.lines().last() else {
        return Ok(Tail::default());
    };
    let damaged = |detail: String| AuditError::DamagedTail { path: path.to_owned(), detail };
    let record = Record::parse(last).map_err(damaged)?;
    if !record.intact {
        return Err(damaged("its hash does not match its contents".into()));
    }
    Ok(Tail { last_seq: record.body.seq, head: record.hash, boot: record.body.boot })
}

#[cfg(test)]
mod tests;
