//! The HSM's permission rules hold through PKCS#11 as through gRPC: a key
//! shared with a crypto user can be used by that user but not destroyed or
//! changed, its owner can do both, and an admin's PIN logs in but can
//! neither use nor make keys.
//!
//! The library reads its configuration from the process environment, which
//! is global: everything runs in one test function.

mod common;

use common::{Rig, library_path};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::Mechanism,
    object::{Attribute, ObjectClass},
    session::UserType,
    types::AuthPin,
};
use hsm_client::{KeyOptions, KeyPairSpec, Role};
use hsm_daemon::testing::Options;

fn rv<T: std::fmt::Debug>(result: Result<T, Error>) -> RvError {
    match result {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn options(pairs: &[(&str, &str)], share_with: &[&str]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        share_with: share_with.iter().map(|u| (*u).to_owned()).collect(),
        ..KeyOptions::default()
    }
}

#[test]
fn a_shared_key_is_used_but_not_destroyed_and_admins_use_no_keys() {
    let rig = Rig::with_users(2, &["bob"], Options::default());
    rig.point_the_library_here();
    let Rig { runtime, cluster, .. } = &rig;

    // alice, over gRPC, makes a pair whose private half she shares with bob.
    let client = runtime.block_on(cluster.client());
    let alice = runtime.block_on(client.login("alice", Role::CryptoUser, "alice-pass")).unwrap();
    runtime
        .block_on(alice.generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &options(&[("label", "shared"), ("verify", "true")], &[]),
            &options(&[("label", "shared"), ("sign", "true")], &["bob"]),
        ))
        .unwrap();

    let pkcs11 = Pkcs11::new(library_path()).unwrap();
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_rw_session(slot).unwrap();
    let find = |class| {
        let found = session.find_objects(&[Attribute::Label(b"shared".to_vec()), Attribute::Class(class)]).unwrap();
        assert_eq!(found.len(), 1, "{class:?}");
        found[0]
    };

    // bob: uses the shared key, but may not destroy or change it.
    session.login(UserType::User, Some(&AuthPin::new("bob:bob-pass".into()))).unwrap();
    let (private, public) = (find(ObjectClass::PRIVATE_KEY), find(ObjectClass::PUBLIC_KEY));
    let signature = session.sign(&Mechanism::EcdsaSha256, private, b"bob signs").unwrap();
    session.verify(&Mechanism::EcdsaSha256, public, b"bob signs", &signature).unwrap();
    assert_eq!(rv(session.destroy_object(private)), RvError::ActionProhibited);
    assert_eq!(
        rv(session.update_attributes(private, &[Attribute::Label(b"mine".to_vec())])),
        RvError::ActionProhibited
    );
    session.logout().unwrap();

    // An admin sees the keys but may neither use nor make them.
    session.login(UserType::So, Some(&AuthPin::new("admin:admin-pass".into()))).unwrap();
    let private = find(ObjectClass::PRIVATE_KEY);
    assert_eq!(rv(session.sign(&Mechanism::EcdsaSha256, private, b"admin signs")), RvError::UserNotLoggedIn);
    assert_eq!(rv(session.destroy_object(private)), RvError::UserNotLoggedIn);
    assert_eq!(
        rv(session.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into())])),
        RvError::UserNotLoggedIn
    );
    assert_eq!(rv(session.generate_random_vec(16)), RvError::UserNotLoggedIn);
    session.logout().unwrap();
    // A crypto user's PIN is not an admin's.
    assert_eq!(rv(session.login(UserType::So, Some(&AuthPin::new("bob:bob-pass".into())))), RvError::PinIncorrect);

    // alice, the owner, destroys it.
    session.login(UserType::User, Some(&AuthPin::new("alice:alice-pass".into()))).unwrap();
    let private = find(ObjectClass::PRIVATE_KEY);
    session.destroy_object(private).unwrap();
    assert!(
        session
            .find_objects(&[Attribute::Label(b"shared".to_vec()), Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()
            .is_empty()
    );

    drop(session);
    pkcs11.finalize().unwrap();
    runtime.block_on(alice.logout()).unwrap();
}
