//! The HSM's user and session rules, tested on the pure model.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng};

use super::{keys::Actor, *};

mod keys;
mod quorum;

struct Fixture {
    hsm: Hsm,
    rng: StdRng,
    now: Instant,
}

fn pw(raw: &str) -> Password {
    Password::parse("password", raw).unwrap()
}

fn name(raw: &str) -> Username {
    Username::parse("username", raw).unwrap()
}

impl Fixture {
    fn new(max_users: usize) -> Self {
        Self::at(max_users, 1)
    }

    /// HSM `index` of the same cluster (every fixture shares the cluster id).
    fn at(max_users: usize, index: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(42);
        let k = KdfParams::TESTING;
        let setup = HsmSetup {
            cluster: ClusterIdentity {
                id: ClusterId::generate(&mut rng),
                hsm_type: HsmType::Hsm2mMedium,
                mode: ClusterMode::Fips,
            },
            hsm: HsmIdentity::generate(&mut rng, "127.0.0.1:2223".into(), ClusterMode::Fips),
            limits: Limits {
                max_users,
                max_sessions: 64,
                session_idle_timeout: Duration::from_secs(600),
                keys: KeyQuotas { max_keys: 8, max_asymmetric: 4 },
            },
            key_range: KeyRange::for_index(index).unwrap(),
            admin: AdminSetup::Unactivated(Password::default_preco().hash(&k, &mut rng).unwrap()),
            appliance: pw("appliance-secret").hash(&k, &mut rng).unwrap(),
            decoy: pw("decoy-secret").hash(&k, &mut rng).unwrap(),
        };
        Fixture { hsm: Hsm::new(setup), rng, now: Instant::now() }
    }

    fn hash(&mut self, raw: &str) -> PasswordHash {
        pw(raw).hash(&KdfParams::TESTING, &mut self.rng).unwrap()
    }

    fn login(&mut self, user: &str, role: Role, password: &str) -> Result<SessionToken, ModelError> {
        let attempt = self.hsm.login_attempt(&name(user), role)?;
        let ok = attempt.hash().verify(&pw(password));
        self.hsm.finish_login(attempt, ok, self.now, &mut self.rng).map(|(t, _)| t)
    }

    fn caller(&mut self, op: Operation, token: &SessionToken) -> Result<Caller, ModelError> {
        self.hsm.admit(op, Some(token.expose()), self.now)
    }

    /// An activated HSM with admin password `admin-pass` and a crypto user
    /// `alice` / `alice-pass`.
    fn activated() -> Self {
        Self::activated_at(1)
    }

    fn activated_at(index: u32) -> Self {
        let mut f = Fixture::at(1_024, index);
        let t = f.login("admin", Role::Admin, "password").unwrap();
        let preco = f.caller(Operation::ActivateCluster, &t).unwrap();
        let h = f.hash("admin-pass");
        f.hsm.activate(&preco, h).unwrap();
        f.hsm.logout(&preco).unwrap();
        let h = f.hash("alice-pass");
        f.hsm.create_user(name("alice"), Role::CryptoUser, h, None).unwrap();
        f
    }

    fn user(&self, n: &str) -> UserView {
        self.hsm.list_users().into_iter().find(|u| u.username.as_str() == n).unwrap()
    }
}

#[test]
fn a_new_hsm_holds_the_preco_and_the_appliance_user() {
    let f = Fixture::new(1_024);
    let users: Vec<(String, String)> =
        f.hsm.list_users().iter().map(|u| (u.username.to_string(), u.role.to_string())).collect();
    assert_eq!(
        users,
        [("admin".into(), "unactivated-admin".into()), ("app_user".into(), "internal(APPLIANCE_USER)".into())]
    );
    assert_eq!(f.hsm.cluster_info().state, ClusterState::Uninitialized);
}

#[test]
fn the_appliance_user_logs_in_with_the_configured_password() {
    let mut f = Fixture::new(1_024);
    assert!(f.login("app_user", Role::Appliance, "appliance-secret").is_ok());
    assert_eq!(f.login("app_user", Role::Appliance, "password").unwrap_err(), ModelError::LoginFailed);
}

#[test]
fn the_preco_acts_as_preco_until_activation_then_as_admin() {
    let mut f = Fixture::new(1_024);
    let t = f.login("ADMIN", Role::Admin, "password").unwrap();
    let c = f.caller(Operation::GetClusterInfo, &t).unwrap();
    assert_eq!(c.identity, Identity::PrecryptoOfficer);
    assert!(matches!(f.caller(Operation::CreateUser, &t), Err(ModelError::NotActivated { .. })));
    assert!(f.caller(Operation::ListUsers, &t).is_ok(), "before activation the PRECO may list users");

    let h = f.hash("new-admin-pass");
    let shown = f.hsm.activate(&c, h).unwrap();
    assert_eq!(shown.role, Role::Admin);
    assert_eq!(f.hsm.cluster_info().state, ClusterState::Active);
    assert_eq!(f.caller(Operation::CreateUser, &t).unwrap().identity, Identity::CryptoOfficer);

    assert_eq!(f.login("admin", Role::Admin, "password").unwrap_err(), ModelError::LoginFailed);
    assert!(f.login("admin", Role::Admin, "new-admin-pass").is_ok());
    let h = f.hash("again-pass");
    assert_eq!(f.hsm.activate(&c, h).unwrap_err(), ModelError::AlreadyActivated);
}

#[test]
fn admins_create_users_with_case_insensitive_unique_names() {
    let mut f = Fixture::activated();
    let h = f.hash("bob-pass1");
    let bob = f.hsm.create_user(name("Bob"), Role::Admin, h, None).unwrap();
    assert_eq!(bob.username.as_str(), "bob");
    let h = f.hash("bob-pass1");
    assert_eq!(
        f.hsm.create_user(name("BOB"), Role::CryptoUser, h, None).unwrap_err(),
        ModelError::UserExists { username: name("bob") }
    );
    assert!(f.login("bOb", Role::Admin, "bob-pass1").is_ok());
    assert_eq!(f.login("bob", Role::CryptoUser, "bob-pass1").unwrap_err(), ModelError::LoginFailed);
    let h = f.hash("x-pass-1");
    let err = f.hsm.create_user(name("carol"), Role::Appliance, h, None).unwrap_err();
    assert_eq!(err.to_string(), "invalid role: must be admin or crypto-user");
}

#[test]
fn creating_an_existing_user_never_changes_it_and_only_its_own_retry_passes() {
    let mut f = Fixture::activated();
    let first = CreateToken::parse("create_token", &[7; 16]).unwrap();
    let other = CreateToken::parse("create_token", &[8; 16]).unwrap();
    let h = f.hash("zoe-pass");
    f.hsm.create_user(name("zoe"), Role::CryptoUser, h, first).unwrap();
    f.hsm.take_changes();
    // Another create, whatever its token, case or password: refused, and
    // the password in place still logs in.
    for (username, token) in [("zoe", None), ("ZOE", other), ("Zoe", None)] {
        let h = f.hash("other-pass");
        let err = f.hsm.create_user(name(username), Role::CryptoUser, h, token).unwrap_err();
        assert_eq!(err, ModelError::UserExists { username: name("zoe") });
        assert_eq!(err.to_string(), "a user named 'zoe' already exists");
    }
    // The same create again (its answer was lost): done, nothing written.
    let h = f.hash("other-pass");
    let again = f.hsm.create_user(name("zoe"), Role::CryptoUser, h, first).unwrap();
    assert_eq!(again.username.as_str(), "zoe");
    assert!(f.hsm.take_changes().is_empty(), "a retry writes nothing");
    // ...but not with another role.
    let h = f.hash("zoe-pass");
    assert!(f.hsm.create_user(name("zoe"), Role::Admin, h, first).is_err());
    assert!(f.login("zoe", Role::CryptoUser, "zoe-pass").is_ok());
    assert_eq!(f.login("zoe", Role::CryptoUser, "other-pass").unwrap_err(), ModelError::LoginFailed);
    // Once the password has changed, the old create's retry is refused too.
    let h = f.hash("newer-pass");
    f.hsm.change_user_password(&name("zoe"), Role::CryptoUser, h, Deregister::default()).unwrap();
    let h = f.hash("zoe-pass");
    assert!(f.hsm.create_user(name("zoe"), Role::CryptoUser, h, first).is_err());
    assert!(f.login("zoe", Role::CryptoUser, "newer-pass").is_ok());
    assert!(CreateToken::parse("create_token", &[1; 15]).unwrap_err().to_string().contains("create_token"));
    assert_eq!(CreateToken::parse("create_token", &[]).unwrap(), None);
}

#[test]
fn before_activation_the_appliance_user_and_the_preco_may_list_users_and_little_else() {
    let mut f = Fixture::new(8);
    for (username, role, password) in
        [("admin", Role::Admin, "password"), ("app_user", Role::Appliance, "appliance-secret")]
    {
        let t = f.login(username, role, password).unwrap();
        assert!(f.caller(Operation::ListUsers, &t).is_ok(), "{username}");
        assert!(f.caller(Operation::GetClusterInfo, &t).is_ok(), "{username}");
        let err = f.caller(Operation::GetSyncStatus, &t).unwrap_err();
        assert!(matches!(err, ModelError::NotActivated { .. }), "{username}: {err}");
        let err = f.caller(Operation::ExtractMaskedObject, &t).unwrap_err();
        assert!(matches!(err, ModelError::NotActivated { .. }), "{username}: {err}");
    }
    // After activation the appliance user is back to its full row.
    let t = f.login("admin", Role::Admin, "password").unwrap();
    let c = f.caller(Operation::ActivateCluster, &t).unwrap();
    let h = f.hash("admin-pass");
    f.hsm.activate(&c, h).unwrap();
    let t = f.login("app_user", Role::Appliance, "appliance-secret").unwrap();
    assert_eq!(f.caller(Operation::GetSyncStatus, &t).unwrap().identity, Identity::ApplianceUser);
}

#[test]
fn the_user_count_is_capped() {
    let mut f = Fixture::new(4);
    let t = f.login("admin", Role::Admin, "password").unwrap();
    let c = f.caller(Operation::ActivateCluster, &t).unwrap();
    let h = f.hash("admin-pass");
    f.hsm.activate(&c, h).unwrap();
    for n in ["u1", "u2"] {
        let h = f.hash("user-pass");
        f.hsm.create_user(name(n), Role::CryptoUser, h, None).unwrap();
    }
    let h = f.hash("user-pass");
    assert_eq!(
        f.hsm.create_user(name("u3"), Role::CryptoUser, h, None).unwrap_err(),
        ModelError::TooManyUsers { max: 4 }
    );
}

#[test]
fn more_than_five_failures_lock_and_an_admin_password_change_unlocks() {
    let mut f = Fixture::activated();
    for _ in 0..5 {
        assert_eq!(f.login("alice", Role::CryptoUser, "wrong-pass").unwrap_err(), ModelError::LoginFailed);
    }
    assert!(!f.user("alice").locked, "five failures are tolerated");
    assert_eq!(f.login("alice", Role::CryptoUser, "wrong-pass").unwrap_err(), ModelError::LoginFailed);
    assert!(f.user("alice").locked, "the sixth locks");
    assert_eq!(
        f.login("alice", Role::CryptoUser, "alice-pass").unwrap_err(),
        ModelError::UserLocked { username: name("alice") }
    );
    let h = f.hash("alice-new-pass");
    let shown = f.hsm.change_user_password(&name("alice"), Role::CryptoUser, h, Deregister::default()).unwrap();
    assert!(!shown.locked);
    assert!(f.login("alice", Role::CryptoUser, "alice-new-pass").is_ok());
}

#[test]
fn a_successful_login_resets_the_failure_count() {
    let mut f = Fixture::activated();
    for _ in 0..5 {
        f.login("alice", Role::CryptoUser, "wrong-pass").unwrap_err();
    }
    f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    for _ in 0..5 {
        f.login("alice", Role::CryptoUser, "wrong-pass").unwrap_err();
    }
    assert!(!f.user("alice").locked);
}

#[test]
fn users_change_their_own_password() {
    let mut f = Fixture::activated();
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let c = f.caller(Operation::ChangeOwnPassword, &t).unwrap();
    let h = f.hash("alice-pass-2");
    f.hsm.change_own_password(&c, h, Deregister::default()).unwrap();
    assert_eq!(f.login("alice", Role::CryptoUser, "alice-pass").unwrap_err(), ModelError::LoginFailed);
    assert!(f.login("alice", Role::CryptoUser, "alice-pass-2").is_ok());
}

#[test]
fn a_logged_in_user_cannot_be_deleted_until_the_session_ends() {
    let mut f = Fixture::activated();
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    assert_eq!(
        f.hsm.delete_user(&name("alice"), Role::CryptoUser, f.now).unwrap_err(),
        ModelError::UserLoggedIn { username: name("alice") }
    );
    let c = f.caller(Operation::Logout, &t).unwrap();
    f.hsm.logout(&c).unwrap();
    f.hsm.delete_user(&name("alice"), Role::CryptoUser, f.now).unwrap();
    assert_eq!(f.login("alice", Role::CryptoUser, "alice-pass").unwrap_err(), ModelError::LoginFailed);
}

#[test]
fn an_expired_session_no_longer_counts_as_logged_in() {
    let mut f = Fixture::activated();
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let later = f.now + Duration::from_secs(600);
    assert!(matches!(
        f.hsm.admit(Operation::ListUsers, Some(t.expose()), later),
        Err(ModelError::InvalidSession { .. })
    ));
    f.hsm.delete_user(&name("alice"), Role::CryptoUser, later).unwrap();
}

#[test]
fn delete_checks_the_role_and_protects_the_last_admin_and_the_appliance_user() {
    let mut f = Fixture::activated();
    assert_eq!(
        f.hsm.delete_user(&name("alice"), Role::Admin, f.now).unwrap_err(),
        ModelError::UserNotFound { username: name("alice"), role: Role::Admin }
    );
    assert_eq!(
        f.hsm.delete_user(&name("admin"), Role::Admin, f.now).unwrap_err(),
        ModelError::LastAdmin { username: name("admin") }
    );
    assert_eq!(
        f.hsm.delete_user(&name("app_user"), Role::Appliance, f.now).unwrap_err(),
        ModelError::ApplianceUserFixed { username: name("app_user") }
    );
    let h = f.hash("second-admin");
    f.hsm.create_user(name("admin2"), Role::Admin, h, None).unwrap();
    f.hsm.delete_user(&name("admin"), Role::Admin, f.now).unwrap();
    assert_eq!(
        f.hsm.delete_user(&name("admin2"), Role::Admin, f.now).unwrap_err(),
        ModelError::LastAdmin { username: name("admin2") }
    );
}

#[test]
fn unknown_users_fail_like_wrong_passwords() {
    let mut f = Fixture::activated();
    assert_eq!(f.login("nobody", Role::CryptoUser, "whatever-1").unwrap_err(), ModelError::LoginFailed);
    assert_eq!(f.login("alice", Role::Admin, "alice-pass").unwrap_err(), ModelError::LoginFailed);
}

#[test]
fn a_password_changed_during_a_login_check_fails_that_login() {
    let mut f = Fixture::activated();
    let attempt = f.hsm.login_attempt(&name("alice"), Role::CryptoUser).unwrap();
    let ok = attempt.hash().verify(&pw("alice-pass"));
    let h = f.hash("changed-pass");
    f.hsm.change_user_password(&name("alice"), Role::CryptoUser, h, Deregister::default()).unwrap();
    assert_eq!(f.hsm.finish_login(attempt, ok, f.now, &mut f.rng).unwrap_err(), ModelError::LoginFailed);
}
