//! Where the service layer feeds the audit log, and `hsm.v1.AuditService`.
//!
//! One tower layer, [`Auditor`], wraps the permission gate and writes every
//! record: for each request of the protocol it puts a [`Slot`] into the
//! request's extensions; the gate fills it with the caller (and whether the
//! permission table refused), handlers add what only they know (the user a
//! call acts on, key references parsed or created) through [`note_target`],
//! [`note_keys`] and [`note_login`]; once the response is ready the layer
//! appends the record, durably, before passing the response on. Calls that
//! [`opcode`] does not audit (crypto, listings) are recorded only when they
//! were refused for permission or authentication.

use std::sync::{Arc, Mutex, PoisonError};

use hsm_proto::v1::{AuditRecord, ReadAuditLogRequest, ReadAuditLogResponse, Rpc, audit_service_server::AuditService};
use tonic::{Code, Request, Response, Status};
use tower::Service;

use super::{
    BoxFuture, HsmState, blocking,
    layer::{Around, HttpResponse, rpc_of},
};
use crate::{
    audit::{Event, Record},
    metrics,
    model::{Caller, Identity, KeyRef, ModelError, Username},
};

/// Records a read returns when `limit` is 0.
const DEFAULT_LIMIT: u32 = 100;
/// The most records one read returns.
const MAX_LIMIT: u32 = 1000;

/// The CloudHSM-style opcode of an RPC the log records whatever its outcome;
/// `None` for RPCs recorded only when refused. Exhaustive, so that a new RPC
/// is classified here as it is in the permission table.
pub(super) fn opcode(rpc: Rpc) -> Option<&'static str> {
    match rpc {
        Rpc::Activate => Some("CN_ACTIVATE"),
        Rpc::Login => Some("CN_LOGIN"),
        Rpc::Logout => Some("CN_LOGOUT"),
        Rpc::CreateUser => Some("CN_CREATE_USER"),
        Rpc::DeleteUser => Some("CN_DELETE_USER"),
        Rpc::ChangeOwnPassword | Rpc::ChangeUserPassword => Some("CN_CHANGE_PSWD"),
        Rpc::GenerateSymmetricKey => Some("CN_GENERATE_KEY"),
        Rpc::GenerateKeyPair => Some("CN_GENERATE_KEY_PAIR"),
        Rpc::ImportKey => Some("CN_CREATE_OBJECT"),
        Rpc::WrapKey => Some("CN_WRAP_KEY"),
        Rpc::UnwrapKey => Some("CN_UNWRAP_KEY"),
        Rpc::DeleteKey => Some("CN_DESTROY_OBJECT"),
        Rpc::ShareKey | Rpc::UnshareKey => Some("CN_SHARE_OBJECT"),
        Rpc::SetKeyAttribute => Some("CN_MODIFY_OBJECT"),
        Rpc::InsertMaskedObject => Some("CN_INSERT_MASKED_OBJECT"),
        Rpc::ExtractMaskedObject => Some("CN_EXTRACT_MASKED_OBJECT"),
        Rpc::RegisterTrustAnchor => Some("CN_REGISTER_TRUST_ANCHOR"),
        Rpc::DeregisterTrustAnchor => Some("CN_DEREGISTER_TRUST_ANCHOR"),
        Rpc::SetMtlsEnforcement => Some("CN_SET_MTLS_ENFORCEMENT"),
        // Quorum events.
        Rpc::GenerateQuorumToken => Some("CN_GENERATE_QUORUM_TOKEN"),
        Rpc::DeleteQuorumTokens => Some("CN_DELETE_QUORUM_TOKENS"),
        Rpc::SetQuorumValue => Some("CN_SET_M_VALUE"),
        Rpc::RegisterQuorumKey => Some("CN_REGISTER_QUORUM_PUBKEY"),
        Rpc::ChangeMfa => Some("CN_SET_MFA"),
        Rpc::ListQuorumTokens | Rpc::ListQuorumValues => None,
        Rpc::GetClusterInfo
        | Rpc::Ping
        | Rpc::GetSyncStatus
        | Rpc::ListUsers
        | Rpc::ExportPublicKey
        | Rpc::ListKeys
        | Rpc::Encrypt
        | Rpc::Decrypt
        | Rpc::Sign
        | Rpc::Verify
        | Rpc::Digest
        | Rpc::GenerateRandom
        | Rpc::ReadAuditLog
        | Rpc::ListTrustAnchors
        | Rpc::GetMtlsEnforcement => None,
    }
}

/// The opcode a refused call of an unaudited RPC is recorded under.
fn refused_opcode(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::Encrypt | Rpc::Decrypt | Rpc::Sign | Rpc::Verify | Rpc::Digest | Rpc::GenerateRandom => {
            "CN_CRYPTO_OPERATION"
        }
        Rpc::ReadAuditLog => "CN_READ_AUDIT_LOG",
        _ => "CN_QUERY",
    }
}

/// What the gate and the handler learned about one call.
#[derive(Debug, Default)]
struct Notes {
    session: Option<u64>,
    user: Option<String>,
    role: Option<&'static str>,
    target: Option<String>,
    key_refs: Vec<String>,
    /// The permission gate refused the call.
    refused: bool,
}

/// The per-request slot (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct Slot(Arc<Mutex<Notes>>);

impl Slot {
    fn with(&self, f: impl FnOnce(&mut Notes)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The gate's part: who called (when the token named anyone) and whether
    /// the permission table refused.
    pub(super) fn set_caller(&self, caller: Option<&Caller>, session: Option<u64>, refused: bool) {
        self.with(|notes| {
            notes.refused = refused;
            notes.session = session;
            if let Some(caller) = caller {
                notes.role = Some(role_name(caller.identity));
                notes.user = caller.session.as_ref().map(|(_, user)| user.to_string());
            }
        });
    }
}

fn slot<T>(request: &Request<T>) -> Option<&Slot> {
    request.extensions().get::<Slot>()
}

/// Records the user a call acts on (created, deleted, whose password changed,
/// who tried to log in).
pub(super) fn note_target<T>(request: &Request<T>, user: &Username) {
    if let Some(slot) = slot(request) {
        slot.with(|notes| notes.target = Some(user.to_string()));
    }
}

/// Records key references a call named or created.
pub(super) fn note_keys<T>(request: &Request<T>, keys: &[KeyRef]) {
    if let Some(slot) = slot(request) {
        slot.with(|notes| notes.key_refs.extend(keys.iter().map(ToString::to_string)));
    }
}

/// Records the session a login opened and its user.
pub(super) fn note_login<T>(request: &Request<T>, user: &Username, identity: Identity, session: Option<u64>) {
    if let Some(slot) = slot(request) {
        slot.with(|notes| {
            notes.user = Some(user.to_string());
            notes.role = Some(role_name(identity));
            notes.session = session;
        });
    }
}

/// The role as the CLI names it.
fn role_name(identity: Identity) -> &'static str {
    match identity {
        Identity::Unauthenticated => "unauthenticated",
        Identity::PrecryptoOfficer => "unactivated-admin",
        Identity::CryptoOfficer => "admin",
        Identity::CryptoUser => "crypto-user",
        Identity::ApplianceUser | Identity::UnactivatedAppliance => "appliance",
    }
}

/// The layer's kind; see the module docs.
#[derive(Debug)]
pub(super) struct Auditor;

impl Around for Auditor {
    fn around<S, B>(
        state: &Arc<HsmState>,
        mut inner: S,
        mut request: http::Request<B>,
    ) -> BoxFuture<Result<HttpResponse, S::Error>>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        let Some(rpc) = rpc_of(&request) else {
            return Box::pin(inner.call(request));
        };
        let slot = Slot::default();
        request.extensions_mut().insert(slot.clone());
        // Classified once, here, for the layers inside (see `rpc_of`).
        request.extensions_mut().insert(rpc);
        let state = Arc::clone(state);
        Box::pin(async move {
            let response = inner.call(request).await?;
            let code = metrics::response_code(response.headers());
            let notes = std::mem::take(&mut *slot.0.lock().unwrap_or_else(PoisonError::into_inner));
            let denied = notes.refused || code == Code::PermissionDenied;
            let opcode = match opcode(rpc) {
                Some(opcode) => opcode,
                None if denied => refused_opcode(rpc),
                None => return Ok(response),
            };
            let event = Event {
                opcode,
                rpc: rpc.path(),
                session: notes.session,
                user: notes.user,
                role: notes.role,
                target: notes.target,
                key_refs: notes.key_refs,
                response: code_name(code),
                denied,
            };
            match state.audit.append(&event).await {
                Ok(_) => Ok(response),
                Err(e) => Ok(state.fail("writing the audit log", e.to_string()).into_http()),
            }
        })
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `hsm.v1.AuditService`.
#[derive(Debug)]
pub(super) struct AuditApi {
    state: Arc<HsmState>,
}

impl AuditApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        AuditApi { state }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn read_audit_log(
        &self,
        request: Request<ReadAuditLogRequest>,
    ) -> Result<Response<ReadAuditLogResponse>, Status> {
        let req = request.get_ref();
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n if n <= MAX_LIMIT => n,
            n => {
                return Err(ModelError::InvalidArgument {
                    field: "limit",
                    rule: format!("must be at most {MAX_LIMIT} (0 means {DEFAULT_LIMIT}), not {n}"),
                }
                .into());
            }
        };
        let from_seq = req.from_seq.max(1);
        let state = Arc::clone(&self.state);
        // The file is read from its start: off the async workers.
        let (records, last_seq) = blocking(move || {
            state.audit.read(from_seq, limit as usize).map_err(|e| ModelError::Internal(e.to_string()))
        })
        .await?;
        let next_seq = records.last().map_or(from_seq, |r| r.body.seq + 1);
        Ok(Response::new(ReadAuditLogResponse {
            records: records.into_iter().map(to_proto).collect(),
            next_seq,
            last_seq,
        }))
    }
}

fn to_proto(record: Record) -> AuditRecord {
    let body = record.body;
    AuditRecord {
        seq: body.seq,
        time: body.time,
        boot: body.boot,
        hsm_id: body.hsm_id,
        opcode: body.opcode,
        rpc: body.rpc.unwrap_or_default(),
        session: body.session.unwrap_or_default(),
        user: body.user.unwrap_or_default(),
        role: body.role.unwrap_or_default(),
        target: body.target.unwrap_or_default(),
        key_refs: body.key_refs,
        response: body.response,
        success: body.success,
        denied: body.denied,
        prev: body.prev,
        hash: record.hash,
    }
}
