//! Reading an HSM's audit log (an emulator extension; admins only). Each HSM
//! keeps its own log, so the cluster layer reads every HSM's
//! (`ClusterSession::read_audit_log_all`).

use hsm_proto::v1::{self as pb, audit_service_client::AuditServiceClient};
use serde::Serialize;

use crate::{ClientError, Session};

/// One record of an HSM's audit log. Names and references only: the HSM
/// never records passwords, session tokens or key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Gap-free from 1, continuing across the HSM's restarts.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// Which start of the HSM this record belongs to.
    pub boot: u64,
    pub hsm_id: String,
    /// `CN_LOGIN`, `CN_CREATE_USER`, `CN_GENERATE_KEY`, ..., or `HSM_START`.
    pub opcode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rpc: String,
    /// The session's number on that HSM (not its token); 0 for none.
    #[serde(skip_serializing_if = "is_zero")]
    pub session: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// The user the operation acted on.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_refs: Vec<String>,
    /// The gRPC status code's name (`OK`, `PERMISSION_DENIED`, ...).
    pub response: String,
    pub success: bool,
    /// Refused by the permission table or a key's owner rules.
    pub denied: bool,
    pub prev: String,
    pub hash: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A page of an HSM's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// What to pass as `from_seq` for the next page.
    pub next_seq: u64,
    /// The newest record's sequence number.
    pub last_seq: u64,
}

impl From<pb::AuditRecord> for AuditRecord {
    fn from(r: pb::AuditRecord) -> Self {
        AuditRecord {
            seq: r.seq,
            time: r.time,
            boot: r.boot,
            hsm_id: r.hsm_id,
            opcode: r.opcode,
            rpc: r.rpc,
            session: r.session,
            user: r.user,
            role: r.role,
            target: r.target,
            key_refs: r.key_refs,
            response: r.response,
            success: r.success,
            denied: r.denied,
            prev: r.prev,
            hash: r.hash,
        }
    }
}

impl Session {
    /// Up to `limit` (1..=1000; 0 for 100) records of this HSM's audit log
    /// from sequence number `from_seq` on (admins only).
    pub async fn read_audit_log(&self, from_seq: u64, limit: u32) -> Result<AuditPage, ClientError> {
        let request = self.request(pb::ReadAuditLogRequest { from_seq, limit })?;
        let reply = AuditServiceClient::new(self.client().channel()).read_audit_log(request).await?.into_inner();
        Ok(AuditPage {
            records: reply.records.into_iter().map(AuditRecord::from).collect(),
            next_seq: reply.next_seq,
            last_seq: reply.last_seq,
        })
    }
}
