//! The cluster layer of `hsm-client` and `hsm-cli` against real clusters of
//! in-process HSMs over TLS: logins on every HSM, user changes fanned out and
//! repaired, merged user lists, token keys copied to every HSM before success
//! while session keys stay put, crypto that survives a stopped HSM, the key
//! availability check, and what hsm-cli prints for all of it.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{path::PathBuf, time::Duration};

use hsm_client::{
    ChangePassword, ClientError, Cluster, ClusterKey, ClusterSession, ClusterState, Completion, CoverageLabel,
    CreateUser, Decrypt, DeleteUser, Encrypt, KeyOptions, KeyPairSpec, ListKeys, Merged, RetryPolicy, Role,
    SetKeyAttribute, Sign, UserEffect, Verify,
    cluster::{Activation, UNAVAILABLE_STATE},
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use integration_tests::{ADMIN_PASSWORD, CliOutput, Options, TestCluster, hsm_cli};
use ring::signature;
use serde_json::Value;

const CU_PASSWORD: &str = "cu-password";

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

fn aes_options(session: bool) -> KeyOptions {
    KeyOptions { session, ..opts(&[("label", "k"), ("encrypt", "true"), ("decrypt", "true")]) }
}

/// Options for HSMs whose background sync stays quiet for the whole test, so
/// that a key made on one HSM stays there.
fn without_background_sync() -> Options {
    Options { sync_interval: Duration::from_secs(3600), ..Options::default() }
}

/// `n` HSMs of one cluster, and the cluster layer connected to all of them.
async fn cluster_of(n: usize, options: Options) -> (TestCluster, Cluster) {
    let cluster = TestCluster::start(n, options).await;
    let client = Cluster::connect(&cluster.config()).await.unwrap();
    (cluster, client)
}

async fn login_admin(cluster: &Cluster) -> ClusterSession {
    cluster.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap()
}

/// Creates crypto user `cu` on every HSM and logs it in.
async fn crypto_user(cluster: &Cluster) -> ClusterSession {
    let admin = login_admin(cluster).await;
    assert_eq!(
        admin.create_user(CreateUser::new("cu", Role::CryptoUser, CU_PASSWORD)).await.unwrap().completion(),
        Completion::Full
    );
    admin.logout().await.unwrap();
    cluster.login("cu", Role::CryptoUser, CU_PASSWORD).await.unwrap()
}

/// A P-256 signing pair, (public, private), through the cluster layer.
async fn p256_pair(session: &ClusterSession) -> (ClusterKey, ClusterKey) {
    let public = opts(&[("label", "pub"), ("verify", "true")]);
    let private = opts(&[("label", "priv"), ("sign", "true")]);
    session.generate_key_pair(&KeyPairSpec::Ec { curve: "secp256r1".into() }, &public, &private).await.unwrap()
}

/// Every HSM's sync digest, hex; panics if one cannot be read.
async fn digests(session: &ClusterSession) -> Vec<String> {
    let statuses = session.sync_status_all().await;
    statuses.hsms.iter().map(|h| hex::encode(&h.outcome.as_ref().unwrap().digest)).collect()
}

/// Which HSMs (by index) list the key, asking each one directly.
async fn listed_on(session: &ClusterSession, reference: &str) -> Vec<usize> {
    let filter = [("key-reference".to_owned(), reference.to_owned())];
    let mut on = Vec::new();
    for (i, s) in session.sessions().enumerate() {
        if s.list_keys(ListKeys::default().filters(&filter)).await.unwrap().total == 1 {
            on.push(i);
        }
    }
    on
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reaches_every_hsm_and_cluster_info_lists_them_all() {
    let (cluster, client) = cluster_of(3, Options::default()).await;
    let info = client.cluster_info().await.unwrap();
    let addresses: Vec<&str> = info.hsms.iter().map(|h| h.address.as_str()).collect();
    assert_eq!(addresses, cluster.endpoints());
    assert!(info.hsms.iter().all(|h| h.state != UNAVAILABLE_STATE && h.hsm_id.starts_with("hsm-")), "{info:?}");

    let admin = login_admin(&client).await;
    assert!(admin.unavailable().is_empty());
    assert_eq!(admin.sessions().count(), 3);
    assert_eq!((admin.username(), admin.role()), (Some("admin"), Some(Role::Admin)));

    let wrong = client.login("admin", Role::Admin, "not-the-password").await.unwrap_err();
    assert!(matches!(wrong, ClientError::Unauthenticated(_)), "{wrong:?}");
    assert_eq!(admin.logout().await.unwrap().completion(), Completion::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_activates_every_unactivated_hsm_once() {
    let (cluster, client) = cluster_of(3, Options::unactivated()).await;
    assert_eq!(client.cluster_info().await.unwrap().state, ClusterState::Uninitialized);
    let activated = client.activate("first-admin-pass").await.unwrap();
    assert_eq!(activated.completion(), Completion::Full);
    assert!(activated.succeeded().all(|(_, a)| matches!(a, Activation::Activated(u) if u.username == "admin")));
    assert_eq!(client.cluster_info().await.unwrap().state, ClusterState::Active);
    for i in 0..3 {
        cluster.hsm(i).login("admin", Role::Admin, "first-admin-pass").await.logout().await.unwrap();
    }
    let again = client.activate("second-admin-pass").await.unwrap_err();
    assert_eq!(again, ClientError::FailedPrecondition("the cluster is already activated".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_changes_reach_every_hsm_and_leave_them_in_sync() {
    let (cluster, client) = cluster_of(3, Options::default()).await;
    let admin = login_admin(&client).await;
    let before = digests(&admin).await;
    assert!(before.iter().all(|d| *d == before[0]), "a new cluster starts in sync: {before:?}");

    let created = admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass1")).await.unwrap();
    assert_eq!(created.completion(), Completion::Full);
    assert!(created.succeeded().all(|(_, c)| c.effect == UserEffect::Applied && c.user.username == "alice"));
    let after = digests(&admin).await;
    assert!(after.iter().all(|d| *d == after[0]) && after[0] != before[0], "{after:?}");
    for i in 0..3 {
        cluster.hsm(i).login("alice", Role::CryptoUser, "alice-pass1").await.logout().await.unwrap();
    }

    let changed = admin.change_password(ChangePassword::new("alice", Role::CryptoUser, "alice-pass2")).await.unwrap();
    assert_eq!(changed.completion(), Completion::Full);
    for i in 0..3 {
        assert!(cluster.hsm(i).client.login("alice", Role::CryptoUser, "alice-pass1").await.is_err());
        cluster.hsm(i).login("alice", Role::CryptoUser, "alice-pass2").await.logout().await.unwrap();
    }

    let deleted = admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap();
    assert_eq!(deleted.completion(), Completion::Full);
    assert_eq!(digests(&admin).await, before, "back to where it started, on every HSM");
    // Deleting again repairs nothing and breaks nothing: gone everywhere.
    let again = admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap();
    assert!(again.succeeded().all(|(_, c)| c.effect == UserEffect::AlreadyInPlace));
    assert_eq!(again.completion(), Completion::Full);

    // A refusal that every HSM gives is one plain error.
    let refused = admin.delete_user(DeleteUser::new("admin", Role::Admin)).await.unwrap_err();
    assert!(matches!(refused, ClientError::FailedPrecondition(_)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_some_hsms_lists_as_inconsistent_and_create_never_overwrites_it() {
    let (cluster, client) = cluster_of(3, Options::default()).await;
    let admin = login_admin(&client).await;
    // Made behind the cluster layer's back, on HSM 0 only.
    cluster.hsm(0).admin().await.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-old-1")).await.unwrap();
    let before = digests(&admin).await;

    let list = admin.list_users().await.unwrap();
    let carol = list.users.iter().find(|u| u.username == "carol").unwrap();
    assert!(!carol.on_every_hsm() && !carol.is_consistent());
    let present: Vec<bool> = carol.per_hsm.iter().map(|(_, u)| u.is_some()).collect();
    assert_eq!(present, [true, false, false]);
    assert!(list.users.iter().filter(|u| u.username != "carol").all(|u| u.is_consistent()), "{list:?}");

    // Creating her again, in any case and with another password, is refused
    // before anything is written: her password stays, and the HSMs that lack
    // her still do (a password of the caller's choosing there would let
    // anyone log in as carol).
    let endpoints = cluster.endpoints();
    for name in ["carol", "CAROL"] {
        let refused = admin.create_user(CreateUser::new(name, Role::CryptoUser, "carol-new-1")).await.unwrap_err();
        let ClientError::AlreadyExists(message) = &refused else { panic!("{refused:?}") };
        assert!(message.starts_with("a user named 'carol' already exists"), "{message}");
        assert!(
            message.contains(&format!("on {} but not on {}, {}", endpoints[0], endpoints[1], endpoints[2])),
            "{message}"
        );
    }
    assert_eq!(digests(&admin).await, before, "nothing was written anywhere");
    cluster.hsm(0).login("carol", Role::CryptoUser, "carol-old-1").await.logout().await.unwrap();
    assert!(cluster.hsm(0).client.login("carol", Role::CryptoUser, "carol-new-1").await.is_err());

    // The repair: delete her where she is, then create her everywhere.
    let deleted = admin.delete_user(DeleteUser::new("carol", Role::CryptoUser)).await.unwrap();
    let effects: Vec<UserEffect> = deleted.succeeded().map(|(_, c)| c.effect).collect();
    assert_eq!(effects, [UserEffect::Applied, UserEffect::AlreadyInPlace, UserEffect::AlreadyInPlace]);
    let created = admin.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-new-1")).await.unwrap();
    assert_eq!(created.completion(), Completion::Full);
    assert!(admin.list_users().await.unwrap().users.iter().all(|u| u.is_consistent()));
    let d = digests(&admin).await;
    assert!(d.iter().all(|x| *x == d[0]), "{d:?}");
    for i in 0..3 {
        cluster.hsm(i).login("carol", Role::CryptoUser, "carol-new-1").await;
    }

    // A name with another role on one HSM is refused the same way.
    cluster.hsm(1).admin().await.create_user(CreateUser::new("dave", Role::Admin, "dave-pass-1")).await.unwrap();
    let refused = admin.create_user(CreateUser::new("dave", Role::CryptoUser, "dave-pass-2")).await.unwrap_err();
    assert!(matches!(&refused, ClientError::AlreadyExists(m) if m.contains("'dave'")), "{refused:?}");
    let dave = admin.list_users().await.unwrap().users.into_iter().find(|u| u.username == "dave").unwrap();
    assert_eq!(dave.role, Merged::Consistent(Role::Admin), "still only HSM 1 has dave, as an admin");
    assert_eq!(dave.per_hsm.iter().filter(|(_, u)| u.is_some()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_keys_are_on_every_hsm_when_creation_returns_and_usable_through_each() {
    let (_cluster, client) = cluster_of(3, Options::default()).await;
    let cu = crypto_user(&client).await;

    let aes = cu.generate_symmetric_key(SymmetricKeyType::Aes, 32, &aes_options(false)).await.unwrap();
    assert_eq!((aes.coverage.label(), aes.coverage.holding.len()), (CoverageLabel::Full, 3));
    assert!(aes.coverage.failures.is_empty());
    let reference = aes.info.reference.clone();
    assert_eq!(listed_on(&cu, &reference).await, [0, 1, 2]);
    let d = digests(&cu).await;
    assert!(d.iter().all(|x| *x == d[0]), "{d:?}");

    // Encrypted through one HSM, decrypted through each of the others.
    let sessions: Vec<_> = cu.sessions().collect();
    let (iv, sealed) =
        sessions[0].encrypt(Encrypt::new(&reference, Cipher::AesGcm, b"secret").aad(b"aad")).await.unwrap();
    for s in &sessions[1..] {
        let opened = s.decrypt(Decrypt::new(&reference, Cipher::AesGcm, &sealed).iv(&iv).aad(b"aad")).await.unwrap();
        assert_eq!(opened, b"secret");
    }

    // A key pair: signed through the cluster, verified on every HSM and by ring.
    let (public, private) = p256_pair(&cu).await;
    assert_eq!((public.coverage.label(), private.coverage.label()), (CoverageLabel::Full, CoverageLabel::Full));
    let message = b"signed across the cluster";
    let sig = cu
        .sign(Sign::new(&private.info.reference, SignMechanism::Ecdsa, message).hash(HashAlgorithm::Sha256))
        .await
        .unwrap();
    for s in cu.sessions() {
        let valid = s
            .verify(
                Verify::new(&public.info.reference, SignMechanism::Ecdsa, message, &sig).hash(HashAlgorithm::Sha256),
            )
            .await
            .unwrap();
        assert!(valid, "on {}", s.client().endpoint());
    }
    let point = hex::decode(public.info.attribute("ec-point").unwrap().trim_start_matches("0x")).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point).verify(message, &sig).unwrap();

    // Changes travel too: a new label everywhere, then the deletion.
    let relabelled = cu.set_key_attribute(SetKeyAttribute::new(&reference, "label", "renamed")).await.unwrap();
    assert_eq!(relabelled.coverage.label(), CoverageLabel::Full);
    for s in cu.sessions() {
        let filter = [("key-reference".to_owned(), reference.clone())];
        let page = s.list_keys(ListKeys::default().filters(&filter)).await.unwrap();
        assert_eq!(page.keys[0].attribute("label"), Some("renamed"), "on {}", s.client().endpoint());
    }
    let deleted = cu.delete_key(&reference).await.unwrap();
    assert_eq!(deleted.coverage.label(), CoverageLabel::Full);
    assert!(listed_on(&cu, &reference).await.is_empty());
    let d = digests(&cu).await;
    assert!(d.iter().all(|x| *x == d[0]), "{d:?}");

    // Imported keys are copied as well.
    let imported = cu.import_secret(SymmetricKeyType::Aes, &[7; 16], &aes_options(false)).await.unwrap();
    assert_eq!(imported.coverage.label(), CoverageLabel::Full);
    assert_eq!(listed_on(&cu, &imported.info.reference).await, [0, 1, 2]);

    // The merged listing shows each key once, with its coverage.
    let page = cu.list_keys(ListKeys::default()).await.unwrap();
    assert_eq!(page.total, 3);
    assert!(page.keys.iter().all(|k| k.coverage.label() == CoverageLabel::Full && k.coverage.holding.len() == 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keys_stay_on_the_hsm_that_made_them_and_are_used_there() {
    let (cluster, client) = cluster_of(3, Options::default()).await;
    let cu = crypto_user(&client).await;
    let before = digests(&cu).await;

    let key = cu.generate_symmetric_key(SymmetricKeyType::Aes, 16, &aes_options(true)).await.unwrap();
    assert_eq!((key.coverage.label(), key.coverage.holding.len()), (CoverageLabel::Session, 1));
    let on = listed_on(&cu, &key.info.reference).await;
    assert_eq!(on.len(), 1, "never copied: {on:?}");
    assert_eq!(key.coverage.holding, [cluster.endpoints()[on[0]].clone()]);
    // Round-robin would reach every HSM in three calls; a session key's go to its HSM.
    for _ in 0..4 {
        let (iv, sealed) = cu.encrypt(Encrypt::new(&key.info.reference, Cipher::AesCbcPad, b"data")).await.unwrap();
        let opened = cu.decrypt(Decrypt::new(&key.info.reference, Cipher::AesCbcPad, &sealed).iv(&iv)).await.unwrap();
        assert_eq!(opened, b"data");
    }
    assert_eq!(digests(&cu).await, before, "session keys are not part of the synchronised state");
    let listed = cu.list_keys(ListKeys::default()).await.unwrap();
    assert_eq!(listed.keys[0].coverage.label(), CoverageLabel::Session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_hsm_down_logins_keys_and_users_work_and_say_what_was_missed() {
    let (mut cluster, client) = cluster_of(3, Options::default()).await;
    let cu = crypto_user(&client).await;
    cluster.stop(2).await;
    let down = cluster.endpoints()[2].clone();

    let info = client.cluster_info().await.unwrap();
    let states: Vec<(&str, &str)> = info.hsms.iter().map(|h| (h.address.as_str(), h.state.as_str())).collect();
    assert_eq!(states.len(), 3);
    assert_eq!(states[2], (down.as_str(), UNAVAILABLE_STATE));

    let admin = login_admin(&client).await;
    let missing: Vec<&str> = admin.unavailable().into_iter().map(|(endpoint, _)| endpoint).collect();
    assert_eq!(missing, [down.as_str()]);
    let created = admin.create_user(CreateUser::new("erin", Role::CryptoUser, "erin-pass1")).await.unwrap();
    assert_eq!(created.completion(), Completion::Partial);
    assert_eq!(created.failed().map(|(e, _)| e).collect::<Vec<_>>(), [down.as_str()]);

    let cu2 = client.login("cu", Role::CryptoUser, CU_PASSWORD).await.unwrap();
    let (_, private) = p256_pair(&cu2).await;
    assert_eq!((private.coverage.label(), private.coverage.holding.len()), (CoverageLabel::Partial, 2));
    assert_eq!(private.coverage.failures.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>(), [down.as_str()]);
    for _ in 0..3 {
        cu2.sign(Sign::new(&private.info.reference, SignMechanism::Ecdsa, b"m").hash(HashAlgorithm::Sha256))
            .await
            .unwrap();
    }
    drop(cu);

    // Back up: a new session reaches it. Creating erin again is refused
    // (she exists on two HSMs), and deleting and creating her repairs it.
    cluster.restart(2).await;
    let admin = login_admin(&client).await;
    assert!(admin.unavailable().is_empty());
    let refused = admin.create_user(CreateUser::new("erin", Role::CryptoUser, "erin-pass2")).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::AlreadyExists(m) if m.contains(&format!("but not on {down}"))),
        "{refused:?}"
    );
    cluster.hsm(0).login("erin", Role::CryptoUser, "erin-pass1").await.logout().await.unwrap();
    let deleted = admin.delete_user(DeleteUser::new("erin", Role::CryptoUser)).await.unwrap();
    let effects: Vec<UserEffect> = deleted.succeeded().map(|(_, c)| c.effect).collect();
    assert_eq!(effects, [UserEffect::Applied, UserEffect::Applied, UserEffect::AlreadyInPlace]);
    let repaired = admin.create_user(CreateUser::new("erin", Role::CryptoUser, "erin-pass2")).await.unwrap();
    assert_eq!(repaired.completion(), Completion::Full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crypto_retries_on_another_hsm_when_one_stops() {
    let (mut cluster, client) = cluster_of(3, Options::default()).await;
    let cu = crypto_user(&client).await;
    let key = cu
        .generate_symmetric_key(SymmetricKeyType::GenericSecret, 32, &opts(&[("sign", "true"), ("verify", "true")]))
        .await
        .unwrap();
    let reference = key.info.reference;
    // Without retries, one of three round-robin calls meets the stopped HSM.
    let once = cluster.config().with_retry(RetryPolicy { attempts: 1, ..RetryPolicy::default() });
    let no_retry = Cluster::connect(&once).await.unwrap().login("cu", Role::CryptoUser, CU_PASSWORD).await.unwrap();
    let hmac = async |s: &ClusterSession| {
        s.sign(Sign::new(&reference, SignMechanism::Hmac, b"m").hash(HashAlgorithm::Sha256)).await
    };
    hmac(&no_retry).await.unwrap();

    cluster.stop(1).await;
    let mut signatures = Vec::new();
    for _ in 0..6 {
        signatures.push(hmac(&cu).await.unwrap());
    }
    assert!(signatures.iter().all(|s| *s == signatures[0]), "one key, one HMAC");

    let mut refusals = Vec::new();
    for _ in 0..3 {
        if let Err(e) = hmac(&no_retry).await {
            refusals.push(e);
        }
    }
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(matches!(&refusals[0], ClientError::Unavailable(_) | ClientError::Other { .. }), "{refusals:?}");

    // A refusal is not retried: a missing key is reported at once.
    let missing = cu
        .sign(Sign::new("0x00000000000000ff", SignMechanism::Hmac, b"m").hash(HashAlgorithm::Sha256))
        .await
        .unwrap_err();
    assert!(matches!(missing, ClientError::NotFound(_)), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_on_one_hsm_is_refused_until_the_check_is_off_or_it_is_copied() {
    let (cluster, client) = cluster_of(3, without_background_sync()).await;
    let cu = crypto_user(&client).await;
    let first = cu.sessions().next().unwrap();
    // Made on HSM 0 alone, through the single-HSM layer.
    let lonely = first.generate_symmetric_key(SymmetricKeyType::Aes, 32, &aes_options(false)).await.unwrap();

    let refused = cu.encrypt(Encrypt::new(&lonely.reference, Cipher::AesGcm, b"x")).await.unwrap_err();
    let ClientError::FailedPrecondition(message) = &refused else { panic!("{refused:?}") };
    for part in [
        lonely.reference.as_str(),
        "on 1 of 3 HSMs",
        "--disable-key-availability-check",
        "HSM_DISABLE_KEY_AVAILABILITY_CHECK",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }

    let unchecked = cluster.config().with_key_availability_check(false);
    let relaxed = Cluster::connect(&unchecked).await.unwrap().login("cu", Role::CryptoUser, CU_PASSWORD).await.unwrap();
    relaxed.encrypt(Encrypt::new(&lonely.reference, Cipher::AesGcm, b"x")).await.unwrap();

    // Copied to a second HSM, it passes on its next use.
    let object = first.extract_masked_key(&lonely.reference).await.unwrap();
    assert!(cu.sessions().nth(1).unwrap().insert_masked_object(&object).await.unwrap());
    cu.encrypt(Encrypt::new(&lonely.reference, Cipher::AesGcm, b"x")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_hsm_cluster_is_never_checked() {
    let (_cluster, client) = cluster_of(1, Options::default()).await;
    let cu = crypto_user(&client).await;
    let key = cu
        .sessions()
        .next()
        .unwrap()
        .generate_symmetric_key(SymmetricKeyType::Aes, 32, &aes_options(false))
        .await
        .unwrap();
    cu.encrypt(Encrypt::new(&key.reference, Cipher::AesGcm, b"x")).await.unwrap();
    let made = cu.generate_symmetric_key(SymmetricKeyType::Aes, 32, &aes_options(false)).await.unwrap();
    assert_eq!((made.coverage.label(), made.coverage.holding.len()), (CoverageLabel::Full, 1));
    let statuses = cu.sync_status_all().await;
    assert!(statuses.in_sync() && statuses.hsms.len() == 1);
}

/// `hsm-cli` against the cluster, as a user who loaded client.env with every
/// HSM in HSM_ENDPOINTS.
struct Cli {
    endpoints: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn new(cluster: &TestCluster) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("customerCA.crt");
        std::fs::write(&ca, &cluster.hsm(0).ca.cert_pem).unwrap();
        Cli { endpoints: cluster.endpoints().join(","), ca, _dir: dir }
    }

    /// Runs hsm-cli off the runtime's threads, which serve the HSMs.
    async fn run(&self, env: &[(&str, &str)], args: &[&str]) -> CliOutput {
        let (endpoints, ca) = (self.endpoints.clone(), self.ca.clone());
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            hsm_cli(&endpoints, &ca, &env, &args, None)
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_cli_shows_every_hsm_inconsistent_users_and_key_coverage() {
    let mut cluster = TestCluster::start(3, without_background_sync()).await;
    let cli = Cli::new(&cluster);
    let admin_pin = format!("admin:{ADMIN_PASSWORD}");
    let admin_env = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", admin_pin.as_str())];
    let cu_pin = format!("cu:{CU_PASSWORD}");
    let cu_env = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", cu_pin.as_str())];

    let info = cli.run(&[], &["cluster", "hsm-info"]).await.ok();
    assert_eq!(info["hsms"].as_array().unwrap().len(), 3, "{info}");

    cli.run(&admin_env, &["user", "create", "--username", "cu", "--role", "crypto-user", "--password", CU_PASSWORD])
        .await
        .ok();
    let status = cli.run(&admin_env, &["cluster", "sync-status"]).await.ok();
    assert_eq!(status["hsms"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["in-sync"], true, "{status}");

    // A user on HSM 0 only.
    cluster.hsm(0).admin().await.create_user(CreateUser::new("frank", Role::CryptoUser, "frank-pass")).await.unwrap();
    let users = cli.run(&admin_env, &["user", "list"]).await.ok();
    let frank = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "frank").unwrap().clone();
    assert_eq!(frank["cluster-coverage"], "inconsistent", "{users}");
    assert_eq!(frank["hsms"].as_array().unwrap().len(), 3, "{frank}");
    assert_eq!(cli.run(&admin_env, &["cluster", "sync-status"]).await.ok()["in-sync"], false);

    // Keys: one made through the CLI is on every HSM; one made on HSM 0 alone is partial.
    let made = cli
        .run(&cu_env, &["key", "generate-symmetric", "aes", "--label", "everywhere", "--key-length-bytes", "32"])
        .await
        .ok();
    assert_eq!(made["key"]["key-info"]["cluster-coverage"], "full", "{made}");
    let cu = cluster.hsm(0).login("cu", Role::CryptoUser, CU_PASSWORD).await;
    let lonely = cu
        .generate_symmetric_key(SymmetricKeyType::GenericSecret, 32, &opts(&[("label", "lonely"), ("sign", "true")]))
        .await
        .unwrap();
    let listed = cli.run(&cu_env, &["key", "list", "--verbose"]).await.ok();
    let coverage_of = |label: &str| -> Value {
        listed["matched_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["attributes"]["label"] == label)
            .map(|k| k["key-info"].clone())
            .unwrap()
    };
    assert_eq!(coverage_of("everywhere")["cluster-coverage"], "full", "{listed}");
    assert_eq!(coverage_of("lonely")["cluster-coverage"], "partial", "{listed}");
    assert_eq!(coverage_of("lonely")["hsms-holding"], serde_json::json!([cluster.endpoints()[0]]));

    // The lonely key is refused, unless the check is off.
    let filter = format!("key-reference={}", lonely.reference);
    let hmac_args = ["crypto", "hmac", "sign", "--key-filter", &filter, "--hash-function", "sha256", "--data", "aGk="];
    let refused = cli.run(&cu_env, &hmac_args).await.err();
    assert!(refused.contains("--disable-key-availability-check"), "{refused}");
    let mut relaxed_args = vec!["--disable-key-availability-check"];
    relaxed_args.extend(hmac_args);
    let signed = cli.run(&cu_env, &relaxed_args).await.ok();
    assert_eq!(signed["key-reference"], lonely.reference.as_str(), "{signed}");
    let by_env = [cu_env[0], cu_env[1], ("HSM_DISABLE_KEY_AVAILABILITY_CHECK", "1")];
    assert_eq!(cli.run(&by_env, &hmac_args).await.ok(), signed, "HMAC is deterministic");

    // With an HSM down: hsm-info still lists it, login and user create name it.
    cluster.stop(1).await;
    let down = cluster.endpoints()[1].clone();
    let info = cli.run(&[], &["cluster", "hsm-info"]).await.ok();
    assert_eq!(info["hsms"][1]["state"], UNAVAILABLE_STATE, "{info}");
    assert_eq!(info["hsms"][1]["address"], down.as_str());
    let login =
        cli.run(&[], &["login", "--username", "admin", "--role", "admin", "--password", ADMIN_PASSWORD]).await.ok();
    assert_eq!(login["failed-hsms"][0]["hsm"], down.as_str(), "{login}");
    let created = cli
        .run(&admin_env, &["user", "create", "--username", "gina", "--role", "crypto-user", "--password", "gina-pass"])
        .await
        .ok();
    assert_eq!(
        (created["username"].as_str(), created["failed-hsms"][0]["hsm"].as_str()),
        (Some("gina"), Some(down.as_str()))
    );
    let status = cli.run(&admin_env, &["cluster", "sync-status"]).await.ok();
    assert!(status["hsms"][1]["error"].is_string() && status["in-sync"] == false, "{status}");
}
