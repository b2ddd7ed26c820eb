//! Durable storage, with `hsm-daemon init` and `hsm-daemon run` as processes
//! and the typed client over TLS: what survives a restart (after SIGKILL and
//! after SIGTERM), acknowledged writes under `kill -9` while more are in
//! flight, the refusals of a store that is in use, of another HSM, sealed
//! under another master key or damaged, and that no key material is kept in
//! the clear under the data directory.
//!
//! Every daemon is started with `--listen 127.0.0.1:0` (the port is read from
//! its "listening on" line) unless a test needs the config's own port, with a
//! cheap KDF, and is killed and reaped when its guard drops.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use hsm_client::{
    ClientError, CreateUser, Decrypt, Encrypt, HsmClient, KeyInfo, KeyOptions, KeyPairSpec, ListKeys, Role, Session,
    SetKeyAttribute, ShareKey, Sign, User,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use integration_tests::{
    P256Key,
    process::{ClusterDir as Cluster, HANG_GUARD, Stop},
};
use ring::{
    rand::{SecureRandom as _, SystemRandom},
    signature,
};
use tokio::sync::Notify;

const ADMIN_PASSWORD: &str = "admin-pass";
const ALICE_PASSWORD: &str = "alice-pass";
const BOB_PASSWORD: &str = "bob-pass1";
const CAROL_PASSWORD: &str = "carol-pass";
const DAVE_PASSWORD: &str = "dave-pass";

/// Wrong logins that lock a user.
const LOCKOUT: usize = 6;

// ---------------------------------------------------------------------------
// Keys and helpers
// ---------------------------------------------------------------------------

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

async fn all_keys(session: &Session) -> Vec<KeyInfo> {
    let page = session.list_keys(ListKeys::default()).await.unwrap();
    assert_eq!(page.next_token, None);
    page.keys
}

async fn users(session: &Session) -> Vec<User> {
    let mut users = session.list_users().await.unwrap();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    users
}

fn is_locked(result: Result<Session, ClientError>) -> bool {
    matches!(result, Err(ClientError::FailedPrecondition(m)) if m.contains("locked"))
}

async fn wrong_logins(client: &HsmClient, username: &str, times: usize) {
    for attempt in 1..=times {
        let err = client.login(username, Role::CryptoUser, "wrong-pass").await.unwrap_err();
        assert!(matches!(err, ClientError::Unauthenticated(_)), "{username} attempt {attempt}: {err:?}");
    }
}

// ---------------------------------------------------------------------------
// 1. A restart keeps everything
// ---------------------------------------------------------------------------

/// What a populated HSM showed before it was stopped.
struct Before {
    users: Vec<User>,
    admin_keys: Vec<KeyInfo>,
    alice_keys: Vec<KeyInfo>,
    bob_keys: Vec<KeyInfo>,
    /// Every reference handed out, including deleted keys'.
    references: BTreeSet<String>,
    imported: String,
    aes: String,
    p256: P256Key,
    /// AES-GCM under `aes`: (iv, ciphertext).
    sealed: (Vec<u8>, Vec<u8>),
}

const MESSAGE: &[u8] = b"signed after the restart";
const SECRET: &[u8] = b"encrypted before the restart";

/// Activates the HSM, has the admin create alice, and logs her in.
async fn activated_with_alice(client: &HsmClient) -> Session {
    client.activate(ADMIN_PASSWORD).await.unwrap();
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap();
    client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap()
}

/// Activates, creates users (one locked, one with failed logins short of
/// the lockout), imports, generates, shares, labels, deletes; records what
/// the HSM shows.
async fn populate(client: &HsmClient) -> Before {
    client.activate(ADMIN_PASSWORD).await.unwrap();
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    for (name, password) in
        [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD), ("carol", CAROL_PASSWORD), ("dave", DAVE_PASSWORD)]
    {
        admin.create_user(CreateUser::new(name, Role::CryptoUser, password)).await.unwrap();
    }
    wrong_logins(client, "carol", LOCKOUT).await;
    assert!(is_locked(client.login("carol", Role::CryptoUser, CAROL_PASSWORD).await), "carol is not locked");
    wrong_logins(client, "dave", LOCKOUT - 1).await;

    let alice = client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let p256 = P256Key::generate();
    let import_options = opts(&[("label", "imported-p256"), ("sign", "true"), ("id", "0x0102")]);
    let imported = alice.import_pem(&p256.pem, &import_options).await.unwrap();
    let aes = alice
        .generate_symmetric_key(
            SymmetricKeyType::Aes,
            32,
            &opts(&[("label", "aes-256"), ("encrypt", "true"), ("decrypt", "true"), ("extractable", "false")]),
        )
        .await
        .unwrap();
    alice.share_key(ShareKey::new(&aes.reference, "bob")).await.unwrap();
    alice.set_key_attribute(SetKeyAttribute::new(&imported.reference, "label", "renamed-p256")).await.unwrap();
    let (public, _private) = alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("label", "pair-pub"), ("verify", "true")]),
            &opts(&[("label", "pair-priv"), ("sign", "true")]),
        )
        .await
        .unwrap();
    admin.set_key_attribute(SetKeyAttribute::new(&public.reference, "trusted", "true")).await.unwrap();
    let doomed = alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("label", "doomed")])).await.unwrap();
    alice.delete_key(&doomed.reference).await.unwrap();
    let sealed = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesGcm, SECRET)).await.unwrap();

    let bob = client.login("bob", Role::CryptoUser, BOB_PASSWORD).await.unwrap();
    let admin_keys = all_keys(&admin).await;
    let mut references: BTreeSet<String> = admin_keys.iter().map(|k| k.reference.clone()).collect();
    assert_eq!(references.len(), 4, "{admin_keys:#?}");
    references.insert(doomed.reference);
    let before = Before {
        users: users(&admin).await,
        alice_keys: all_keys(&alice).await,
        bob_keys: all_keys(&bob).await,
        admin_keys,
        references,
        imported: imported.reference,
        aes: aes.reference,
        p256,
        sealed,
    };
    let shared = before.admin_keys.iter().find(|k| k.reference == before.aes).unwrap();
    assert_eq!(shared.shared_users, ["bob"], "{shared:?}");
    before
}

/// Checks that the restarted HSM shows and does exactly what it did.
async fn check_after_restart(client: &HsmClient, before: &Before) {
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(users(&admin).await, before.users, "users (and their locked state) changed");
    assert_eq!(all_keys(&admin).await, before.admin_keys, "the admin's key listing changed");

    // Lockout: carol stays locked; dave's failed logins were kept, so one
    // more locks him.
    assert!(is_locked(client.login("carol", Role::CryptoUser, CAROL_PASSWORD).await), "carol was unlocked");
    wrong_logins(client, "dave", 1).await;
    assert!(
        is_locked(client.login("dave", Role::CryptoUser, DAVE_PASSWORD).await),
        "dave's {} failed logins before the restart were forgotten",
        LOCKOUT - 1
    );

    let alice = client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let bob = client.login("bob", Role::CryptoUser, BOB_PASSWORD).await.unwrap();
    assert_eq!(all_keys(&alice).await, before.alice_keys, "alice's key listing changed");
    assert_eq!(all_keys(&bob).await, before.bob_keys, "bob's key listing changed");

    // The imported key signs, and the signature verifies under the public
    // key made in this test, not one the HSM reports.
    let sha256 = Some(HashAlgorithm::Sha256);
    let sig =
        alice.sign(Sign { hash: sha256, ..Sign::new(&before.imported, SignMechanism::Ecdsa, MESSAGE) }).await.unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &before.p256.public)
        .verify(MESSAGE, &sig)
        .expect("the imported key's signature does not verify under the original public key");

    // The shared AES key is the same key: bob decrypts what alice sealed.
    let (iv, ciphertext) = &before.sealed;
    let plain = bob.decrypt(Decrypt::new(&before.aes, Cipher::AesGcm, ciphertext).iv(iv)).await.unwrap();
    assert_eq!(plain, SECRET);

    // A new key gets a reference never handed out before.
    let new = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap();
    assert!(
        !before.references.contains(&new.reference),
        "new key {} reuses a reference of {:?}",
        new.reference,
        before.references
    );
}

async fn restart_keeps_everything(stop: Stop) {
    let cluster = Cluster::init(1);
    let daemon = cluster.start();
    let before = populate(&daemon.client().await).await;
    stop.stop(daemon);

    let daemon = cluster.start();
    check_after_restart(&daemon.client().await, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_sigkill_keeps_users_lockouts_keys_and_references() {
    restart_keeps_everything(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_sigterm_keeps_users_lockouts_keys_and_references() {
    restart_keeps_everything(Stop::Terminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_of_session_keys_are_not_handed_out_again_after_a_restart() {
    let cluster = Cluster::init(1);
    let daemon = cluster.start();
    let client = daemon.client().await;
    let alice = activated_with_alice(&client).await;
    let token = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap();
    let session_options = KeyOptions { session: true, ..KeyOptions::default() };
    let session = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &session_options).await.unwrap();
    assert!(session.session);
    daemon.terminate();

    let daemon = cluster.start();
    let client = daemon.client().await;
    let alice = client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let listed: Vec<String> = all_keys(&alice).await.into_iter().map(|k| k.reference).collect();
    assert_eq!(listed, std::slice::from_ref(&token.reference), "only the token key survives");
    let new = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap();
    assert!(
        new.reference != token.reference && new.reference != session.reference,
        "the new key got reference {}, already handed out before the restart (token key {}, session key {})",
        new.reference,
        token.reference,
        session.reference
    );
}

// ---------------------------------------------------------------------------
// 2. kill -9 under concurrent writes
// ---------------------------------------------------------------------------

const WRITERS: usize = 4;
const CYCLES: usize = 3;
/// Acknowledged writes (over all writers) after which the daemon is killed.
const ACKS_BEFORE_KILL: usize = 40;
/// Bounds each writer's loop; far more than it gets through before the kill.
const MAX_WRITES_PER_WRITER: usize = 400;

/// What one writer had acknowledged, and how it ended.
#[derive(Debug, Default)]
struct Written {
    users: Vec<String>,
    /// (reference, label)
    keys: Vec<(String, String)>,
    /// The error that ended it: the daemon went away mid-run.
    ended_by: Option<ClientError>,
}

/// Creates users (as the admin) and AES keys (as its own crypto user),
/// alternately, until a call fails or the bound is reached.
async fn write(admin: Session, user: Session, tag: String, acked: Arc<AtomicUsize>, wake: Arc<Notify>) -> Written {
    let mut written = Written::default();
    for i in 0..MAX_WRITES_PER_WRITER {
        let name = format!("{tag}n{i}");
        let outcome = if i % 2 == 0 {
            admin
                .create_user(CreateUser::new(&name, Role::CryptoUser, "writer-pass"))
                .await
                .map(|u| written.users.push(u.username))
        } else {
            user.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("label", &name)]))
                .await
                .map(|k| written.keys.push((k.reference, name)))
        };
        if let Err(e) = outcome {
            written.ended_by = Some(e);
            break;
        }
        acked.fetch_add(1, Ordering::SeqCst);
        wake.notify_one();
    }
    written
}

fn writer_name(w: usize) -> String {
    format!("writer{w}")
}

/// Every acknowledged user and key is there, keys with their label and owner.
async fn check_acknowledged(client: &HsmClient, users: &BTreeSet<String>, keys: &BTreeMap<String, (String, String)>) {
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    let present: BTreeSet<String> = admin.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    let missing: Vec<&String> = users.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged users missing after the restart: {missing:?}");
    let stored: BTreeMap<String, KeyInfo> =
        all_keys(&admin).await.into_iter().map(|k| (k.reference.clone(), k)).collect();
    for (reference, (label, owner)) in keys {
        let key = stored.get(reference).unwrap_or_else(|| panic!("acknowledged key {reference} ({label}) missing"));
        assert_eq!(key.attribute("label"), Some(label.as_str()), "{key:?}");
        assert_eq!(&key.owner, owner, "{key:?}");
    }
    admin.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_under_concurrent_writes_three_times() {
    let cluster = Cluster::init(1);
    let mut daemon = cluster.start();
    {
        let client = daemon.client().await;
        client.activate(ADMIN_PASSWORD).await.unwrap();
        let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
        for w in 0..WRITERS {
            admin.create_user(CreateUser::new(&writer_name(w), Role::CryptoUser, "writer-pass")).await.unwrap();
        }
    }
    let mut users = BTreeSet::new();
    let mut keys = BTreeMap::new();
    for cycle in 0..CYCLES {
        let acked = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            // One connection per writer, logged in before any writing starts.
            let client = daemon.client().await;
            let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
            let user = client.login(&writer_name(w), Role::CryptoUser, "writer-pass").await.unwrap();
            let (acked, wake) = (Arc::clone(&acked), Arc::clone(&wake));
            let tag = format!("c{cycle}w{w}");
            writers.push(tokio::spawn(async move {
                let written = write(admin, user, tag, acked, Arc::clone(&wake)).await;
                wake.notify_one();
                written
            }));
        }
        let enough = async {
            while acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL && !writers.iter().all(|w| w.is_finished()) {
                wake.notified().await;
            }
        };
        tokio::time::timeout(HANG_GUARD, enough).await.expect("the writers stalled");
        // The writers are still writing: kill -9 lands among calls in flight.
        daemon.kill();

        for (w, writer) in writers.into_iter().enumerate() {
            let written = writer.await.unwrap();
            assert!(
                written.ended_by.is_some(),
                "cycle {cycle}: writer {w} finished all its writes before the kill; raise MAX_WRITES_PER_WRITER"
            );
            users.extend(written.users);
            keys.extend(written.keys.into_iter().map(|(r, label)| (r, (label, writer_name(w)))));
        }
        assert!(acked.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL, "cycle {cycle}: the writers failed early");

        // The store opens (the daemon says it is listening) and holds every
        // acknowledged write of every cycle so far.
        daemon = cluster.start();
        check_acknowledged(&daemon.client().await, &users, &keys).await;
    }
}

// ---------------------------------------------------------------------------
// 3. Refusals
// ---------------------------------------------------------------------------

/// Every file under `dir`, by path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                // Regular files only: the daemon's control socket is not data.
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_in_use_of_another_hsm_under_another_key_or_damaged_are_refused_unchanged() {
    let cluster = Cluster::init(1);

    // The first daemon serves on the config's own port.
    let first = cluster.start_with(&[], &[]);
    let client = first.client().await;
    client.activate(ADMIN_PASSWORD).await.unwrap();
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap();

    // A second daemon on the same config: refused for the data directory
    // (the store is opened before the port is bound).
    let same = cluster.refused(&[], &[]);
    assert!(same.stderr.contains("another hsm-daemon is already using this data directory"), "{}", same.stderr);
    // On another port it reaches the store, which is locked.
    let other_port = cluster.refused(&["--listen", "127.0.0.1:0"], &[]);
    assert!(
        other_port.stderr.contains("another hsm-daemon is already using this data directory"),
        "{}",
        other_port.stderr
    );
    // The first keeps serving, reads and writes.
    let admin = first.client().await.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, BOB_PASSWORD)).await.unwrap();
    let names: Vec<String> = users(&admin).await.into_iter().map(|u| u.username).collect();
    assert!(names.contains(&"alice".to_owned()) && names.contains(&"bob".to_owned()), "{names:?}");
    drop((admin, client));
    first.terminate();

    let store = cluster.store();
    let original = fs::read(&store).unwrap();
    let unchanged = |what: &str| assert!(fs::read(&store).unwrap() == original, "{what}: the store was changed");

    // Another master key.
    let actual = fs::read_to_string(cluster.dir().join("hsm-1.master-key")).unwrap();
    let other_key = if actual.trim() == "11".repeat(32) { "22".repeat(32) } else { "11".repeat(32) };
    let wrong_key = cluster.refused(&["--listen", "127.0.0.1:0"], &[("HSM_MASTER_KEY", &other_key)]);
    assert!(wrong_key.stderr.contains("the master key does not open this store"), "{}", wrong_key.stderr);
    unchanged("another master key");

    // Another HSM, and another cluster.
    let other_hsm = cluster.refused(&["--listen", "127.0.0.1:0", "--hsm-id", "hsm-someoneelse"], &[]);
    assert!(other_hsm.stderr.contains("the store belongs to"), "{}", other_hsm.stderr);
    assert!(other_hsm.stderr.contains("hsm-someoneelse"), "{}", other_hsm.stderr);
    unchanged("another HSM id");
    let other_cluster = cluster.refused(&["--listen", "127.0.0.1:0", "--cluster-id", "cluster-someoneelse"], &[]);
    assert!(other_cluster.stderr.contains("the store belongs to"), "{}", other_cluster.stderr);
    assert!(other_cluster.stderr.contains("cluster-someoneelse"), "{}", other_cluster.stderr);
    unchanged("another cluster id");

    // None of that harmed the store.
    let daemon = cluster.start();
    let admin = daemon.client().await.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(users(&admin).await.len(), 4, "admin, appliance user, alice, bob");
    drop(admin);
    daemon.terminate();
    let original = fs::read(&store).unwrap();

    // A truncated store, cut inside the header, inside the first page, in
    // the middle and by one byte: each is refused as damaged, and left as
    // it was.
    let len = original.len();
    let mut wrong = Vec::new();
    for cut in [100, 4096, len / 2, len - 1] {
        fs::write(&store, &original[..cut]).unwrap();
        let refusal = cluster.refused(&["--listen", "127.0.0.1:0"], &[]);
        if !refusal.stderr.contains("the store is damaged") {
            wrong.push(format!("cut to {cut} of {len} bytes: {}", refusal.stderr.trim()));
        }
        assert_eq!(fs::read(&store).unwrap(), &original[..cut], "the refused truncated store was changed");
    }
    fs::write(&store, &original).unwrap();
    assert!(wrong.is_empty(), "truncated stores not reported as damaged:\n{}", wrong.join("\n"));

    // `init` on an initialised directory refuses and changes nothing.
    let before = snapshot(&cluster.dir());
    let out = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(["--hsms", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already holds a cluster"), "{stderr}");
    assert!(snapshot(&cluster.dir()) == before, "init on an initialised directory changed files");
}

// ---------------------------------------------------------------------------
// 4. Nothing in the clear
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_material_or_password_is_stored_in_the_clear() {
    let cluster = Cluster::init(1);
    let daemon = cluster.start();
    let client = daemon.client().await;
    let alice = activated_with_alice(&client).await;

    let p256 = P256Key::generate();
    let aes: [u8; 32] = random_bytes();
    // A label is stored in the clear: it shows the scan reads the store.
    const MARKER: &str = "clear-label-marker-7f3a";
    alice.import_pem(&p256.pem, &opts(&[("label", MARKER), ("sign", "true")])).await.unwrap();
    alice.import_secret(SymmetricKeyType::Aes, &aes, &opts(&[("label", "imported-aes")])).await.unwrap();
    // The same key again, changed, so that older copies of its row exist.
    let again = alice.import_secret(SymmetricKeyType::Aes, &aes, &KeyOptions::default()).await.unwrap();
    alice.set_key_attribute(SetKeyAttribute::new(&again.reference, "label", "relabelled")).await.unwrap();
    drop((alice, client));
    daemon.terminate();

    let master_hex = fs::read_to_string(cluster.dir().join("hsm-1.master-key")).unwrap().trim().to_owned();
    let master = hex::decode(&master_hex).unwrap();
    let pem_body = p256.pem.lines().nth(1).unwrap().to_owned();
    let aes_hex = hex::encode(aes);
    let needles: [(&str, &[u8]); 9] = [
        ("the private key's PKCS#8 DER", &p256.pkcs8),
        ("the private key's scalar", &p256.scalar),
        ("the private key's PEM", pem_body.as_bytes()),
        ("the AES key", &aes),
        ("the AES key in hex", aes_hex.as_bytes()),
        ("alice's password", ALICE_PASSWORD.as_bytes()),
        ("the admin password", ADMIN_PASSWORD.as_bytes()),
        ("the master key", &master),
        ("the master key in hex", master_hex.as_bytes()),
    ];
    let files = snapshot(&cluster.data_dir());
    assert!(files.contains_key(&cluster.store()), "no store in {}: {:?}", cluster.data_dir().display(), files.keys());
    let marker_seen = files.values().any(|bytes| bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
    assert!(marker_seen, "the scan did not find the label stored in the clear; it proves nothing");
    let mut found = Vec::new();
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            if bytes.windows(needle.len()).any(|w| w == *needle) {
                found.push(format!("{what} in {}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "secrets in the clear under the data directory:\n{}", found.join("\n"));
}

// ---------------------------------------------------------------------------
// 5. Backup and restore
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_everything_into_its_cluster_only() {
    let cluster = Cluster::init(1);
    let daemon = cluster.start();
    let before = populate(&daemon.client().await).await;

    // Online: the running daemon writes it through its control socket.
    let backup = cluster.scratch().join("hsm-1.backup");
    let out = cluster.tool("backup", "--out", &backup);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("by the running daemon"));
    Stop::Kill.stop(daemon);

    // Restoring over an existing store is refused, and changes nothing.
    let store_before = fs::read(cluster.store()).unwrap();
    let out = cluster.tool("restore", "--from", &backup);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::read(cluster.store()).unwrap() == store_before);

    // Into an empty data directory: the HSM comes back whole.
    fs::rename(cluster.data_dir(), cluster.scratch().join("lost-data")).unwrap();
    let out = cluster.tool("restore", "--from", &backup);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let daemon = cluster.start();
    check_after_restart(&daemon.client().await, &before).await;
    drop(daemon);

    // Another cluster's HSM refuses it.
    let other = Cluster::init(1);
    let out = other.tool("restore", "--from", &backup);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backups restore only into HSMs of their own cluster"), "{stderr}");
    assert!(!other.store().exists(), "a refused restore creates no store");
}
