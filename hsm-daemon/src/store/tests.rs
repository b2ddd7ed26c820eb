//! The store: round trips, refusals, and what the raw file reveals.

use std::{sync::Arc, time::Instant};

use rand::{SeedableRng, rngs::StdRng};

use super::*;
use crate::{
    crypto::KeyMaterial,
    model::{
        AdminSetup, ClusterId, ClusterMode, Hsm, HsmId, HsmSetup, HsmType, KdfParams, KeyQuery, Limits, NewKey,
        Operation, Password, Role, Template, Username,
    },
};

struct World {
    rng: StdRng,
    cluster: ClusterIdentity,
    hsm: HsmIdentity,
}

impl World {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(11);
        let cluster = ClusterIdentity {
            id: ClusterId::generate(&mut rng),
            hsm_type: HsmType::Hsm2mMedium,
            mode: ClusterMode::Fips,
        };
        let hsm = HsmIdentity::generate(&mut rng, "127.0.0.1:1".into(), ClusterMode::Fips);
        World { rng, cluster, hsm }
    }

    fn setup(&mut self) -> HsmSetup {
        let k = KdfParams::TESTING;
        let pw = |s: &str| Password::parse("p", s).unwrap();
        HsmSetup {
            cluster: self.cluster.clone(),
            hsm: self.hsm.clone(),
            limits: Limits::for_type(HsmType::Hsm2mMedium),
            key_range: crate::model::KeyRange::for_index(1).unwrap(),
            admin: AdminSetup::Activated(pw("admin-pass").hash(&k, &mut self.rng).unwrap()),
            appliance: pw("appliance-pass").hash(&k, &mut self.rng).unwrap(),
            decoy: pw("decoy-pass").hash(&k, &mut self.rng).unwrap(),
        }
    }

    fn open(&self, backing: &Backing, master: &MasterKey) -> Result<Opened, StoreError> {
        Store::open(backing, master, self.cluster.id.as_str(), self.hsm.id.as_str())
    }
}

/// A new HSM with a crypto user owning an imported EC key and an AES key,
/// written to a fresh store in `dir`. Returns the store, the HSM, and the raw
/// secret bytes (AES key, EC private key DER).
fn populated(w: &mut World, dir: &Path, master: &MasterKey) -> (Store, Hsm, Vec<u8>, Vec<u8>) {
    let Opened::New(store) = w.open(&Backing::Dir(dir.to_owned()), master).unwrap() else { panic!("not new") };
    let setup = w.setup();
    let mut hsm = Hsm::new(setup);
    store.initialize(&w.cluster, &w.hsm, &hsm.take_changes()).unwrap();
    let k = KdfParams::TESTING;
    let hash = Password::parse("p", "alice-pass").unwrap().hash(&k, &mut w.rng).unwrap();
    hsm.create_user(Username::parse("u", "alice").unwrap(), Role::CryptoUser, hash, None).unwrap();
    let attempt = hsm.login_attempt(&Username::parse("u", "alice").unwrap(), Role::CryptoUser).unwrap();
    let (token, _) = hsm.finish_login(attempt, true, Instant::now(), &mut w.rng).unwrap();
    let alice = hsm.admit(Operation::ListKeys, Some(token.expose()), Instant::now()).unwrap();
    let aes_bytes = vec![0x5au8; 32];
    let aes = KeyMaterial::from_raw_secret(crate::crypto::KeyKind::Aes, &aes_bytes).unwrap();
    let (ec, _) = KeyMaterial::generate_ec(crate::crypto::Curve::P256, &mut w.rng).unwrap();
    let ec_der = ec.to_wrappable().unwrap().to_vec();
    let template = Template::parse(&[("label".into(), "kept".into()), ("sign".into(), "true".into())]).unwrap();
    let new = vec![
        NewKey { material: Arc::new(aes), template: Template::default(), local: false },
        NewKey { material: Arc::new(ec), template, local: false },
    ];
    hsm.store_keys(&alice, crate::model::KeyCreation::new(new)).unwrap();
    let session_key = KeyMaterial::generate_aes(128, &mut w.rng).unwrap();
    let keys = vec![NewKey { material: Arc::new(session_key), template: Template::default(), local: true }];
    hsm.store_keys(&alice, crate::model::KeyCreation { session: true, ..crate::model::KeyCreation::new(keys) })
        .unwrap();
    // A trust anchor and enforcement on, set by the user named admin over
    // mTLS.
    let anchor = crate::pki::generate_ca("cluster-operators").unwrap();
    hsm.register_trust_anchor(crate::model::AnchorCert::from_pem("certificate", &anchor.cert_pem).unwrap()).unwrap();
    hsm.set_mtls_enforcement(&admin_caller(), crate::model::Enforcement::Cluster, true).unwrap();
    store.apply(&hsm.take_changes()).unwrap();
    (store, hsm, aes_bytes, ec_der)
}

fn admin_caller() -> crate::model::Caller {
    crate::model::Caller {
        identity: crate::model::Identity::CryptoOfficer,
        session: Some((dummy_session(), Username::parse("u", "admin").unwrap())),
    }
}

#[test]
fn state_survives_reopening_and_session_keys_do_not() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (store, before, ..) = populated(&mut w, dir.path(), &master);
    drop(store);
    let Opened::Existing(_, identity, state) = w.open(&Backing::Dir(dir.path().to_owned()), &master).unwrap() else {
        panic!("not existing")
    };
    assert_eq!(identity.1.serial_number, w.hsm.serial_number);
    assert_eq!(state.users.len(), 3);
    assert_eq!(state.keys.len(), 2, "the session key is not stored");
    assert_eq!(&state.mtls, before.mtls(), "the trust anchor and the enforcement level");
    assert_eq!(state.mtls.anchors().len(), 1);
    let hsm = Hsm::restore(w.setup(), state);
    let admin = admin_caller();
    let listed = hsm.list_keys(&admin, &KeyQuery::default()).unwrap();
    assert_eq!(listed.keys.len(), 2);
    assert!(listed.keys.iter().any(|k| k.attrs.label == "kept" && k.attrs.sign && k.owner.as_str() == "alice"));
}

/// A non-FIPS store reopens as non-FIPS, with its triple DES keys, and its
/// backup restores into non-FIPS clusters only; the model refuses triple DES
/// on a FIPS cluster.
#[test]
fn the_mode_and_triple_des_keys_survive_reopening() {
    let mut w = World::new();
    w.cluster.mode = ClusterMode::NonFips;
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (store, mut hsm, ..) = populated(&mut w, dir.path(), &master);
    let des3 = KeyMaterial::generate_des3(&mut w.rng).unwrap();
    let check_value = des3.check_value();
    let new = vec![NewKey { material: Arc::new(des3), template: Template::default(), local: true }];
    let owner = crate::model::Caller {
        identity: crate::model::Identity::CryptoUser,
        session: Some((dummy_session(), Username::parse("u", "alice").unwrap())),
    };
    let stored = hsm.store_keys(&owner, crate::model::KeyCreation::new(new)).unwrap()[0].reference;
    store.apply(&hsm.take_changes()).unwrap();
    // Its backup makes a non-FIPS clone, not a FIPS one.
    let cluster_key = MasterKey::generate().unwrap();
    let out = dir.path().join("hsm.backup");
    store.write_backup(&cluster_key, w.cluster.id.as_str(), w.hsm.id.as_str(), &out).unwrap();
    let mut clone = ClusterIdentity { id: ClusterId::generate(&mut w.rng), ..w.cluster.clone() };
    let into = |name: &str| Backing::Dir(dir.path().join(name));
    restore_backup_as_clone(&out, &cluster_key, &into("non-fips"), &master, &clone, &w.hsm).unwrap();
    clone.mode = ClusterMode::Fips;
    let err = restore_backup_as_clone(&out, &cluster_key, &into("fips"), &master, &clone, &w.hsm).unwrap_err();
    assert!(err.to_string().contains("holds triple DES keys"), "{err}");
    drop(store);

    let Opened::Existing(_, identity, state) = w.open(&Backing::Dir(dir.path().to_owned()), &master).unwrap() else {
        panic!("not existing")
    };
    assert_eq!(identity.0.mode, ClusterMode::NonFips);
    let restored = state.keys.iter().find(|k| k.reference == stored).expect("the DES3 key is stored");
    assert_eq!(restored.material.kind(), crate::crypto::KeyKind::Des3);
    assert_eq!(restored.material.check_value(), check_value, "the same key material");

    // The same request on a FIPS cluster is refused, saying why.
    let mut fips = World::new();
    let mut hsm = Hsm::new(fips.setup());
    let des3 = KeyMaterial::generate_des3(&mut fips.rng).unwrap();
    let new = vec![NewKey { material: Arc::new(des3), template: Template::default(), local: true }];
    let err = hsm.store_keys(&owner, crate::model::KeyCreation::new(new)).unwrap_err();
    assert!(err.to_string().contains("the cluster is in FIPS mode"), "{err}");
}

/// Keys load in two halves of the reference range, on two threads, and parse
/// on first use: every key must come back, in order, with its version and
/// digest, whatever the count and wherever the deletions fall.
#[test]
fn every_key_comes_back_with_its_version_and_digest_and_unparsed() {
    for count in [1, 2, 3, 40] {
        let mut w = World::new();
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate().unwrap();
        let (store, mut hsm, ..) = populated(&mut w, dir.path(), &master);
        let alice = alice_caller(&mut hsm, &mut w.rng);
        let new = |i: usize| {
            let material = KeyMaterial::from_raw_secret(crate::crypto::KeyKind::Aes, &[7u8; 16]).unwrap();
            let template = Template::parse(&[("label".into(), format!("k{i}"))]).unwrap();
            NewKey { material: Arc::new(material), template, local: false }
        };
        let made: Vec<_> =
            (0..count).map(|i| hsm.store_keys(&alice, crate::model::KeyCreation::new(vec![new(i)])).unwrap()).collect();
        for (i, views) in made.iter().enumerate() {
            if i % 3 == 1 {
                hsm.delete_key(&alice, views[0].reference).unwrap();
            } else if i % 3 == 2 {
                hsm.set_key_attribute(&alice, views[0].reference, crate::model::AttrName::Label, "again").unwrap();
            }
        }
        store.apply(&hsm.take_changes()).unwrap();
        let before = hsm.key_digests();
        drop(store);
        let Opened::Existing(_, _, state) = w.open(&Backing::Dir(dir.path().to_owned()), &master).unwrap() else {
            panic!("not existing")
        };
        assert!(state.keys.windows(2).all(|w| w[0].reference < w[1].reference), "in reference order");
        assert!(state.keys.iter().all(|k| k.digest.is_some() && !k.material.is_parsed()), "stored, not parsed");
        assert_eq!(Hsm::restore(w.setup(), state).key_digests(), before, "{count} keys");
    }
}

fn dummy_session() -> crate::model::SessionId {
    let mut s = crate::model::Sessions::new(std::time::Duration::from_secs(1), 1);
    s.open(Username::parse("u", "admin").unwrap(), Instant::now(), &mut StdRng::seed_from_u64(1)).unwrap().0
}

#[test]
fn the_raw_file_holds_no_key_material_or_password_hash() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (store, _, aes, ec_der) = populated(&mut w, dir.path(), &master);
    drop(store);
    let raw = std::fs::read(dir.path().join(STORE_FILE)).unwrap();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&aes), "AES key bytes in the clear");
    assert!(!contains(&ec_der), "private key DER in the clear");
    assert!(!contains(&ec_der[ec_der.len() - 32..]), "a tail of the private key in the clear");
    assert!(!contains(b"$argon2id$"), "a password hash in the clear");
    assert!(contains(b"alice"), "the scan does look at the data");
}

#[test]
fn refusals_say_what_is_wrong_and_change_nothing() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let backing = Backing::Dir(dir.path().to_owned());
    let (store, ..) = populated(&mut w, dir.path(), &master);

    // In use.
    let err = w.open(&backing, &master).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another hsm-daemon is already using"), "{err}");
    drop(store);
    let before = std::fs::read(dir.path().join(STORE_FILE)).unwrap();

    // Wrong master key.
    let err = w.open(&backing, &MasterKey::generate().unwrap()).unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    // Another HSM or cluster.
    let other = HsmId::generate(&mut w.rng);
    let err = Store::open(&backing, &master, w.cluster.id.as_str(), other.as_str()).unwrap_err();
    assert!(matches!(err, StoreError::WrongHsm { .. }), "{err}");
    let err = Store::open(&backing, &master, "cluster-elsewhere", w.hsm.id.as_str()).unwrap_err();
    assert!(err.to_string().contains("belongs to"), "{err}");
    assert!(std::fs::read(dir.path().join(STORE_FILE)).unwrap() == before, "nothing was written");

    // A newer format.
    {
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", 2u32.to_le_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let err = w.open(&backing, &master).unwrap_err();
    assert!(matches!(err, StoreError::NewerFormat { found: 2, supported: 1, .. }), "{err}");

    // A truncated file.
    let path = dir.path().join(STORE_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = w.open(&backing, &master).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn an_in_memory_store_starts_new_every_time() {
    let w = World::new();
    let master = MasterKey::generate().unwrap();
    assert!(matches!(w.open(&Backing::Memory, &master).unwrap(), Opened::New(_)));
}

#[test]
fn backups_restore_into_their_cluster_only_and_never_over_a_store() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let cluster_key = MasterKey::generate().unwrap();
    let (store, hsm, aes, ec_der) = populated(&mut w, &dir.path().join("a"), &master);
    let out = dir.path().join("hsm.backup");
    store.write_backup(&cluster_key, w.cluster.id.as_str(), w.hsm.id.as_str(), &out).unwrap();
    let raw = std::fs::read(&out).unwrap();
    assert!(
        !raw.windows(aes.len()).any(|x| x == aes.as_slice())
            && !raw.windows(32).any(|x| x == &ec_der[ec_der.len() - 32..])
    );

    // Into a new HSM of the same cluster, under its own master key.
    let mut other_hsm = w.hsm.clone();
    other_hsm.id = HsmId::generate(&mut w.rng);
    let target = Backing::Dir(dir.path().join("b"));
    let master_b = MasterKey::generate().unwrap();
    restore_backup(&out, &cluster_key, &target, &master_b, &w.cluster, &other_hsm).unwrap();
    let Opened::Existing(_, identity, state) =
        Store::open(&target, &master_b, w.cluster.id.as_str(), other_hsm.id.as_str()).unwrap()
    else {
        panic!("restored store is not there")
    };
    assert_eq!(identity.1.id, other_hsm.id);
    assert_eq!((state.users.len(), state.keys.len()), (3, 2));
    assert_eq!(&state.mtls, hsm.mtls(), "backups carry the mTLS policy");
    assert!(state.keys.iter().any(|k| k.material.to_wrappable().unwrap().as_slice() == aes.as_slice()));

    // Never over an existing store.
    let err = restore_backup(&out, &cluster_key, &target, &master_b, &w.cluster, &other_hsm).unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    // Not into another cluster; not with another cluster key; not tampered.
    let mut elsewhere = w.cluster.clone();
    elsewhere.id = ClusterId::generate(&mut w.rng);
    let fresh = Backing::Dir(dir.path().join("c"));
    let err = restore_backup(&out, &cluster_key, &fresh, &master_b, &elsewhere, &other_hsm).unwrap_err();
    assert!(matches!(err, StoreError::BackupOfAnotherCluster { .. }), "{err}");
    // As a clone, into another cluster only with the source's cluster key.
    let err = restore_backup_as_clone(&out, &MasterKey::generate().unwrap(), &fresh, &master_b, &elsewhere, &other_hsm)
        .unwrap_err();
    assert!(err.to_string().contains("a clone needs the source's cluster key"), "{err}");
    let cloned = Backing::Dir(dir.path().join("clone"));
    restore_backup_as_clone(&out, &cluster_key, &cloned, &master_b, &elsewhere, &other_hsm).unwrap();
    let Opened::Existing(_, identity, state) =
        Store::open(&cloned, &master_b, elsewhere.id.as_str(), other_hsm.id.as_str()).unwrap()
    else {
        panic!("the clone's store is not there")
    };
    assert_eq!(identity.0.id, elsewhere.id, "the clone keeps its own cluster id");
    assert_eq!((state.users.len(), state.keys.len()), (3, 2));
    let err =
        restore_backup(&out, &MasterKey::generate().unwrap(), &fresh, &master_b, &w.cluster, &other_hsm).unwrap_err();
    assert!(matches!(err, StoreError::BadBackup { .. }), "{err}");
    let mut tampered = raw.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    std::fs::write(&out, &tampered).unwrap();
    let err = restore_backup(&out, &cluster_key, &fresh, &master_b, &w.cluster, &other_hsm).unwrap_err();
    assert!(err.to_string().contains("damaged or was altered"), "{err}");
    // One that lists a user twice (a payload the backup fuzz target found,
    // less its first byte): restoring it would keep one of the two.
    let twice = &include_bytes!("../../fuzz/regressions/backup/crash-1d267cbfea372455f16907e8d8bb0c4543835706")[1..];
    let file = backup::seal_file(3, twice, &cluster_key, w.cluster.id.as_str(), w.hsm.id.as_str()).unwrap();
    std::fs::write(&out, file).unwrap();
    let err = restore_backup(&out, &cluster_key, &fresh, &master_b, &w.cluster, &other_hsm).unwrap_err();
    assert!(err.to_string().contains("lists user alice twice"), "{err}");
    assert!(!dir.path().join("c").join(STORE_FILE).exists(), "a refused restore creates nothing");
}

#[test]
fn versions_and_tombstones_survive_reopening_and_backups() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (store, mut hsm, ..) = populated(&mut w, dir.path(), &master);
    let alice = alice_caller(&mut hsm, &mut w.rng);
    let keys = hsm.list_keys(&alice, &KeyQuery::default()).unwrap().keys;
    let (first, second) = (keys[0].reference, keys[1].reference);
    hsm.set_key_attribute(&alice, second, crate::model::AttrName::Label, "renamed").unwrap();
    hsm.delete_key(&alice, first).unwrap();
    store.apply(&hsm.take_changes()).unwrap();
    let before = hsm.key_digests();
    assert_eq!(
        before.iter().map(|d| (d.stamp.version, d.stamp.digest.is_none())).collect::<Vec<_>>(),
        [(2, true), (2, false)]
    );
    let backup = dir.path().join("b.backup");
    let cluster_key = MasterKey::generate().unwrap();
    store.write_backup(&cluster_key, w.cluster.id.as_str(), w.hsm.id.as_str(), &backup).unwrap();
    drop(store);
    let Opened::Existing(_, _, state) = w.open(&Backing::Dir(dir.path().to_owned()), &master).unwrap() else {
        panic!("not existing")
    };
    assert_eq!(Hsm::restore(w.setup(), state).key_digests(), before);

    let other = tempfile::tempdir().unwrap();
    restore_backup(&backup, &cluster_key, &Backing::Dir(other.path().to_owned()), &master, &w.cluster, &w.hsm).unwrap();
    let Opened::Existing(_, _, state) = w.open(&Backing::Dir(other.path().to_owned()), &master).unwrap() else {
        panic!("not existing")
    };
    assert_eq!(Hsm::restore(w.setup(), state).key_digests(), before, "a backup keeps versions and tombstones");
}

#[test]
fn masked_objects_open_only_in_their_cluster_and_unaltered() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (_store, mut hsm, aes_bytes, _) = populated(&mut w, dir.path(), &master);
    let alice = alice_caller(&mut hsm, &mut w.rng);
    let reference = hsm.list_keys(&alice, &KeyQuery::default()).unwrap().keys[0].reference;
    let object = hsm.extract_masked(&alice, &crate::model::MaskTarget::Key(reference)).unwrap();
    let masking_key = MasterKey::generate().unwrap();
    let masker = Masker::new(&masking_key, &w.cluster.id);
    let bytes = masker.mask(&object).unwrap();
    assert!(!bytes.windows(aes_bytes.len()).any(|w| w == aes_bytes), "key bytes in the clear");
    assert!(matches!(masker.unmask(&bytes).unwrap(), crate::model::Masked::Key(r) if r.reference() == reference));

    let other_id = ClusterId::generate(&mut w.rng);
    let err = Masker::new(&masking_key, &other_id).unmask(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("masked objects move only within their cluster") && err.contains(w.cluster.id.as_str()),
        "{err}"
    );
    let err = Masker::new(&MasterKey::generate().unwrap(), &w.cluster.id).unmask(&bytes).unwrap_err().to_string();
    assert!(err.contains("does not open under this cluster's masking key"), "{err}");
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = masker.unmask(&tampered).unwrap_err().to_string();
    assert!(err.contains("altered"), "{err}");
    assert!(masker.unmask(b"garbage").unwrap_err().to_string().contains("not a masked object"));
}

fn alice_caller(hsm: &mut Hsm, rng: &mut StdRng) -> crate::model::Caller {
    let attempt = hsm.login_attempt(&Username::parse("u", "alice").unwrap(), Role::CryptoUser).unwrap();
    let (token, _) = hsm.finish_login(attempt, true, Instant::now(), rng).unwrap();
    hsm.admit(Operation::ListKeys, Some(token.expose()), Instant::now()).unwrap()
}

#[test]
fn a_batch_of_changes_is_written_in_order_in_one_transaction() {
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let (store, mut hsm, ..) = populated(&mut w, dir.path(), &master);
    let user = |name: &str| Username::parse("u", name).unwrap();
    let mut batch = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let hash = Password::parse("p", "some-pass").unwrap().hash(&KdfParams::TESTING, &mut w.rng).unwrap();
        hsm.create_user(user(name), Role::CryptoUser, hash, None).unwrap();
        batch.push(hsm.take_changes());
    }
    // Deleted later in the same batch: the later change wins.
    hsm.delete_user(&user("carol"), Role::CryptoUser, Instant::now()).unwrap();
    batch.push(hsm.take_changes());
    store.apply_batch(&batch).unwrap();
    drop(store);
    let Opened::Existing(_, _, state) = w.open(&Backing::Dir(dir.path().to_owned()), &master).unwrap() else {
        panic!("not existing")
    };
    let mut names: Vec<String> = state.users.iter().map(|u| u.username.to_string()).collect();
    names.sort();
    assert_eq!(names, ["admin", "alice", "app_user", "bob", "dave"]);
}

#[test]
fn registered_keys_and_quorum_values_survive_reopening_backups_and_masking() {
    use crate::model::{
        Masked, QuorumService, QuorumValue, QuorumValues,
        quorum::fixtures::{KEY_1, Signer},
    };
    let mut w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let cluster_key = MasterKey::generate().unwrap();
    let (store, mut hsm, ..) = populated(&mut w, &dir.path().join("a"), &master);
    let alice = alice_caller(&mut hsm, &mut w.rng);
    let now = Instant::now();
    let issued = hsm.issue_quorum_token(&alice, QuorumService::Registration, now, &mut w.rng).unwrap();
    let key = Signer::new(KEY_1).key();
    hsm.register_quorum_key(&alice, key.clone(), &issued.token, now).unwrap();
    let three = QuorumValue::parse("value", 3).unwrap();
    let values = QuorumValues { quorum: three, ..QuorumValues::default() };
    hsm.adopt_quorum_values(values);
    store.apply(&hsm.take_changes()).unwrap();
    let alice_key = |state: &crate::model::PersistedState| {
        state.users.iter().find(|u| u.username.as_str() == "alice").and_then(|u| u.quorum_key.clone())
    };

    // Reopened.
    let out = dir.path().join("hsm.backup");
    store.write_backup(&cluster_key, w.cluster.id.as_str(), w.hsm.id.as_str(), &out).unwrap();
    drop(store);
    let Opened::Existing(_, _, state) = w.open(&Backing::Dir(dir.path().join("a")), &master).unwrap() else {
        panic!("not existing")
    };
    assert_eq!((alice_key(&state), state.quorum), (Some(key.clone()), values));

    // Restored from a backup.
    let target = Backing::Dir(dir.path().join("b"));
    restore_backup(&out, &cluster_key, &target, &master, &w.cluster, &w.hsm).unwrap();
    let Opened::Existing(_, _, state) = w.open(&target, &master).unwrap() else { panic!("not restored") };
    assert_eq!((alice_key(&state), state.quorum), (Some(key.clone()), values));

    // Masked for cloning.
    let masker = Masker::new(&cluster_key, &w.cluster.id);
    let object = hsm
        .extract_masked(
            &crate::model::Caller::this_hsm(),
            &crate::model::MaskTarget::User(Username::parse("u", "alice").unwrap()),
        )
        .unwrap();
    let Masked::User(user) = masker.unmask(&masker.mask(&object).unwrap()).unwrap() else { panic!("not a user") };
    assert_eq!(user.quorum_key, Some(key));
}
