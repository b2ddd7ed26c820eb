//! User rules over real TLS, through the typed client: activation, user
//! management, passwords, lockout, deletion rules and bad input.

use std::time::Duration;

use hsm_client::{ChangePassword, ClientError, ClusterState, CreateUser, DeleteUser, Role};
use integration_tests::{ADMIN_PASSWORD, APPLIANCE_PASSWORD, Options, TestHsm};

fn users(list: &[hsm_client::User]) -> Vec<(String, Role, bool)> {
    list.iter().map(|u| (u.username.clone(), u.role, u.locked)).collect()
}

#[tokio::test]
async fn a_new_cluster_holds_the_preco_and_the_appliance_user_and_activates_once() {
    let hsm = TestHsm::start(Options::unactivated()).await;
    assert_eq!(hsm.client.cluster_info().await.unwrap().state, ClusterState::Uninitialized);

    // Before activation the PRECO can do nothing but cluster info, the user
    // list and activation.
    let preco = hsm.login("admin", Role::Admin, "password").await;
    assert_eq!(preco.role(), Some(Role::UnactivatedAdmin));
    assert_eq!(
        users(&preco.list_users().await.unwrap()),
        [("admin".into(), Role::UnactivatedAdmin, false), ("app_user".into(), Role::Appliance, false)]
    );
    let refused = preco.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await;
    assert!(
        matches!(refused, Err(ClientError::FailedPrecondition(ref m)) if m.contains("not activated")),
        "{refused:?}"
    );
    preco.logout().await.unwrap();

    let admin = hsm.client.activate("first-admin-pass").await.unwrap();
    assert_eq!((admin.username.as_str(), admin.role), ("admin", Role::Admin));
    assert_eq!(hsm.client.cluster_info().await.unwrap().state, ClusterState::Active);

    let err = hsm.client.activate("second-admin-pass").await.unwrap_err();
    assert_eq!(err, ClientError::FailedPrecondition("the cluster is already activated".into()));
    assert!(matches!(hsm.client.login("admin", Role::Admin, "password").await, Err(ClientError::Unauthenticated(_))));

    let admin = hsm.login("admin", Role::Admin, "first-admin-pass").await;
    assert_eq!(
        users(&admin.list_users().await.unwrap()),
        [("admin".into(), Role::Admin, false), ("app_user".into(), Role::Appliance, false)]
    );
}

#[tokio::test]
async fn the_appliance_user_password_comes_from_the_cluster_configuration() {
    let hsm = TestHsm::start(Options::default()).await;
    let au = hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
    assert_eq!(au.role(), Some(Role::Appliance));
    assert!(hsm.client.login("app_user", Role::Appliance, "password").await.is_err());
}

#[tokio::test]
async fn admins_manage_users_and_crypto_users_manage_only_their_own_password() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    let alice = admin.create_user(CreateUser::new("Alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    assert_eq!(alice.username, "alice", "usernames are case-insensitive and shown in lower case");
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1")).await.unwrap();
    assert!(matches!(
        admin.create_user(CreateUser::new("ALICE", Role::Admin, "other-pass")).await,
        Err(ClientError::AlreadyExists(m)) if m.contains("'alice'")
    ));

    let alice = hsm.login("ALICE", Role::CryptoUser, "alice-pass").await;
    alice.change_password(ChangePassword::new("alice", Role::CryptoUser, "alice-pass2")).await.unwrap();
    let refused = alice.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-pass")).await.unwrap_err();
    assert_eq!(refused, ClientError::PermissionDenied("user create is not permitted for role crypto-user (CU)".into()));
    let refused = alice.change_password(ChangePassword::new("bob", Role::CryptoUser, "bob-pass2")).await.unwrap_err();
    assert!(
        matches!(refused, ClientError::PermissionDenied(m) if m.contains("another user's password") && m.contains("crypto-user"))
    );
    alice.logout().await.unwrap();
    assert!(hsm.client.login("alice", Role::CryptoUser, "alice-pass").await.is_err());
    hsm.login("alice", Role::CryptoUser, "alice-pass2").await;

    admin.change_password(ChangePassword::new("bob", Role::CryptoUser, "bob-by-admin")).await.unwrap();
    hsm.login("bob", Role::CryptoUser, "bob-by-admin").await;
    admin.change_password(ChangePassword::new("admin", Role::Admin, "admin-pass-2")).await.unwrap();
    hsm.login("admin", Role::Admin, "admin-pass-2").await;
}

#[tokio::test]
async fn six_wrong_passwords_lock_a_user_until_an_admin_sets_a_new_one() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1")).await.unwrap();
    for attempt in 1..=6 {
        let err = hsm.client.login("bob", Role::CryptoUser, "wrong-pass").await.unwrap_err();
        assert_eq!(
            err,
            ClientError::Unauthenticated("login failed: invalid username, role or password".into()),
            "{attempt}"
        );
    }
    let locked = hsm.client.login("bob", Role::CryptoUser, "bob-pass1").await.unwrap_err();
    assert!(matches!(locked, ClientError::FailedPrecondition(m) if m.contains("locked")));
    let bob = admin.list_users().await.unwrap().into_iter().find(|u| u.username == "bob").unwrap();
    assert!(bob.locked);

    admin.change_password(ChangePassword::new("bob", Role::CryptoUser, "bob-pass2")).await.unwrap();
    let bob = admin.list_users().await.unwrap().into_iter().find(|u| u.username == "bob").unwrap();
    assert!(!bob.locked);
    hsm.login("bob", Role::CryptoUser, "bob-pass2").await;
}

#[tokio::test]
async fn logged_in_users_the_last_admin_and_the_appliance_user_cannot_be_deleted() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let err = admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap_err();
    assert_eq!(err, ClientError::FailedPrecondition("user 'alice' is logged in and cannot be deleted".into()));
    alice.logout().await.unwrap();
    let deleted = admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap();
    assert_eq!(deleted.username, "alice");
    assert!(matches!(
        admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await,
        Err(ClientError::NotFound(_))
    ));

    assert!(matches!(
        admin.delete_user(DeleteUser::new("app_user", Role::Appliance)).await,
        Err(ClientError::FailedPrecondition(m)) if m.contains("appliance user")
    ));

    // The only admin cannot delete itself.
    let err = admin.delete_user(DeleteUser::new("admin", Role::Admin)).await.unwrap_err();
    assert_eq!(err, ClientError::FailedPrecondition("'admin' is the last admin and cannot be deleted".into()));

    // With two admins, a logged-in admin still cannot be deleted; once it has
    // logged out, the other admin deletes it, and is then the last admin.
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.unwrap();
    let admin2 = hsm.login("admin2", Role::Admin, "admin2-pass").await;
    let err = admin2.delete_user(DeleteUser::new("admin", Role::Admin)).await.unwrap_err();
    assert_eq!(err, ClientError::FailedPrecondition("user 'admin' is logged in and cannot be deleted".into()));
    admin.logout().await.unwrap();
    admin2.delete_user(DeleteUser::new("admin", Role::Admin)).await.unwrap();
    assert!(hsm.client.login("admin", Role::Admin, ADMIN_PASSWORD).await.is_err());
    let err = admin2.delete_user(DeleteUser::new("admin2", Role::Admin)).await.unwrap_err();
    assert_eq!(err, ClientError::FailedPrecondition("'admin2' is the last admin and cannot be deleted".into()));
}

#[tokio::test]
async fn the_user_quota_is_enforced() {
    let hsm = TestHsm::start(Options { max_users: 4, ..Options::default() }).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("u1", Role::CryptoUser, "user-pass")).await.unwrap();
    admin.create_user(CreateUser::new("u2", Role::CryptoUser, "user-pass")).await.unwrap();
    let err = admin.create_user(CreateUser::new("u3", Role::CryptoUser, "user-pass")).await.unwrap_err();
    assert_eq!(err, ClientError::ResourceExhausted("the HSM holds the maximum of 4 users".into()));
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_the_rule() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    let cases: [(&str, &str, &str); 6] = [
        ("", "good-pass", "invalid username: must not be empty"),
        (&"a".repeat(32), "good-pass", "invalid username: must be at most 31 characters"),
        ("bad-name", "good-pass", "invalid username: may hold only letters, digits and '_' (found '-')"),
        ("naïve", "good-pass", "invalid username: may hold only letters, digits and '_' (found 'ï')"),
        ("carol", "short", "invalid password: must be 7 to 32 characters long"),
        ("carol", &"p".repeat(33), "invalid password: must be 7 to 32 characters long"),
    ];
    for (username, password, want) in cases {
        let err = admin.create_user(CreateUser::new(username, Role::CryptoUser, password)).await.unwrap_err();
        assert_eq!(err, ClientError::InvalidArgument(want.into()), "{username:?} / {password:?}");
    }
    let err = admin.create_user(CreateUser::new("carol", Role::Appliance, "good-pass")).await.unwrap_err();
    assert_eq!(err, ClientError::InvalidArgument("invalid role: must be admin or crypto-user".into()));

    // An unknown role number straight on the wire.
    use hsm_proto::v1::{CreateUserRequest, user_service_client::UserServiceClient};
    let request = admin
        .request(CreateUserRequest {
            username: "carol".into(),
            role: 42,
            password: "good-pass".into(),
            ..Default::default()
        })
        .unwrap();
    let status = UserServiceClient::new(hsm.client.channel()).create_user(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "invalid role: unknown role value 42");

    // Errors about passwords never echo the password.
    let err = admin.create_user(CreateUser::new("carol", Role::CryptoUser, "secret\u{7}pw")).await.unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(admin.list_users().await.unwrap().iter().all(|u| u.username != "carol"), "nothing was stored");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    let token_request = admin.request(hsm_proto::v1::ListUsersRequest {}).unwrap();
    admin.logout().await.unwrap();
    let status = hsm_proto::v1::user_service_client::UserServiceClient::new(hsm.client.channel())
        .list_users(token_request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn idle_sessions_expire_and_activity_keeps_them_open() {
    let hsm = TestHsm::start(Options { session_idle_timeout: Duration::from_secs(60), ..Options::default() }).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;

    // Admin stays busy; alice goes idle.
    hsm.clock.advance(Duration::from_secs(45));
    admin.list_users().await.unwrap();
    hsm.clock.advance(Duration::from_secs(45));
    admin.list_users().await.unwrap();

    let err = alice.list_users().await.unwrap_err();
    assert!(matches!(&err, ClientError::Unauthenticated(m) if m.contains("expired")), "{err:?}");
    // An expired session no longer counts as logged in.
    admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap();
}

#[tokio::test]
async fn ping_checks_the_session_and_keeps_it_open() {
    let hsm = TestHsm::start(Options { session_idle_timeout: Duration::from_secs(60), ..Options::default() }).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let idle = hsm.login("alice", Role::CryptoUser, "alice-pass").await;

    // Pinging every 45 s keeps one session open past the 60 s idle limit;
    // the other, unused, expires.
    for _ in 0..3 {
        hsm.clock.advance(Duration::from_secs(45));
        alice.ping().await.unwrap();
    }
    alice.list_users().await.unwrap();
    let err = idle.ping().await.unwrap_err();
    assert!(matches!(&err, ClientError::Unauthenticated(m) if m.contains("expired")), "{err:?}");

    // Without a session there is nothing to check.
    let err = hsm.client.anonymous().ping().await.unwrap_err();
    assert!(matches!(&err, ClientError::Unauthenticated(m) if m.contains("session ping")), "{err:?}");
}
