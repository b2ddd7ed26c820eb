//! The HTTP server: HTTP/1.1 on hyper, one task per connection, each
//! request through [`handle`]: route, authenticate, read the body with a
//! limit, decode, check, call the [`Handler`], encode, log.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{
    body::{Body, Bytes},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use super::{ApiError, Document, Handler, Operation, RequestContext, cbor, json, sigv4, sigv4::Credentials, validate};
use crate::control::clock::{ShiftedClock, WallClock};

/// The largest request body read by default: the model's largest inputs
/// (a 20,000-character certificate and trust anchor, a 20,000-character
/// policy) fit many times over.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// How the server authenticates and what it accepts.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The access key requests must be signed with (SigV4, service
    /// `cloudhsm`); `None` accepts every request, signed or not, as a
    /// local emulator is usually run.
    pub credentials: Option<Credentials>,
    /// Bodies over this many bytes are refused with 413 before they are
    /// buffered.
    pub max_body: usize,
    /// What "now" is for SigV4's 15-minute window.
    pub clock: Arc<dyn WallClock>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { credentials: None, max_body: DEFAULT_MAX_BODY, clock: Arc::new(ShiftedClock::default()) }
    }
}

/// Serves the API on `listener` until `shutdown` resolves; then stops
/// accepting, lets the requests in flight finish (idle keep-alive
/// connections close), and returns.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    config: ApiConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { handler, config });
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&shared), stopped.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, most likely: back off so
                    // that some close, rather than spin on the error.
                    tracing::warn!(%error, "control API: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Receivers see the change, or the sender gone: either way they stop.
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What every connection shares.
pub(super) struct Shared {
    handler: Arc<dyn Handler>,
    config: ApiConfig,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Serves one client's connection until it closes, or until shutdown,
/// when the request in flight (if any) is answered and the connection
/// then closed.
async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let served = http1::Builder::new()
        // A peer that opens a connection and sends nothing is dropped.
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let result = tokio::select! {
        result = &mut served => result,
        () = async {
            // Err: the server is gone, which means stop as well.
            let _ = stopped.wait_for(|stop| *stop).await;
        } => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "control API: connection ended with an error");
    }
}

/// Which wire protocol a request speaks, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    fn of(parts: &Parts) -> Protocol {
        if parts.uri.path().starts_with(cbor::PATH_PREFIX) { Protocol::Cbor } else { Protocol::Json }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Json => "awsJson1_1",
            Protocol::Cbor => "rpcv2Cbor",
        }
    }
}

/// How one request ended.
enum Outcome {
    Document(Document),
    NoDocument,
    Answered(Operation, Value),
    Failed(Option<Operation>, ApiError),
}

/// Answers one request (any body type, so that tests need no socket).
pub(super) async fn handle<B>(shared: &Shared, request: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let request_id = request_id();
    let (parts, body) = request.into_parts();
    let protocol = Protocol::of(&parts);
    let outcome = process(shared, &parts, body).await;
    let (operation, response) = match outcome {
        Outcome::Document(document) => (None, document_response(document)),
        Outcome::NoDocument => (None, not_found()),
        Outcome::Answered(operation, output) => (Some(operation), answer(protocol, operation, &output)),
        Outcome::Failed(operation, error) => (operation, failure(protocol, &error)),
    };
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    tracing::info!(
        request_id,
        method = %parts.method,
        path = parts.uri.path(),
        protocol = protocol.name(),
        operation = operation.map(Operation::name),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "control API request"
    );
    response
}

async fn process<B>(shared: &Shared, parts: &Parts, body: B) -> Outcome
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Documents are public (root certificates): no signature needed.
    if parts.method == Method::GET {
        return match shared.handler.document(parts.uri.path()) {
            Some(document) => Outcome::Document(document),
            None => Outcome::NoDocument,
        };
    }
    if parts.method != Method::POST {
        return Outcome::Failed(
            None,
            ApiError::MethodNotAllowed(format!(
                "Method {} is not allowed: operations are POST, documents GET",
                parts.method
            )),
        );
    }
    // The signature's header before the body: an unsigned request is
    // refused without reading what it sends.
    let now = shared.config.clock.unix_seconds();
    let authorization = match &shared.config.credentials {
        Some(credentials) => match sigv4::check_head(&parts.headers, credentials, now) {
            Ok(authorization) => Some((authorization, credentials)),
            Err(error) => return Outcome::Failed(None, error),
        },
        None => None,
    };
    let body = match read_body(parts, body, shared.config.max_body).await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(None, error),
    };
    let context = match authorization {
        Some((authorization, credentials)) => {
            if let Err(error) = sigv4::verify(parts, &body, &authorization, credentials) {
                return Outcome::Failed(None, error);
            }
            RequestContext { region: Some(authorization.region), access_key_id: Some(authorization.access_key_id) }
        }
        // Unchecked, but a signed request still says where it is aimed.
        None => unchecked_context(parts),
    };
    let decoded = match Protocol::of(parts) {
        Protocol::Json => decode_json(parts, &body),
        Protocol::Cbor => decode_cbor(parts, &body),
    };
    let (operation, input) = match decoded {
        Ok(decoded) => decoded,
        Err((operation, error)) => return Outcome::Failed(operation, error),
    };
    let input = match validate::check_input(operation, input) {
        Ok(input) => input,
        Err(error) => return Outcome::Failed(Some(operation), error),
    };
    // On a task of its own, so that a handler that panics costs a 500,
    // not the connection.
    let handler = Arc::clone(&shared.handler);
    let called = tokio::spawn(async move { handler.call(context, operation, input).await }).await;
    match called {
        Ok(Ok(output)) => Outcome::Answered(operation, output),
        Ok(Err(error)) => Outcome::Failed(Some(operation), error),
        Err(error) => {
            tracing::error!(%error, operation = operation.name(), "control API: the handler failed");
            Outcome::Failed(Some(operation), ApiError::InternalFailure("An internal error occurred".to_owned()))
        }
    }
}

type Decoded = Result<(Operation, Value), (Option<Operation>, ApiError)>;

fn decode_json(parts: &Parts, body: &[u8]) -> Decoded {
    if parts.uri.path() != "/" {
        return Err((
            None,
            ApiError::UnknownOperation {
                message: format!("Unknown operation: no resource at {}", json::clip(parts.uri.path())),
                status: StatusCode::NOT_FOUND,
            },
        ));
    }
    let operation = json::operation(&parts.headers).map_err(|error| (None, error))?;
    json::check_content_type(&parts.headers).map_err(|error| (Some(operation), error))?;
    let input = json::decode(body).map_err(|error| (Some(operation), error))?;
    Ok((operation, input))
}

fn decode_cbor(parts: &Parts, body: &[u8]) -> Decoded {
    let operation = cbor::operation(parts.uri.path()).map_err(|error| (None, error))?;
    cbor::check_headers(&parts.headers, body.is_empty()).map_err(|error| (Some(operation), error))?;
    let input = cbor::decode(body).map_err(|error| (Some(operation), error))?;
    Ok((operation, input))
}

/// The body, refused with 413 past `limit` (by its `Content-Length`
/// before reading, or as it arrives).
async fn read_body<B>(parts: &Parts, body: B, limit: usize) -> Result<Vec<u8>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large =
        || ApiError::RequestEntityTooLarge(format!("Request body is larger than the limit of {limit} bytes"));
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::Serialization(format!("The request body could not be read: {error}"))),
    }
}

/// Region and key of an `Authorization` header nobody checks (no
/// credentials configured), if it parses.
fn unchecked_context(parts: &Parts) -> RequestContext {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| sigv4::parse_authorization(value).ok())
        .map(|authorization| RequestContext {
            region: Some(authorization.region),
            access_key_id: Some(authorization.access_key_id),
        })
        .unwrap_or_default()
}

fn answer(protocol: Protocol, operation: Operation, output: &Value) -> Response<Full<Bytes>> {
    match protocol {
        Protocol::Json => response(StatusCode::OK, json::CONTENT_TYPE, json::encode_output(output)),
        Protocol::Cbor => cbor_response(StatusCode::OK, cbor::encode_output(operation, output)),
    }
}

fn failure(protocol: Protocol, error: &ApiError) -> Response<Full<Bytes>> {
    let mut response = match protocol {
        Protocol::Json => response(error.status(), json::CONTENT_TYPE, json::encode_error(error)),
        Protocol::Cbor => cbor_response(error.status(), cbor::encode_error(error)),
    };
    response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(error.code()));
    if let ApiError::MethodNotAllowed(_) = error {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    response
}

fn cbor_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = response(status, cbor::CONTENT_TYPE, body);
    response.headers_mut().insert("smithy-protocol", HeaderValue::from_static(cbor::PROTOCOL));
    response
}

fn document_response(document: Document) -> Response<Full<Bytes>> {
    let mut response = response(StatusCode::OK, "application/octet-stream", document.body);
    if let Ok(content_type) = HeaderValue::from_str(&document.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    response
}

fn not_found() -> Response<Full<Bytes>> {
    response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"Not Found\n".to_vec())
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A random request id in UUID version 4 form, as AWS's look.
fn request_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
pub(super) fn shared_for_tests(handler: Arc<dyn Handler>, config: ApiConfig) -> Shared {
    Shared { handler, config }
}
