//! Requests and latency by RPC and gRPC status, recorded by one tower layer.
//!
//! The RPCs are a closed enum ([`Rpc`]), so each HSM keeps a fixed table:
//! one slot per RPC (and one for paths that are no RPC), each with a counter
//! per gRPC code and a latency histogram, all atomics. Recording a call is a
//! path match, two clock reads and three relaxed atomic adds: no lock, no
//! allocation, no label hashing. Label strings are only made at scrape time,
//! and only for the (RPC, code) pairs that have been seen.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use hsm_proto::v1::Rpc;
use prometheus_client::{
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
};
use tonic::Code;
use tower::{Layer, Service};

use super::Stats;

/// Upper bounds of the latency buckets, in seconds: an emulated HSM answers
/// most calls in well under a millisecond, Argon2 logins and RSA key
/// generation in tens to thousands.
const BUCKETS: [f64; 14] =
    [0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// gRPC status codes by number, named as gRPC's own metrics name them
/// (`grpc_code` in go-grpc-prometheus).
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The `rpc` label of paths that name no `hsm.v1` RPC: the health and
/// reflection services, the fault service, and anything a client invents
/// (one label for them all, so that no caller can grow the page).
const UNKNOWN_RPC: &str = "unknown";

/// Every RPC's counters; see the module docs.
#[derive(Debug)]
pub(super) struct RpcTable {
    /// Indexed by `Rpc as usize`; the last slot is for unknown paths.
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
struct Slot {
    codes: [AtomicU64; CODES.len()],
    /// Calls per bucket (not cumulative: one add per call); the last one
    /// is above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for RpcTable {
    fn default() -> Self {
        RpcTable { slots: (0..=Rpc::ALL.len()).map(|_| Slot::default()).collect() }
    }
}

impl RpcTable {
    pub(super) fn record(&self, slot: usize, code: Code, elapsed: Duration) {
        let Some(slot) = self.slots.get(slot) else { return };
        if let Some(counter) = slot.codes.get(code as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.partition_point(|bound| *bound < seconds);
        if let Some(counter) = slot.buckets.get(bucket) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        slot.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Each slot with its `rpc` label.
    fn labelled(&self) -> impl Iterator<Item = (&'static str, &Slot)> {
        let names = Rpc::ALL.iter().map(|rpc| method_name(*rpc)).chain([UNKNOWN_RPC]);
        names.zip(self.slots.iter())
    }
}

/// The method name of an RPC (the last part of its path), as the proto
/// declares it: `Login`, `GenerateKeyPair`.
fn method_name(rpc: Rpc) -> &'static str {
    let path = rpc.path();
    path.rsplit_once('/').map_or(path, |(_, method)| method)
}

/// The slot of a request path.
fn slot_of(path: &str) -> usize {
    // `Rpc` is a field-less enum listed in declaration order in `Rpc::ALL`,
    // so its discriminant is its index there (a test checks it).
    Rpc::from_path(path).map_or(Rpc::ALL.len(), |rpc| rpc as usize)
}

/// The encoded request counters and latency histograms of every HSM.
pub(super) fn encode<'a>(
    encoder: &mut DescriptorEncoder,
    hsms: impl Iterator<Item = (&'a str, &'a RpcTable)> + Clone,
) -> Result<(), std::fmt::Error> {
    let mut requests = encoder.encode_descriptor(
        "hsm_rpc_requests",
        "gRPC requests answered, by RPC and status code (refusals by the permission gate included).",
        None,
        MetricType::Counter,
    )?;
    for (hsm, table) in hsms.clone() {
        for (rpc, slot) in table.labelled() {
            for (code, counter) in CODES.iter().zip(&slot.codes) {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let labels = [("hsm", hsm), ("rpc", rpc), ("code", code)];
                    requests.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&count, None)?;
                }
            }
        }
    }

    let mut latency = encoder.encode_descriptor(
        "hsm_rpc_duration_seconds",
        "Time from receiving a gRPC request to its response headers, by RPC.",
        None,
        MetricType::Histogram,
    )?;
    for (hsm, table) in hsms {
        for (rpc, slot) in table.labelled() {
            // Per bucket, not cumulative: the encoder adds them up.
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .chain([&f64::INFINITY])
                .zip(&slot.buckets)
                .map(|(bound, counter)| (*bound, counter.load(Ordering::Relaxed)))
                .collect();
            let count = buckets.iter().map(|(_, n)| n).sum();
            if count == 0 {
                continue;
            }
            let sum = Duration::from_nanos(slot.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
            let labels = [("hsm", hsm), ("rpc", rpc)];
            latency.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}

/// The layer; outermost, so that every answer counts, whoever gave it.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    stats: Arc<Stats>,
}

impl Recorder {
    pub(crate) fn new(stats: Arc<Stats>) -> Self {
        Recorder { stats }
    }
}

impl<S> Layer<S> for Recorder {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded { inner, stats: Arc::clone(&self.stats) }
    }
}

/// A service whose calls are counted and timed.
#[derive(Debug, Clone)]
pub(crate) struct Recorded<S> {
    inner: S,
    stats: Arc<Stats>,
}

impl<S, B, R> Service<http::Request<B>> for Recorded<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Recording<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let slot = slot_of(request.uri().path());
        Recording { inner: self.inner.call(request), stats: Arc::clone(&self.stats), slot, start: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    /// A call in flight; records it when the response headers are ready.
    /// A call the client abandons before then is not recorded.
    #[derive(Debug)]
    pub(crate) struct Recording<F> {
        #[pin]
        inner: F,
        stats: Arc<Stats>,
        slot: usize,
        start: Instant,
    }
}

impl<F, R, E> Future for Recording<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let code = match &result {
            Ok(response) => response_code(response.headers()),
            Err(_) => Code::Unknown,
        };
        this.stats.rpc.record(*this.slot, code, this.start.elapsed());
        Poll::Ready(result)
    }
}

/// The gRPC status of a unary call from its response headers: an error is
/// answered "trailers-only", with `grpc-status` in the headers; a success
/// carries OK in the trailers, so no header means OK. For the layers that
/// see every call's outcome (metrics, the audit log).
pub(crate) fn response_code(headers: &http::HeaderMap) -> Code {
    headers.get("grpc-status").map_or(Code::Ok, |status| Code::from_bytes(status.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rpcs_discriminant_is_its_index_in_all() {
        for (i, rpc) in Rpc::ALL.iter().enumerate() {
            assert_eq!(*rpc as usize, i, "{rpc:?}");
            assert_eq!(slot_of(rpc.path()), i);
        }
        assert_eq!(slot_of("/hsm.v1.UserService/Nope"), Rpc::ALL.len());
        assert_eq!(method_name(Rpc::GenerateKeyPair), "GenerateKeyPair");
    }

    #[test]
    fn code_names_follow_tonics_numbering() {
        for (i, name) in CODES.iter().enumerate() {
            let code = Code::from(i32::try_from(i).unwrap());
            let tonic_name = format!("{code:?}");
            // tonic spells two of them differently.
            let expected = match code {
                Code::Ok => "OK",
                Code::Cancelled => "Canceled",
                _ => tonic_name.as_str(),
            };
            assert_eq!(*name, expected);
        }
    }

    #[test]
    fn a_call_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let table = RpcTable::default();
        let login = Rpc::Login as usize;
        table.record(login, Code::Ok, Duration::from_micros(250));
        table.record(login, Code::Unauthenticated, Duration::from_millis(3));
        table.record(login, Code::Unauthenticated, Duration::from_secs(60));
        let slot = &table.slots[login];
        let counts: Vec<u64> = slot.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 1, "0.25 ms is within the first bound: {counts:?}");
        assert_eq!(counts[4], 1, "3 ms is within 5 ms: {counts:?}");
        assert_eq!(counts[BUCKETS.len()], 1, "a minute is above every bound: {counts:?}");
        assert_eq!(slot.codes[Code::Unauthenticated as usize].load(Ordering::Relaxed), 2);
        assert_eq!(slot.sum_nanos.load(Ordering::Relaxed), 60_003_250_000);
    }

    #[test]
    fn the_status_comes_from_the_headers_else_ok() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(response_code(&headers), Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("7"));
        assert_eq!(response_code(&headers), Code::PermissionDenied);
    }
}
