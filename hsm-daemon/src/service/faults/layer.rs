//! The tower layer that applies faults, in two places around the permission
//! gate (see the module docs of `faults`). It exists only when fault
//! injection is on; without it the server has no such layer, and the fault
//! service's paths reach the gate, which answers `Unimplemented` as for any
//! path it does not know.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hsm_proto::testing::v1::fault_service_server::FaultServiceServer;
use tonic::{
    codegen::{Body, StdError},
    server::NamedService,
};
use tower::{Layer, Service, ServiceExt as _};

use super::{Faults, api::FaultApi};
use crate::{
    model::Caller,
    service::{HsmState, layer::rpc_of},
};

/// Where a layer sits relative to the permission gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Serves the fault service, applies the mode and the rules.
    BeforeGate,
    /// Refuses peers' calls to an isolated HSM (the gate has established
    /// the caller by then).
    AfterGate,
}

/// The layer; one for each side of the gate.
#[derive(Debug, Clone)]
pub(crate) struct Injector {
    state: Arc<HsmState>,
    faults: Arc<Faults>,
    stage: Stage,
}

impl Injector {
    /// `None` when fault injection is off.
    pub(crate) fn before_gate(state: Arc<HsmState>) -> Option<Self> {
        Self::at(state, Stage::BeforeGate)
    }

    /// `None` when fault injection is off.
    pub(crate) fn after_gate(state: Arc<HsmState>) -> Option<Self> {
        Self::at(state, Stage::AfterGate)
    }

    fn at(state: Arc<HsmState>, stage: Stage) -> Option<Self> {
        let faults = state.faults.clone()?;
        Some(Injector { state, faults, stage })
    }
}

impl<S> Layer<S> for Injector {
    type Service = Injected<S>;

    fn layer(&self, inner: S) -> Injected<S> {
        let control =
            (self.stage == Stage::BeforeGate).then(|| FaultServiceServer::new(FaultApi::new(Arc::clone(&self.state))));
        Injected { inner, faults: Arc::clone(&self.faults), stage: self.stage, control }
    }
}

/// A service with faults applied.
#[derive(Debug, Clone)]
pub(crate) struct Injected<S> {
    inner: S,
    faults: Arc<Faults>,
    stage: Stage,
    /// The fault service, answered here in front of the gate.
    control: Option<FaultServiceServer<FaultApi>>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Injected<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if let Some(control) = &self.control
            && is_control(path)
        {
            let control = control.clone();
            return Box::pin(async move { Ok(never_fails(control.oneshot(request).await)) });
        }
        let Some(rpc) = rpc_of(&request) else {
            return self.pass(request);
        };
        let faults = &self.faults;
        match self.stage {
            Stage::BeforeGate => {
                let verdict = faults.judge(rpc);
                if verdict.latency.is_zero() && verdict.failure.is_none() {
                    return self.pass(request);
                }
                let mut inner = self.take_inner();
                Box::pin(async move {
                    tokio::time::sleep(verdict.latency).await;
                    match verdict.failure {
                        Some(status) => Ok(status.into_http()),
                        None => inner.call(request).await,
                    }
                })
            }
            Stage::AfterGate => {
                let refusal = request.extensions().get::<Caller>().and_then(|caller| faults.refuses_peer(rpc, caller));
                match refusal {
                    Some(status) => Box::pin(async move { Ok(status.into_http()) }),
                    None => self.pass(request),
                }
            }
        }
    }
}

impl<S> Injected<S> {
    /// The inner service that `poll_ready` readied, leaving a clone in its
    /// place for the next call.
    fn take_inner(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }

    fn pass<B>(&mut self, request: http::Request<B>) -> BoxFuture<Result<S::Response, S::Error>>
    where
        S: Service<http::Request<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
    {
        let mut inner = self.take_inner();
        Box::pin(async move { inner.call(request).await })
    }
}

/// Generated servers answer every failure as a gRPC status.
fn never_fails<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

/// Whether `path` is a method of the fault service (`/package.Service/Method`).
fn is_control(path: &str) -> bool {
    let service = <FaultServiceServer<FaultApi> as NamedService>::NAME;
    path.strip_prefix('/').and_then(|p| p.strip_prefix(service)).is_some_and(|rest| rest.starts_with('/'))
}
