//! The HSM's state as the handlers use it: group commit and fail-stop,
//! against a real store in a temporary directory.

use std::sync::Arc;

use rand::{SeedableRng as _, rngs::StdRng};
use tonic::Code;

use super::*;
use crate::{
    clock::ManualClock,
    config::{DEFAULT_DRAIN_TIMEOUT, DaemonConfig, Membership, Storage, Transport},
    model::{
        ClusterId, ClusterIdentity, ClusterMode, HsmIdentity, HsmType, KdfParams, Limits, Password, PasswordHash, Role,
        Username,
    },
    store::{Backing, MasterKey, Opened, Store},
};

/// An activated lone HSM whose store lives in `dir`.
fn config(dir: &std::path::Path, master_key: &MasterKey) -> DaemonConfig {
    let mut rng = StdRng::seed_from_u64(7);
    let password = |p: &str| Password::parse("password", p).unwrap();
    DaemonConfig {
        cluster: ClusterIdentity {
            id: ClusterId::generate(&mut rng),
            hsm_type: HsmType::Hsm2mMedium,
            mode: ClusterMode::Fips,
        },
        hsm: HsmIdentity::generate(&mut rng, "127.0.0.1:1".into(), ClusterMode::Fips),
        limits: Limits::for_type(HsmType::Hsm2mMedium),
        kdf: KdfParams::TESTING,
        admin_password: Some(password("admin-pass")),
        appliance_password: password("appliance-pass"),
        transport: Transport::InsecurePlaintext,
        clock: Arc::new(ManualClock::new()),
        storage: Storage {
            backing: Backing::Dir(dir.to_owned()),
            master_key: MasterKey::from_hex(&master_key.to_hex()).unwrap(),
        },
        membership: Membership::single(None),
        seed: None,
        deterministic: None,
        faults: false,
        drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        connections: crate::config::ConnectionLimits::default(),
    }
}

fn username(i: usize) -> Username {
    Username::parse("username", &format!("user{i}")).unwrap()
}

/// Creates `n` crypto users at once, each through its own `mutate`.
async fn create_users(state: &Arc<HsmState>, n: usize) -> Vec<Result<(), Status>> {
    let hash = hash_of(state);
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let (state, hash) = (Arc::clone(state), hash.clone());
            tokio::spawn(async move {
                state.mutate(|hsm| hsm.create_user(username(i), Role::CryptoUser, hash, None)).await.map(drop)
            })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    results
}

/// The users the store in `dir` holds, read with the HSM stopped.
fn stored_users(config: &DaemonConfig) -> Vec<String> {
    let opened = Store::open(
        &config.storage.backing,
        &config.storage.master_key,
        config.cluster.id.as_str(),
        config.hsm.id.as_str(),
    )
    .unwrap();
    let Opened::Existing(_, _, state) = opened else { panic!("the store is new") };
    state.users.into_iter().map(|u| u.username.to_string()).collect()
}

/// An HSM's state over a new store in `dir`, and its config.
async fn started(dir: &tempfile::TempDir) -> (DaemonConfig, Arc<HsmState>) {
    let config = config(dir.path(), &MasterKey::generate().unwrap());
    let (state, _) = HsmState::build(&config).await.unwrap();
    (config, Arc::new(state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_all_durable_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (config, state) = started(&dir).await;
    for result in create_users(&state, 32).await {
        result.unwrap();
    }
    // Acknowledged, then the HSM goes away without any further write.
    drop(state);
    let stored = stored_users(&config);
    for i in 0..32 {
        assert!(stored.contains(&username(i).to_string()), "user{i} was acknowledged but is not stored: {stored:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_caller_of_its_batch_and_stops_the_hsm() {
    let dir = tempfile::tempdir().unwrap();
    let (config, state) = started(&dir).await;
    state.store.broken.store(true, std::sync::atomic::Ordering::SeqCst);
    for result in create_users(&state, 16).await {
        let status = result.expect_err("acknowledged a change the store did not take");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("injected failure"), "{status:?}");
    }
    let refused = state.check_healthy().expect_err("the HSM still serves after a failed commit");
    assert!(refused.message().contains("restart the daemon"), "{refused:?}");
    // Nothing is written after the failure, even once the disk works again.
    state.store.broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let later = state.mutate(|hsm| hsm.create_user(username(99), Role::CryptoUser, hash_of(&state), None)).await;
    assert_eq!(later.unwrap_err().code(), Code::Unavailable);
    drop(state);
    let stored = stored_users(&config);
    assert!(stored.iter().all(|u| !u.starts_with("user")), "{stored:?}");
}

fn hash_of(state: &HsmState) -> PasswordHash {
    Password::parse("password", "user-pass").unwrap().hash(&KdfParams::TESTING, &mut state.fork_rng()).unwrap()
}
