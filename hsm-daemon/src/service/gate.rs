//! The permission gate: one tower layer in front of every service. For each
//! request it finds the RPC from its path, classifies it as an operation,
//! resolves the session token from the `authorization` metadata and asks the
//! model (`Hsm::admit`) whether the caller may proceed. Admitted requests carry
//! the [`Caller`] to their handler; refused ones never reach a handler. The
//! health and reflection services pass without a session (`health`).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hsm_proto::{SESSION_METADATA_KEY, v1::Rpc};
use tonic::Status;
use tower::{Layer, Service};

use super::{HsmState, health, operation};
use crate::model::{ModelError, Operation};

/// The layer; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    state: Arc<HsmState>,
}

impl Gate {
    pub(crate) fn new(state: Arc<HsmState>) -> Self {
        Gate { state }
    }
}

impl<S> Layer<S> for Gate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated { inner, state: Arc::clone(&self.state) }
    }
}

/// A service behind the gate.
#[derive(Debug, Clone)]
pub(crate) struct Gated<S> {
    inner: S,
    state: Arc<HsmState>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Gated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Health and reflection are outside the permission table.
        if !health::is_open(request.uri().path()) {
            match admit(&self.state, &request) {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        // The clone may not be ready; the ready one is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(request).await })
    }
}

fn admit<B>(state: &HsmState, request: &http::Request<B>) -> Result<crate::model::Caller, Status> {
    let path = request.uri().path();
    let Some(rpc) = Rpc::from_path(path) else {
        return Err(Status::unimplemented(format!("no RPC is served at {path}")));
    };
    let operation = operation(rpc);
    state.check_healthy()?;
    let token = session_token(request, operation)?;
    let admitted = state.hsm().admit(operation, token, state.now());
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
