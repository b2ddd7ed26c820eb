//! CloudHSM's user model where it differs from "make it so": a user who
//! exists is never created again (not through the gRPC API, not through the
//! cluster client retrying or repairing, not through `hsm-cli`), and before
//! activation the precrypto officer and the appliance user may read cluster
//! info and list users, and nothing else.

use std::{path::Path, process::Command};

use hsm_client::{
    ChangePassword, ClientError, Completion, CreateUser, DeleteUser, FaultSpec, RegisterMfa, Role, UserEffect,
};
use hsm_proto::v1::{
    self as pb, cluster_service_client::ClusterServiceClient, masked_object_service_client::MaskedObjectServiceClient,
    user_service_client::UserServiceClient,
};
use integration_tests::{APPLIANCE_PASSWORD, DevProcess, Options, TestCluster, TestHsm, TestRsaKey, hsm_cli};
use tonic::Code;

/// A CreateUser request for a crypto user, as the wire carries it.
fn create(username: &str, password: &str, token: &[u8]) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        username: username.into(),
        role: pb::Role::CryptoUser.into(),
        password: password.into(),
        approval: None,
        create_token: token.to_vec(),
    }
}

/// Whether `password` logs `username` in on `hsm` (and logs out again).
async fn logs_in(hsm: &TestHsm, username: &str, password: &str) -> bool {
    match hsm.client.login(username, Role::CryptoUser, password).await {
        Ok(session) => {
            session.logout().await.expect("logout");
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hsm_refuses_to_create_an_existing_user_and_keeps_its_password() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.expect("alice");
    let mut users = UserServiceClient::new(admin.client().channel());

    // Any other create of alice: another case, another password, a token or
    // none. Each is refused naming her, and her password stays.
    for (name, token) in [("alice", &[][..]), ("ALICE", &[3; 16][..]), ("Alice", &[4; 16][..])] {
        let request = admin.request(create(name, "other-pass", token)).expect("request");
        let status = users.create_user(request).await.expect_err("an existing user is refused");
        assert_eq!(status.code(), Code::AlreadyExists, "{name}");
        assert_eq!(status.message(), "a user named 'alice' already exists", "{name}");
    }
    assert!(logs_in(&hsm, "alice", "alice-pass").await);
    assert!(!logs_in(&hsm, "alice", "other-pass").await);

    // A create that is retried with its own token (its answer was lost) is
    // done, and writes nothing, even if the retry carries another password;
    // another token for the same name is refused.
    let first = [9; 16];
    let request = admin.request(create("bob", "bob-pass-1", &first)).expect("request");
    users.create_user(request).await.expect("bob");
    let request = admin.request(create("bob", "bob-pass-2", &first)).expect("request");
    let again = users.create_user(request).await.expect("the same create again").into_inner();
    assert_eq!(again.user.map(|u| u.username).as_deref(), Some("bob"));
    let request = admin.request(create("bob", "bob-pass-3", &[10; 16])).expect("request");
    assert_eq!(users.create_user(request).await.expect_err("another create").code(), Code::AlreadyExists);
    assert!(logs_in(&hsm, "bob", "bob-pass-1").await);
    assert!(!logs_in(&hsm, "bob", "bob-pass-2").await);
    assert!(!logs_in(&hsm, "bob", "bob-pass-3").await);

    // A token is 16 bytes or nothing.
    let request = admin.request(create("carol", "carol-pass", &[1; 15])).expect("request");
    let status = users.create_user(request).await.expect_err("a short token");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("create_token") && status.message().contains("16 bytes"), "{status:?}");
    hsm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_hsm_finishes_its_create_on_retry_and_a_second_create_is_refused_on_every_hsm() {
    let cluster = TestCluster::start(2, Options { faults: true, ..Options::default() }).await;
    let client = cluster.client().await;
    let admin = client.login("admin", Role::Admin, integration_tests::ADMIN_PASSWORD).await.expect("admin");
    let lagging = &cluster.hsm(1).client;

    // HSM 1 cannot take the first attempt: the client tries it again there,
    // with the same create.
    lagging.set_fault(&FaultSpec::fail("CreateUser", "unavailable").times(1)).await.expect("fault");
    let created = admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.expect("alice");
    assert_eq!(created.completion(), Completion::Full);
    assert!(created.succeeded().all(|(_, c)| c.effect == UserEffect::Applied));
    assert!(lagging.faults().await.expect("faults").rules.is_empty(), "the fault fired and is spent");
    for i in 0..2 {
        assert!(logs_in(cluster.hsm(i), "alice", "alice-pass").await, "HSM {i}");
    }

    // HSM 1 stays down for bob's create: it reaches HSM 0 only.
    lagging.set_fault(&FaultSpec::fail("CreateUser", "unavailable").times(10)).await.expect("fault");
    let partial = admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass-1")).await.expect("bob");
    assert_eq!(partial.completion(), Completion::Partial);
    lagging.clear_faults(None).await.expect("clear");

    // Creating them again, with other passwords, is refused before any HSM
    // is written to, and names the user.
    let refused =
        admin.create_user(CreateUser::new("ALICE", Role::CryptoUser, "stolen-pass")).await.expect_err("alice exists");
    assert_eq!(refused, ClientError::AlreadyExists("a user named 'alice' already exists".into()));
    let refused =
        admin.create_user(CreateUser::new("bob", Role::CryptoUser, "stolen-pass")).await.expect_err("bob exists");
    let ClientError::AlreadyExists(message) = &refused else { panic!("{refused:?}") };
    let endpoints = cluster.endpoints();
    assert_eq!(
        message,
        &format!(
            "a user named 'bob' already exists on {} but not on {}: delete it (user delete) and create it again to \
             repair the cluster",
            endpoints[0], endpoints[1]
        )
    );
    for i in 0..2 {
        assert!(logs_in(cluster.hsm(i), "alice", "alice-pass").await, "HSM {i}");
        assert!(!logs_in(cluster.hsm(i), "alice", "stolen-pass").await, "HSM {i}");
        assert!(!logs_in(cluster.hsm(i), "bob", "stolen-pass").await, "HSM {i}");
    }
    assert!(logs_in(cluster.hsm(0), "bob", "bob-pass-1").await);
    let listed = admin.list_users().await.expect("list");
    let bob = listed.users.iter().find(|u| u.username == "bob").expect("bob");
    assert_eq!(bob.per_hsm.iter().map(|(_, u)| u.is_some()).collect::<Vec<_>>(), [true, false], "no HSM gained bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_activation_the_appliance_user_may_read_cluster_info_and_list_users_only() {
    let hsm = TestHsm::start(Options::unactivated()).await;
    let au = hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
    let names: Vec<String> = au.list_users().await.expect("list").into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["admin", "app_user"]);
    au.client().cluster_info().await.expect("cluster info");
    let refused = [
        ClusterServiceClient::new(au.client().channel())
            .get_sync_status(au.request(pb::GetSyncStatusRequest { include_keys: false }).expect("request"))
            .await
            .map(drop),
        MaskedObjectServiceClient::new(au.client().channel())
            .extract_masked_object(
                au.request(pb::ExtractMaskedObjectRequest {
                    object: Some(pb::extract_masked_object_request::Object::Username("admin".into())),
                })
                .expect("request"),
            )
            .await
            .map(drop),
    ];
    for status in refused {
        let status = status.expect_err("refused before activation");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("while the cluster is not activated"), "{status:?}");
        assert!(status.message().contains("appliance"), "{status:?}");
    }
    let changed = au.change_password(ChangePassword::new("app_user", Role::Appliance, "new-appliance-pass")).await;
    assert!(matches!(changed, Err(ClientError::FailedPrecondition(_))), "{changed:?}");
    au.logout().await.expect("logout");

    // Activated, the appliance user is back to its row of the table.
    hsm.client.activate("admin-pass-1").await.expect("activate");
    let au = hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
    au.sync_status().await.expect("sync status after activation");
    hsm.shutdown().await;
}

#[test]
fn hsm_cli_refuses_an_existing_user_and_the_precrypto_officer_lists_users() {
    let dev = DevProcess::start(&[]);
    let preco = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:password")];
    let listed = dev.cli(&preco, &["user", "list"]).ok();
    let users = listed["users"].as_array().unwrap_or_else(|| panic!("{listed}"));
    let roles: Vec<(&str, &str)> =
        users.iter().map(|u| (u["username"].as_str().unwrap_or(""), u["role"].as_str().unwrap_or(""))).collect();
    assert_eq!(roles, [("admin", "unactivated-admin"), ("app_user", "internal(APPLIANCE_USER)")]);
    let refused =
        dev.cli(&preco, &["user", "create", "--username", "x", "--role", "crypto-user", "--password", "x-pass-1"]);
    assert!(refused.err().contains("while the cluster is not activated"), "{}", refused.stdout);

    let activated = dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok();
    assert_eq!(activated, serde_json::json!("Cluster activation successful"));
    let admin = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
    let alice = ["user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass"];
    let made = dev.cli(&admin, &alice).ok();
    assert_eq!(made, serde_json::json!({"username": "alice", "role": "crypto-user"}));
    for (name, password) in [("alice", "alice-pass"), ("ALICE", "other-pass"), ("alice", "other-pass")] {
        let again =
            dev.cli(&admin, &["user", "create", "--username", name, "--role", "crypto-user", "--password", password]);
        // `err` checks error_code 1 and a failing exit status.
        assert_eq!(again.err(), "a user named 'alice' already exists");
    }
    let as_alice = |password: &str| {
        let pin = format!("alice:{password}");
        dev.cli(&[("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", &pin)], &["user", "list"])
    };
    as_alice("alice-pass").ok();
    assert!(as_alice("other-pass").err().to_lowercase().contains("login failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_clients_already_done_answers_never_write() {
    let cluster = TestCluster::start(2, Options::default()).await;
    let client = cluster.client().await;
    let admin = client.login("admin", Role::Admin, integration_tests::ADMIN_PASSWORD).await.expect("admin");
    // dave is an admin on HSM 1 only. Deleting a crypto user dave: HSM 0
    // has no dave (already done, nothing written), HSM 1 refuses, since its
    // dave has another role, and keeps him.
    cluster.hsm(1).admin().await.create_user(CreateUser::new("dave", Role::Admin, "dave-pass-1")).await.expect("dave");
    let deleted = admin.delete_user(DeleteUser::new("dave", Role::CryptoUser)).await.expect("one HSM counts as done");
    assert_eq!(deleted.completion(), Completion::Partial);
    assert_eq!(deleted.succeeded().map(|(_, c)| c.effect).collect::<Vec<_>>(), [UserEffect::AlreadyInPlace]);
    assert!(matches!(deleted.failed().next(), Some((_, ClientError::NotFound(_)))), "{deleted:?}");
    let dave = cluster.hsm(1).login("dave", Role::Admin, "dave-pass-1").await;
    dave.logout().await.expect("logout");

    // A password change has no "already done": a refusal on one HSM stays a
    // refusal there, and the other HSMs' answers are their own.
    let changed =
        admin.change_password(ChangePassword::new("dave", Role::Admin, "dave-pass-2")).await.expect("HSM 1 has dave");
    assert_eq!(changed.completion(), Completion::Partial);
    assert!(cluster.hsm(0).client.login("dave", Role::Admin, "dave-pass-2").await.is_err(), "no dave made on HSM 0");
}

/// An RSA key made and used by `openssl`, signing a token as AWS's
/// walkthrough does (`openssl pkeyutl -sign -pkeyopt digest:sha256`).
struct OpensslKey {
    dir: tempfile::TempDir,
}

impl OpensslKey {
    fn generate() -> OpensslKey {
        let dir = tempfile::tempdir().expect("temp dir");
        openssl(dir.path(), &["genrsa", "-out", "key.pem", "2048"]);
        openssl(dir.path(), &["rsa", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der"]);
        OpensslKey { dir }
    }

    fn spki(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("pub.der")).expect("public key")
    }

    fn sign(&self, token: &[u8]) -> Vec<u8> {
        std::fs::write(self.dir.path().join("token.bin"), token).expect("token file");
        openssl(
            self.dir.path(),
            &["pkeyutl", "-sign", "-inkey", "key.pem", "-pkeyopt", "digest:sha256", "-in", "token.bin", "-out", "sig"],
        );
        std::fs::read(self.dir.path().join("sig")).expect("signature")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("the openssl binary");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_password_deregisters_the_mfa_and_quorum_keys_as_asked() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.expect("alice");
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.expect("admin2");
    admin.logout().await.expect("logout");

    // alice turns MFA on; then her password alone no longer logs her in.
    let key = OpensslKey::generate();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let token = alice.mfa_registration_token("alice", Role::CryptoUser).await.expect("token");
    let (spki, signed) = (key.spki(), (token.clone(), key.sign(&token)));
    let on = alice.register_mfa(RegisterMfa::new("alice", Role::CryptoUser, &spki, &signed)).await;
    assert!(on.expect("MFA on").mfa);
    alice.logout().await.expect("logout");
    assert!(hsm.client.login("alice", Role::CryptoUser, "alice-pass").await.is_err(), "MFA is on");
    // admin2 registers a quorum key.
    let admin2 = hsm.login("admin2", Role::Admin, "admin2-pass").await;
    let issued = admin2.generate_quorum_token(hsm_client::QuorumService::Registration).await.expect("token");
    let approver = TestRsaKey::fixed();
    let signature = approver.sign(&issued.approval_data);
    admin2.register_quorum_key(&approver.spki(), &[(issued.token.clone(), signature)]).await.expect("register");
    admin2.logout().await.expect("logout");

    // The admin resets both through hsm-cli, as AWS's flags say.
    let ca = tempfile::NamedTempFile::new().expect("CA file");
    std::fs::write(ca.path(), &hsm.ca.cert_pem).expect("CA");
    let env = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
    let cli = |args: &[&str]| hsm_cli(&hsm.address, ca.path(), &env, args, None);
    let reset = cli(&[
        "user",
        "change-password",
        "--username",
        "alice",
        "--role",
        "crypto-user",
        "--password",
        "alice-new-1",
        "--deregister-mfa",
    ]);
    assert_eq!(reset.ok(), serde_json::json!({"username": "alice", "role": "crypto-user"}));
    let reset = cli(&[
        "user",
        "change-password",
        "--username",
        "admin2",
        "--role",
        "admin",
        "--password",
        "admin2-new",
        "--deregister-quorum",
    ]);
    assert_eq!(reset.ok(), serde_json::json!({"username": "admin2", "role": "admin"}));
    let listed = cli(&["user", "list"]).ok();
    let user = |name: &str| listed["users"].as_array().and_then(|u| u.iter().find(|u| u["username"] == name)).cloned();
    assert_eq!(user("alice").map(|u| u["mfa"].clone()), Some(serde_json::json!([])), "{listed}");
    assert_eq!(user("admin2").map(|u| u["quorum"].clone()), Some(serde_json::json!([])), "{listed}");
    hsm.login("alice", Role::CryptoUser, "alice-new-1").await.logout().await.expect("logout");
    hsm.shutdown().await;
}
