//! The permission gate: one tower layer in front of every service. For each
//! request it takes the RPC (classified once by the audit layer around it,
//! see `layer::rpc_of`), classifies it as an operation,
//! resolves the session token from the `authorization` metadata and asks the
//! model (`Hsm::admit`) whether the caller may proceed. Admitted requests carry
//! the [`Caller`] to their handler; refused ones never reach a handler. The
//! health and reflection services pass without a session (`health`). The
//! gate tells the audit layer around it who called (`audit::Slot`).

use std::sync::Arc;

use hsm_proto::SESSION_METADATA_KEY;
use tonic::{Code, Status};
use tower::Service;

use super::{
    BoxFuture, HsmState,
    audit::Slot,
    health,
    layer::{Around, HttpResponse, rpc_of},
    operation,
};
use crate::{
    metrics,
    model::{ModelError, Operation},
};

/// The layer's kind; see the module docs.
#[derive(Debug)]
pub(crate) struct Gate;

impl Around for Gate {
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
        // Health and reflection are outside the permission table.
        if !health::is_open(request.uri().path()) {
            match admit(state, &request) {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        let call = inner.call(request);
        Box::pin(async move { Ok(clearer_refusal(call.await?)) })
    }
}

/// Requests the codec refused, with the status gRPC clients expect: a body
/// that does not decode (bad protobuf, invalid UTF-8 in a string field)
/// is the caller's error, InvalidArgument, not tonic's Internal; one over the
/// message size limit is ResourceExhausted, not OutOfRange. Every other
/// response passes unchanged.
fn clearer_refusal(response: HttpResponse) -> HttpResponse {
    let code = metrics::response_code(response.headers());
    if !matches!(code, Code::Internal | Code::OutOfRange) {
        return response;
    }
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let message = status.message();
    if code == Code::Internal && message.starts_with("failed to decode Protobuf message") {
        let detail = message.split_once(": ").map_or(message, |(_, d)| d);
        Status::invalid_argument(format!("the request is not a valid message of this RPC: {detail}")).into_http()
    } else if code == Code::OutOfRange && message.contains("decoded message length too large") {
        Status::resource_exhausted(format!("the request is too large: {message}")).into_http()
    } else {
        response
    }
}

fn admit<B>(state: &HsmState, request: &http::Request<B>) -> Result<crate::model::Caller, Status> {
    let Some(rpc) = rpc_of(request) else {
        return Err(Status::unimplemented(format!("no RPC is served at {}", request.uri().path())));
    };
    let operation = operation(rpc);
    state.check_healthy()?;
    let slot = request.extensions().get::<Slot>();
    let token = session_token(request, operation).inspect_err(|_| {
        if let Some(slot) = slot {
            slot.set_caller(None, None, true);
        }
    })?;
    let now = state.now();
    let mut hsm = state.hsm();
    let admitted = hsm.admit(operation, token, now);
    if let Some(slot) = slot {
        // Tell the audit log who called, refused or not.
        let refused = admitted.is_err();
        let caller = match &admitted {
            Ok(caller) => Some(caller.clone()),
            Err(_) => token.and_then(|token| hsm.identify(token, now)),
        };
        let session = caller.as_ref().and_then(|c| c.session.as_ref()).and_then(|(id, _)| hsm.session_number(*id));
        slot.set_caller(caller.as_ref(), session, refused);
    }
    drop(hsm);
    match &admitted {
        Ok(caller) => tracing::debug!(?rpc, identity = %caller.identity, "admitted"),
        Err(err) => tracing::info!(?rpc, %err, "refused"),
    }
    Ok(admitted?)
}

/// The bearer token from the `authorization` metadata, if any.
fn session_token<B>(request: &http::Request<B>, operation: Operation) -> Result<Option<&str>, Status> {
    let Some(value) = request.headers().get(SESSION_METADATA_KEY) else {
        return Ok(None);
    };
    let malformed = || Status::from(ModelError::InvalidSession { operation, reason: "malformed" });
    let value = value.to_str().map_err(|_| malformed())?;
    value.strip_prefix("Bearer ").map(Some).ok_or_else(malformed)
}
