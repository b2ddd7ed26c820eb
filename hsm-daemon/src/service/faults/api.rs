//! `hsm.testing.v1.FaultService`: the handlers, and reset and snapshot on
//! the HSM. Requests come straight from the layer in front of the
//! permission gate: no session, no caller.

use std::{sync::Arc, time::Instant};

use hsm_proto::testing::v1::{self as pb, fault_service_server::FaultService};
use tonic::{Request, Response, Status};

use super::{Faults, Mode, SnapshotView, StateView, rules::RuleSpec, rules::RuleView, rules::SnapshotName};
use crate::{model::ModelError, service::HsmState};

/// The handlers; built only for an HSM with fault injection on.
#[derive(Debug, Clone)]
pub(crate) struct FaultApi {
    state: Arc<HsmState>,
}

impl FaultApi {
    pub(crate) fn new(state: Arc<HsmState>) -> Self {
        FaultApi { state }
    }

    fn faults(&self) -> Result<&Faults, Status> {
        // The layer serves this API only when `faults` is set.
        self.state.faults.as_deref().ok_or_else(|| Status::internal("fault injection is off on this HSM"))
    }
}

#[tonic::async_trait]
impl FaultService for FaultApi {
    async fn set_fault(&self, request: Request<pb::SetFaultRequest>) -> Result<Response<pb::SetFaultResponse>, Status> {
        let r = request.into_inner();
        let spec = RuleSpec {
            rpc: r.rpc,
            status: r.status,
            probability: r.probability,
            count: r.count,
            latency_ms: r.latency_ms,
            message: r.message,
        };
        let rule = self.faults()?.add_rule(&spec)?;
        tracing::warn!(id = rule.id, rpcs = ?rule.rpcs, status = %rule.status, probability = rule.probability,
            count = ?rule.remaining, latency_ms = rule.latency_ms, "fault injection: rule added");
        Ok(Response::new(pb::SetFaultResponse { rule: Some(rule_to_proto(rule)) }))
    }

    async fn clear_faults(
        &self,
        request: Request<pb::ClearFaultsRequest>,
    ) -> Result<Response<pb::ClearFaultsResponse>, Status> {
        let id = request.into_inner().id;
        let faults = self.faults()?;
        let cleared = faults.clear(id);
        match id {
            Some(id) => tracing::info!(id, cleared, "fault injection: rule cleared"),
            None => tracing::info!(cleared, "fault injection: every fault cleared"),
        }
        Ok(Response::new(pb::ClearFaultsResponse {
            cleared: cleared as u64,
            state: Some(state_to_proto(faults.state())),
        }))
    }

    async fn list_faults(
        &self,
        _request: Request<pb::ListFaultsRequest>,
    ) -> Result<Response<pb::ListFaultsResponse>, Status> {
        Ok(Response::new(pb::ListFaultsResponse { state: Some(state_to_proto(self.faults()?.state())) }))
    }

    async fn set_mode(&self, request: Request<pb::SetModeRequest>) -> Result<Response<pb::SetModeResponse>, Status> {
        let mode = match pb::Mode::try_from(request.into_inner().mode) {
            Ok(pb::Mode::Normal) => Mode::Normal,
            Ok(pb::Mode::Unavailable) => Mode::Unavailable,
            Ok(pb::Mode::Busy) => Mode::Busy,
            Ok(pb::Mode::Unspecified) | Err(_) => {
                return Err(ModelError::InvalidArgument {
                    field: "mode",
                    rule: "must be normal, unavailable or busy".into(),
                }
                .into());
            }
        };
        let faults = self.faults()?;
        faults.set_mode(mode);
        tracing::warn!(?mode, "fault injection: mode set");
        Ok(Response::new(pb::SetModeResponse { state: Some(state_to_proto(faults.state())) }))
    }

    async fn drop_sessions(
        &self,
        _request: Request<pb::DropSessionsRequest>,
    ) -> Result<Response<pb::DropSessionsResponse>, Status> {
        self.faults()?.count(super::Injected::DropSessions);
        let closed = self.state.hsm().end_all_sessions();
        tracing::warn!(closed, "fault injection: every session dropped, as by a reboot");
        Ok(Response::new(pb::DropSessionsResponse { sessions_closed: closed as u64 }))
    }

    async fn isolate(&self, request: Request<pb::IsolateRequest>) -> Result<Response<pb::IsolateResponse>, Status> {
        let isolated = request.into_inner().isolated;
        let was_isolated = self.faults()?.isolate(isolated);
        if isolated != was_isolated {
            tracing::warn!(isolated, "fault injection: isolation from the peers changed");
        }
        Ok(Response::new(pb::IsolateResponse { isolated, was_isolated }))
    }

    async fn snapshot(&self, request: Request<pb::SnapshotRequest>) -> Result<Response<pb::SnapshotResponse>, Status> {
        let name = SnapshotName::parse(&request.into_inner().name)?;
        let faults = self.faults()?;
        let (state, status) = {
            let hsm = self.state.hsm();
            (hsm.snapshot(), hsm.sync_status())
        };
        let view = faults.keep_snapshot(name, state, status)?;
        tracing::info!(name = %view.name, users = view.status.users, keys = view.status.keys, "snapshot taken");
        Ok(Response::new(pb::SnapshotResponse { snapshot: Some(snapshot_to_proto(view)) }))
    }

    async fn reset(&self, request: Request<pb::ResetRequest>) -> Result<Response<pb::ResetResponse>, Status> {
        let started = Instant::now();
        let (name, snapshot) = self.faults()?.snapshot(&request.into_inner().name)?;
        let tombstones = snapshot.tombstones.len();
        // One model operation: the store ends up holding exactly the
        // snapshot, written in one transaction before the reply.
        let (closed, status) = self
            .state
            .mutate(|hsm| {
                let closed = hsm.reset(snapshot);
                Ok((closed, hsm.sync_status()))
            })
            .await?;
        tracing::warn!(%name, sessions_closed = closed, elapsed_ms = started.elapsed().as_millis() as u64,
            "fault injection: state reset to a snapshot");
        let view = SnapshotView { name, status, tombstones };
        Ok(Response::new(pb::ResetResponse { snapshot: Some(snapshot_to_proto(view)), sessions_closed: closed as u64 }))
    }

    async fn list_snapshots(
        &self,
        _request: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let snapshots = self.faults()?.snapshots_view().into_iter().map(snapshot_to_proto).collect();
        Ok(Response::new(pb::ListSnapshotsResponse { snapshots }))
    }
}

fn rule_to_proto(rule: RuleView) -> pb::FaultRule {
    pb::FaultRule {
        id: rule.id,
        rpcs: rule.rpcs,
        status: rule.status,
        message: rule.message,
        probability: rule.probability,
        remaining: rule.remaining,
        latency_ms: rule.latency_ms,
        hits: rule.hits,
    }
}

fn state_to_proto(state: StateView) -> pb::FaultState {
    let mode = match state.mode {
        Mode::Normal => pb::Mode::Normal,
        Mode::Unavailable => pb::Mode::Unavailable,
        Mode::Busy => pb::Mode::Busy,
    };
    pb::FaultState {
        mode: mode.into(),
        mode_hits: state.mode_hits,
        isolated: state.isolated,
        isolation_refusals: state.isolation_refusals,
        rules: state.rules.into_iter().map(rule_to_proto).collect(),
        sync_rounds: state.sync_rounds,
        sync_rounds_skipped: state.sync_rounds_skipped,
    }
}

fn snapshot_to_proto(view: SnapshotView) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        name: view.name,
        digest: view.status.digest.to_vec(),
        users: view.status.users as u64,
        keys: view.status.keys as u64,
        tombstones: view.tombstones as u64,
    }
}
