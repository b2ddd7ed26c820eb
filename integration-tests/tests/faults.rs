//! Fault injection, snapshots and resets (`--faults`) against real HSMs over
//! TLS: injected statuses, counts, probabilities and latency; unavailable and
//! busy HSMs, and the cluster client failing over; dropped sessions;
//! isolation from peers; snapshots and resets that survive a restart; the
//! fault service absent without `--faults`; and the acceptance
//! through `hsm-cli` against `hsm-daemon dev` and `run` as processes.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{future::Future, time::Duration};

use hsm_client::{
    ClientError, Cluster, Completion, CreateUser, FaultMode, FaultSpec, FaultState, HsmClient, KeyInfo, KeyOptions,
    KeyPairSpec, ListKeys, ResetTarget, Role, Session, SetKeyAttribute, Sign, Verify,
    keys::{HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use integration_tests::{
    ADMIN_PASSWORD, APPLIANCE_PASSWORD, DevProcess, Options, TestCluster, TestHsm, hsm_cli,
    process::{ClusterDir, HANG_GUARD},
};
use ring::signature;
use serde_json::Value;
use tonic::Code;

const MESSAGE: &[u8] = b"fault injection";

fn with_faults() -> Options {
    Options { faults: true, ..Options::default() }
}

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

/// Creates crypto user alice as the admin and logs her in.
async fn new_alice(hsm: &TestHsm) -> Session {
    hsm.crypto_user("alice", "alice-pass").await
}

/// A P-256 signing pair of `session`'s user: (public, private).
async fn p256(session: &Session, label: &str) -> (KeyInfo, KeyInfo) {
    let private = opts(&[("sign", "true"), ("label", label)]);
    session
        .generate_key_pair(&KeyPairSpec::Ec { curve: "secp256r1".into() }, &opts(&[("verify", "true")]), &private)
        .await
        .unwrap()
}

async fn sign(session: &Session, private: &KeyInfo) -> Result<Vec<u8>, ClientError> {
    session.sign(Sign::new(&private.reference, SignMechanism::Ecdsa, MESSAGE).hash(HashAlgorithm::Sha256)).await
}

/// Checks a signature over [`MESSAGE`] with ring, against the public key's
/// `ec-point`.
fn assert_verifies(public: &KeyInfo, sig: &[u8]) {
    let point = hex::decode(public.attribute("ec-point").unwrap().trim_start_matches("0x")).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point).verify(MESSAGE, sig).unwrap();
}

fn code(err: &ClientError) -> Code {
    match err {
        ClientError::Unavailable(_) => Code::Unavailable,
        ClientError::ResourceExhausted(_) => Code::ResourceExhausted,
        ClientError::Unauthenticated(_) => Code::Unauthenticated,
        ClientError::InvalidArgument(_) => Code::InvalidArgument,
        ClientError::NotFound(_) => Code::NotFound,
        ClientError::Other { code, .. } => *code,
        other => panic!("unexpected error kind: {other:?}"),
    }
}

/// Polls `check` until it gives a value; a hang guard, not a timing check.
async fn until<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the HSM has started `rounds` more background sync rounds
/// (run, or skipped while isolated) than it had in `since`.
async fn sync_rounds_after(hsm: &HsmClient, since: &FaultState, rounds: u64, skipped: bool) -> FaultState {
    until("background sync rounds", || async {
        let now = hsm.faults().await.unwrap();
        let moved = if skipped {
            now.sync_rounds_skipped >= since.sync_rounds_skipped + rounds
        } else {
            now.sync_rounds >= since.sync_rounds + rounds
        };
        moved.then_some(now)
    })
    .await
}

#[tokio::test]
async fn an_unavailable_fault_on_sign_fails_signing_until_it_is_cleared() {
    let hsm = TestHsm::start(with_faults()).await;
    let alice = new_alice(&hsm).await;
    let (public, private) = p256(&alice, "k").await;
    let before = sign(&alice, &private).await.unwrap();

    let rule = hsm.client.set_fault(&FaultSpec::fail("sign", "unavailable")).await.unwrap();
    assert_eq!(
        (rule.rpcs.as_slice(), rule.status.as_deref(), rule.hits),
        (["Sign".to_owned()].as_slice(), Some("unavailable"), 0)
    );
    let err = sign(&alice, &private).await.unwrap_err();
    assert_eq!(code(&err), Code::Unavailable, "{err:?}");
    assert!(err.to_string().contains("injected fault: unavailable on Sign"), "{err}");
    // Only signing fails: verification is another RPC.
    let verified = alice
        .verify(Verify::new(&public.reference, SignMechanism::Ecdsa, MESSAGE, &before).hash(HashAlgorithm::Sha256));
    assert!(verified.await.unwrap());
    assert_eq!(hsm.client.faults().await.unwrap().rules[0].hits, 1);

    let cleared = hsm.client.clear_faults(Some(rule.id)).await.unwrap();
    assert_eq!(cleared.rules, 1);
    assert!(cleared.state.rules.is_empty());
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
}

#[tokio::test]
async fn counted_faults_stop_after_their_count_and_probability_zero_never_fires() {
    let hsm = TestHsm::start(with_faults()).await;
    let alice = new_alice(&hsm).await;
    let (public, private) = p256(&alice, "k").await;

    let rule = hsm.client.set_fault(&FaultSpec::fail("crypto sign", "internal").times(2)).await.unwrap();
    assert_eq!(rule.remaining, Some(2));
    for _ in 0..2 {
        assert_eq!(code(&sign(&alice, &private).await.unwrap_err()), Code::Internal);
    }
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    assert!(hsm.client.faults().await.unwrap().rules.is_empty(), "the rule is gone once used up");

    let never = hsm.client.set_fault(&FaultSpec::fail("*", "unavailable").with_probability(0.0)).await.unwrap();
    for _ in 0..5 {
        assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    }
    hsm.login("alice", Role::CryptoUser, "alice-pass").await.logout().await.unwrap();
    let always = hsm.client.set_fault(&FaultSpec::fail("key list", "aborted").with_probability(1.0)).await.unwrap();
    assert_eq!(code(&alice.list_keys(ListKeys::default()).await.unwrap_err()), Code::Aborted);
    let state = hsm.client.faults().await.unwrap();
    let hits: Vec<(u64, u64)> = state.rules.iter().map(|r| (r.id, r.hits)).collect();
    assert_eq!(hits, [(never.id, 0), (always.id, 1)]);
}

#[tokio::test]
async fn latency_is_added_and_the_call_still_succeeds() {
    let hsm = TestHsm::start(with_faults()).await;
    let alice = new_alice(&hsm).await;
    let (public, private) = p256(&alice, "k").await;

    let slow = hsm.client.set_fault(&FaultSpec::delay("Sign", Duration::from_millis(50))).await.unwrap();
    assert_eq!((slow.status, slow.latency), (None, Duration::from_millis(50)));
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    assert_eq!(hsm.client.faults().await.unwrap().rules[0].hits, 1, "the delay was applied to the call");

    // Latency and a status together: the call waits, then fails.
    let spec = FaultSpec::fail("verify", "deadline-exceeded").with_latency(Duration::from_millis(20)).times(1);
    hsm.client.set_fault(&spec).await.unwrap();
    let sig = sign(&alice, &private).await.unwrap();
    let verify = || {
        alice.verify(Verify::new(&public.reference, SignMechanism::Ecdsa, MESSAGE, &sig).hash(HashAlgorithm::Sha256))
    };
    assert_eq!(code(&verify().await.unwrap_err()), Code::DeadlineExceeded);
    assert!(verify().await.unwrap());
}

#[tokio::test]
async fn unavailable_and_busy_modes_refuse_every_call_but_the_fault_service() {
    let hsm = TestHsm::start(with_faults()).await;
    let alice = new_alice(&hsm).await;
    let (public, private) = p256(&alice, "k").await;

    let state = hsm.client.set_fault_mode(FaultMode::Unavailable).await.unwrap();
    assert_eq!((state.mode, state.mode_hits), (FaultMode::Unavailable, 0));
    assert_eq!(code(&hsm.client.cluster_info().await.unwrap_err()), Code::Unavailable);
    assert_eq!(code(&hsm.client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap_err()), Code::Unavailable);
    assert_eq!(code(&sign(&alice, &private).await.unwrap_err()), Code::Unavailable);
    assert_eq!(hsm.client.faults().await.unwrap().mode_hits, 3);

    hsm.client.set_fault_mode(FaultMode::Busy).await.unwrap();
    let busy = sign(&alice, &private).await.unwrap_err();
    assert_eq!(code(&busy), Code::ResourceExhausted);
    assert!(busy.to_string().contains("the HSM is busy"), "{busy}");

    hsm.client.set_fault_mode(FaultMode::Normal).await.unwrap();
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    assert_eq!(hsm.client.faults().await.unwrap().mode_hits, 0, "hits count from the last mode change");
}

#[tokio::test]
async fn bad_requests_name_the_field_and_without_faults_the_service_is_not_served() {
    let hsm = TestHsm::start(with_faults()).await;
    let invalid = async |spec: FaultSpec| {
        let err = hsm.client.set_fault(&spec).await.unwrap_err();
        assert_eq!(code(&err), Code::InvalidArgument, "{err:?}");
        err.to_string()
    };
    assert!(invalid(FaultSpec::fail("frobnicate", "unavailable")).await.starts_with("invalid rpc:"));
    assert!(invalid(FaultSpec::fail("sign", "sideways")).await.starts_with("invalid status:"));
    let e = invalid(FaultSpec::fail("sign", "unavailable").with_probability(1.5)).await;
    assert_eq!(e, "invalid probability: must be from 0 to 1, got 1.5");
    let e = hsm.client.snapshot("no spaces please").await.unwrap_err();
    assert!(matches!(&e, ClientError::InvalidArgument(m) if m.starts_with("invalid name: must be 1 to 64")), "{e:?}");
    let e = hsm.client.snapshot("seed").await.unwrap_err();
    assert!(matches!(&e, ClientError::InvalidArgument(m) if m.contains("'seed' names the state")), "{e:?}");
    let e = hsm.client.reset(&ResetTarget::Snapshot("never-taken".into())).await.unwrap_err();
    assert_eq!(
        e,
        ClientError::NotFound(
            "no snapshot named 'never-taken' on this HSM; `hsm-cli faults snapshots` lists them".into()
        )
    );

    let plain = TestHsm::start(Options::default()).await;
    for err in [
        plain.client.set_fault(&FaultSpec::fail("sign", "unavailable")).await.unwrap_err(),
        plain.client.faults().await.map(drop).unwrap_err(),
        plain.client.reset(&ResetTarget::Seed).await.map(drop).unwrap_err(),
    ] {
        assert_eq!(code(&err), Code::Unimplemented, "{err:?}");
        assert!(err.to_string().contains(&format!("fault injection is not enabled on {}", plain.address)), "{err}");
    }
    plain.admin().await.logout().await.unwrap();
}

#[tokio::test]
async fn dropping_sessions_logs_everyone_out_as_a_reboot_does() {
    let hsm = TestHsm::start(with_faults()).await;
    let alice = new_alice(&hsm).await;
    let admin = hsm.admin().await;
    let token = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("label", "token")])).await.unwrap();
    let session_opts = KeyOptions { session: true, ..opts(&[("label", "session")]) };
    alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &session_opts).await.unwrap();

    assert_eq!(hsm.client.drop_sessions().await.unwrap(), 2);
    assert_eq!(code(&alice.list_keys(ListKeys::default()).await.unwrap_err()), Code::Unauthenticated);
    assert_eq!(code(&admin.list_users().await.unwrap_err()), Code::Unauthenticated);

    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let keys = alice.list_keys(ListKeys::default()).await.unwrap().keys;
    let kept: Vec<&str> = keys.iter().map(|k| k.reference.as_str()).collect();
    assert_eq!(kept, [token.reference.as_str()], "the token key stays, the session key is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_client_keeps_signing_while_one_hsm_is_unavailable_or_busy() {
    // Background sync stays quiet, so that only this client's calls reach
    // the faulty HSM and its hit counter counts them alone.
    let options = Options { sync_interval: Duration::from_secs(3600), ..with_faults() };
    let cluster = TestCluster::start(3, options).await;
    let client = Cluster::connect(&cluster.config()).await.unwrap();
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(
        admin.create_user(CreateUser::new("cu", Role::CryptoUser, "cu-password")).await.unwrap().completion(),
        Completion::Full
    );
    admin.logout().await.unwrap();
    let cu = client.login("cu", Role::CryptoUser, "cu-password").await.unwrap();
    let private = opts(&[("sign", "true"), ("label", "k")]);
    let spec = KeyPairSpec::Ec { curve: "secp256r1".into() };
    let (public, private) = cu.generate_key_pair(&spec, &opts(&[("verify", "true")]), &private).await.unwrap();
    assert_eq!(private.coverage.holding, cluster.endpoints(), "on every HSM before the fault");

    let faulty = &cluster.hsm(1).client;
    for mode in [FaultMode::Unavailable, FaultMode::Busy] {
        faulty.set_fault_mode(mode).await.unwrap();
        for _ in 0..6 {
            let sig = cu
                .sign(Sign::new(&private.info.reference, SignMechanism::Ecdsa, MESSAGE).hash(HashAlgorithm::Sha256))
                .await
                .unwrap_or_else(|e| panic!("signing failed with HSM 2 {mode}: {e}"));
            assert_verifies(&public.info, &sig);
        }
        // Round-robin sent some of the six to HSM 2, which refused them; the
        // client retried those on the others.
        let state = faulty.faults().await.unwrap();
        assert_eq!(state.mode, mode);
        assert!(state.mode_hits >= 1, "HSM 2 was never asked while {mode}: {state:?}");
        faulty.set_fault_mode(FaultMode::Normal).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_hsm_neither_pulls_from_its_peers_nor_is_pulled_from_until_reconnected() {
    let cluster = TestCluster::start(2, with_faults()).await;
    // Users are not synchronised in the background: alice on both.
    let alice0 = new_alice(cluster.hsm(0)).await;
    let alice1 = new_alice(cluster.hsm(1)).await;
    let isolated = &cluster.hsm(1).client;
    let was = isolated.isolate(true).await.unwrap();
    assert!(was.isolated && !was.was_isolated);

    let key = alice0.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("label", "made-on-0")])).await.unwrap();
    let filter = [("key-reference".to_owned(), key.reference.clone())];
    // Two rounds that HSM 1 skipped after the key existed: rounds that would
    // have copied it.
    let since = isolated.faults().await.unwrap();
    sync_rounds_after(isolated, &since, 2, true).await;
    assert_eq!(
        alice1.list_keys(ListKeys::default().filters(&filter)).await.unwrap().total,
        0,
        "the key reached an isolated HSM"
    );
    // HSM 0 tried to pull from HSM 1 and was refused.
    until("HSM 0's sync refused by HSM 1", || async {
        (isolated.faults().await.unwrap().isolation_refusals > 0).then_some(())
    })
    .await;
    // What a peer does, the isolated HSM refuses; its own users it serves.
    let peer = cluster.hsm(1).login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
    let refused = peer.sync_status().await.unwrap_err();
    assert_eq!(code(&refused), Code::Unavailable);
    assert!(refused.to_string().contains("cut off from its peers"), "{refused}");
    assert_ne!(alice1.sync_status().await.unwrap().digest, alice0.sync_status().await.unwrap().digest);

    let was = isolated.isolate(false).await.unwrap();
    assert!(!was.isolated && was.was_isolated);
    until("the key reaches HSM 1 once reconnected", || async {
        (alice1.list_keys(ListKeys::default().filters(&filter)).await.unwrap().total == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_to_a_snapshot_restores_users_and_keys_exactly_in_memory_and_in_the_store() {
    let mut cluster = TestCluster::start(1, with_faults()).await;
    let hsm = cluster.hsm(0);
    let alice = new_alice(hsm).await;
    let (public, private) = p256(&alice, "kept").await;
    let gone = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[])).await.unwrap();
    alice.delete_key(&gone.reference).await.unwrap();
    let base = hsm.client.snapshot("base").await.unwrap();
    assert_eq!((base.users, base.keys, base.tombstones), (3, 2, 1));
    assert_eq!(cluster.digests().await, [Some(base.digest.clone())], "the snapshot's digest is the HSM's");

    // Afterwards: another user, another key, a changed key.
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1")).await.unwrap();
    alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("label", "later")])).await.unwrap();
    alice.set_key_attribute(SetKeyAttribute::new(&private.reference, "label", "renamed")).await.unwrap();
    assert_ne!(cluster.digests().await, [Some(base.digest.clone())]);

    let reset = hsm.client.reset(&ResetTarget::Snapshot("base".into())).await.unwrap();
    assert_eq!(reset.snapshot.digest, base.digest);
    assert_eq!(reset.sessions_closed, 2, "alice's and the admin's");
    assert_eq!(code(&alice.list_keys(ListKeys::default()).await.unwrap_err()), Code::Unauthenticated);
    assert_eq!(cluster.digests().await, [Some(base.digest.clone())]);
    let bob = hsm.client.login("bob", Role::CryptoUser, "bob-pass1").await.unwrap_err();
    assert_eq!(code(&bob), Code::Unauthenticated, "bob did not exist at the snapshot");
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let keys = alice.list_keys(ListKeys::default()).await.unwrap().keys;
    let labels: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.reference.as_str(), k.attribute("label"))).collect();
    assert_eq!(labels, [(public.reference.as_str(), Some("")), (private.reference.as_str(), Some("kept"))]);
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    // The deleted key stays deleted: its tombstone came back with it.
    assert_eq!(code(&alice.delete_key(&gone.reference).await.unwrap_err()), Code::NotFound);

    // The store was rewritten to match: a restart finds the same state.
    alice.logout().await.unwrap();
    cluster.restart(0).await;
    assert_eq!(cluster.digests().await, [Some(base.digest.clone())]);
    let hsm = cluster.hsm(0);
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    assert_verifies(&public, &sign(&alice, &private).await.unwrap());
    // Snapshots live in memory: after a restart the seed is the state the
    // process started with.
    let snapshots = hsm.client.snapshots().await.unwrap();
    let names: Vec<(&str, &[u8])> = snapshots.iter().map(|s| (s.name.as_str(), s.digest.as_slice())).collect();
    assert_eq!(names, [("seed", base.digest.as_slice())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_to_the_seed_forgets_everything_since_the_start_and_survives_a_restart() {
    let mut cluster = TestCluster::start(1, with_faults()).await;
    let seed = cluster.hsm(0).client.snapshots().await.unwrap().remove(0);
    assert_eq!((seed.name.as_str(), seed.users, seed.keys), ("seed", 2, 0), "admin and the appliance user");
    assert_eq!(cluster.digests().await, [Some(seed.digest.clone())]);

    let alice = new_alice(cluster.hsm(0)).await;
    let (_, private) = p256(&alice, "k").await;
    let reset = cluster.hsm(0).client.reset(&ResetTarget::Seed).await.unwrap();
    assert_eq!((reset.snapshot.name.as_str(), &reset.snapshot.digest), ("seed", &seed.digest));
    assert_eq!(cluster.digests().await, [Some(seed.digest.clone())]);
    let admin = cluster.hsm(0).admin().await;
    let users: Vec<String> = admin.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(users, ["admin", "app_user"]);
    admin.logout().await.unwrap();

    cluster.restart(0).await;
    assert_eq!(cluster.digests().await, [Some(seed.digest.clone())]);
    // A new crypto user's first key gets the reference the seed would hand
    // out, the one the forgotten key had.
    let alice = new_alice(cluster.hsm(0)).await;
    let (_, again) = p256(&alice, "k").await;
    assert_eq!(again.reference, private.reference);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_a_whole_cluster_keeps_background_sync_from_bringing_keys_back() {
    let cluster = TestCluster::start(2, with_faults()).await;
    let client = Cluster::connect(&cluster.config()).await.unwrap();
    let seeds: Vec<Vec<u8>> = cluster.digests().await.into_iter().map(Option::unwrap).collect();
    assert_eq!(seeds[0], seeds[1], "both HSMs start alike");
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("cu", Role::CryptoUser, "cu-password")).await.unwrap();
    admin.logout().await.unwrap();
    let cu = client.login("cu", Role::CryptoUser, "cu-password").await.unwrap();
    let made = cu.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("label", "k")])).await.unwrap();
    assert_eq!(made.coverage.holding.len(), 2);
    // HSM 2 was cut off before: it stays so.
    cluster.hsm(1).client.isolate(true).await.unwrap();

    let reset = client.reset_all(&ResetTarget::Seed).await;
    assert_eq!(reset.completion(), Completion::Full, "{reset:?}");
    assert!(reset.succeeded().all(|(_, r)| r.snapshot.digest == seeds[0]));
    assert!(!cluster.hsm(0).client.faults().await.unwrap().isolated);
    assert!(cluster.hsm(1).client.faults().await.unwrap().isolated);
    cluster.hsm(1).client.isolate(false).await.unwrap();

    // Two rounds on each HSM after both were reset and reconnected: had
    // either held the key still, the other would have it back.
    for i in 0..2 {
        let since = cluster.hsm(i).client.faults().await.unwrap();
        sync_rounds_after(&cluster.hsm(i).client, &since, 2, false).await;
    }
    assert_eq!(cluster.digests().await, [Some(seeds[0].clone()), Some(seeds[0].clone())]);
}

/// The data of a successful `hsm-cli` run, as `hsm-cli` printed it.
fn ok(out: &integration_tests::CliOutput) -> Value {
    out.ok()
}

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
const CU: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "cu:cu-password")];

/// Creates crypto user `cu` and its P-256 pair `k` through hsm-cli.
fn cli_signer(dev: &DevProcess) {
    ok(&dev.cli(&ADMIN, &["user", "create", "--username", "cu", "--role", "crypto-user", "--password", "cu-password"]));
    ok(&dev.cli(
        &CU,
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "secp256r1",
            "--public-label",
            "k-pub",
            "--private-label",
            "k",
            "--public-attributes",
            "verify=true",
            "--private-attributes",
            "sign=true",
        ],
    ));
}

fn cli_sign(dev: &DevProcess) -> integration_tests::CliOutput {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(MESSAGE);
    dev.cli(
        &CU,
        &["crypto", "sign", "ecdsa", "--key-filter", "attr.label=k", "--hash-function", "sha256", "--data", &data],
    )
}

#[test]
fn acceptance_a_dev_hsm_fails_signing_with_the_injected_status_until_cleared() {
    let dev = DevProcess::start(&["--faults", "--admin-password", "admin-pass"]);
    cli_signer(&dev);
    ok(&cli_sign(&dev));

    let set = ok(&dev.cli(&[], &["faults", "set", "--rpc", "sign", "--status", "unavailable"]));
    assert_eq!(
        (set["hsm"].as_str(), &set["rule"]["rpcs"]),
        (Some(dev.endpoint.as_str()), &serde_json::json!(["Sign"]))
    );
    let failed = cli_sign(&dev).err();
    assert!(failed.contains("injected fault: unavailable on Sign"), "{failed}");
    let listed = ok(&dev.cli(&[], &["faults", "list"]));
    assert_eq!(listed["rules"][0]["hits"], 3, "the client tried three times, as it retries an unavailable HSM");

    let cleared = ok(&dev.cli(&[], &["faults", "clear"]));
    assert_eq!((cleared["cleared"].as_u64(), cleared["rules"].as_array().map(Vec::len)), (Some(1), Some(0)));
    ok(&cli_sign(&dev));
}

#[test]
fn acceptance_a_three_hsm_dev_cluster_signs_with_one_hsm_unavailable() {
    let dev = DevProcess::start(&["--hsms", "3", "--faults", "--admin-password", "admin-pass"]);
    let endpoints: Vec<&str> = dev.endpoint.split(',').collect();
    assert_eq!(endpoints.len(), 3);
    cli_signer(&dev);

    // On every HSM, signing fails with the injected status ...
    let set = ok(&dev.cli(&[], &["faults", "set", "--all", "--rpc", "crypto sign", "--status", "unavailable"]));
    assert_eq!(set["hsms"].as_array().unwrap().len(), 3);
    assert!(cli_sign(&dev).err().contains("unavailable"));
    ok(&dev.cli(&[], &["faults", "clear", "--all"]));
    ok(&cli_sign(&dev));

    // ... but one HSM unavailable does not fail a client's signing.
    let marked = ok(&dev.cli(&[], &["faults", "mode", "unavailable", "--hsm", "2"]));
    assert_eq!((marked["hsm"].as_str(), marked["mode"].as_str()), (Some(endpoints[1]), Some("unavailable")));
    for _ in 0..3 {
        ok(&cli_sign(&dev));
    }
    let state = ok(&dev.cli(&[], &["faults", "list", "--hsm", endpoints[1]]));
    assert!(state["mode-hits"].as_u64().unwrap() >= 3, "each hsm-cli run asked HSM 2 to log in: {state}");
    assert_eq!(ok(&dev.cli(&[], &["faults", "list", "--hsm", "1"]))["mode"], "normal");
    ok(&dev.cli(&[], &["faults", "mode", "normal", "--hsm", "2"]));

    // The whole cluster back to its seeds: cu and its keys are gone.
    let reset = ok(&dev.cli(&[], &["faults", "reset", "--seed", "--all"]));
    let digests: Vec<&Value> = reset["hsms"].as_array().unwrap().iter().map(|h| &h["snapshot"]["digest"]).collect();
    assert!(digests.iter().all(|d| *d == digests[0]), "{reset}");
    let users = ok(&dev.cli(&ADMIN, &["user", "list"]));
    let names: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "app_user"]);

    let bad = dev.cli(&[], &["faults", "list", "--hsm", "4"]).err();
    assert!(bad.starts_with("--hsm 4: HSM_ENDPOINTS lists 3 HSM(s)"), "{bad}");
}

#[test]
fn run_takes_faults_from_the_config_file_the_environment_or_the_flag_and_warns() {
    let cluster = ClusterDir::init(1);
    let list = |daemon: &integration_tests::process::Daemon| {
        hsm_cli(&daemon.address, &daemon.ca, &[], &["faults", "list"], None)
    };

    let plain = cluster.start();
    let refused = list(&plain).err();
    assert!(refused.contains("fault injection is not enabled"), "{refused}");
    assert!(!plain.stderr_text().contains("FAULT INJECTION IS ON"));
    plain.terminate();

    let by_flag = cluster.start_with(&["--listen", "127.0.0.1:0", "--faults"], &[]);
    assert_eq!(ok(&list(&by_flag))["mode"], "normal");
    assert!(by_flag.stderr_text().contains("FAULT INJECTION IS ON"), "{}", by_flag.stderr_text());
    by_flag.terminate();

    let by_env = cluster.start_with(&["--listen", "127.0.0.1:0"], &[("HSM_FAULTS", "true")]);
    assert_eq!(ok(&list(&by_env))["mode"], "normal");
    by_env.terminate();

    let config = std::fs::read_to_string(cluster.config()).unwrap();
    std::fs::write(cluster.config(), format!("{config}faults = true\n")).unwrap();
    let by_file = cluster.start();
    assert_eq!(ok(&list(&by_file))["mode"], "normal");
    assert!(by_file.stderr_text().contains("never in production"));
    by_file.terminate();
}
