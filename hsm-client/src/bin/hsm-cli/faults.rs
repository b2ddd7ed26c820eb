//! Runs the `faults ...` commands: fault injection, snapshots and resets on
//! one HSM of `HSM_ENDPOINTS` (`--hsm`, default the first) or on every HSM
//! (`--all`). No login: only an HSM started with `--faults` serves them.
//!
//! Data shapes (kebab-case, as the rest of this CLI), each with the `hsm`
//! it came from:
//! - `set`: `{"hsm", "rule": RULE}`, where `RULE` is `{"id", "rpcs",
//!   "status" (null: latency only), "probability", "count-remaining" (null:
//!   until cleared), "latency-ms", "hits", "message"}`.
//! - `list`, `mode`: `{"hsm", "mode", "mode-hits", "isolated",
//!   "isolation-refusals", "sync-rounds", "sync-rounds-skipped", "rules"}`;
//!   `clear` adds `"cleared"` (rules removed).
//! - `drop-sessions`: `{"hsm", "sessions-closed"}`.
//! - `isolate`: `{"hsm", "isolated", "was-isolated"}`.
//! - `snapshot`: `{"hsm", "snapshot": SNAPSHOT}`, `SNAPSHOT` being
//!   `{"name", "digest" (hex, as cluster sync-status), "users", "keys",
//!   "tombstones"}`; `reset`: `{"hsm", "snapshot", "sessions-closed"}`;
//!   `snapshots`: `{"hsm", "snapshots": [SNAPSHOT, ...]}`.
//!
//! With `--all` the data is `{"hsms": [one of the above per HSM]}`, plus
//! `"failed-hsms"` for HSMs where it failed (error_code 1 only if it failed
//! on every HSM).

use futures_util::future::join_all;
use hsm_client::{
    ClientError, Cluster, FanOut, FaultRule, FaultSpec, FaultState, HsmClient, HsmResult, ResetTarget, Snapshot,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    grammar::faults::{FaultsArgs, FaultsCommand, SetFault, Switch},
    output::{self, to_value},
};

pub(crate) async fn run(cluster: &Cluster, args: FaultsArgs) -> Result<Value, String> {
    let FaultsArgs { hsm, all, command } = args;
    if !all {
        let target = pick(cluster, hsm.as_deref())?;
        return one(target, &command).await.map_err(|e| e.to_string());
    }
    let results = match &command {
        FaultsCommand::Reset { name, .. } => {
            let reset = cluster.reset_all(&reset_target(name.as_deref())).await;
            let hsms = reset.hsms.into_iter();
            hsms.map(|h| HsmResult { outcome: h.outcome.map(|r| reset_data(&h.endpoint, &r)), endpoint: h.endpoint })
                .collect()
        }
        _ => {
            let outcomes = join_all(cluster.hsms().iter().map(|hsm| one(hsm, &command))).await;
            cluster
                .endpoints()
                .zip(outcomes)
                .map(|(endpoint, outcome)| HsmResult { endpoint: endpoint.to_owned(), outcome })
                .collect()
        }
    };
    let fan_out = FanOut { hsms: results }.into_result().map_err(|e| e.to_string())?;
    let answered: Vec<&Value> = fan_out.succeeded().map(|(_, data)| data).collect();
    let data = to_value(AllHsms { hsms: answered });
    Ok(output::with_failures(data, fan_out.failed()))
}

/// The HSM `--hsm` names: host:port from the endpoints, or a 1-based
/// position among them; the first without it.
fn pick<'a>(cluster: &'a Cluster, hsm: Option<&str>) -> Result<&'a HsmClient, String> {
    let hsms = cluster.hsms();
    let Some(wanted) = hsm else {
        return hsms.first().ok_or_else(|| "no HSM endpoint".to_owned());
    };
    if let Ok(position) = wanted.parse::<usize>() {
        return position.checked_sub(1).and_then(|i| hsms.get(i)).ok_or_else(|| {
            format!(
                "--hsm {wanted}: HSM_ENDPOINTS lists {} HSM(s); give a position from 1 to {}",
                hsms.len(),
                hsms.len()
            )
        });
    }
    hsms.iter().find(|h| h.endpoint() == wanted).ok_or_else(|| {
        let listed: Vec<&str> = cluster.endpoints().collect();
        format!("--hsm {wanted} is not in HSM_ENDPOINTS ({}); give one of those or its position", listed.join(","))
    })
}

/// Runs the command on one HSM; its data names the HSM.
async fn one(hsm: &HsmClient, command: &FaultsCommand) -> Result<Value, ClientError> {
    let endpoint = hsm.endpoint();
    Ok(match command {
        FaultsCommand::Set(args) => {
            let rule = hsm.set_fault(&spec(args)).await?;
            on(endpoint, RuleData { rule: RuleShape::from(&rule) })
        }
        FaultsCommand::Clear { id } => {
            let cleared = hsm.clear_faults(*id).await?;
            let mut data = state_data(endpoint, &cleared.state);
            if let Value::Object(map) = &mut data {
                map.insert("cleared".into(), Value::from(cleared.rules));
            }
            data
        }
        FaultsCommand::List => state_data(endpoint, &hsm.faults().await?),
        FaultsCommand::Mode { mode } => state_data(endpoint, &hsm.set_fault_mode((*mode).into()).await?),
        FaultsCommand::DropSessions => on(endpoint, SessionsClosed { sessions_closed: hsm.drop_sessions().await? }),
        FaultsCommand::Isolate { state } => {
            let isolation = hsm.isolate(*state == Switch::On).await?;
            on(endpoint, IsolationData { isolated: isolation.isolated, was_isolated: isolation.was_isolated })
        }
        FaultsCommand::Snapshot { name } => {
            on(endpoint, SnapshotData { snapshot: SnapshotShape::from(&hsm.snapshot(name).await?) })
        }
        FaultsCommand::Reset { name, .. } => reset_data(endpoint, &hsm.reset(&reset_target(name.as_deref())).await?),
        FaultsCommand::Snapshots => {
            let snapshots = hsm.snapshots().await?;
            on(endpoint, SnapshotList { snapshots: snapshots.iter().map(SnapshotShape::from).collect() })
        }
    })
}

fn spec(args: &SetFault) -> FaultSpec {
    FaultSpec {
        rpc: args.rpc.clone(),
        status: args.status.clone(),
        probability: args.probability,
        count: args.count,
        latency: std::time::Duration::from_millis(args.latency_ms),
        message: args.message.clone(),
    }
}

/// `--name N` or, without it, `--seed` (clap requires one of them).
fn reset_target(name: Option<&str>) -> ResetTarget {
    name.map_or(ResetTarget::Seed, |n| ResetTarget::Snapshot(n.to_owned()))
}

fn reset_data(endpoint: &str, reset: &hsm_client::Reset) -> Value {
    on(endpoint, ResetData { snapshot: SnapshotShape::from(&reset.snapshot), sessions_closed: reset.sessions_closed })
}

fn state_data(endpoint: &str, state: &FaultState) -> Value {
    on(
        endpoint,
        StateData {
            mode: state.mode.to_string(),
            mode_hits: state.mode_hits,
            isolated: state.isolated,
            isolation_refusals: state.isolation_refusals,
            sync_rounds: state.sync_rounds,
            sync_rounds_skipped: state.sync_rounds_skipped,
            rules: state.rules.iter().map(RuleShape::from).collect(),
        },
    )
}

/// `{"hsm": endpoint, ...data}`.
fn on(endpoint: &str, data: impl Serialize) -> Value {
    let mut map = Map::new();
    map.insert("hsm".into(), Value::from(endpoint));
    if let Value::Object(fields) = to_value(data) {
        map.extend(fields);
    }
    Value::Object(map)
}

#[derive(Serialize)]
struct AllHsms<'a> {
    hsms: Vec<&'a Value>,
}

#[derive(Serialize)]
struct RuleData {
    rule: RuleShape,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RuleShape {
    id: u64,
    rpcs: Vec<String>,
    status: Option<String>,
    probability: f64,
    count_remaining: Option<u64>,
    latency_ms: u64,
    hits: u64,
    message: Option<String>,
}

impl From<&FaultRule> for RuleShape {
    fn from(r: &FaultRule) -> Self {
        RuleShape {
            id: r.id,
            rpcs: r.rpcs.clone(),
            status: r.status.clone(),
            probability: r.probability,
            count_remaining: r.remaining,
            latency_ms: u64::try_from(r.latency.as_millis()).unwrap_or(u64::MAX),
            hits: r.hits,
            message: r.message.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct StateData {
    mode: String,
    mode_hits: u64,
    isolated: bool,
    isolation_refusals: u64,
    sync_rounds: u64,
    sync_rounds_skipped: u64,
    rules: Vec<RuleShape>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SessionsClosed {
    sessions_closed: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct IsolationData {
    isolated: bool,
    was_isolated: bool,
}

#[derive(Serialize)]
struct SnapshotShape {
    name: String,
    digest: String,
    users: u64,
    keys: u64,
    tombstones: u64,
}

impl From<&Snapshot> for SnapshotShape {
    fn from(s: &Snapshot) -> Self {
        SnapshotShape {
            name: s.name.clone(),
            digest: hex::encode(&s.digest),
            users: s.users,
            keys: s.keys,
            tombstones: s.tombstones,
        }
    }
}

#[derive(Serialize)]
struct SnapshotData {
    snapshot: SnapshotShape,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ResetData {
    snapshot: SnapshotShape,
    sessions_closed: u64,
}

#[derive(Serialize)]
struct SnapshotList {
    snapshots: Vec<SnapshotShape>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hsm_client::FaultMode;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_rule_and_the_state_print_in_kebab_case_under_their_hsm() {
        let rule = FaultRule {
            id: 3,
            rpcs: vec!["Sign".into()],
            status: Some("unavailable".into()),
            message: None,
            probability: 1.0,
            remaining: Some(2),
            latency: Duration::from_millis(5),
            hits: 1,
        };
        let state = FaultState {
            mode: FaultMode::Busy,
            mode_hits: 4,
            isolated: true,
            isolation_refusals: 2,
            rules: vec![rule],
            sync_rounds: 7,
            sync_rounds_skipped: 1,
        };
        assert_eq!(
            state_data("a:1", &state),
            json!({"hsm": "a:1", "mode": "busy", "mode-hits": 4, "isolated": true, "isolation-refusals": 2,
                   "sync-rounds": 7, "sync-rounds-skipped": 1,
                   "rules": [{"id": 3, "rpcs": ["Sign"], "status": "unavailable", "probability": 1.0,
                              "count-remaining": 2, "latency-ms": 5, "hits": 1, "message": null}]})
        );
    }

    #[test]
    fn a_reset_shows_the_state_it_reached_with_a_hex_digest() {
        let reset = hsm_client::Reset {
            snapshot: Snapshot { name: "seed".into(), digest: vec![0xab, 0x01], users: 2, keys: 0, tombstones: 0 },
            sessions_closed: 3,
        };
        assert_eq!(
            reset_data("a:1", &reset),
            json!({"hsm": "a:1", "snapshot": {"name": "seed", "digest": "ab01", "users": 2, "keys": 0,
                   "tombstones": 0}, "sessions-closed": 3})
        );
    }
}
