//! Fault injection, snapshots and resets: the test-control plane
//! (`hsm.testing.v1.FaultService`, `hsm-cli faults ...`), served only when
//! the HSM was started with `--faults`.
//!
//! It lets a test suite break an HSM the ways real ones break (an RPC that
//! fails or is slow, an HSM that is down or busy, a reboot that drops every
//! session, a network partition from its peers) and put its state back
//! between tests in milliseconds. The control plane needs no session and
//! sits outside CloudHSM's permission table: whoever reaches the port can
//! use it, which is why it is off unless asked for and the daemon warns
//! when it is on. Never enable it in production.
//!
//! # Layout
//! - This file: [`Faults`], one HSM's switches (rules, mode, isolation),
//!   snapshots and counters, and how a call is judged.
//! - `rules`: parsing what a caller asks for (RPC names, status names,
//!   probabilities, snapshot names) into rules.
//! - `layer`: the tower layer, placed twice around the permission gate:
//!   before it, it answers the fault service itself (which therefore never
//!   passes the gate and is never subject to faults) and applies the mode
//!   and rules to `hsm.v1` RPCs; after it, where the caller is known, it
//!   refuses the appliance user's peer calls to an isolated HSM.
//! - `api`: the `FaultService` handlers, and reset and snapshot on the HSM.

mod api;
mod layer;
mod rules;

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use hsm_proto::v1::Rpc;
use rand::{Rng as _, rngs::StdRng};
use tonic::Status;

pub(crate) use self::layer::Injector;
use self::rules::{Rule, RuleSpec, RuleView, SEED, SnapshotName};
use super::HsmState;
use crate::model::{Caller, Identity, ModelError, PersistedState, SyncStatus};

/// One HSM's faults. Every counter here exists so that a test can see a
/// fault fire (or a sync round pass) instead of waiting for a time.
#[derive(Debug)]
pub(crate) struct Faults {
    switches: Mutex<Switches>,
    /// Cut off from the peers: read by background sync before each round
    /// and each copy, and by the layer for peers' calls.
    isolated: AtomicBool,
    isolation_refusals: AtomicU64,
    sync_rounds: AtomicU64,
    sync_rounds_skipped: AtomicU64,
    /// The state this process started with (after cloning), set once the
    /// HSM is prepared.
    seed: OnceLock<Snapshot>,
    snapshots: Mutex<BTreeMap<SnapshotName, Snapshot>>,
    /// Faults injected since start, by [`Injected`] kind, for metrics:
    /// unlike the hit counts above, clearing rules never resets them.
    injected: [AtomicU64; Injected::KINDS.len()],
}

/// A kind of fault, as `hsm_faults_injected_total{kind}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// A call failed by mode `unavailable`.
    Unavailable,
    /// A call failed by mode `busy`.
    Busy,
    /// A call failed by a rule's status.
    Error,
    /// A call delayed by rules.
    Latency,
    /// A peer's sync call refused by isolation.
    Isolation,
    /// Every session dropped, as by a reboot.
    DropSessions,
}

impl Injected {
    const KINDS: [(Injected, &'static str); 6] = [
        (Injected::Unavailable, "unavailable"),
        (Injected::Busy, "busy"),
        (Injected::Error, "error"),
        (Injected::Latency, "latency"),
        (Injected::Isolation, "isolation"),
        (Injected::DropSessions, "drop_sessions"),
    ];
}

/// What decides the fate of each call; held for microseconds.
#[derive(Debug)]
struct Switches {
    mode: Mode,
    mode_hits: u64,
    rules: Vec<Rule>,
    next_id: u64,
    /// Rolls the dice for rules with a probability below 1; seeded from the
    /// HSM's CSPRNG. Tests use probabilities 0 and 1, which never roll.
    rng: StdRng,
}

/// The whole HSM's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    /// Every `hsm.v1` RPC fails with `Unavailable`, as an HSM that is down.
    Unavailable,
    /// Every `hsm.v1` RPC fails with `ResourceExhausted` saying the HSM is
    /// busy: CloudHSM answers busy, and its client SDK (like this
    /// emulator's cluster client) retries that on another HSM with backoff.
    Busy,
}

/// A state captured to reset to, with what identifies it.
#[derive(Debug, Clone)]
struct Snapshot {
    state: PersistedState,
    /// The HSM's sync status in this state.
    status: SyncStatus,
}

/// How the layer treats one call: wait this long, then fail with the
/// status or serve the call.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) latency: Duration,
    pub(crate) failure: Option<Status>,
}

/// Snapshots held at once, besides the seed (a reused name replaces its
/// snapshot): bounds what a runaway test suite can pin in memory.
const MAX_SNAPSHOTS: usize = 64;

impl Faults {
    pub(crate) fn new(rng: StdRng) -> Self {
        Faults {
            switches: Mutex::new(Switches { mode: Mode::Normal, mode_hits: 0, rules: Vec::new(), next_id: 1, rng }),
            isolated: AtomicBool::new(false),
            isolation_refusals: AtomicU64::new(0),
            sync_rounds: AtomicU64::new(0),
            sync_rounds_skipped: AtomicU64::new(0),
            seed: OnceLock::new(),
            snapshots: Mutex::new(BTreeMap::new()),
            injected: Default::default(),
        }
    }

    /// Decides what happens to a call of `rpc`: the mode first, then every
    /// matching rule in the order they were added. Each rule that fires adds
    /// its latency and counts a hit (and, if counted, uses one up); the
    /// first that fires with a status decides the failure and ends the
    /// search.
    pub(crate) fn judge(&self, rpc: Rpc) -> Verdict {
        let mut switches = self.switches();
        let mode_failure = match switches.mode {
            Mode::Normal => None,
            Mode::Unavailable => Some(Status::unavailable(
                "the HSM is unavailable (fault injection: mode unavailable; `hsm-cli faults mode normal` ends it)",
            )),
            Mode::Busy => Some(Status::resource_exhausted(
                "the HSM is busy; retry later (fault injection: mode busy; `hsm-cli faults mode normal` ends it)",
            )),
        };
        if let Some(failure) = mode_failure {
            switches.mode_hits += 1;
            self.count(if switches.mode == Mode::Busy { Injected::Busy } else { Injected::Unavailable });
            return Verdict { latency: Duration::ZERO, failure: Some(failure) };
        }
        let Switches { rules, rng, .. } = &mut *switches;
        let mut verdict = Verdict { latency: Duration::ZERO, failure: None };
        for rule in rules.iter_mut().filter(|r| r.matches(rpc)) {
            if !fires(rule.probability, rng) {
                continue;
            }
            rule.hits += 1;
            if let Some(left) = &mut rule.remaining {
                *left = left.saturating_sub(1);
            }
            verdict.latency = verdict.latency.saturating_add(rule.latency);
            if let Some(status) = rule.status(rpc) {
                verdict.failure = Some(status);
                break;
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        if !verdict.latency.is_zero() {
            self.count(Injected::Latency);
        }
        if verdict.failure.is_some() {
            self.count(Injected::Error);
        }
        verdict
    }

    /// Counts a fault injected, for metrics.
    pub(crate) fn count(&self, kind: Injected) {
        // `KINDS` is in declaration order, so the discriminant is the index.
        if let Some(counter) = self.injected.get(kind as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Faults injected since start, by kind.
    pub(crate) fn injected(&self) -> Vec<(&'static str, u64)> {
        Injected::KINDS.iter().zip(&self.injected).map(|((_, name), n)| (*name, n.load(Ordering::Relaxed))).collect()
    }

    /// Whether a call that passed the gate is a peer's sync call (the
    /// appliance user's sync status or masked objects) that an isolated HSM
    /// refuses.
    pub(crate) fn refuses_peer(&self, rpc: Rpc, caller: &Caller) -> Option<Status> {
        let peer_call = matches!(rpc, Rpc::GetSyncStatus | Rpc::ExtractMaskedObject | Rpc::InsertMaskedObject);
        if !(peer_call && caller.identity == Identity::ApplianceUser && self.is_isolated()) {
            return None;
        }
        self.isolation_refusals.fetch_add(1, Ordering::Relaxed);
        self.count(Injected::Isolation);
        Some(Status::unavailable(
            "this HSM is cut off from its peers (fault injection: isolated; `hsm-cli faults isolate off` ends it)",
        ))
    }

    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Counts a background sync round, run or skipped for isolation.
    pub(crate) fn count_sync_round(&self, skipped: bool) {
        let counter = if skipped { &self.sync_rounds_skipped } else { &self.sync_rounds };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the state the HSM starts serving with, for `reset --seed`.
    pub(crate) fn set_seed(&self, state: PersistedState, status: SyncStatus) {
        if self.seed.set(Snapshot { state, status }).is_err() {
            tracing::warn!("the seed snapshot was already taken; keeping the first");
        }
    }

    /// Adds a rule; it applies from the next call on.
    pub(crate) fn add_rule(&self, spec: &RuleSpec) -> Result<RuleView, ModelError> {
        let mut switches = self.switches();
        let rule = Rule::parse(switches.next_id, spec)?;
        switches.next_id += 1;
        let view = rule.view();
        switches.rules.push(rule);
        Ok(view)
    }

    /// Removes rule `id`, or with `None` every rule, the mode and isolation.
    /// Returns how many rules went.
    pub(crate) fn clear(&self, id: Option<u64>) -> usize {
        let mut switches = self.switches();
        let before = switches.rules.len();
        match id {
            Some(id) => switches.rules.retain(|r| r.id != id),
            None => {
                switches.rules.clear();
                switches.mode = Mode::Normal;
                switches.mode_hits = 0;
                self.isolate(false);
            }
        }
        before - switches.rules.len()
    }

    /// Sets the mode and starts counting its hits afresh.
    pub(crate) fn set_mode(&self, mode: Mode) {
        let mut switches = self.switches();
        switches.mode = mode;
        switches.mode_hits = 0;
    }

    /// Cuts the HSM off from its peers or reconnects it; returns whether it
    /// was cut off before.
    pub(crate) fn isolate(&self, on: bool) -> bool {
        self.isolated.swap(on, Ordering::SeqCst)
    }

    pub(crate) fn state(&self) -> StateView {
        let switches = self.switches();
        StateView {
            mode: switches.mode,
            mode_hits: switches.mode_hits,
            isolated: self.is_isolated(),
            isolation_refusals: self.isolation_refusals.load(Ordering::Relaxed),
            rules: switches.rules.iter().map(Rule::view).collect(),
            sync_rounds: self.sync_rounds.load(Ordering::Relaxed),
            sync_rounds_skipped: self.sync_rounds_skipped.load(Ordering::Relaxed),
        }
    }

    /// Keeps `state` under `name`, replacing a snapshot of that name.
    pub(crate) fn keep_snapshot(
        &self,
        name: SnapshotName,
        state: PersistedState,
        status: SyncStatus,
    ) -> Result<SnapshotView, ModelError> {
        let mut snapshots = self.snapshots();
        if snapshots.len() >= MAX_SNAPSHOTS && !snapshots.contains_key(&name) {
            return Err(ModelError::InvalidArgument {
                field: "name",
                rule: format!("this HSM holds the most snapshots it keeps ({MAX_SNAPSHOTS}); reuse a name"),
            });
        }
        let snapshot = Snapshot { state, status };
        let view = snapshot.view(name.as_str());
        snapshots.insert(name, snapshot);
        Ok(view)
    }

    /// The snapshot called `name`, or the seed for `seed`.
    pub(crate) fn snapshot(&self, name: &str) -> Result<(String, PersistedState), ModelError> {
        if name.eq_ignore_ascii_case(SEED) {
            let seed = self.seed.get().ok_or_else(|| ModelError::UnknownSnapshot { name: SEED.into() })?;
            return Ok((SEED.to_owned(), seed.state.clone()));
        }
        let name = SnapshotName::parse(name)?;
        let snapshots = self.snapshots();
        let snapshot = snapshots.get(&name).ok_or_else(|| ModelError::UnknownSnapshot { name: name.to_string() })?;
        Ok((name.to_string(), snapshot.state.clone()))
    }

    /// Every snapshot, the seed first.
    pub(crate) fn snapshots_view(&self) -> Vec<SnapshotView> {
        let seed = self.seed.get().map(|s| s.view(SEED));
        seed.into_iter().chain(self.snapshots().iter().map(|(name, s)| s.view(name.as_str()))).collect()
    }

    fn switches(&self) -> MutexGuard<'_, Switches> {
        // Every update under this lock is complete before it can panic.
        self.switches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshots(&self) -> MutexGuard<'_, BTreeMap<SnapshotName, Snapshot>> {
        self.snapshots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Snapshot {
    fn view(&self, name: &str) -> SnapshotView {
        SnapshotView { name: name.to_owned(), status: self.status.clone(), tombstones: self.state.tombstones.len() }
    }
}

/// The fault state as `ListFaults` shows it.
#[derive(Debug, Clone)]
pub(crate) struct StateView {
    pub(crate) mode: Mode,
    pub(crate) mode_hits: u64,
    pub(crate) isolated: bool,
    pub(crate) isolation_refusals: u64,
    pub(crate) rules: Vec<RuleView>,
    pub(crate) sync_rounds: u64,
    pub(crate) sync_rounds_skipped: u64,
}

/// A snapshot as `ListSnapshots` shows it.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotView {
    pub(crate) name: String,
    pub(crate) status: SyncStatus,
    pub(crate) tombstones: usize,
}

/// Whether a rule with this probability fires: 1 always and 0 never, without
/// drawing, so that tests at those values are exact.
fn fires(probability: f64, rng: &mut StdRng) -> bool {
    probability >= 1.0 || (probability > 0.0 && rng.random::<f64>() < probability)
}

impl HsmState {
    /// With fault injection, says loudly that it is on and keeps the HSM's
    /// present state as its seed (`reset --seed`): called once the HSM is
    /// prepared, before it serves.
    pub(crate) fn keep_seed(&self) {
        if let Some(faults) = &self.faults {
            tracing::warn!(
                "FAULT INJECTION IS ON (--faults): anyone who reaches this HSM's port can make it fail, drop its \
                 sessions and reset its state, without logging in. For test suites only; never in production"
            );
            let hsm = self.hsm();
            faults.set_seed(hsm.snapshot(), hsm.sync_status());
        }
    }

    /// Whether fault injection has cut this HSM off from its peers.
    pub(crate) fn is_isolated(&self) -> bool {
        self.faults.as_ref().is_some_and(|f| f.is_isolated())
    }

    /// Counts a background sync round for `faults list` (with `--faults`).
    pub(crate) fn count_sync_round(&self, skipped: bool) {
        if let Some(faults) = &self.faults {
            faults.count_sync_round(skipped);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    fn faults() -> Faults {
        Faults::new(StdRng::seed_from_u64(7))
    }

    fn spec(rpc: &str, status: &str) -> RuleSpec {
        RuleSpec { rpc: rpc.into(), status: status.into(), ..RuleSpec::default() }
    }

    fn code(verdict: &Verdict) -> Option<tonic::Code> {
        verdict.failure.as_ref().map(Status::code)
    }

    #[test]
    fn a_rule_hits_only_its_rpcs_and_counts_its_hits() {
        let f = faults();
        f.add_rule(&spec("sign", "unavailable")).unwrap();
        assert_eq!(code(&f.judge(Rpc::Sign)), Some(tonic::Code::Unavailable));
        assert_eq!(code(&f.judge(Rpc::Verify)), None);
        let rule = &f.state().rules[0];
        assert_eq!((rule.hits, rule.rpcs.as_slice()), (1, ["Sign".to_owned()].as_slice()));
        let message = f.judge(Rpc::Sign).failure.unwrap().message().to_owned();
        assert!(message.contains("unavailable") && message.contains("Sign"), "{message}");
    }

    #[test]
    fn a_counted_rule_fires_that_many_times_then_disappears() {
        let f = faults();
        f.add_rule(&RuleSpec { count: Some(2), ..spec("*", "internal") }).unwrap();
        assert_eq!(code(&f.judge(Rpc::Login)), Some(tonic::Code::Internal));
        assert_eq!(code(&f.judge(Rpc::Sign)), Some(tonic::Code::Internal));
        assert_eq!(code(&f.judge(Rpc::Sign)), None);
        assert!(f.state().rules.is_empty());
    }

    #[test]
    fn probability_zero_never_fires_and_one_always_does() {
        let f = faults();
        f.add_rule(&RuleSpec { probability: Some(0.0), ..spec("sign", "aborted") }).unwrap();
        assert!((0..100).all(|_| f.judge(Rpc::Sign).failure.is_none()));
        assert_eq!(f.state().rules[0].hits, 0);
        f.add_rule(&RuleSpec { probability: Some(1.0), ..spec("sign", "aborted") }).unwrap();
        assert!((0..100).all(|_| code(&f.judge(Rpc::Sign)) == Some(tonic::Code::Aborted)));
    }

    #[test]
    fn latency_adds_up_until_the_first_failure() {
        let f = faults();
        let slow = |ms| RuleSpec { latency_ms: ms, ..spec("sign", "") };
        f.add_rule(&slow(5)).unwrap();
        f.add_rule(&RuleSpec { latency_ms: 7, ..spec("sign", "unavailable") }).unwrap();
        f.add_rule(&slow(100)).unwrap();
        let verdict = f.judge(Rpc::Sign);
        assert_eq!((verdict.latency, code(&verdict)), (Duration::from_millis(12), Some(tonic::Code::Unavailable)));
        assert_eq!(f.state().rules.iter().map(|r| r.hits).collect::<Vec<_>>(), [1, 1, 0]);
    }

    #[test]
    fn the_mode_comes_before_every_rule_and_counts_its_own_hits() {
        let f = faults();
        f.add_rule(&spec("sign", "internal")).unwrap();
        f.set_mode(Mode::Busy);
        let busy = f.judge(Rpc::Sign).failure.unwrap();
        assert_eq!(busy.code(), tonic::Code::ResourceExhausted);
        assert!(busy.message().contains("busy"), "{}", busy.message());
        f.set_mode(Mode::Unavailable);
        assert_eq!(code(&f.judge(Rpc::GetClusterInfo)), Some(tonic::Code::Unavailable));
        let state = f.state();
        assert_eq!((state.mode_hits, state.rules[0].hits), (1, 0));
        f.set_mode(Mode::Normal);
        assert_eq!(code(&f.judge(Rpc::Sign)), Some(tonic::Code::Internal));
    }

    #[test]
    fn injected_faults_are_counted_by_kind_and_survive_clearing() {
        let f = faults();
        for (i, (kind, _)) in Injected::KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
        f.add_rule(&RuleSpec { latency_ms: 1, ..spec("sign", "internal") }).unwrap();
        f.judge(Rpc::Sign);
        f.judge(Rpc::Verify);
        f.set_mode(Mode::Busy);
        f.judge(Rpc::Sign);
        f.clear(None);
        f.isolate(true);
        f.refuses_peer(Rpc::GetSyncStatus, &Caller::this_hsm());
        let counts: BTreeMap<_, _> = f.injected().into_iter().collect();
        let expected =
            [("busy", 1), ("drop_sessions", 0), ("error", 1), ("isolation", 1), ("latency", 1), ("unavailable", 0)];
        assert_eq!(counts, BTreeMap::from(expected));
    }

    #[test]
    fn an_isolated_hsm_refuses_only_the_appliance_users_peer_calls() {
        let f = faults();
        let appliance = Caller::this_hsm();
        let officer = Caller { identity: Identity::CryptoOfficer, session: None };
        assert!(f.refuses_peer(Rpc::GetSyncStatus, &appliance).is_none());
        f.isolate(true);
        for rpc in [Rpc::GetSyncStatus, Rpc::ExtractMaskedObject, Rpc::InsertMaskedObject] {
            assert_eq!(f.refuses_peer(rpc, &appliance).map(|s| s.code()), Some(tonic::Code::Unavailable));
            assert!(f.refuses_peer(rpc, &officer).is_none(), "clients still copy keys");
        }
        assert!(f.refuses_peer(Rpc::ListUsers, &appliance).is_none());
        assert_eq!(f.state().isolation_refusals, 3);
        assert!(f.isolate(false), "it was isolated");
        assert!(f.refuses_peer(Rpc::GetSyncStatus, &appliance).is_none());
    }
}
