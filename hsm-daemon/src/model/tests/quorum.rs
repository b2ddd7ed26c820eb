//! Quorum approvals and MFA on the pure model: registered keys, quorum
//! values, tokens bound to their user, service and ten minutes, distinct
//! approvers, spending, and the MFA second factor of a login.

use super::*;
use crate::model::quorum::fixtures::{KEY_1, KEY_2, Signer};

impl Fixture {
    fn as_admin(&mut self, user: &str, password: &str) -> Caller {
        let token = self.login(user, Role::Admin, password).unwrap();
        self.caller(Operation::CreateUser, &token).unwrap()
    }

    /// Registers `signer` as `caller`'s quorum key the way the service does.
    fn register(&mut self, caller: &Caller, signer: &Signer) {
        let issued = self.hsm.issue_quorum_token(caller, QuorumService::Registration, self.now, &mut self.rng).unwrap();
        let (token, preimage) = self.hsm.registration_preimage(caller, &[[0; 32], issued.token], self.now).unwrap();
        assert_eq!(token, issued.token, "the HSM picks its own token out of the file's entries");
        assert!(signer.key().verifies(&preimage, &signer.sign(&issued.approval_data)));
        self.hsm.register_quorum_key(caller, signer.key(), &issued.token, self.now).unwrap();
    }

    /// Checks and verifies an approval of `token` signed by `signers`.
    fn approval(
        &mut self,
        caller: &Caller,
        issued: &IssuedToken,
        signers: &[(&str, &Signer)],
    ) -> Result<Option<VerifiedApproval>, ModelError> {
        let signatures = signers.iter().map(|(n, s)| (name(n), s.sign(&issued.approval_data))).collect();
        let approval = Approval { token: issued.token, signatures, approval_data: None };
        self.hsm
            .quorum_check(caller, QuorumService::User, Some(approval), self.now)?
            .map(PendingApproval::verify)
            .transpose()
    }
}

#[test]
fn user_management_needs_m_distinct_registered_admins_and_spends_the_token() {
    let mut f = Fixture::activated();
    let h = f.hash("admin2-pass");
    f.hsm.create_user(name("admin2"), Role::Admin, h, None).unwrap();
    let (k1, k2) = (Signer::new(KEY_1), Signer::new(KEY_2));
    let admin = f.as_admin("admin", "admin-pass");
    let admin2 = f.as_admin("admin2", "admin2-pass");
    let two = QuorumValue::parse("value", 2).unwrap();

    // Two approvals need two admins with registered keys.
    assert!(matches!(f.hsm.set_quorum_value(QuorumService::User, two), Err(ModelError::InvalidArgument { .. })));
    f.register(&admin, &k1);
    f.register(&admin2, &k2);
    f.hsm.take_changes();
    f.hsm.set_quorum_value(QuorumService::User, two).unwrap();
    assert_eq!(f.hsm.take_changes().quorum.map(|q| q.user), Some(two), "the store gets the new value");

    let create = |hsm: &mut Hsm, approval: Option<&VerifiedApproval>, now| {
        hsm.spend_approval(QuorumService::User, approval, now, |hsm| {
            hsm.create_user(name("carol"), Role::CryptoUser, hsm.decoy.clone(), None)
        })
    };
    assert_eq!(f.hsm.quorum_check(&admin, QuorumService::User, None, f.now).unwrap_err(), ModelError::QuorumRequired);
    assert_eq!(create(&mut f.hsm, None, f.now).unwrap_err(), ModelError::QuorumRequired);

    let issued = f.hsm.issue_quorum_token(&admin, QuorumService::User, f.now, &mut f.rng).unwrap();
    // The same admin twice counts once.
    let twice = f.approval(&admin, &issued, &[("admin", &k1), ("admin", &k1)]).unwrap_err();
    assert_eq!(twice, ModelError::QuorumNotMet { approvers: 1, required: 2 });
    assert!(twice.to_string().starts_with("Quorum approval is required for this operation"));
    // A signature by another key than the registered one.
    let forged = f.approval(&admin, &issued, &[("admin", &k1), ("admin2", &k1)]).unwrap_err();
    assert!(matches!(forged, ModelError::QuorumSignature { .. }), "{forged}");
    // Crypto users do not approve admin services.
    let cu = f.approval(&admin, &issued, &[("admin", &k1), ("alice", &k2)]).unwrap_err();
    assert!(cu.to_string().contains("'alice' is not an admin"), "{cu}");
    // Only the admin it was issued to may use it.
    let theirs = f.approval(&admin2, &issued, &[("admin", &k1), ("admin2", &k2)]).unwrap_err();
    assert!(matches!(theirs, ModelError::QuorumTokenMismatch { .. }), "{theirs}");

    let approved = f.approval(&admin, &issued, &[("admin", &k1), ("admin2", &k2)]).unwrap().unwrap();
    create(&mut f.hsm, Some(&approved), f.now).unwrap();
    // Spent: neither the token nor the verified approval works again.
    assert_eq!(
        f.approval(&admin, &issued, &[("admin", &k1), ("admin2", &k2)]).unwrap_err(),
        ModelError::QuorumTokenUnknown
    );
    assert_eq!(create(&mut f.hsm, Some(&approved), f.now).unwrap_err(), ModelError::QuorumTokenUnknown);
    // A failed change leaves the token for another try.
    let issued = f.hsm.issue_quorum_token(&admin, QuorumService::User, f.now, &mut f.rng).unwrap();
    let approved = f.approval(&admin, &issued, &[("admin", &k1), ("admin2", &k2)]).unwrap().unwrap();
    assert!(matches!(create(&mut f.hsm, Some(&approved), f.now), Err(ModelError::UserExists { .. })));
    assert!(f.hsm.tokens.is_live(&issued.token, f.now));
    // Expired after ten minutes of the HSM's clock.
    f.now += crate::model::quorum::TOKEN_LIFETIME;
    assert_eq!(create(&mut f.hsm, Some(&approved), f.now).unwrap_err(), ModelError::QuorumTokenUnknown);

    // Registrations and values survive a restart (snapshot and restore).
    let state = f.hsm.snapshot();
    assert_eq!(state.quorum.user, two);
    let registered: Vec<&str> =
        state.users.iter().filter(|u| u.quorum_key.is_some()).map(|u| u.username.as_str()).collect();
    assert_eq!(registered, ["admin", "admin2"]);
}

/// The CloudHSM CLI's approval file: one token for the cluster, the SHA-256
/// of every HSM's preimage joined; this HSM finds and spends its own.
#[test]
fn a_cluster_approval_joins_every_hsms_preimage_and_spends_this_hsms_token() {
    let mut f = Fixture::activated();
    let h = f.hash("admin2-pass");
    f.hsm.create_user(name("admin2"), Role::Admin, h, None).unwrap();
    let (k1, k2) = (Signer::new(KEY_1), Signer::new(KEY_2));
    let admin = f.as_admin("admin", "admin-pass");
    let admin2 = f.as_admin("admin2", "admin2-pass");
    f.register(&admin, &k1);
    f.register(&admin2, &k2);
    f.hsm.set_quorum_value(QuorumService::User, QuorumValue::parse("value", 2).unwrap()).unwrap();

    // Another HSM's preimage (same shape, another nonce) before this one's.
    let issued = f.hsm.issue_quorum_token(&admin, QuorumService::User, f.now, &mut f.rng).unwrap();
    let mut foreign = issued.approval_data.clone();
    let last = foreign.len() - 1;
    foreign[last] ^= 1;
    let joined = [foreign.as_slice(), issued.approval_data.as_slice()].concat();
    let token = crate::model::quorum::sha256(&joined);
    let approve = |f: &mut Fixture, data: Vec<u8>, token, signers: &[(&str, &Signer)]| {
        let signatures = signers.iter().map(|(n, s)| (name(n), s.sign(&data))).collect();
        let approval = Approval { token, signatures, approval_data: Some(data) };
        f.hsm.quorum_check(&admin, QuorumService::User, Some(approval), f.now)?.map(PendingApproval::verify).transpose()
    };
    let wrong_digest = approve(&mut f, joined.clone(), issued.token, &[("admin", &k1)]).unwrap_err();
    assert!(matches!(wrong_digest, ModelError::InvalidArgument { field: "approval.token", .. }), "{wrong_digest}");
    // Data that is not whole preimages (its own digest, so that it is parsed).
    let short = joined[..joined.len() - 1].to_vec();
    let short_digest = crate::model::quorum::sha256(&short);
    let cut = approve(&mut f, short, short_digest, &[("admin", &k1)]).unwrap_err();
    assert!(matches!(cut, ModelError::InvalidArgument { field: "approval.approval_data", .. }), "{cut}");
    // Signatures over this HSM's preimage alone do not cover the joined data.
    let signatures = [("admin", &k1), ("admin2", &k2)].map(|(n, s)| (name(n), s.sign(&issued.approval_data)));
    let alone = Approval { token, signatures: signatures.to_vec(), approval_data: Some(joined.clone()) };
    let alone = f.hsm.quorum_check(&admin, QuorumService::User, Some(alone), f.now).unwrap().unwrap().verify();
    assert!(matches!(alone, Err(ModelError::QuorumSignature { .. })), "{alone:?}");

    let approved = approve(&mut f, joined.clone(), token, &[("admin", &k1), ("admin2", &k2)]).unwrap();
    f.hsm
        .spend_approval(QuorumService::User, approved.as_ref(), f.now, |hsm| {
            hsm.create_user(name("carol"), Role::CryptoUser, hsm.decoy.clone(), None)
        })
        .unwrap();
    assert!(!f.hsm.tokens.is_live(&issued.token, f.now), "this HSM's token is spent");
    let again = approve(&mut f, joined, token, &[("admin", &k1), ("admin2", &k2)]).unwrap_err();
    assert_eq!(again, ModelError::QuorumTokenUnknown);
}

#[test]
fn an_mfa_login_needs_the_password_and_a_signed_token_of_this_hsm() {
    let mut f = Fixture::activated();
    let admin = f.as_admin("admin", "admin-pass");
    let key = Signer::new(KEY_1);
    let alice = name("alice");
    let issued = f.hsm.mfa_registration_token(&admin, &alice, Role::CryptoUser, f.now, &mut f.rng).unwrap();
    let preimage = f.hsm.mfa_registration_preimage(&admin, &alice, Role::CryptoUser, &issued.token, f.now).unwrap();
    assert!(key.key().verifies(&preimage, &key.sign(&issued.approval_data)));
    let view = f.hsm.set_mfa_key(&admin, &alice, Role::CryptoUser, Some((key.key(), issued.token)), f.now).unwrap();
    assert!(view.mfa);

    // The password alone fails (and counts as a failed login).
    assert_eq!(f.login("alice", Role::CryptoUser, "alice-pass").unwrap_err(), ModelError::LoginFailed);
    // With the signed token: one session, and the token is spent.
    let token = f.hsm.mfa_login_token(&alice, f.now, &mut f.rng).unwrap();
    let login = |f: &mut Fixture, signer: &Signer| {
        let mut attempt = f.hsm.login_attempt(&alice, Role::CryptoUser).unwrap();
        let preimage = f.hsm.mfa_login_preimage(&alice, &token.token, f.now);
        if let Ok(preimage) = preimage
            && attempt.mfa_key().unwrap().verifies(&preimage, &signer.sign(&token.approval_data))
        {
            attempt.mfa_passed(token.token);
        }
        let ok = attempt.hash().verify(&pw("alice-pass"));
        f.hsm.finish_login(attempt, ok, f.now, &mut f.rng).map(|(_, view)| view)
    };
    assert_eq!(login(&mut f, &Signer::new(KEY_2)).unwrap_err(), ModelError::LoginFailed, "another key");
    assert_eq!(login(&mut f, &key).unwrap().username, alice);
    assert_eq!(login(&mut f, &key).unwrap_err(), ModelError::LoginFailed, "spent");

    // A crypto user cannot change another user's MFA; MFA off again.
    let alice_caller = {
        let t = f.hsm.mfa_login_token(&alice, f.now, &mut f.rng).unwrap();
        let mut attempt = f.hsm.login_attempt(&alice, Role::CryptoUser).unwrap();
        attempt.mfa_passed(t.token);
        let (session, _) = f.hsm.finish_login(attempt, true, f.now, &mut f.rng).unwrap();
        f.caller(Operation::ChangeMfa, &session).unwrap()
    };
    let refused = f.hsm.set_mfa_key(&alice_caller, &name("admin"), Role::Admin, None, f.now).unwrap_err();
    assert!(matches!(refused, ModelError::ObjectPermission { .. }));
    assert!(!f.hsm.set_mfa_key(&alice_caller, &alice, Role::CryptoUser, None, f.now).unwrap().mfa);
    assert!(f.login("alice", Role::CryptoUser, "alice-pass").is_ok());
}

#[test]
fn a_key_with_quorum_values_needs_its_own_users_approval() {
    use crate::crypto::{KeyKind, KeyMaterial};
    let mut f = Fixture::activated();
    let h = f.hash("bob-pass1");
    f.hsm.create_user(name("bob"), Role::CryptoUser, h, None).unwrap();
    let cu = |f: &mut Fixture, user: &str, password: &str| {
        let token = f.login(user, Role::CryptoUser, password).unwrap();
        f.caller(Operation::ShareKey, &token).unwrap()
    };
    let (alice, bob) = (cu(&mut f, "alice", "alice-pass"), cu(&mut f, "bob", "bob-pass1"));
    let (k1, k2) = (Signer::new(KEY_1), Signer::new(KEY_2));
    f.register(&alice, &k1);
    f.register(&bob, &k2);
    let material = KeyMaterial::from_raw_secret(KeyKind::GenericSecret, &[7; 32]).unwrap();
    let template = Template::parse(&[("sign".into(), "true".into()), ("verify".into(), "true".into())]).unwrap();
    let keys = vec![NewKey { material: Arc::new(material), template, local: true }];
    assert!(KeyQuorum::parse(3, 0, 2).is_err(), "more approvers than the key's users");
    let quorum = KeyQuorum::parse(2, 2, 2).unwrap();
    let creation = KeyCreation { share_with: vec![name("bob")], quorum, ..KeyCreation::new(keys) };
    let made = f.hsm.store_keys(&alice, creation).unwrap();
    assert_eq!((made[0].quorum, made[0].shared.clone()), (quorum, vec![name("bob")]), "made with both, at once");
    let reference = made[0].reference;

    // Management without approval, and unsharing below the quorum value.
    let check = |f: &mut Fixture, caller: &Caller, service, signers: &[(&str, &Signer)]| {
        let issued = f.hsm.issue_quorum_token(caller, service, f.now, &mut f.rng).unwrap();
        let signatures = signers.iter().map(|(n, s)| (name(n), s.sign(&issued.approval_data))).collect();
        let approval = Approval { token: issued.token, signatures, approval_data: None };
        f.hsm
            .key_quorum_check(caller, reference, service, Some(approval), f.now)?
            .map(PendingApproval::verify)
            .transpose()
    };
    assert_eq!(
        f.hsm.key_quorum_check(&alice, reference, QuorumService::KeyManagement, None, f.now).unwrap_err(),
        ModelError::QuorumRequired
    );
    let approved = check(&mut f, &alice, QuorumService::KeyManagement, &[("alice", &k1), ("bob", &k2)]).unwrap();
    let unshare =
        f.hsm.spend_key_approval(&alice, reference, QuorumService::KeyManagement, approved.as_ref(), f.now, |hsm| {
            hsm.unshare_key(&alice, reference, &name("bob"))
        });
    assert!(matches!(unshare, Err(ModelError::InvalidArgument { field: "username", .. })), "{unshare:?}");

    // Use: only with two of alice and bob; an admin is no approver of a key.
    assert_eq!(f.hsm.key_for_use(&bob, reference, Usage::Verify).map(drop), Ok(()), "only signing is gated");
    assert_eq!(f.hsm.key_for_use(&bob, reference, Usage::Sign).map(drop), Err(ModelError::QuorumRequired));
    let admin = f.as_admin("admin", "admin-pass");
    f.register(&admin, &k2);
    let outsider = check(&mut f, &bob, QuorumService::KeyUsage, &[("bob", &k2), ("admin", &k2)]).unwrap_err();
    assert!(outsider.to_string().contains("'admin' neither owns the key nor shares it"), "{outsider}");
    let approved = check(&mut f, &bob, QuorumService::KeyUsage, &[("alice", &k1), ("bob", &k2)]).unwrap();
    let used = f.hsm.spend_key_approval(&bob, reference, QuorumService::KeyUsage, approved.as_ref(), f.now, |hsm| {
        hsm.key_for_approved_use(&bob, reference, Usage::Sign)
    });
    assert!(used.is_ok());
    assert_eq!(f.hsm.snapshot().keys.iter().find(|k| k.reference == reference).unwrap().quorum, quorum);
}

#[test]
fn an_approving_admin_is_neither_deleted_nor_deregistered_below_the_quorum_value() {
    let mut f = Fixture::activated();
    let h = f.hash("admin2-pass");
    f.hsm.create_user(name("admin2"), Role::Admin, h, None).unwrap();
    let admin = f.as_admin("admin", "admin-pass");
    let admin2 = f.as_admin("admin2", "admin2-pass");
    f.register(&admin, &Signer::new(KEY_1));
    f.register(&admin2, &Signer::new(KEY_2));
    f.hsm.logout(&admin2).unwrap();
    f.hsm.set_quorum_value(QuorumService::Quorum, QuorumValue::parse("value", 2).unwrap()).unwrap();
    let refused = f.hsm.delete_user(&name("admin2"), Role::Admin, f.now).unwrap_err();
    assert!(refused.to_string().contains("lower the quorum value first"), "{refused}");
    // `user change-password --deregister-quorum`: refused as a whole, the
    // key and the password stay.
    let quorum = Deregister { mfa: false, quorum: true };
    let h = f.hash("admin2-new");
    let refused = f.hsm.change_user_password(&name("admin2"), Role::Admin, h, quorum).unwrap_err();
    assert!(matches!(&refused, ModelError::InvalidArgument { field: "deregister_quorum", .. }), "{refused}");
    assert!(f.user("admin2").quorum);
    assert!(f.login("admin2", Role::Admin, "admin2-pass").is_ok());

    f.hsm.set_quorum_value(QuorumService::Quorum, QuorumValue::OFF).unwrap();
    let h = f.hash("admin2-new");
    assert!(!f.hsm.change_user_password(&name("admin2"), Role::Admin, h, quorum).unwrap().quorum);
    assert!(f.login("admin2", Role::Admin, "admin2-new").is_ok());
    f.hsm.end_all_sessions();
    f.hsm.delete_user(&name("admin2"), Role::Admin, f.now).unwrap();
}
