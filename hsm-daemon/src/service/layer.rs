//! One shape for the tower layers that see every call together with the
//! HSM's state (the permission gate, the audit log): [`StateLayer`] wraps a
//! service in [`WithState`], whose `call` hands each request, and the ready
//! inner service, to its kind's [`Around::around`]. The kinds differ only in
//! what they do around the call.

use std::{
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use hsm_proto::v1::Rpc;
use tower::{Layer, Service};

use super::{BoxFuture, HsmState};

/// The RPC a request calls. The audit layer classifies each request once
/// and leaves the [`Rpc`] in its extensions for the layers inside it (the
/// gate, fault injection after the gate); a layer outside it parses the
/// path.
pub(crate) fn rpc_of<B>(request: &http::Request<B>) -> Option<Rpc> {
    request.extensions().get::<Rpc>().copied().or_else(|| Rpc::from_path(request.uri().path()))
}

/// The response every layer here passes on.
pub(crate) type HttpResponse = http::Response<tonic::body::Body>;

/// What a layer kind does with one call: refuse it, pass it on, or act on
/// its outcome.
pub(crate) trait Around: Send + Sync + 'static {
    fn around<S, B>(
        state: &Arc<HsmState>,
        inner: S,
        request: http::Request<B>,
    ) -> BoxFuture<Result<HttpResponse, S::Error>>
    where
        S: Service<http::Request<B>, Response = HttpResponse> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static;
}

/// The layer of kind `K`.
#[derive(Debug)]
pub(crate) struct StateLayer<K> {
    state: Arc<HsmState>,
    kind: PhantomData<fn() -> K>,
}

impl<K> StateLayer<K> {
    pub(crate) fn new(state: Arc<HsmState>) -> Self {
        StateLayer { state, kind: PhantomData }
    }
}

impl<K> Clone for StateLayer<K> {
    fn clone(&self) -> Self {
        StateLayer::new(Arc::clone(&self.state))
    }
}

impl<K, S> Layer<S> for StateLayer<K> {
    type Service = WithState<K, S>;

    fn layer(&self, inner: S) -> WithState<K, S> {
        WithState { inner, state: Arc::clone(&self.state), kind: PhantomData }
    }
}

/// A service wrapped by a layer of kind `K`.
#[derive(Debug)]
pub(crate) struct WithState<K, S> {
    inner: S,
    state: Arc<HsmState>,
    kind: PhantomData<fn() -> K>,
}

impl<K, S: Clone> Clone for WithState<K, S> {
    fn clone(&self) -> Self {
        WithState { inner: self.inner.clone(), state: Arc::clone(&self.state), kind: PhantomData }
    }
}

impl<K, S, B> Service<http::Request<B>> for WithState<K, S>
where
    K: Around,
    S: Service<http::Request<B>, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<Result<HttpResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // `poll_ready` readied `inner`; a clone may not be ready, so the
        // clone stays and the ready one is taken.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        K::around(&self.state, inner, request)
    }
}
