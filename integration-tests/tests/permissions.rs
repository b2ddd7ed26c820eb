//! The seed's permission table, walked over real TLS: every RPC, called as
//! each of the five identities, is allowed or refused exactly as the table
//! says, and every refusal names the operation and the role.

use hsm_client::{Role, Session};
use hsm_proto::v1::{
    self as pb, Rpc, cluster_service_client::ClusterServiceClient, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use integration_tests::{APPLIANCE_PASSWORD, Options, TestHsm};
use tonic::{Code, Status};

/// The five identities of the seed (plus PRECO from its PRECO section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Unauthenticated,
    Preco,
    Co,
    Cu,
    Au,
}

const EVERYONE: [Who; 5] = [Who::Unauthenticated, Who::Preco, Who::Co, Who::Cu, Who::Au];

/// Written from the seed's table (and the issue for PRECO), independently of
/// the daemon's table.
fn allowed(rpc: Rpc) -> &'static [Who] {
    match rpc {
        // "Get basic cluster info": everyone, logged in or not.
        Rpc::GetClusterInfo => &EVERYONE,
        // The PRECO's one job.
        Rpc::Activate => &[Who::Preco],
        // Anyone may open a session.
        Rpc::Login => &EVERYONE,
        Rpc::Logout => &[Who::Preco, Who::Co, Who::Cu, Who::Au],
        // "Add, remove users": CO only.
        Rpc::CreateUser | Rpc::DeleteUser => &[Who::Co],
        // Not in the seed; every logged-in user of an active cluster.
        Rpc::ListUsers => &[Who::Co, Who::Cu, Who::Au],
        // "Change own password": CO, CU, AU.
        Rpc::ChangeOwnPassword => &[Who::Co, Who::Cu, Who::Au],
        // "Change any user's password": CO only.
        Rpc::ChangeUserPassword => &[Who::Co],
    }
}

/// The words a refusal must contain: the operation (as the CLI names it).
fn operation_words(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::GetClusterInfo => "cluster hsm-info",
        Rpc::Activate => "cluster activate",
        Rpc::Login => "login",
        Rpc::Logout => "logout",
        Rpc::CreateUser => "user create",
        Rpc::DeleteUser => "user delete",
        Rpc::ListUsers => "user list",
        Rpc::ChangeOwnPassword => "user change-password (own password)",
        Rpc::ChangeUserPassword => "user change-password (another user's password)",
    }
}

fn role_words(who: Who) -> &'static str {
    match who {
        Who::Unauthenticated => "unauthenticated",
        Who::Preco => "unactivated-admin",
        Who::Co => "admin",
        Who::Cu => "crypto-user",
        Who::Au => "appliance",
    }
}

/// A fresh HSM and a session of `who` on it. Active HSMs also hold a crypto
/// user `victim` who is not logged in, for delete and password calls.
async fn session_as(who: Who) -> (TestHsm, Session) {
    let hsm = TestHsm::start(if who == Who::Preco { Options::unactivated() } else { Options::default() }).await;
    if who != Who::Preco {
        let admin = hsm.admin().await;
        admin.create_user("victim", Role::CryptoUser, "victim-pass").await.expect("victim");
        admin.logout().await.expect("logout");
    }
    let session = match who {
        Who::Unauthenticated => hsm.client.anonymous(),
        Who::Preco => hsm.login("admin", Role::Admin, "password").await,
        Who::Co => hsm.admin().await,
        Who::Cu => hsm.crypto_user("alice", "alice-pass").await,
        Who::Au => hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await,
    };
    (hsm, session)
}

/// Calls `rpc` with a request that succeeds when the caller is allowed.
async fn call(rpc: Rpc, session: &Session) -> Result<(), Status> {
    let channel = session.client().channel();
    let req = |m| session.request(m).expect("request");
    let role = |r: pb::Role| i32::from(r);
    match rpc {
        Rpc::GetClusterInfo => {
            ClusterServiceClient::new(channel).get_cluster_info(req(pb::GetClusterInfoRequest {})).await.map(drop)
        }
        Rpc::Activate => ClusterServiceClient::new(channel)
            .activate(session.request(pb::ActivateRequest { new_password: "activated-pass".into() }).expect("request"))
            .await
            .map(drop),
        Rpc::Login => SessionServiceClient::new(channel)
            .login(
                session
                    .request(pb::LoginRequest {
                        username: "app_user".into(),
                        role: role(pb::Role::Appliance),
                        password: APPLIANCE_PASSWORD.into(),
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::Logout => {
            SessionServiceClient::new(channel).logout(session.request(pb::LogoutRequest {}).expect("r")).await.map(drop)
        }
        Rpc::CreateUser => UserServiceClient::new(channel)
            .create_user(
                session
                    .request(pb::CreateUserRequest {
                        username: "walker".into(),
                        role: role(pb::Role::CryptoUser),
                        password: "walker-pass".into(),
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::DeleteUser => UserServiceClient::new(channel)
            .delete_user(
                session
                    .request(pb::DeleteUserRequest { username: "victim".into(), role: role(pb::Role::CryptoUser) })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::ListUsers => UserServiceClient::new(channel)
            .list_users(session.request(pb::ListUsersRequest {}).expect("r"))
            .await
            .map(drop),
        Rpc::ChangeOwnPassword => UserServiceClient::new(channel)
            .change_own_password(
                session.request(pb::ChangeOwnPasswordRequest { new_password: "changed-pass".into() }).expect("r"),
            )
            .await
            .map(drop),
        Rpc::ChangeUserPassword => UserServiceClient::new(channel)
            .change_user_password(
                session
                    .request(pb::ChangeUserPasswordRequest {
                        username: "victim".into(),
                        role: role(pb::Role::CryptoUser),
                        new_password: "changed-pass".into(),
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_as_every_identity_follows_the_seed_table() {
    let mut checked = 0;
    for rpc in Rpc::ALL.iter().copied() {
        for who in EVERYONE {
            let (hsm, session) = session_as(who).await;
            let result = call(rpc, &session).await;
            let want_allowed = allowed(rpc).contains(&who);
            match (&result, want_allowed) {
                (Ok(()), true) => {}
                (Err(status), false) => {
                    let want_code =
                        if who == Who::Unauthenticated { Code::Unauthenticated } else { Code::PermissionDenied };
                    assert_eq!(status.code(), want_code, "{rpc:?} as {who:?}: {status:?}");
                    let msg = status.message();
                    assert!(
                        msg.contains(operation_words(rpc)),
                        "{rpc:?} as {who:?}: message lacks the operation: {msg}"
                    );
                    assert!(msg.contains(role_words(who)), "{rpc:?} as {who:?}: message lacks the role: {msg}");
                }
                (Ok(()), false) => panic!("{rpc:?} as {who:?} was allowed; the seed table refuses it"),
                (Err(status), true) => panic!("{rpc:?} as {who:?} failed; the seed table allows it: {status:?}"),
            }
            checked += 1;
            hsm.shutdown().await;
        }
    }
    assert_eq!(checked, Rpc::ALL.len() * 5);
}

#[tokio::test]
async fn a_garbage_or_stale_token_is_refused_naming_the_operation() {
    let hsm = TestHsm::start(Options::default()).await;
    for header in ["Bearer nonsense", "Bearer 00.00", "Basic abc", "Bearer "] {
        let mut request = tonic::Request::new(pb::ListUsersRequest {});
        request.metadata_mut().insert("authorization", header.parse().expect("ascii"));
        let status = UserServiceClient::new(hsm.client.channel()).list_users(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{header}");
        assert!(status.message().contains("user list"), "{}", status.message());
        assert!(status.message().contains("session token is malformed"), "{}", status.message());
    }
    // A well-formed token of a session that has ended.
    let admin = hsm.admin().await;
    let stale = admin.request(pb::ListUsersRequest {}).expect("request");
    admin.logout().await.expect("logout");
    let status = UserServiceClient::new(hsm.client.channel()).list_users(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("unknown, logged out or expired"), "{}", status.message());
}
