//! Quorum approvals and MFA on the pure model: registered keys, quorum
//! values, tokens bound to their user, service and ten minutes, distinct
//! approvers, spending, and the MFA second factor of a login.

use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use super::*;

/// A fixed RSA key (PKCS#1 DER in hex; tests only): signs as `openssl pkeyutl -sign -pkeyopt
/// digest:sha256` of a token does, i.e. over the token's preimage.
struct Signer {
    pair: RsaKeyPair,
    spki: Vec<u8>,
}

impl Signer {
    fn new(parts: &[&str]) -> Self {
        use rsa::{pkcs1::DecodeRsaPrivateKey as _, pkcs8::EncodePublicKey as _};
        let der = hex::decode(parts.concat()).unwrap();
        let spki = rsa::PrivateKey::from_pkcs1_der(&der).unwrap().to_public_key().to_public_key_der().unwrap();
        Signer { pair: RsaKeyPair::from_der(&der).unwrap(), spki: spki.into_vec() }
    }

    fn key(&self) -> ApproverKey {
        ApproverKey::from_spki("public_key", &self.spki).unwrap()
    }

    fn sign(&self, preimage: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), preimage, &mut signature).unwrap();
        signature
    }
}

impl Fixture {
    fn as_admin(&mut self, user: &str, password: &str) -> Caller {
        let token = self.login(user, Role::Admin, password).unwrap();
        self.caller(Operation::CreateUser, &token).unwrap()
    }

    /// Registers `signer` as `caller`'s quorum key the way the service does.
    fn register(&mut self, caller: &Caller, signer: &Signer) {
        let issued = self.hsm.issue_quorum_token(caller, QuorumService::Registration, self.now, &mut self.rng).unwrap();
        let preimage = self.hsm.registration_preimage(caller, &issued.token, self.now).unwrap();
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
        let approval = Approval { token: issued.token, signatures };
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
    f.hsm.create_user(name("admin2"), Role::Admin, h).unwrap();
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
            hsm.create_user(name("carol"), Role::CryptoUser, hsm.decoy.clone())
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

const KEY_1: &[&str] = &[
    "308204a20201000282010100be87bf7c4b337c07c844a44a1b17b3f2c1a214b78bdb31b2601c7950524ece37eb7de0c1",
    "16f0cc29b3a65152d4296acb2063e6359a8431f23053d20bcd5297cd192adf58770e3eccb1c41139bcf5e123063fb6cd",
    "54cd34800df57b3f761421f1cde73d2ceae1acc87acf264fbc984774344f65148d1234d0e46e4bcffdc92eb829162f91",
    "38a36641737672ecf1bf511ec703d6421b7faf9dc405a6c9ac0e5a272e6a7aacb2a6efd9d30e7744d5082efab1cb4940",
    "fc195fb0a3de94cce3ca772978b1135627dd653be621271bc7ec94981394e69b81bdead7316b4a002b0d268dbd3db60c",
    "b9e5d4c5d7b5303b43f82faf2033506916d7897125565b9755c67211020301000102820100113d23b9dc42abede1a9e1",
    "9a2ee4b077137155cc86f9432ada2aaeb3476f32960eac3f575925afb89f8a39d61e5f77a12a02154489017daa106dff",
    "c03f9dec76e0831232e53ac3108439083ca02338713c7c814eb2108b0d2c60d1fb9b9f1609d47bcaa6336e4dd2d481c4",
    "fbf69abf4452adfda84eb1f4ae132d039658665e8a9fc7a311fcf145a0723986e32ca2725bfaf79766a9b3df88615783",
    "325585b430809a478d618d36abcaf0c12ff5c48b80c85bea163f36533810bf4fc3976fddd25289b7552fca1fcb8639e7",
    "c23d216677dbc2469ffc917ca8e45bff2fa213631cf2e540e01bcfae622192cd39843f8c9d38ce633e7f10942d9d521d",
    "a79a8be71d02818100e7a5ebb0c3e9ca5c8675ef461fa670a8741ebbba8b8e27ac05b6dc376deb8a203af5313bcf3bca",
    "a5881f812fbedee28e3b47626151482c057291ae141c8275ad76572e2de04bb8792f12f43bb21d1620790075b1b276ce",
    "091de630de627d5462d869619fd0ad43537aa85a60ac1ec6701021038498babc1949c9c38cbcce718702818100d28f45",
    "07a451a737b91fb92b82dcddf0932ee9c31b7f71af5d0f007c7b3cf92d1febcdc4052b189ca8736534fa9107ec550a68",
    "ac3c503d98927af92925ff349411d588783aef4e41994e27118d32e16fcefc5b0e7bd8fbbf40b65201a6d071424eb932",
    "cae95fbb58c73e5cfc37fd1038392ca5e0681b058458e07e7769b745a70281800d13fcfe79d1152fac17b46e8d12e481",
    "5e2cee045624ac70b5d1e114f00bc03c999786340e3b1df1c281a4d5813d2c25438b802e665c60bfddfc038bf720166c",
    "b8a5ab61c3ac02ba34c2292fc59a86c9468b9419782de4ebf6d82c22220559624b3d87d971fa96367c524ce7f04fbc7c",
    "4f2ccdfa0a7560713d0d3b111307c4b902818029aba4f3b03760aa8c7e94bce1b7284d3633b09ba65380823e1e7bf026",
    "cb985cafd690f05c3d7d2f73bef2a69b781c634f293231f3f5c55aee925bc122fdf0bfe50fa76473f56c3d5b43b643a8",
    "f80ad97fd33d8a0e4490fdf6a69e70293d534cd61b9ccbbf87eca1d33caa56581643217d5f32acc8ada057e2e6fae053",
    "11ac3d02818006d656c20f3729e909dbefa1ad4dbbb68d1cc747b64f079b7333b8538d3041a432d13250e9d56e8b7c25",
    "5126d9d53c21867ff083b2da55082b0746751f313725b465d3eb7ebff0409664bdceba7880c4bfe868920a8d80180935",
    "ba7e8775e3ba7857416b466cfc966f99fcbd415d17022ab0f5da22af2d629943071660b8a3c0",
];

const KEY_2: &[&str] = &[
    "308204a30201000282010100a0c1689f4d37fe62017bd1864e85d5dcb7b9c67bcaa8230aba95caa271b26b033f14656e",
    "0e3e3efa5be98c5b102d54a7a918bc418934d3fecf7abc2f1026094db89b4718bc3344986bba8a961b6c2c684493ba55",
    "21811ddd0461df2bec3e865fdbe4434a4b6977199847e55bbed1aa583dbc50ce6b65752cacfc42a2f466665a8fdb8eb7",
    "a2e8c446ccd4f9ae8a508733883d3bc2948a0cc3ff66533096875d40b16f5c36c8062e3ab48be4ac7f5ddae351b1366b",
    "a6f08268446dcd7a7bf63b88d0926451052835ce06a0eab291d970823df78a48ce2c1e80f33b718148512613b2c84e64",
    "40cac59f0ce0ec02f8feccddecc5b7d915218c3701a44c68773c06010203010001028201001a522099b8b07ad7bc2b74",
    "4e7bcbe10cdf0e2d67f6721a2eb70730a2f15fc7b2c3e0c88cc10b430f85fe12eb9415fffee5aa75a47b5d297ad6a8df",
    "680b4a570aa137d767bee4dc0de2d1abc05124208f3fef3a3a971e476ff938372cbf652b6645a035be53e3a44b0e0a73",
    "8cd68d08c9a2ee130301459eee5e327d8ca5dca054603bcf137f675c911cb5f0e475a66f6ea3191690be929ac62b56bb",
    "f8b1f5912324a5ea8e66970c11f54749bc6ff65c12df423881bbc7aa73223801e7f77c8d4029d4eab5e52a6635d8ccb4",
    "b14939043b2861d0af78954c0d14c14fa5448b02d7b9786a5cd25e1674b5b206d65e5cabaebda30bd0600bad29baea93",
    "400796b0f902818100cc23cc39ebe27f8f822b2332377ef5c481301b6d86d6517ba88ec221f1a6e5bd13484d61a9dc59",
    "11744a4c92127d9bee31b04f153bd40e4afb058392c95bf7c0d3244d777681db815cb3194dd638075ef7af4d697d6edd",
    "9d27749cdc07389e0c164456317b9f805924511fb08afd30b9d52543ce891fb7cbed8c2b175cf375ed02818100c9981e",
    "1e8f94754d4682d11ec1230ffb8ece32eed57c72338b825a66e7d05f72f876732e2c62310902f60cc5895aba63a8d8ac",
    "8df0739c48679867ded03b9b059f86ac51e2557dda50db542ac618bbd5b02944fd2784feb36b0cd4832e811fcab863ab",
    "baf117a3eb6705f3457b7f223881a74404baa594af983553d1ef808de502818041970aea5d591405471c971d6e69538c",
    "04ba3145daba07ca449941d4e830e8c5fc6911bbdc78d9015bacf7b7434baa8b38d9de3f034f1a1c8b54f536778e1e27",
    "8d6faf983fb26f95bbf42ba02fc126d5239de6b08b45d0dccaad942cba013dfec234c8c0f36887339d1097af00a9633b",
    "82398bf4d3682684d659600b0ca988ed0281802b0710c6ad169ec2d39df04c84249bb0b1964940b8c84b07bd6b21287d",
    "a9f7f56e1aba12ccde5860f804d44d05381c38513d8df6edaf7f57e4e49ea6ec030cdf7261283e81f4855c278de8b508",
    "7b16fc51113dec5a970455ff2f49dc85fc81709f5286c0ebdc83dc26ad1a73661c888d4eff088189e4f58b550d6cca8e",
    "37fe1102818100a709b0ca807d4b4949a74fb051ca6fb9797b5dc2c26f85fe087d4398f3638bb8f1d5b468edc9ca4f2d",
    "a996db37f5d4bdbb9d40ad9dac64e422942d8be5d1875fc03a29e0ad9bc23d4e314cc739e90e8b833b7d20612590fda8",
    "772b6144994914762a53731d16f7f7760afec7fef53badafd91279204c0b08d4529af89ff1ffc4",
];
