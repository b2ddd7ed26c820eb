//! The metrics endpoint: plain HTTP/1.1 with one resource, `GET /metrics`.
//! Plain because scrapers expect it and the page holds no secret; on a port
//! of its own so that it can be exposed to a monitoring network apart from
//! the HSM's API.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use tokio::{net::TcpListener, task::JoinSet};

use super::Metrics;

/// The Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Where scrapers look.
const PATH: &str = "/metrics";

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics_addr (--metrics-addr) {addr}: cannot listen there: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound metrics port, ready to serve.
#[derive(Debug)]
pub struct Endpoint {
    metrics: Arc<Metrics>,
    listener: TcpListener,
    address: SocketAddr,
}

impl Endpoint {
    /// Binds `addr` (port 0: a free port; see [`Endpoint::address`]), so
    /// that a busy port stops start-up before the HSM serves.
    pub async fn bind(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Self, MetricsError> {
        let bind_error = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Endpoint { metrics, listener, address })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves scrapes until `shutdown` resolves; scrapes in flight then end.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Endpoint { metrics, listener, .. } = self;
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(connection(stream, Arc::clone(&metrics)));
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: let some
                        // close rather than spin on the error.
                        tracing::warn!(error = %e, "metrics endpoint: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Dropping the set ends the connections still open.
    }
}

/// Serves one scraper's connection (kept alive between scrapes).
async fn connection(stream: tokio::net::TcpStream, metrics: Arc<Metrics>) {
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let response = respond(&metrics, request.method(), request.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http1::Builder::new()
        // A peer that opens a connection and sends nothing is dropped.
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
    }
}

pub(super) fn respond(metrics: &Metrics, method: &Method, path: &str) -> http::Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, PATH) => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (_, PATH) => (StatusCode::METHOD_NOT_ALLOWED, TEXT, format!("{PATH} answers GET only\n")),
        _ => (StatusCode::NOT_FOUND, TEXT, format!("not found: metrics are served at {PATH}\n")),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    }
    response
}
