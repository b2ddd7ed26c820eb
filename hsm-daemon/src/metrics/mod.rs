//! Prometheus metrics: what the HSMs of this process did and hold, served
//! as Prometheus text on a plain HTTP port of its own (`--metrics-addr`),
//! apart from the gRPC port so that a scraper needs no TLS or session.
//!
//! Every series carries an `hsm` label, so one endpoint serves every HSM of
//! a process (`hsm-daemon dev` runs several). Counters are plain atomics
//! that the hot path bumps without a lock or an allocation; gauges that
//! describe the model (sessions, locked users, keys) are read from it when
//! a scrape comes, never kept up to date on the hot path. Labels never hold
//! a secret: RPC and status names, key types, peer addresses, ids.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `hsm_info` | gauge (1) | `hsm`, `cluster`, `version` |
//! | `hsm_rpc_requests_total` | counter | `hsm`, `rpc`, `code` |
//! | `hsm_rpc_duration_seconds` | histogram | `hsm`, `rpc` |
//! | `hsm_logins_failed_total` | counter | `hsm` |
//! | `hsm_users_locked` | gauge | `hsm` |
//! | `hsm_sessions_active` | gauge | `hsm` |
//! | `hsm_keys` | gauge | `hsm`, `type`, `class` |
//! | `hsm_sync_peer_up` | gauge | `hsm`, `peer` |
//! | `hsm_sync_last_success_timestamp_seconds` | gauge | `hsm`, `peer` |
//! | `hsm_sync_rounds_total` | counter | `hsm`, `peer`, `result` |
//! | `hsm_faults_injected_total` | counter | `hsm`, `kind` (with `--faults`) |
//!
//! # Layout
//! - This file: [`Metrics`], the process's set of HSMs and how a scrape
//!   turns them into text; [`Stats`], one HSM's counters; [`Observation`],
//!   what a scrape reads from one HSM.
//! - `rpc`: the per-RPC request counters and latency histograms, the
//!   tower layer that records them (outermost, so that refusals count), and
//!   [`response_code`], a call's gRPC status as every layer that sees the
//!   outcome reads it (the service's gate and audit layer too).
//! - `endpoint`: the HTTP endpoint ([`Endpoint`]).

mod endpoint;
mod rpc;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet, prometheus_text},
    metrics::MetricType,
    registry::Registry,
};

pub use self::endpoint::{CONTENT_TYPE, Endpoint, MetricsError};
use self::rpc::RpcTable;
pub(crate) use self::rpc::{Recorder, response_code};

/// The HSMs whose metrics this process serves. HSMs join when they start
/// serving and leave when they stop.
#[derive(Debug, Default)]
pub struct Metrics {
    hsms: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    source: Arc<dyn Source>,
}

/// An HSM as the metrics see it (the service's state implements it).
pub(crate) trait Source: Send + Sync + fmt::Debug {
    /// Its counters.
    fn stats(&self) -> &Arc<Stats>;
    /// Reads its state, for one scrape.
    fn observe(&self) -> Observation;
}

/// One HSM's state as a scrape reads it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    pub(crate) hsm: String,
    pub(crate) cluster: String,
    pub(crate) sessions: usize,
    pub(crate) users_locked: usize,
    /// Keys by (type, class), as `key list` names them.
    pub(crate) keys: BTreeMap<(&'static str, &'static str), usize>,
    /// Faults injected by kind; `None` without fault injection.
    pub(crate) faults: Option<Vec<(&'static str, u64)>>,
}

/// Keeps an HSM among the served ones until dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    metrics: Arc<Metrics>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.metrics.hsms().retain(|entry| entry.id != self.id);
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Serves `source`'s metrics until the registration is dropped.
    pub(crate) fn register(self: &Arc<Self>, source: Arc<dyn Source>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.hsms().push(Entry { id, source });
        Registration { metrics: Arc::clone(self), id }
    }

    /// Every series, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        // Read every HSM first, then encode without holding the list.
        let scrape: Vec<(Observation, Arc<Stats>)> = {
            let sources: Vec<Arc<dyn Source>> = self.hsms().iter().map(|e| Arc::clone(&e.source)).collect();
            sources.iter().map(|s| (s.observe(), Arc::clone(s.stats()))).collect()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(scrape)));
        let mut out = String::new();
        // Writing to a String cannot fail, and every label value is a plain
        // string; an error would leave a partial page, which the scraper
        // refuses rather than misreads.
        if let Err(e) = prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    fn hsms(&self) -> MutexGuard<'_, Vec<Entry>> {
        // Pushes and retains cannot leave the list half-changed.
        self.hsms.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One HSM's counters. Kept whether or not metrics are served: each is one
/// atomic add on an event, and they must be running from the start for a
/// scrape to tell the truth.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    rpc: RpcTable,
    /// The model's count resets on a successful login; this one never does.
    logins_failed: AtomicU64,
    /// Per peer; updated once per sync round, so a lock is fine here.
    peers: Mutex<BTreeMap<String, PeerSync>>,
}

/// Background sync with one peer, as far as metrics tell it.
#[derive(Debug, Clone, Copy, Default)]
struct PeerSync {
    up: bool,
    /// Seconds since the Unix epoch of the last round that reached the peer.
    last_success: Option<f64>,
    ok: u64,
    failed: u64,
    skipped: u64,
}

/// How a background sync round with a peer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    Ok,
    Failed,
    /// Not attempted: fault injection isolated the HSM.
    Skipped,
}

impl Stats {
    pub(crate) fn count_failed_login(&self) {
        self.logins_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes `peer`'s series appear before its first round ends.
    pub(crate) fn add_peer(&self, peer: &str) {
        self.peers().entry(peer.to_owned()).or_default();
    }

    pub(crate) fn sync_round(&self, peer: &str, round: Round) {
        let mut peers = self.peers();
        let sync = peers.entry(peer.to_owned()).or_default();
        match round {
            Round::Ok => {
                sync.ok += 1;
                sync.up = true;
                // A clock before 1970 reports 0 rather than failing the round.
                sync.last_success =
                    Some(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64()));
            }
            Round::Failed => {
                sync.failed += 1;
                sync.up = false;
            }
            Round::Skipped => sync.skipped += 1,
        }
    }

    fn peers(&self) -> MutexGuard<'_, BTreeMap<String, PeerSync>> {
        // Every update is complete before it could panic.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One scrape's worth of HSMs, encoded by prometheus-client.
#[derive(Debug)]
struct Scrape(Vec<(Observation, Arc<Stats>)>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let hsms = &self.0;
        let version = env!("CARGO_PKG_VERSION");

        let mut info =
            encoder.encode_descriptor("hsm", "The HSM: its id, cluster and version.", None, MetricType::Info)?;
        for (o, _) in hsms {
            info.encode_info(&[("hsm", o.hsm.as_str()), ("cluster", o.cluster.as_str()), ("version", version)])?;
        }

        rpc::encode(&mut encoder, hsms.iter().map(|(o, stats)| (o.hsm.as_str(), &stats.rpc)))?;

        let mut failed = encoder.encode_descriptor(
            "hsm_logins_failed",
            "Logins refused for a wrong password, an unknown user or role, or a locked user.",
            None,
            MetricType::Counter,
        )?;
        for (o, stats) in hsms {
            let value = stats.logins_failed.load(Ordering::Relaxed);
            failed.encode_family(&[("hsm", o.hsm.as_str())])?.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }

        gauge(&mut encoder, "hsm_users_locked", "Users locked by failed logins.", hsms, |o| o.users_locked)?;
        gauge(&mut encoder, "hsm_sessions_active", "Open sessions.", hsms, |o| o.sessions)?;

        let mut keys = encoder.encode_descriptor(
            "hsm_keys",
            "Keys held, token and session, by key type and class.",
            None,
            MetricType::Gauge,
        )?;
        for (o, _) in hsms {
            for ((kind, class), count) in &o.keys {
                let labels = [("hsm", o.hsm.as_str()), ("type", kind), ("class", class)];
                keys.encode_family(&labels)?.encode_gauge(count)?;
            }
        }

        encode_sync(&mut encoder, hsms)?;

        if hsms.iter().all(|(o, _)| o.faults.is_none()) {
            return Ok(());
        }
        let mut faults = encoder.encode_descriptor(
            "hsm_faults_injected",
            "Faults injected (--faults), by kind: unavailable and busy (modes), error and latency (rules), \
             isolation (peer calls refused), drop_sessions.",
            None,
            MetricType::Counter,
        )?;
        for (o, _) in hsms {
            for (kind, count) in o.faults.iter().flatten() {
                let labels = [("hsm", o.hsm.as_str()), ("kind", kind)];
                faults.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(count, None)?;
            }
        }
        Ok(())
    }
}

/// A gauge with the `hsm` label alone, read from each observation.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    hsms: &[(Observation, Arc<Stats>)],
    value: impl Fn(&Observation) -> usize,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (o, _) in hsms {
        metric.encode_family(&[("hsm", o.hsm.as_str())])?.encode_gauge(&value(o))?;
    }
    Ok(())
}

fn encode_sync(encoder: &mut DescriptorEncoder, hsms: &[(Observation, Arc<Stats>)]) -> Result<(), fmt::Error> {
    let held: Vec<(&str, BTreeMap<String, PeerSync>)> =
        hsms.iter().map(|(o, stats)| (o.hsm.as_str(), stats.peers().clone())).collect();
    // (hsm, peer, state), one per peer of each HSM.
    let links: Vec<(&str, &str, &PeerSync)> = held
        .iter()
        .flat_map(|(hsm, peers)| peers.iter().map(move |(peer, sync)| (*hsm, peer.as_str(), sync)))
        .collect();

    let mut up = encoder.encode_descriptor(
        "hsm_sync_peer_up",
        "1 if the last background sync round reached the peer and compared state, else 0.",
        None,
        MetricType::Gauge,
    )?;
    for (hsm, peer, sync) in &links {
        up.encode_family(&[("hsm", *hsm), ("peer", *peer)])?.encode_gauge(&u64::from(sync.up))?;
    }

    let mut last = encoder.encode_descriptor(
        "hsm_sync_last_success_timestamp_seconds",
        "When background sync last reached the peer (Unix time); absent until it has.",
        None,
        MetricType::Gauge,
    )?;
    for (hsm, peer, sync) in &links {
        if let Some(at) = sync.last_success {
            last.encode_family(&[("hsm", *hsm), ("peer", *peer)])?.encode_gauge(&at)?;
        }
    }

    let mut rounds = encoder.encode_descriptor(
        "hsm_sync_rounds",
        "Background sync rounds with the peer, by result: ok, failed, skipped (isolated by fault injection).",
        None,
        MetricType::Counter,
    )?;
    for (hsm, peer, sync) in &links {
        for (result, count) in [("ok", sync.ok), ("failed", sync.failed), ("skipped", sync.skipped)] {
            let labels = [("hsm", *hsm), ("peer", *peer), ("result", result)];
            rounds.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
