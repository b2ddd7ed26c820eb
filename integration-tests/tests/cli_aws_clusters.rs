//! Several clusters in one `hsm-cli`, as the CloudHSM CLI's multi-cluster
//! configuration: a configuration file naming clusters by id,
//! `--cluster-id` on every command (and as interactive mode's default), the
//! check that the HSMs reached report the configured id, and `key
//! replicate` from a cluster to its clone (made from its backup, as AWS
//! makes one), with refusals for a destination that is not a clone and for
//! missing destination credentials.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use base64::Engine as _;
use integration_tests::{CliOutput, DevProcess, bin_dir, hsm_cli};
use serde_json::{Value, json};

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
const ALICE: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "alice:alice-pass")];
const ALICE_AT_DESTINATION: [(&str, &str); 2] =
    [("DESTINATION_CLOUDHSM_ROLE", "crypto-user"), ("DESTINATION_CLOUDHSM_PIN", "alice:alice-pass")];

/// "hello world", base64.
const MESSAGE: &str = "aGVsbG8gd29ybGQ=";

/// An activated dev cluster with crypto user alice.
fn cluster_with_alice() -> DevProcess {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    dev.cli(&ADMIN, &["user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass"])
        .ok();
    dev
}

/// The id `hsm-daemon dev` gave the cluster.
fn id_of(dev: &DevProcess) -> String {
    std::fs::read_to_string(dev.dir.path().join("cluster-id")).expect("cluster-id").trim().to_owned()
}

/// A clone of `source`, as AWS makes one: a backup of it restored into a new
/// cluster that shares its cluster and masking keys.
fn clone_of(source: &DevProcess) -> DevProcess {
    let work = tempfile::tempdir().expect("temp dir");
    let backup = work.path().join("backup.bin");
    let clone = tempfile::tempdir().expect("temp dir");
    let daemon = |args: &[&str]| {
        let out = Command::new(bin_dir().join("hsm-daemon")).args(args).output().expect("hsm-daemon");
        assert!(out.status.success(), "hsm-daemon {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let config = |dir: &Path| dir.join("hsm-1.toml").display().to_string();
    daemon(&["backup", "--config", &config(source.dir.path()), "--out", &backup.display().to_string()]);
    let dir = clone.path().display().to_string();
    daemon(&["init", "--dir", &dir, "--clone-of", &source.dir.path().display().to_string()]);
    daemon(&["restore", "--config", &config(clone.path()), "--from", &backup.display().to_string(), "--clone"]);
    DevProcess::start_in(clone, &[])
}

/// A `cloudhsm-cli.cfg`-style file naming `clusters` (id, dev process).
fn config_file(dir: &Path, clusters: &[(&str, &DevProcess)]) -> PathBuf {
    let entries: Vec<Value> = clusters
        .iter()
        .map(|(id, dev)| {
            let (host, port) = dev.endpoint.rsplit_once(':').expect("host:port");
            json!({"type": "hsm2m", "cluster": {
                "cluster_id": id,
                "hsm_ca_file": dev.ca_cert,
                "servers": [{"hostname": host, "port": port.parse::<u16>().expect("port"), "enable": true}],
            }})
        })
        .collect();
    let path = dir.join(format!("cloudhsm-cli-{}.cfg", clusters.len()));
    std::fs::write(&path, json!({"clusters": entries}).to_string()).expect("config file");
    path
}

/// Runs `hsm-cli` with the configuration file (and without any
/// `HSM_ENDPOINTS`: the file alone says where the clusters are).
fn cli(config: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> CliOutput {
    let config = config.display().to_string();
    let mut all: Vec<(&str, &str)> = vec![("HSM_CLI_CONFIG", &config)];
    all.extend_from_slice(env);
    // The endpoint variables name nothing that answers: only the file counts.
    hsm_cli("127.0.0.1:1", Path::new("/nonexistent/ca.pem"), &all, args, stdin)
}

fn usernames(list: &Value) -> Vec<String> {
    list["users"].as_array().expect("users").iter().map(|u| u["username"].as_str().expect("name").to_owned()).collect()
}

/// The replies of an interactive session, one per command.
fn replies(out: &CliOutput) -> Vec<Value> {
    out.stdout
        .split("aws-cloudhsm > ")
        .filter(|s| !s.trim().is_empty())
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")))
        .collect()
}

#[test]
fn with_two_clusters_configured_every_command_needs_a_known_cluster_id() {
    let (a, b) = (cluster_with_alice(), cluster_with_alice());
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    let config = config_file(a.dir.path(), &[(&id_a, &a), (&id_b, &b)]);

    let required = format!("--cluster-id is required: 2 clusters are configured ({id_a}, {id_b})");
    for args in [&["user", "list"][..], &["cluster", "hsm-info"], &["key", "list"], &["logout"]] {
        assert_eq!(cli(&config, &ADMIN, args, None).err(), required, "{args:?}");
    }
    assert_eq!(
        cli(&config, &ADMIN, &["user", "list", "--cluster-id", "cluster-nosuch"], None).err(),
        format!("--cluster-id cluster-nosuch: no cluster with this id is configured (configured: {id_a}, {id_b})")
    );
    // Both ids work, placed anywhere on the line.
    cli(&config, &ADMIN, &["--cluster-id", &id_a, "user", "list"], None).ok();
    cli(&config, &ADMIN, &["user", "list", "--cluster-id", &id_b], None).ok();

    // A file that points an id at another cluster's HSMs is refused before
    // anything is done there.
    let wrong = tempfile::tempdir().expect("temp dir");
    let mislabelled = config_file(wrong.path(), &[("cluster-mislabelled", &a)]);
    let refused = cli(
        &mislabelled,
        &ADMIN,
        &["user", "create", "--username", "mallory", "--role", "crypto-user", "--password", "mallory-pass"],
        None,
    )
    .err();
    assert!(
        refused.starts_with("cluster cluster-mislabelled: its HSMs (")
            && refused.contains(&format!("report cluster id {id_a}; the configuration points cluster-mislabelled")),
        "{refused}"
    );
    assert!(!usernames(&a.cli(&ADMIN, &["user", "list"]).ok()).contains(&"mallory".to_owned()));

    // One configured cluster needs no --cluster-id.
    let single = config_file(wrong.path(), &[(&id_b, &b)]);
    cli(&single, &ADMIN, &["user", "list"], None).ok();
}

#[test]
fn each_cluster_id_reaches_its_own_cluster() {
    let (a, b) = (cluster_with_alice(), cluster_with_alice());
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    let config = config_file(a.dir.path(), &[(&id_a, &a), (&id_b, &b)]);

    let create = |id: &str, user: &str| {
        let password = format!("{user}-pass");
        cli(
            &config,
            &ADMIN,
            &[
                "user",
                "create",
                "--username",
                user,
                "--role",
                "crypto-user",
                "--password",
                &password,
                "--cluster-id",
                id,
            ],
            None,
        )
        .ok()
    };
    create(&id_a, "only_on_a");
    create(&id_b, "only_on_b");
    let list = |id: &str| usernames(&cli(&config, &ADMIN, &["user", "list", "--cluster-id", id], None).ok());
    assert_eq!(list(&id_a), ["admin", "alice", "app_user", "only_on_a"]);
    assert_eq!(list(&id_b), ["admin", "alice", "app_user", "only_on_b"]);
    // The same, asked of each cluster directly.
    assert!(!usernames(&b.cli(&ADMIN, &["user", "list"]).ok()).contains(&"only_on_a".to_owned()));

    // The single cluster of HSM_ENDPOINTS works as before, and takes
    // --cluster-id only when its HSMs report that id.
    a.cli(&ADMIN, &["user", "list"]).ok();
    a.cli(&ADMIN, &["user", "list", "--cluster-id", &id_a]).ok();
    let refused = a.cli(&ADMIN, &["user", "list", "--cluster-id", &id_b]).err();
    assert!(refused.starts_with(&format!("cluster {id_b}: its HSMs (")), "{refused}");
    assert!(refused.contains(&format!("report cluster id {id_a}")), "{refused}");
}

#[test]
fn interactive_cluster_id_is_the_default_and_each_cluster_keeps_its_session() {
    let (a, b) = (cluster_with_alice(), cluster_with_alice());
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    let config = config_file(a.dir.path(), &[(&id_a, &a), (&id_b, &b)]);

    let script = format!(
        "login --username admin --role admin --password admin-pass\n\
         user create --username bob --role crypto-user --password bob-pass\n\
         login --username admin --role admin --password admin-pass --cluster-id {id_a}\n\
         user list --cluster-id {id_a}\n\
         user list\n\
         quit\n"
    );
    let out = cli(&config, &[], &["interactive", "--cluster-id", &id_b], Some(&script));
    assert!(out.success, "{}", out.stderr);
    let answers = replies(&out);
    assert_eq!(answers.len(), 5, "{}", out.stdout);
    assert_eq!(answers[0], json!({"error_code": 0, "data": {"username": "admin", "role": "admin"}}));
    assert_eq!(answers[1]["data"], json!({"username": "bob", "role": "crypto-user"}));
    assert_eq!(answers[2]["error_code"], 0, "{}", answers[2]);
    assert_eq!(usernames(&answers[3]["data"]), ["admin", "alice", "app_user"], "bob is on {id_b} only");
    assert_eq!(usernames(&answers[4]["data"]), ["admin", "alice", "app_user", "bob"], "the default is {id_b}");

    // Without a default, a command that names no cluster is refused.
    let out = cli(&config, &[], &["interactive"], Some("user list\nquit\n"));
    assert_eq!(
        replies(&out),
        [
            json!({"error_code": 1, "data": format!("--cluster-id is required: 2 clusters are configured ({id_a}, {id_b})")})
        ]
    );
    // An unknown default is refused at once.
    let out = cli(&config, &[], &["interactive", "--cluster-id", "cluster-nosuch"], Some("quit\n"));
    assert!(!out.success);
    assert_eq!(
        out.err(),
        format!("--cluster-id cluster-nosuch: no cluster with this id is configured (configured: {id_a}, {id_b})")
    );
}

#[test]
fn key_replicate_copies_a_key_to_a_clone_where_it_signs() {
    let source = cluster_with_alice();
    let clone = clone_of(&source);
    let (id_s, id_c) = (id_of(&source), id_of(&clone));
    assert_ne!(id_s, id_c);
    let config = config_file(source.dir.path(), &[(&id_s, &source), (&id_c, &clone)]);
    let on = |id: &str, env: &[(&str, &str)], line: &str| {
        let mut args: Vec<&str> = line.split_whitespace().collect();
        args.extend(["--cluster-id", id]);
        cli(&config, env, &args, None)
    };

    // A key made after the clone: only the source has it.
    let pair = on(
        &id_s,
        &ALICE,
        "key generate-asymmetric-pair ec --curve secp256r1 --public-label rep-pub --private-label rep-priv \
         --public-attributes verify=true --private-attributes sign=true",
    )
    .ok();
    let reference = pair["private_key"]["key-reference"].as_str().expect("reference").to_owned();
    let absent = on(&id_c, &ALICE, "key list --filter attr.label=rep-priv").ok();
    assert_eq!(absent["total_key_count"], 0, "{absent}");

    let mut env = ALICE.to_vec();
    env.extend(ALICE_AT_DESTINATION);
    let args = ["key", "replicate", "--filter", "attr.label=rep-priv", "--source-cluster-id", &id_s];
    let replicated = cli(&config, &env, &[&args[..], &["--destination-cluster-id", &id_c]].concat(), None).ok();
    assert_eq!(replicated["message"], "Successfully replicated key");
    let key = &replicated["key"];
    assert_eq!(key["key-reference"], reference.as_str(), "the key keeps its reference");
    assert_eq!(key["key-info"]["key-owners"], json!([{"username": "alice", "key-coverage": "full"}]), "{replicated}");
    assert_eq!(key["key-info"]["cluster-coverage"], "full");
    assert_eq!(key["attributes"]["label"], "rep-priv");
    assert_eq!(key["attributes"]["class"], "private-key");
    assert_eq!(key["attributes"]["sign"], true);
    let keys: Vec<&str> = replicated.as_object().expect("data").keys().map(String::as_str).collect();
    assert_eq!(keys, ["key", "message"]);

    // It signs on the clone; the source's public key verifies it, checked
    // with ring (the CLI's ECDSA signatures are raw r||s).
    let signed = on(
        &id_c,
        &ALICE,
        &format!("crypto sign ecdsa --key-filter attr.label=rep-priv --hash-function sha256 --data {MESSAGE}"),
    )
    .ok();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signed["signature"].as_str().expect("signature"))
        .expect("base64");
    let pem_path = source.dir.path().join("rep-pub.pem");
    let pem_arg = pem_path.display().to_string();
    on(&id_s, &ALICE, &format!("key generate-file --encoding pem --path {pem_arg} --filter attr.label=rep-pub")).ok();
    let pem = std::fs::read_to_string(&pem_path).expect("public key file");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let spki = base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body");
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
    let point = &spki[spki.len() - 65..];
    let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    assert!(public.verify(b"hello world", &signature).is_ok(), "the clone's signature verifies");
    assert!(public.verify(b"hello world!", &signature).is_err());

    // Again: the destination already holds it, which is as good.
    let again = cli(&config, &env, &[&args[..], &["--destination-cluster-id", &id_c]].concat(), None).ok();
    assert_eq!(again["key"]["key-reference"], reference.as_str());

    // Interactive mode: logged in to both clusters, by hand.
    let replicate =
        format!("key replicate --filter attr.label=rep2 --source-cluster-id {id_s} --destination-cluster-id {id_c}");
    let script = format!(
        "login --username alice --role crypto-user --password alice-pass --cluster-id {id_s}\n\
         key generate-symmetric aes --label rep2 --key-length-bytes 16 --cluster-id {id_s}\n\
         {replicate}\n\
         login --username alice --role crypto-user --password alice-pass --cluster-id {id_c}\n\
         {replicate}\n\
         key list --filter attr.label=rep2 --cluster-id {id_c}\n\
         quit\n"
    );
    let out = cli(&config, &[], &["interactive"], Some(&script));
    let answers = replies(&out);
    assert_eq!(answers.len(), 6, "{}", out.stdout);
    assert_eq!(
        answers[2],
        json!({"error_code": 1, "data": format!(
            "not logged in to the destination cluster {id_c}: log in to it first (login --cluster-id {id_c} ...)"
        )})
    );
    assert_eq!(answers[4]["data"]["message"], "Successfully replicated key", "{}", answers[4]);
    assert_eq!(answers[4]["data"]["key"]["key-reference"], answers[1]["data"]["key"]["key-reference"]);
    assert_eq!(answers[5]["data"]["total_key_count"], 1, "{}", answers[5]);

    // The same cluster twice, and an unknown one, are refused.
    let same = cli(&config, &env, &[&args[..], &["--destination-cluster-id", &id_s]].concat(), None).err();
    assert!(same.contains(&format!("both name {id_s}")), "{same}");
    let unknown =
        cli(&config, &env, &[&args[..], &["--destination-cluster-id", "cluster-nosuch"]].concat(), None).err();
    assert!(unknown.starts_with("--cluster-id cluster-nosuch: no cluster with this id is configured"), "{unknown}");
}

#[test]
fn key_replicate_refuses_a_cluster_that_is_not_a_clone_and_missing_destination_credentials() {
    let (source, stranger) = (cluster_with_alice(), cluster_with_alice());
    let (id_s, id_x) = (id_of(&source), id_of(&stranger));
    let config = config_file(source.dir.path(), &[(&id_s, &source), (&id_x, &stranger)]);
    let made = cli(
        &config,
        &ALICE,
        &["key", "generate-symmetric", "aes", "--label", "secret", "--key-length-bytes", "32", "--cluster-id", &id_s],
        None,
    )
    .ok();
    let reference = made["key"]["key-reference"].as_str().expect("reference").to_owned();
    let replicate = ["key", "replicate", "--filter", "attr.label=secret", "--source-cluster-id", &id_s];
    let replicate = [&replicate[..], &["--destination-cluster-id", &id_x]].concat();

    // Without the destination's credentials nothing is tried.
    assert_eq!(
        cli(&config, &ALICE, &replicate, None).err(),
        "key replicate: set DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN (username:password) to log in \
         to the destination cluster"
    );
    let mut env = ALICE.to_vec();
    env.extend(ALICE_AT_DESTINATION);
    let refused = cli(&config, &env, &replicate, None).err();
    assert!(
        refused.starts_with(&format!("destination cluster {id_x} is not a clone of source cluster {id_s}"))
            && refused.ends_with("nothing was written"),
        "{refused}"
    );
    let listed = cli(&config, &ALICE, &["key", "list", "--cluster-id", &id_x], None).ok();
    assert_eq!(listed["total_key_count"], 0, "{listed}");
    let by_reference = stranger.cli(&ADMIN, &["key", "list", "--filter", &format!("key-reference={reference}")]).ok();
    assert_eq!(by_reference["total_key_count"], 0, "{by_reference}");
}
