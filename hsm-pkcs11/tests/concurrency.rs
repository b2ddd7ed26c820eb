//! Calls in different sessions run at once: while one session's call waits
//! on the HSM, another session's call goes through. The HSM (with fault
//! injection) holds one digest for a few seconds; the test waits until the
//! HSM reports that call under way, then makes another call in another
//! session and checks it returns while the first is still waiting. Under
//! one library-wide lock the second call would wait for the first.
//!
//! The library reads its configuration from the process environment: one
//! test function.

mod common;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use common::{Rig, library_path};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    mechanism::Mechanism,
    session::UserType,
    types::AuthPin,
};
use hsm_client::FaultSpec;
use hsm_daemon::testing::Options;
use ring::digest;

#[test]
fn a_slow_call_in_one_session_does_not_hold_up_another() {
    let rig = Rig::with_users(1, &[], Options { faults: true, ..Options::default() });
    rig.point_the_library_here();
    let Rig { runtime, cluster, .. } = &rig;

    let pkcs11 = Pkcs11::new(library_path()).unwrap();
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let session = pkcs11.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&AuthPin::new("alice:alice-pass".into()))).unwrap();

    // The HSM holds the next digest for 5 s.
    let client = runtime.block_on(cluster.client());
    let hsm = &client.hsms()[0];
    runtime.block_on(hsm.set_fault(&FaultSpec::delay("Digest", Duration::from_secs(5)).times(1))).unwrap();

    let slow_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let other = pkcs11.open_ro_session(slot).unwrap();
            let digest = other.digest(&Mechanism::Sha256, b"slow").unwrap();
            slow_done.store(true, Ordering::SeqCst);
            digest
        });
        // Wait until the HSM has the digest in hand (the rule fired).
        loop {
            let state = runtime.block_on(hsm.faults()).unwrap();
            if state.rules.iter().all(|r| r.hits > 0) || slow.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!slow.is_finished(), "the delayed digest should still be under way");
        // Another session's call is served meanwhile.
        assert_eq!(session.generate_random_vec(16).unwrap().len(), 16);
        let signed_in = session.digest(&Mechanism::Sha256, b"fast").unwrap();
        assert_eq!(signed_in, digest::digest(&digest::SHA256, b"fast").as_ref());
        assert!(!slow_done.load(Ordering::SeqCst), "the second session waited for the first");
        assert_eq!(slow.join().unwrap(), digest::digest(&digest::SHA256, b"slow").as_ref());
    });

    drop(session);
    pkcs11.finalize().unwrap();
}
