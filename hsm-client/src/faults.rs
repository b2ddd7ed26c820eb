//! Fault injection, snapshots and resets on one HSM
//! (`hsm.testing.v1.FaultService`): how a test suite breaks an HSM the way
//! real ones break and puts its state back between tests. Only an HSM
//! started with `--faults` serves these calls, and they need no login; on
//! any other HSM they fail with `Unimplemented` and a message saying so.
//!
//! # Layout
//! - [`FaultSpec`]: what a rule should do; [`FaultRule`], [`FaultState`],
//!   [`FaultMode`], [`Isolation`], [`Snapshot`], [`Reset`], [`ResetTarget`]:
//!   what the HSM reports.
//! - `impl HsmClient`: one method per call, on one HSM.
//! - `impl Cluster`: [`Cluster::reset_all`], a reset of every HSM at once
//!   that background sync cannot undo half-way.
//!
//! # Example
//! ```no_run
//! use hsm_client::{FaultSpec, HsmClient, ResetTarget};
//!
//! # async fn example(hsm: HsmClient) -> Result<(), hsm_client::ClientError> {
//! let before = hsm.snapshot("clean").await?;
//! hsm.set_fault(&FaultSpec::fail("sign", "unavailable").times(2)).await?;
//! // ... the next two signatures fail with Unavailable ...
//! hsm.clear_faults(None).await?;
//! let reset = hsm.reset(&ResetTarget::Snapshot("clean".into())).await?;
//! assert_eq!(reset.snapshot.digest, before.digest);
//! # Ok(()) }
//! ```

use std::{fmt, time::Duration};

use futures_util::future::join_all;
use hsm_proto::testing::v1::{self as pb, fault_service_client::FaultServiceClient};
use tonic::{Code, Status, transport::Channel};

use crate::{ClientError, Cluster, FanOut, HsmClient, HsmResult};

/// A fault rule to add: matching RPCs fail with `status` and/or wait
/// `latency`, with a probability and for a number of times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultSpec {
    /// A method name of `hsm.v1` (`Sign`, `generate-key-pair`), its path, an
    /// hsm-cli command (`crypto sign`, `key list`) or `*` for every RPC.
    pub rpc: String,
    /// A gRPC status by name (`unavailable`, `resource-exhausted`,
    /// `internal`, ...); `None` for a rule that only adds latency.
    pub status: Option<String>,
    /// 0 to 1; `None` means 1 (every matching call).
    pub probability: Option<f64>,
    /// Fire this many times, then disappear; `None` until cleared.
    pub count: Option<u64>,
    pub latency: Duration,
    /// The status message; `None` for one that names the status, the RPC
    /// and the rule.
    pub message: Option<String>,
}

impl FaultSpec {
    /// Calls of `rpc` fail with `status`.
    pub fn fail(rpc: &str, status: &str) -> Self {
        FaultSpec { rpc: rpc.to_owned(), status: Some(status.to_owned()), ..FaultSpec::default() }
    }

    /// Calls of `rpc` wait `latency`, then are served.
    pub fn delay(rpc: &str, latency: Duration) -> Self {
        FaultSpec { rpc: rpc.to_owned(), latency, ..FaultSpec::default() }
    }

    /// Fire only `count` times.
    pub fn times(self, count: u64) -> Self {
        FaultSpec { count: Some(count), ..self }
    }

    /// Hit each matching call with this chance (0 to 1).
    pub fn with_probability(self, probability: f64) -> Self {
        FaultSpec { probability: Some(probability), ..self }
    }

    /// Wait this long before failing.
    pub fn with_latency(self, latency: Duration) -> Self {
        FaultSpec { latency, ..self }
    }
}

/// A rule as the HSM holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub id: u64,
    /// Method names, or `*` for every RPC.
    pub rpcs: Vec<String>,
    /// `None` for a latency-only rule.
    pub status: Option<String>,
    /// The message given when the rule was set, if any.
    pub message: Option<String>,
    pub probability: f64,
    /// Firings left; `None` until cleared.
    pub remaining: Option<u64>,
    pub latency: Duration,
    /// Calls it hit so far.
    pub hits: u64,
}

/// The whole HSM's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    Normal,
    /// Every RPC fails with `Unavailable`, as an HSM that is down.
    Unavailable,
    /// Every RPC fails with `ResourceExhausted` saying the HSM is busy,
    /// which the cluster layer retries on another HSM.
    Busy,
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultMode::Normal => "normal",
            FaultMode::Unavailable => "unavailable",
            FaultMode::Busy => "busy",
        })
    }
}

/// An HSM's faults, and how often each fired.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultState {
    pub mode: FaultMode,
    /// Calls the mode refused since it was set.
    pub mode_hits: u64,
    /// Cut off from its peers.
    pub isolated: bool,
    /// Peers' sync calls refused while isolated.
    pub isolation_refusals: u64,
    pub rules: Vec<FaultRule>,
    /// Background sync rounds run, and skipped while isolated, since the HSM
    /// started: wait for these to move rather than for a time.
    pub sync_rounds: u64,
    pub sync_rounds_skipped: u64,
}

/// What `clear_faults` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleared {
    /// Rules removed.
    pub rules: u64,
    pub state: FaultState,
}

/// Isolation after an `isolate` call, and before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isolation {
    pub isolated: bool,
    pub was_isolated: bool,
}

/// A snapshot: a name and what the state it holds looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    /// The HSM's sync status digest in that state.
    pub digest: Vec<u8>,
    pub users: u64,
    pub keys: u64,
    pub tombstones: u64,
}

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// What the HSM holds now (its digest is the snapshot's).
    pub snapshot: Snapshot,
    pub sessions_closed: u64,
}

/// What to reset to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTarget {
    /// The state the HSM's process started with.
    Seed,
    /// A snapshot taken by name.
    Snapshot(String),
}

impl HsmClient {
    /// Adds a fault rule.
    pub async fn set_fault(&self, spec: &FaultSpec) -> Result<FaultRule, ClientError> {
        let request = pb::SetFaultRequest {
            rpc: spec.rpc.clone(),
            status: spec.status.clone().unwrap_or_default(),
            probability: spec.probability,
            count: spec.count,
            latency_ms: u64::try_from(spec.latency.as_millis()).unwrap_or(u64::MAX),
            message: spec.message.clone().unwrap_or_default(),
        };
        let reply = self.faults_api().set_fault(request).await.map_err(|s| self.control_error(s))?.into_inner();
        reply.rule.map(FaultRule::from).ok_or_else(|| missing("rule"))
    }

    /// Removes rule `id`, or with `None` every rule, the mode and isolation.
    pub async fn clear_faults(&self, id: Option<u64>) -> Result<Cleared, ClientError> {
        let reply = self
            .faults_api()
            .clear_faults(pb::ClearFaultsRequest { id })
            .await
            .map_err(|s| self.control_error(s))?
            .into_inner();
        Ok(Cleared { rules: reply.cleared, state: state(reply.state)? })
    }

    /// The HSM's rules, mode and isolation, with their hit counts.
    pub async fn faults(&self) -> Result<FaultState, ClientError> {
        let reply = self.faults_api().list_faults(pb::ListFaultsRequest {}).await.map_err(|s| self.control_error(s))?;
        state(reply.into_inner().state)
    }

    /// Makes the whole HSM unavailable or busy, or normal again.
    pub async fn set_fault_mode(&self, mode: FaultMode) -> Result<FaultState, ClientError> {
        let mode = match mode {
            FaultMode::Normal => pb::Mode::Normal,
            FaultMode::Unavailable => pb::Mode::Unavailable,
            FaultMode::Busy => pb::Mode::Busy,
        };
        let request = pb::SetModeRequest { mode: mode.into() };
        let reply = self.faults_api().set_mode(request).await.map_err(|s| self.control_error(s))?;
        state(reply.into_inner().state)
    }

    /// Closes every session on the HSM, as a reboot does; returns how many.
    pub async fn drop_sessions(&self) -> Result<u64, ClientError> {
        let reply =
            self.faults_api().drop_sessions(pb::DropSessionsRequest {}).await.map_err(|s| self.control_error(s))?;
        Ok(reply.into_inner().sessions_closed)
    }

    /// Cuts the HSM off from its peers (`true`) or reconnects it.
    pub async fn isolate(&self, isolated: bool) -> Result<Isolation, ClientError> {
        let reply =
            self.faults_api().isolate(pb::IsolateRequest { isolated }).await.map_err(|s| self.control_error(s))?;
        let reply = reply.into_inner();
        Ok(Isolation { isolated: reply.isolated, was_isolated: reply.was_isolated })
    }

    /// Keeps the HSM's users, token keys and tombstones under `name`.
    pub async fn snapshot(&self, name: &str) -> Result<Snapshot, ClientError> {
        let request = pb::SnapshotRequest { name: name.to_owned() };
        let reply = self.faults_api().snapshot(request).await.map_err(|s| self.control_error(s))?.into_inner();
        reply.snapshot.map(Snapshot::from).ok_or_else(|| missing("snapshot"))
    }

    /// Puts the HSM back to a snapshot or its seed, closing every session.
    /// In a cluster, background sync then copies back whatever the other
    /// HSMs hold that the snapshot lacks; reset them all with
    /// [`Cluster::reset_all`].
    pub async fn reset(&self, target: &ResetTarget) -> Result<Reset, ClientError> {
        let name = match target {
            ResetTarget::Seed => "seed".to_owned(),
            ResetTarget::Snapshot(name) => name.clone(),
        };
        let reply =
            self.faults_api().reset(pb::ResetRequest { name }).await.map_err(|s| self.control_error(s))?.into_inner();
        let snapshot = reply.snapshot.map(Snapshot::from).ok_or_else(|| missing("snapshot"))?;
        Ok(Reset { snapshot, sessions_closed: reply.sessions_closed })
    }

    /// The snapshots the HSM holds, its seed first.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>, ClientError> {
        let reply =
            self.faults_api().list_snapshots(pb::ListSnapshotsRequest {}).await.map_err(|s| self.control_error(s))?;
        Ok(reply.into_inner().snapshots.into_iter().map(Snapshot::from).collect())
    }

    fn faults_api(&self) -> FaultServiceClient<Channel> {
        FaultServiceClient::new(self.channel())
    }

    /// An HSM without fault injection does not know the service: say so.
    fn control_error(&self, status: Status) -> ClientError {
        if status.code() == Code::Unimplemented {
            return ClientError::Other {
                code: Code::Unimplemented,
                message: format!(
                    "fault injection is not enabled on {} (start hsm-daemon with --faults, faults = true or \
                     HSM_FAULTS=true): {}",
                    self.endpoint(),
                    status.message()
                ),
            };
        }
        ClientError::from(status)
    }
}

impl Cluster {
    /// Resets every HSM of the cluster to `target` (each to its own seed, or
    /// to its snapshot of that name). Every HSM is cut off from its peers
    /// first and reconnected (unless it was isolated before) only once all
    /// are reset, so that background sync does not copy a key that one HSM
    /// still holds to another that was already reset.
    pub async fn reset_all(&self, target: &ResetTarget) -> FanOut<Reset> {
        let hsms = self.hsms();
        let isolated = join_all(hsms.iter().map(|hsm| hsm.isolate(true))).await;
        let resets = join_all(hsms.iter().map(|hsm| hsm.reset(target))).await;
        let reconnects = join_all(hsms.iter().zip(&isolated).map(|(hsm, before)| async move {
            match before {
                Ok(before) if !before.was_isolated => hsm.isolate(false).await.map(drop),
                _ => Ok(()),
            }
        }))
        .await;
        let outcomes = resets.into_iter().zip(reconnects).map(|(reset, reconnected)| match (reset, reconnected) {
            (Ok(_), Err(e)) => Err(e.map_message(|m| format!("reset, but still cut off from its peers: {m}"))),
            (reset, _) => reset,
        });
        FanOut {
            hsms: self
                .endpoints()
                .zip(outcomes)
                .map(|(endpoint, outcome)| HsmResult { endpoint: endpoint.to_owned(), outcome })
                .collect(),
        }
    }
}

impl From<pb::FaultRule> for FaultRule {
    fn from(r: pb::FaultRule) -> Self {
        FaultRule {
            id: r.id,
            rpcs: r.rpcs,
            status: (!r.status.is_empty()).then_some(r.status),
            message: (!r.message.is_empty()).then_some(r.message),
            probability: r.probability,
            remaining: r.remaining,
            latency: Duration::from_millis(r.latency_ms),
            hits: r.hits,
        }
    }
}

impl From<pb::SnapshotInfo> for Snapshot {
    fn from(s: pb::SnapshotInfo) -> Self {
        Snapshot { name: s.name, digest: s.digest, users: s.users, keys: s.keys, tombstones: s.tombstones }
    }
}

fn state(state: Option<pb::FaultState>) -> Result<FaultState, ClientError> {
    let s = state.ok_or_else(|| missing("state"))?;
    let mode = match pb::Mode::try_from(s.mode) {
        Ok(pb::Mode::Normal) => FaultMode::Normal,
        Ok(pb::Mode::Unavailable) => FaultMode::Unavailable,
        Ok(pb::Mode::Busy) => FaultMode::Busy,
        _ => return Err(ClientError::Protocol(format!("unknown fault mode {}", s.mode))),
    };
    Ok(FaultState {
        mode,
        mode_hits: s.mode_hits,
        isolated: s.isolated,
        isolation_refusals: s.isolation_refusals,
        rules: s.rules.into_iter().map(FaultRule::from).collect(),
        sync_rounds: s.sync_rounds,
        sync_rounds_skipped: s.sync_rounds_skipped,
    })
}

fn missing(what: &str) -> ClientError {
    ClientError::Protocol(format!("the fault service's answer has no {what}"))
}
