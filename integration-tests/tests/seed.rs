//! Seed files and deterministic mode, with `hsm-daemon dev` and `run` as
//! processes: a seeded cluster whose users log in, whose keys are listed
//! with their labels and owners and whose imported key signs what its known
//! public key verifies; three seeded HSMs that start in step; two
//! `--deterministic 7` runs that repeat each other; bad seeds and clashing
//! flags refused with the line and the reason; a seed that is not applied to
//! a store that exists.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
};

use hsm_client::{
    ClientConfig, Decrypt, Encrypt, HsmClient, KeyInfo, KeyOptions, KeyPairSpec, ListKeys, Role, Session, Sign,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use integration_tests::{
    DevProcess, P256Key, bin_dir,
    process::{ClusterDir, HANG_GUARD},
};

/// A seed with an admin password, two crypto users and three keys: a
/// generated AES key alice shares with bob, an HMAC key with fixed bytes, and
/// bob's P-256 key imported from `pem`.
fn acceptance_seed(hsms: u8, pem: &str) -> String {
    format!(
        r#"[cluster]
hsms = {hsms}
admin_password = "admin-pass"

[[users]]
username = "alice"
role = "crypto-user"
password = "alice-pass"

[[users]]
username = "bob"
role = "crypto-user"
password = "bob-pass1"

[[keys]]
label = "alice-aes"
owner = "alice"
type = "aes"
key_length_bytes = 32
attributes = {{ encrypt = true, decrypt = true }}
share_with = ["bob"]

[[keys]]
label = "bob-hmac"
owner = "bob"
type = "generic-secret"
hex = "00112233445566778899aabbccddeeff"
attributes = {{ sign = true, verify = true }}

[[keys]]
label = "bob-signing"
owner = "bob"
type = "ec"
pem = """
{pem}"""
attributes = {{ sign = true }}
"#
    )
}

/// The repository's example seed, which the documentation points to.
fn example_seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hsm-daemon/examples/seed.toml")
}

/// Writes `text` to `seed.toml` in a new directory.
fn write_seed(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

async fn connect(endpoint: &str, ca: &Path) -> HsmClient {
    HsmClient::connect(&ClientConfig::from_parts(endpoint, ca).unwrap()).await.unwrap()
}

async fn all_keys(session: &Session) -> Vec<KeyInfo> {
    session.list_keys(ListKeys::default()).await.unwrap().keys
}

fn labelled<'a>(keys: &'a [KeyInfo], label: &str) -> &'a KeyInfo {
    keys.iter().find(|k| k.attribute("label") == Some(label)).unwrap_or_else(|| panic!("no key {label}: {keys:?}"))
}

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_dev_cluster_has_the_seeds_users_and_keys_and_the_imported_key_signs() {
    let p256 = P256Key::generate();
    let (_seed_dir, seed) = write_seed(&acceptance_seed(1, &p256.pem));
    let dev = DevProcess::start(&["--seed", seed.to_str().unwrap()]);
    assert!(dev.banner.contains("2 user(s) and 3 key(s) in each new store"), "{}", dev.banner);
    assert!(dev.banner.contains("cluster active"), "{}", dev.banner);
    let client = connect(&dev.endpoint, &dev.ca_cert).await;

    let admin = client.login("admin", Role::Admin, "admin-pass").await.unwrap();
    let users: Vec<(String, Role)> =
        admin.list_users().await.unwrap().into_iter().map(|u| (u.username, u.role)).collect();
    assert_eq!(
        users,
        [
            ("admin".to_owned(), Role::Admin),
            ("alice".to_owned(), Role::CryptoUser),
            ("app_user".to_owned(), Role::Appliance),
            ("bob".to_owned(), Role::CryptoUser),
        ]
    );
    // Admins see every key: the seed's three, with their labels and owners.
    let listed: Vec<(String, String, String)> = all_keys(&admin)
        .await
        .into_iter()
        .map(|k| (k.reference.clone(), k.attribute("label").unwrap().to_owned(), k.owner))
        .collect();
    let expected = [("alice-aes", "alice"), ("bob-hmac", "bob"), ("bob-signing", "bob")];
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (i, ((reference, label, owner), (want_label, want_owner))) in listed.iter().zip(expected).enumerate() {
        assert_eq!((label.as_str(), owner.as_str()), (want_label, want_owner));
        assert_eq!(reference, &format!("0x{:016x}", 0x0010_0001 + i), "HSM 1's first references, in file order");
    }

    let alice = client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    let bob = client.login("bob", Role::CryptoUser, "bob-pass1").await.unwrap();
    let bobs = all_keys(&bob).await;
    let aes = labelled(&bobs, "alice-aes");
    assert_eq!((aes.owner.as_str(), aes.shared_users.as_slice()), ("alice", ["bob".to_owned()].as_slice()));
    let hmac = labelled(&bobs, "bob-hmac");
    assert_eq!(hmac.attribute("key-length-bytes"), Some("16"));
    let signing = labelled(&bobs, "bob-signing");
    assert_eq!(signing.attribute("ec-point").unwrap(), format!("0x{}", hex::encode(&p256.public)));
    assert_eq!(signing.attribute("local"), Some("false"), "imported, not generated");

    // The imported key signs; ring verifies with the key's known public half.
    let data = b"signed by a seeded key";
    let signature =
        bob.sign(Sign::new(&signing.reference, SignMechanism::Ecdsa, data).hash(HashAlgorithm::Sha256)).await.unwrap();
    assert!(p256.verifies(data, &signature));
    assert!(!p256.verifies(b"other data", &signature));

    // The share works: bob decrypts what alice encrypts with her key.
    let (iv, ciphertext) = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesGcm, b"for bob")).await.unwrap();
    let plaintext = bob.decrypt(Decrypt::new(&aes.reference, Cipher::AesGcm, &ciphertext).iv(&iv)).await.unwrap();
    assert_eq!(plaintext, b"for bob");
    // And alice does not see bob's unshared keys.
    let alices: Vec<String> =
        all_keys(&alice).await.iter().filter_map(|k| k.attribute("label").map(str::to_owned)).collect();
    assert_eq!(alices, ["alice-aes"], "bob's keys are his own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_seeded_hsms_start_with_the_same_users_keys_and_digest() {
    let p256 = P256Key::generate();
    let (_seed_dir, seed) = write_seed(&acceptance_seed(3, &p256.pem));
    // No --hsms: the seed's count.
    let dev = DevProcess::start(&["--seed", seed.to_str().unwrap()]);
    assert!(dev.banner.contains("with 3 HSM(s)"), "{}", dev.banner);
    let appliance = std::fs::read_to_string(dev.dir.path().join("appliance-password")).unwrap();
    let endpoints: Vec<&str> = dev.endpoint.split(',').collect();
    assert_eq!(endpoints.len(), 3);

    let mut digests = Vec::new();
    let mut views = Vec::new();
    for endpoint in endpoints {
        let client = connect(endpoint, &dev.ca_cert).await;
        let au = client.login("app_user", Role::Appliance, appliance.trim()).await.unwrap();
        let status = au.sync_status().await.unwrap();
        assert_eq!((status.users, status.keys), (4, 3), "{endpoint}");
        digests.push(status.digest);
        // Users are never copied by background sync: these come from the seed.
        let names: Vec<String> = au.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
        assert_eq!(names, ["admin", "alice", "app_user", "bob"], "{endpoint}");
        let bob = client.login("bob", Role::CryptoUser, "bob-pass1").await.unwrap();
        let keys: Vec<(String, Option<String>, Option<String>)> = all_keys(&bob)
            .await
            .into_iter()
            .map(|k| {
                let check = k.attribute("check-value").map(str::to_owned);
                let point = k.attribute("ec-point").map(str::to_owned);
                (k.reference, check, point)
            })
            .collect();
        views.push(keys);
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    assert!(views.windows(2).all(|w| w[0] == w[1]), "{views:?}");
    assert!(views[0].iter().all(|(r, ..)| r.starts_with("0x00000000001000")), "HSM 1's range: {:?}", views[0]);
}

/// What a snapshot test of a deterministic dev cluster would record.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    hsms: Vec<(String, String)>,
    session_token: String,
    seeded: Vec<(String, String, Option<String>, Option<String>)>,
    generated: Vec<(String, Option<String>, Option<String>)>,
}

/// Starts `dev --seed <example> [--deterministic N]`, reads what a test
/// would snapshot, and makes keys through the API in a fixed order.
async fn snapshot(deterministic: Option<&str>) -> Snapshot {
    let seed = example_seed();
    let mut args = vec!["--seed", seed.to_str().unwrap()];
    if let Some(n) = deterministic {
        args.extend(["--deterministic", n]);
    }
    let dev = DevProcess::start(&args);
    assert_eq!(dev.banner.contains("DETERMINISTIC MODE"), deterministic.is_some(), "{}", dev.banner);
    let client = connect(&dev.endpoint, &dev.ca_cert).await;
    let info = client.cluster_info().await.unwrap();
    let hsms = info.hsms.iter().map(|h| (h.hsm_id.clone(), h.serial_number.clone())).collect();
    let alice = client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    let request = alice.request(()).unwrap();
    let session_token = request.metadata().get(hsm_proto::SESSION_METADATA_KEY).unwrap().to_str().unwrap().to_owned();
    let facts = |k: KeyInfo| {
        let check = k.attribute("check-value").map(str::to_owned);
        let point = k.attribute("ec-point").map(str::to_owned);
        (k.reference, check, point)
    };
    let seeded = all_keys(&alice)
        .await
        .into_iter()
        .map(|k| {
            let label = k.attribute("label").unwrap().to_owned();
            let (reference, check, point) = facts(k);
            (reference, label, check, point)
        })
        .collect();
    let (public, private) = alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("label", "api-pub"), ("verify", "true")]),
            &opts(&[("label", "api"), ("sign", "true")]),
        )
        .await
        .unwrap();
    let aes = alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("label", "api-aes")])).await.unwrap();
    Snapshot { hsms, session_token, seeded, generated: vec![facts(public), facts(private), facts(aes)] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deterministic_runs_repeat_references_keys_serials_and_tokens() {
    let first = snapshot(Some("7")).await;
    let second = snapshot(Some("7")).await;
    assert_eq!(first, second);
    // The example's generated pairs have their public points, the API's too.
    assert_eq!(first.seeded.iter().filter(|k| k.3.is_some()).count(), 7, "{:?}", first.seeded);
    assert!(first.generated[0].2.is_some());

    // Another seed, and no seed, change everything random but no reference.
    for other in [snapshot(Some("8")).await, snapshot(None).await] {
        assert_ne!(other.hsms[0], first.hsms[0]);
        assert_ne!(other.session_token, first.session_token);
        let points = |s: &Snapshot| s.seeded.iter().map(|k| k.3.clone()).collect::<Vec<_>>();
        assert_ne!(points(&other), points(&first));
        assert_ne!(other.generated, first.generated);
        let references = |s: &Snapshot| {
            let seeded = s.seeded.iter().map(|k| k.0.clone());
            seeded.chain(s.generated.iter().map(|k| k.0.clone())).collect::<Vec<_>>()
        };
        assert_eq!(references(&other), references(&first));
    }
}

/// Starts a three-HSM `dev --deterministic 7` cluster from `seed` and makes
/// a key pair on HSM 2, while background sync logs in to it from the others
/// at moments of its own; returns the HSMs' identities and every key's
/// reference, label and public point as HSM 2 lists them.
async fn three_hsm_run(seed: &Path) -> (Vec<(String, String)>, Vec<(String, String, Option<String>)>) {
    let dev = DevProcess::start(&["--seed", seed.to_str().unwrap(), "--deterministic", "7"]);
    let endpoints: Vec<&str> = dev.endpoint.split(',').collect();
    let client = connect(endpoints[1], &dev.ca_cert).await;
    let info = client.cluster_info().await.unwrap();
    let mut hsms: Vec<(String, String)> =
        info.hsms.iter().map(|h| (h.hsm_id.clone(), h.serial_number.clone())).collect();
    for endpoint in [endpoints[0], endpoints[2]] {
        let info = connect(endpoint, &dev.ca_cert).await.cluster_info().await.unwrap();
        hsms.extend(info.hsms.iter().map(|h| (h.hsm_id.clone(), h.serial_number.clone())));
    }
    let alice = client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("label", "on-hsm-2-pub")]),
            &opts(&[("label", "on-hsm-2")]),
        )
        .await
        .unwrap();
    let keys = all_keys(&alice)
        .await
        .into_iter()
        .map(|k| {
            let point = k.attribute("ec-point").map(str::to_owned);
            (k.reference.clone(), k.attribute("label").unwrap().to_owned(), point)
        })
        .collect();
    (hsms, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deterministic_three_hsm_runs_repeat_keys_whatever_background_sync_does() {
    let p256 = P256Key::generate();
    let generated = "\n[[keys]]\nlabel = \"alice-p256\"\npublic_label = \"alice-p256-pub\"\nowner = \"alice\"\n\
                     type = \"ec\"\ncurve = \"secp256r1\"\n";
    let (_seed_dir, seed) = write_seed(&(acceptance_seed(3, &p256.pem) + generated));
    let first = three_hsm_run(&seed).await;
    let second = three_hsm_run(&seed).await;
    assert_eq!(first, second);
    assert_eq!(first.0.len(), 3);
    let labels: Vec<&str> = first.1.iter().map(|k| k.1.as_str()).collect();
    assert_eq!(labels, ["alice-aes", "alice-p256-pub", "alice-p256", "on-hsm-2-pub", "on-hsm-2"]);
    assert!(first.1[3].0.starts_with("0x00000100"), "made on HSM 2, from its range: {:?}", first.1[3]);
    assert!(first.1[3].2.is_some());
}

/// Runs `hsm-daemon dev --dir <new dir> <args>`, which must exit with an
/// error; returns its standard error and whether it left a cluster behind.
fn dev_refused(args: &[&str]) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let child = Command::new(bin_dir().join("hsm-daemon"))
        .arg("dev")
        .arg("--dir")
        .arg(&cluster)
        .args(["--kdf-memory-kib", "8", "--kdf-iterations", "1"])
        .args(args)
        .env_remove("HSM_ADMIN_PASSWORD")
        .env_remove("HSM_DEV_HSMS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let Ok(output) = exited.recv_timeout(HANG_GUARD) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("hsm-daemon dev {args:?} started instead of refusing");
    };
    let output = output.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    (stderr, cluster.join("hsm-1.toml").exists())
}

#[test]
fn dev_refuses_a_bad_seed_with_its_line_and_flags_that_contradict_the_seed() {
    let p256 = P256Key::generate();
    // Line 25 is bob-hmac's owner.
    let bad = acceptance_seed(1, &p256.pem)
        .replace("owner = \"bob\"\ntype = \"generic-secret\"", "owner = \"carol\"\ntype = \"generic-secret\"");
    assert_eq!(bad.lines().nth(24), Some("owner = \"carol\""));
    let (_bad_dir, bad_path) = write_seed(&bad);
    let (stderr, left) = dev_refused(&["--seed", bad_path.to_str().unwrap()]);
    let expected = format!(
        "hsm-daemon: error: seed file {}, line 25, column 9: owner 'carol' is not a crypto user of this seed",
        bad_path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!left, "nothing is prepared for a refused seed");

    let (_dir, seed) = write_seed(&acceptance_seed(1, &p256.pem));
    let seed = seed.to_str().unwrap();
    let (stderr, _) = dev_refused(&["--seed", seed, "--hsms", "2"]);
    assert!(stderr.contains("--hsms 2: the seed file asks for 1 HSM(s) ([cluster] hsms)"), "{stderr}");
    let (stderr, _) = dev_refused(&["--seed", seed, "--admin-password", "other-pass"]);
    assert!(stderr.contains("the seed file sets the admin password"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_is_not_applied_to_a_store_that_exists() {
    let p256 = P256Key::generate();
    let (_seed_dir, seed) = write_seed(&acceptance_seed(1, &p256.pem));
    let dev = DevProcess::start(&["--seed", seed.to_str().unwrap()]);
    let alice =
        connect(&dev.endpoint, &dev.ca_cert).await.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("label", "made-later")])).await.unwrap();

    // A different seed on the same directory changes nothing.
    let other = acceptance_seed(1, &p256.pem).replace("\"alice\"", "\"carol\"");
    let (_other_dir, other) = write_seed(&other);
    let dev = dev.restart(&["--seed", other.to_str().unwrap()]);
    assert!(dev.banner.contains("not applied, the stores already exist"), "{}", dev.banner);
    let client = connect(&dev.endpoint, &dev.ca_cert).await;
    assert!(client.login("carol", Role::CryptoUser, "alice-pass").await.is_err(), "the new seed's user is not there");
    let alice = client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    let labels: Vec<String> =
        all_keys(&alice).await.iter().filter_map(|k| k.attribute("label").map(str::to_owned)).collect();
    assert_eq!(labels, ["alice-aes", "made-later"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_seeds_each_new_store_and_refuses_generated_keys_it_cannot_agree_on() {
    let cluster = ClusterDir::init(2);
    let p256 = P256Key::generate();
    // No id or count: the cluster is init's.
    let text = acceptance_seed(2, &p256.pem).replace("hsms = 2\n", "");
    let (_seed_dir, seed) = write_seed(&text);
    let seed = seed.to_str().unwrap();

    // HSM 2 would generate its own AES key under HSM 1's reference.
    let refused = cluster.run_hsm(2, &["--seed", seed], &[]);
    let integration_tests::process::Launch::Refused(refusal) = refused else { panic!("HSM 2 started") };
    assert!(
        refusal.stderr.contains("the seed generates keys, and HSM 2 would generate other material"),
        "{}",
        refusal.stderr
    );

    let flags = ["--seed", seed, "--deterministic", "7"];
    let hsm1 = cluster.start_hsm_with(1, &flags, &[]);
    let hsm2 = cluster.start_hsm_with(2, &flags, &[]);
    assert!(hsm1.stderr_text().contains("DETERMINISTIC MODE"), "{}", hsm1.stderr_text());
    let appliance = std::fs::read_to_string(cluster.dir().join("appliance-password")).unwrap();
    let mut digests = Vec::new();
    for daemon in [&hsm1, &hsm2] {
        let client = daemon.client().await;
        let au = client.login("app_user", Role::Appliance, appliance.trim()).await.unwrap();
        let names: Vec<String> = au.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
        assert_eq!(names, ["admin", "alice", "app_user", "bob"]);
        digests.push(au.sync_status().await.unwrap().digest);
        client.login("bob", Role::CryptoUser, "bob-pass1").await.unwrap();
    }
    assert_eq!(digests[0], digests[1]);
}
