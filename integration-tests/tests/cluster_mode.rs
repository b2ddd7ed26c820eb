//! A cluster's mode, FIPS (the default, as CloudHSM's) or NON_FIPS, chosen
//! when the cluster is made: reported in the cluster info and by `hsm-cli
//! cluster hsm-info` (each HSM's `fips-state`), kept by the store across
//! restarts, copied to HSMs that join, and refused across modes. Triple DES
//! works on a non-FIPS cluster only.

use std::fs;

use hsm_client::{
    ClientError, Decrypt, Encrypt, KeyOptions, ListKeys, Role,
    keys::{Cipher, SymmetricKeyType},
};
use hsm_daemon::model::ClusterMode;
use integration_tests::{
    ADMIN_PASSWORD, DevProcess, Options, TestCluster, TestHsm,
    process::{ClusterDir, Launch},
};

/// NIST SP 800-67 Rev. 1's example key (K1 || K2 || K3), message and ECB
/// ciphertext, which `openssl enc -des-ede3 -K <key> -nopad` also gives.
const KEY: &str = "0123456789abcdef23456789abcdef01456789abcdef0123";
const PLAINTEXT: &[u8] = b"The qufck brown fox jump";
const ECB: &str = "a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900";
/// `printf 'The qufck brown fox jump' | openssl enc -des-ede3-cbc -K <key>
/// -iv f69f2445df4f9b17 -nopad | xxd -p`
const IV: &str = "f69f2445df4f9b17";
const CBC: &str = "a5c282bad0de3774becd2e04386b589fb5057d8552fc4336";

fn usable() -> KeyOptions {
    KeyOptions {
        attributes: [("encrypt", "true"), ("decrypt", "true"), ("label", "des3")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .to_vec(),
        ..KeyOptions::default()
    }
}

fn alice() -> Vec<(String, Role, String)> {
    vec![("alice".to_owned(), Role::CryptoUser, "alice-pass".to_owned())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_fips_cluster_holds_triple_des_across_restarts() {
    let mut cluster =
        TestCluster::start(2, Options { mode: ClusterMode::NonFips, users: alice(), ..Options::default() }).await;
    let info = cluster.client().await.cluster_info().await.unwrap();
    assert_eq!(info.mode, "NON_FIPS");
    assert!(info.hsms.iter().all(|h| h.fips_state == "0 [non-FIPS mode]"), "{:?}", info.hsms);

    let alice = cluster.hsm(0).login("alice", Role::CryptoUser, "alice-pass").await;
    let generated = alice.generate_symmetric_key(SymmetricKeyType::Des3, 24, &usable()).await.unwrap();
    assert_eq!(generated.attribute("key-type"), Some("des3"));
    assert_eq!(generated.attribute("key-length-bytes"), Some("24"));
    let imported = alice.import_secret(SymmetricKeyType::Des3, &hex::decode(KEY).unwrap(), &usable()).await.unwrap();
    // The check value: DES3-ECB of a zero block (OpenSSL gives 4eba739c...).
    assert_eq!(imported.attribute("check-value"), Some("0x4eba73"));
    let (iv, sealed) = alice.encrypt(Encrypt::new(&imported.reference, Cipher::Des3Ecb, PLAINTEXT)).await.unwrap();
    assert_eq!((iv.is_empty(), hex::encode(sealed)), (true, ECB.to_owned()));
    let iv = hex::decode(IV).unwrap();
    let (_, sealed) =
        alice.encrypt(Encrypt::new(&imported.reference, Cipher::Des3Cbc, PLAINTEXT).iv(&iv)).await.unwrap();
    assert_eq!(hex::encode(&sealed), CBC);
    let filter = [("attr.key-type".to_owned(), "des3".to_owned())];
    assert_eq!(
        alice.list_keys(ListKeys::default().filters(&filter)).await.unwrap().keys.len(),
        2,
        "key list --filter attr.key-type=des3"
    );
    let short = alice.import_secret(SymmetricKeyType::Des3, &[7; 16], &usable()).await.unwrap_err();
    assert!(matches!(&short, ClientError::InvalidArgument(m) if m.contains("24 bytes")), "{short}");

    // A restarted HSM keeps the mode and the keys.
    cluster.restart(0).await;
    let info = cluster.hsm(0).client.cluster_info().await.unwrap();
    assert_eq!(info.mode, "NON_FIPS");
    let alice = cluster.hsm(0).login("alice", Role::CryptoUser, "alice-pass").await;
    let (iv, sealed) = alice.encrypt(Encrypt::new(&generated.reference, Cipher::Des3CbcPad, PLAINTEXT)).await.unwrap();
    assert_eq!((iv.len(), sealed.len()), (8, 32), "the HSM made the IV; PKCS#7 added a block");
    let opened = alice.decrypt(Decrypt::new(&generated.reference, Cipher::Des3CbcPad, &sealed).iv(&iv)).await.unwrap();
    assert_eq!(opened, PLAINTEXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fips_cluster_refuses_triple_des_saying_why() {
    let hsm = TestHsm::start(Options { users: alice(), ..Options::default() }).await;
    assert_eq!(hsm.client.cluster_info().await.unwrap().mode, "FIPS");
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let fips = |r: Result<_, ClientError>| match r {
        Err(ClientError::FailedPrecondition(m)) => assert!(m.contains("the cluster is in FIPS mode"), "{m}"),
        other => panic!("expected a FIPS-mode refusal, got {other:?}"),
    };
    fips(alice.generate_symmetric_key(SymmetricKeyType::Des3, 24, &usable()).await.map(|_| ()));
    fips(alice.import_secret(SymmetricKeyType::Des3, &hex::decode(KEY).unwrap(), &usable()).await.map(|_| ()));
    let aes = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &usable()).await.unwrap();
    fips(alice.encrypt(Encrypt::new(&aes.reference, Cipher::Des3Ecb, &[0; 8])).await.map(|_| ()));
    fips(alice.decrypt(Decrypt::new(&aes.reference, Cipher::Des3Cbc, &[0; 8]).iv(&[0; 8])).await.map(|_| ()));
}

/// `init --mode NON_FIPS` writes the mode in every config; `init --add`
/// gives new HSMs HSM 1's and `init --clone-of` the source's; a store
/// refuses a config of another mode; an HSM of another mode does not join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_sets_the_mode_and_a_cluster_keeps_one() {
    let cluster = ClusterDir::init_with(1, &["--mode", "non-fips"]);
    let config = fs::read_to_string(cluster.config()).unwrap();
    assert!(config.contains("mode = \"NON_FIPS\""), "{config}");
    let hsm1 = cluster.start_hsm_with(1, &[], &[]);
    let client = hsm1.client().await;
    assert_eq!(client.cluster_info().await.unwrap().mode, "NON_FIPS");
    // Joining copies users, which an activated cluster lets its appliance user do.
    client.activate(ADMIN_PASSWORD).await.unwrap();

    let add = |count: &str| {
        let out = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(["--add", count]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    add("1");
    assert!(fs::read_to_string(cluster.config_of(2)).unwrap().contains("mode = \"NON_FIPS\""));
    let hsm2 = cluster.start_hsm_with(2, &[], &[]);
    assert!(hsm2.stderr_text().contains("cloned from the peer"), "{}", hsm2.stderr_text());
    assert_eq!(hsm2.client().await.cluster_info().await.unwrap().mode, "NON_FIPS");
    hsm2.terminate();

    // The store keeps the mode it was made with.
    hsm1.terminate();
    let refusal = cluster.refused(&["--mode", "FIPS"], &[]);
    assert!(refusal.stderr.contains("store was made for a NON_FIPS cluster"), "{}", refusal.stderr);
    let hsm1 = cluster.start_hsm_with(1, &[], &[]);

    // A clone (a cluster made from this one's backup) takes its mode.
    let clone = cluster.scratch().join("clone");
    let out =
        cluster.command().args(["init", "--dir"]).arg(&clone).arg("--clone-of").arg(cluster.dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::read_to_string(clone.join("hsm-1.toml")).unwrap().contains("mode = \"NON_FIPS\""));

    // An HSM configured for another mode does not join.
    add("1");
    match cluster.run_hsm(3, &[], &[("HSM_MODE", "FIPS")]) {
        Launch::Started(daemon) => panic!("a FIPS HSM joined a NON_FIPS cluster on {}", daemon.address),
        Launch::Refused(r) => {
            assert!(r.stderr.contains("a cluster's HSMs all have the same mode"), "{}", r.stderr);
        }
    }
    drop(hsm1);
}

/// `hsm-daemon dev --mode NON_FIPS`: `hsm-cli cluster hsm-info` shows each
/// HSM's fips-state as CloudHSM's CLI does.
#[test]
fn dev_takes_the_mode_and_hsm_info_shows_it() {
    let dev = DevProcess::start(&["--mode", "NON_FIPS", "--admin-password", ADMIN_PASSWORD]);
    let info = dev.cli(&[], &["cluster", "hsm-info"]).ok();
    assert_eq!(info["hsms"][0]["fips-state"], "0 [non-FIPS mode]", "{info}");
    let fips = DevProcess::start(&["--admin-password", ADMIN_PASSWORD]);
    let info = fips.cli(&[], &["cluster", "hsm-info"]).ok();
    assert_eq!(info["hsms"][0]["fips-state"], "2 [FIPS mode with single factor authentication]", "{info}");
}
