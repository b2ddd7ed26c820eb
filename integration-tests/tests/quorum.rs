//! Quorum authentication (M of N, token-sign) and admin MFA, against real
//! HSMs over TLS, with every approval and MFA signature made by the
//! `openssl` binary as the CloudHSM user guide shows:
//! `openssl pkeyutl -sign -inkey key.pem -pkeyopt digest:sha256 -in token.bin`.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hsm_client::{
    ClientError, CreateUser, DeregisterTrustAnchor, QuorumService, RegisterTrustAnchor, Role, Session,
    SetMtlsEnforcement, SetQuorumValue,
};
use integration_tests::{DevProcess, Options, TestHsm, bin_dir};
use serde_json::{Value, json};

const QUORUM_REFUSAL: &str = "Quorum approval is required for this operation";

/// An RSA-2048 key pair made by `openssl`, in files.
struct RsaKey {
    private: PathBuf,
    public: PathBuf,
}

impl RsaKey {
    fn generate(dir: &Path, name: &str) -> RsaKey {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        openssl(&["genrsa", "-out", path(&private), "2048"]);
        openssl(&["rsa", "-in", path(&private), "-outform", "PEM", "-pubout", "-out", path(&public)]);
        RsaKey { private, public }
    }

    /// The public key as SubjectPublicKeyInfo DER.
    fn spki(&self) -> Vec<u8> {
        let pem = std::fs::read_to_string(&self.public).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        B64.decode(body).unwrap()
    }

    /// `openssl pkeyutl -sign -pkeyopt digest:sha256` of the raw token bytes.
    fn sign(&self, token: &[u8]) -> Vec<u8> {
        let dir = self.private.parent().unwrap();
        let (input, output) = (dir.join("token.bin"), dir.join("token.sig"));
        std::fs::write(&input, token).unwrap();
        openssl(&[
            "pkeyutl",
            "-sign",
            "-inkey",
            path(&self.private),
            "-pkeyopt",
            "digest:sha256",
            "-in",
            path(&input),
            "-out",
            path(&output),
        ]);
        std::fs::read(&output).unwrap()
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("the openssl binary");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Adds `username`'s signature of the cluster's token to a quorum token
/// file, as an approver does by hand.
fn approve(file: &Path, username: &str, key: &RsaKey) {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let token = B64.decode(doc["token"].as_str().unwrap()).unwrap();
    let signature = B64.encode(key.sign(&token));
    doc["signatures"].as_array_mut().unwrap().push(json!({"username": username, "signature": signature}));
    std::fs::write(file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// Fills in `"signed"` of every token of a registration or MFA token file.
fn sign_mfa_file(file: &Path, key: &RsaKey) {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    for entry in doc["tokens"].as_array_mut().unwrap() {
        let token = B64.decode(entry["unsigned"].as_str().unwrap()).unwrap();
        entry["signed"] = json!(B64.encode(key.sign(&token)));
    }
    std::fs::write(file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn pin(username: &str, password: &str) -> [(&'static str, String); 2] {
    [("CLOUDHSM_ROLE", "admin".to_owned()), ("CLOUDHSM_PIN", format!("{username}:{password}"))]
}

fn env<'a>(pin: &'a [(&'static str, String); 2]) -> [(&'static str, &'a str); 2] {
    [(pin[0].0, pin[0].1.as_str()), (pin[1].0, pin[1].1.as_str())]
}

/// Runs `hsm-cli <args>` with `script` on standard input and answers its
/// prompts: each line of standard output goes to `answer`, and what it
/// returns is written to standard input. Returns the JSON documents printed.
fn cli_dialog(
    dev: &DevProcess,
    env: &[(&str, &str)],
    args: &[&str],
    script: &str,
    mut answer: impl FnMut(&str) -> Option<String>,
) -> Vec<Value> {
    let mut child = Command::new(bin_dir().join("hsm-cli"))
        .args(args)
        .env("HSM_ENDPOINTS", &dev.endpoint)
        .env("HSM_CA_CERT", &dev.ca_cert)
        .env_remove("CLOUDHSM_ROLE")
        .env_remove("CLOUDHSM_PIN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Vec::new();
    let mut buffered = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        eprintln!("hsm-cli: {line}");
        let line = line.trim_start_matches("aws-cloudhsm > ");
        if let Some(reply) = answer(line) {
            stdin.write_all(format!("{reply}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
            continue;
        }
        // JSON documents span several lines; collect until one parses.
        buffered.push_str(line);
        buffered.push('\n');
        if let Ok(value) = serde_json::from_str::<Value>(&buffered) {
            printed.push(value);
            buffered.clear();
        }
    }
    drop(stdin);
    child.wait().unwrap();
    printed
}

/// Registers `username`'s quorum key through the CLI: a registration token
/// from every HSM, signed with the key, then `user change-quorum token-sign
/// register`.
fn register_quorum_key(dev: &DevProcess, dir: &Path, username: &str, password: &str, key: &RsaKey) {
    let who = pin(username, password);
    let file = dir.join(format!("{username}-registration.json"));
    let generated =
        dev.cli(&env(&who), &["quorum", "token-sign", "generate", "--service", "registration", "--token", path(&file)]);
    assert_eq!(generated.ok(), json!({"path": path(&file)}));
    sign_mfa_file(&file, key);
    let registered = dev.cli(
        &env(&who),
        &[
            "user",
            "change-quorum",
            "token-sign",
            "register",
            "--public-key",
            path(&key.public),
            "--signed-token",
            path(&file),
        ],
    );
    assert_eq!(registered.ok(), json!({"username": username, "role": "admin"}));
}

#[test]
fn user_management_needs_two_distinct_registered_admins_once_quorum_is_two() {
    let dev = DevProcess::start(&["--hsms", "2"]);
    let dir = dev.dir.path().to_owned();
    assert_eq!(
        dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok(),
        json!("Cluster activation successful")
    );
    let admin = pin("admin", "admin-pass");
    for name in ["admin2", "admin3"] {
        let created = dev
            .cli(&env(&admin), &["user", "create", "--username", name, "--role", "admin", "--password", "admin-pass"]);
        assert_eq!(created.ok(), json!({"username": name, "role": "admin"}));
    }
    let (k1, k2, stranger) =
        (RsaKey::generate(&dir, "admin"), RsaKey::generate(&dir, "admin2"), RsaKey::generate(&dir, "stranger"));

    // Quorum 2 needs two registered approvers first.
    let early =
        dev.cli(&env(&admin), &["quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "2"]);
    assert!(early.err().contains("registered quorum key"), "{}", early.err());

    register_quorum_key(&dev, &dir, "admin", "admin-pass", &k1);
    register_quorum_key(&dev, &dir, "admin2", "admin-pass", &k2);
    let users = dev.cli(&env(&admin), &["user", "list"]).ok();
    let registered: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["quorum"] == json!([{"strategy": "token-sign", "status": "enabled"}]))
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(registered, ["admin", "admin2"], "{users}");

    let set = dev.cli(&env(&admin), &["quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "2"]);
    assert_eq!(set.ok(), json!("Set quorum value successful"));
    let values = dev.cli(&env(&admin), &["quorum", "token-sign", "list-quorum-values"]).ok();
    assert_eq!(values, json!({"user": 2, "quorum": 1, "cluster": 1}));

    // Without approval: CloudHSM's refusal, on every HSM.
    let create = ["user", "create", "--username", "carol", "--role", "crypto-user", "--password", "carol-pass"];
    assert_eq!(dev.cli(&env(&admin), &create).err(), QUORUM_REFUSAL);

    // One token per HSM; two distinct registered admins sign each.
    let signed = |name: &str, service: &str, signers: &[(&str, &RsaKey)]| {
        let file = dir.join(name);
        let generate = ["quorum", "token-sign", "generate", "--service", service, "--token", path(&file)];
        assert_eq!(dev.cli(&env(&admin), &generate).ok(), json!({"path": path(&file)}));
        for (username, key) in signers {
            approve(&file, username, key);
        }
        file
    };
    let delete_carol = |who: &[(&'static str, String); 2], approval: &Path| {
        let args = ["user", "delete", "--username", "carol", "--role", "crypto-user", "--approval", path(approval)];
        dev.cli(&env(who), &args)
    };
    let token = signed("user.token", "user", &[("admin", &k1), ("admin2", &k2)]);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&token).unwrap()).unwrap();
    assert!(file["approval_data"].is_string() && file["token"].is_string(), "one token for the cluster: {file}");
    let listed = dev.cli(&env(&admin), &["quorum", "token-sign", "list"]).ok();
    assert_eq!(listed["tokens"][0]["service"], "user");
    assert_eq!(listed["tokens"][0]["approvals-required"], 2);
    assert_eq!(listed["tokens"][0]["cluster-coverage"], "full");
    let approved: Vec<&str> = create.iter().copied().chain(["--approval", path(&token)]).collect();
    assert_eq!(dev.cli(&env(&admin), &approved).ok(), json!({"username": "carol", "role": "crypto-user"}));
    // Used up: the same approval again is refused.
    assert!(delete_carol(&admin, &token).err().contains("unknown to this HSM"), "replay");

    // A token signed twice by the same admin has one approver.
    let twice = signed("twice.token", "user", &[("admin", &k1), ("admin", &k1)]);
    let refused = delete_carol(&admin, &twice).err();
    assert!(refused.starts_with(QUORUM_REFUSAL) && refused.contains("1 distinct"), "{refused}");
    // A signature by a key that is not the registered one.
    let forged = signed("forged.token", "user", &[("admin", &k1), ("admin2", &stranger)]);
    assert!(delete_carol(&admin, &forged).err().contains("'admin2' does not verify"));
    // An admin with no registered key.
    let unregistered = signed("unregistered.token", "user", &[("admin", &k1), ("admin3", &stranger)]);
    assert!(delete_carol(&admin, &unregistered).err().contains("'admin3' has no registered quorum key"));
    // A token for another service.
    let wrong = signed("quorum.token", "quorum", &[("admin", &k1), ("admin2", &k2)]);
    assert!(delete_carol(&admin, &wrong).err().contains("for the quorum service, not the user service"));
    // Another admin cannot use admin's token.
    assert!(delete_carol(&pin("admin2", "admin-pass"), &unregistered).err().contains("issued to 'admin'"));
    assert_eq!(
        dev.cli(&env(&admin), &["quorum", "token-sign", "delete", "--scope", "all"]).ok(),
        json!("Deletion of quorum token(s) successful")
    );

    // A restart keeps the registrations and the quorum values.
    let dev = dev.restart(&["--hsms", "2"]);
    let values = dev.cli(&env(&admin), &["quorum", "token-sign", "list-quorum-values"]).ok();
    assert_eq!(values, json!({"user": 2, "quorum": 1, "cluster": 1}));
    let create_dave = create.map(|a| if a == "carol" { "dave" } else { a });
    assert_eq!(dev.cli(&env(&admin), &create_dave).err(), QUORUM_REFUSAL);
    let token = dir.join("after-restart.token");
    dev.cli(&env(&admin), &["quorum", "token-sign", "generate", "--service", "user", "--token", path(&token)]).ok();
    approve(&token, "admin", &k1);
    approve(&token, "admin2", &k2);
    let delete = ["user", "delete", "--username", "carol", "--role", "crypto-user", "--approval", path(&token)];
    assert_eq!(dev.cli(&env(&admin), &delete).ok(), json!({"username": "carol", "role": "crypto-user"}));
}

#[test]
fn an_admin_with_mfa_logs_in_only_with_a_token_signed_by_their_key() {
    let dev = DevProcess::start(&["--hsms", "2"]);
    let dir = dev.dir.path().to_owned();
    dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok();
    let admin = pin("admin", "admin-pass");
    dev.cli(
        &env(&admin),
        &["user", "create", "--username", "officer1", "--role", "admin", "--password", "officer-pass"],
    )
    .ok();
    let key = RsaKey::generate(&dir, "officer1");
    let other = RsaKey::generate(&dir, "other");

    // An admin turns MFA on for officer1: unsigned tokens are written, the
    // signed file and the public key are asked for.
    let unsigned = dir.join("unsigned-tokens.json");
    let public = key.public.clone();
    let out = cli_dialog(
        &dev,
        &env(&admin),
        &[
            "user",
            "change-mfa",
            "token-sign",
            "--username",
            "officer1",
            "--role",
            "admin",
            "--change-password",
            "officer-pass",
            "--token",
            path(&unsigned),
        ],
        "",
        |line| {
            if line.starts_with("Enter signed token file path") {
                let file: Value = serde_json::from_str(&std::fs::read_to_string(&unsigned).unwrap()).unwrap();
                assert_eq!(file["version"], "2.0");
                assert_eq!(file["tokens"].as_array().unwrap().len(), 2, "one token per HSM: {file}");
                sign_mfa_file(&unsigned, &key);
                Some(String::new())
            } else if line.starts_with("Enter public key PEM file path") {
                Some(path(&public).to_owned())
            } else {
                None
            }
        },
    );
    assert_eq!(
        out.last(),
        Some(&json!({"error_code": 0, "data": {"username": "officer1", "role": "admin"}})),
        "{out:?}"
    );
    let users = dev.cli(&env(&admin), &["user", "list"]).ok();
    let officer = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "officer1").unwrap();
    assert_eq!(officer["mfa"], json!([{"strategy": "token-sign", "status": "enabled"}]));

    // The password alone no longer logs in.
    let officer = pin("officer1", "officer-pass");
    assert!(dev.cli(&env(&officer), &["user", "list"]).err().contains("MFA on"));

    // Interactive login with the token-sign strategy.
    let login = dir.join("login-tokens.json");
    let login_with = |signer: &RsaKey| {
        let login = login.clone();
        cli_dialog(
            &dev,
            &[],
            &["interactive"],
            &format!(
                "login --username officer1 --role admin --password officer-pass mfa-token-sign --token {}\n",
                path(&login)
            ),
            |line| {
                line.starts_with("Enter signed token file path").then(|| {
                    sign_mfa_file(&login, signer);
                    format!("{}\nuser list\nquit", path(&login))
                })
            },
        )
    };
    let out = login_with(&key);
    assert_eq!(out[0], json!({"error_code": 0, "data": {"username": "officer1", "role": "admin"}}));
    assert!(out[1]["data"]["users"].is_array(), "logged in: {out:?}");
    let out = login_with(&other);
    assert_eq!(out[0]["error_code"], 1, "a token signed by another key: {out:?}");
    assert!(out[0]["data"].as_str().unwrap().contains("login failed"), "{out:?}");

    // MFA off again: the password is enough.
    let off = dev.cli(
        &env(&admin),
        &[
            "user",
            "change-mfa",
            "token-sign",
            "--username",
            "officer1",
            "--role",
            "admin",
            "--change-password",
            "officer-pass",
            "--deregister",
        ],
    );
    assert_eq!(off.ok(), json!({"username": "officer1", "role": "admin"}));
    assert!(dev.cli(&env(&officer), &["user", "list"]).ok()["users"].is_array());
}

/// Registers the session user's quorum key through the typed client.
async fn register(session: &Session, key: &RsaKey) {
    let token = session.generate_quorum_token(QuorumService::Registration).await.unwrap();
    let signature = key.sign(&token.token);
    session.register_quorum_key(&key.spki(), &[(token.token, signature)]).await.unwrap();
}

fn signed(session_token: &hsm_client::QuorumToken, signers: &[(&str, &RsaKey)]) -> hsm_client::Approval {
    hsm_client::Approval {
        hsm_id: session_token.hsm_id.clone(),
        token: session_token.token.clone(),
        approval_data: Vec::new(),
        signatures: signers.iter().map(|(name, key)| ((*name).to_owned(), key.sign(&session_token.token))).collect(),
    }
}

#[tokio::test]
async fn tokens_expire_after_ten_minutes_of_the_hsm_clock_and_an_hsm_holds_1024() {
    // Sessions outlive the tokens here.
    let hsm = TestHsm::start(Options { session_idle_timeout: Duration::from_secs(3_600), ..Options::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.unwrap();
    admin.create_user(CreateUser::new("cu", Role::CryptoUser, "cu-pass1")).await.unwrap();
    let admin2 = hsm.login("admin2", Role::Admin, "admin2-pass").await;
    let (k1, k2) = (RsaKey::generate(dir.path(), "a1"), RsaKey::generate(dir.path(), "a2"));
    register(&admin, &k1).await;
    register(&admin2, &k2).await;
    admin.set_quorum_value(SetQuorumValue::new(QuorumService::User, 2)).await.unwrap();

    let token = admin.generate_quorum_token(QuorumService::User).await.unwrap();
    let approval = signed(&token, &[("admin", &k1), ("admin2", &k2)]);
    hsm.clock.advance(Duration::from_secs(10 * 60));
    let late = admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1").approval(&approval)).await;
    assert!(matches!(&late, Err(ClientError::FailedPrecondition(m)) if m.contains("expired")), "{late:?}");

    let token = admin.generate_quorum_token(QuorumService::User).await.unwrap();
    hsm.clock.advance(Duration::from_secs(9 * 60));
    let approval = signed(&token, &[("admin", &k1), ("admin2", &k2)]);
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1").approval(&approval)).await.unwrap();

    // Crypto users hold many key-service tokens; the HSM at most 1,024.
    let cu = hsm.login("cu", Role::CryptoUser, "cu-pass1").await;
    for _ in 0..1_024 {
        cu.generate_quorum_token(QuorumService::KeyUsage).await.unwrap();
    }
    let full = cu.generate_quorum_token(QuorumService::KeyUsage).await;
    assert!(matches!(full, Err(ClientError::ResourceExhausted(m)) if m.contains("1024 quorum tokens")));
    // Admin services are for admins.
    assert!(matches!(cu.generate_quorum_token(QuorumService::User).await, Err(ClientError::PermissionDenied(_))));
    assert_eq!(cu.delete_quorum_tokens(false).await.unwrap(), 1_024);
    cu.generate_quorum_token(QuorumService::KeyUsage).await.unwrap();
    hsm.clock.advance(Duration::from_secs(10 * 60));
    assert!(admin.list_quorum_tokens().await.unwrap().is_empty(), "expired tokens are gone");
}

#[tokio::test]
async fn a_three_hsm_cluster_keeps_keys_and_values_on_every_hsm_and_each_hsm_spends_its_own_token() {
    let cluster = integration_tests::TestCluster::start(3, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = cluster.client().await;
    let admin = client.login("admin", Role::Admin, integration_tests::ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.unwrap();
    let admin2 = client.login("admin2", Role::Admin, "admin2-pass").await.unwrap();
    let (k1, k2) = (RsaKey::generate(dir.path(), "a1"), RsaKey::generate(dir.path(), "a2"));
    for (session, key) in [(&admin, &k1), (&admin2, &k2)] {
        let tokens = session.generate_quorum_token(QuorumService::Registration).await.unwrap();
        let signed: Vec<_> = tokens.succeeded().map(|(_, t)| (t.token.clone(), key.sign(&t.token))).collect();
        assert_eq!(signed.len(), 3, "one registration token per HSM");
        session.register_quorum_key(&key.spki(), &signed).await.unwrap();
    }
    admin.set_quorum_value(SetQuorumValue::new(QuorumService::User, 2)).await.unwrap();
    let digests = cluster.digests().await;
    assert!(digests.iter().all(|d| d.is_some() && d == &digests[0]), "in step: {digests:?}");

    let refused = admin.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-pass")).await.unwrap_err();
    assert_eq!(refused, ClientError::FailedPrecondition(QUORUM_REFUSAL.into()));
    let tokens = admin.generate_quorum_token(QuorumService::User).await.unwrap();
    // One token for the cluster (every HSM's approval data joined), signed
    // once by each approver, as the CloudHSM CLI's token file carries it.
    let mut joined = hsm_client::Approval::joined(tokens.succeeded().map(|(_, t)| t));
    joined.signatures = [("admin", &k1), ("admin2", &k2)]
        .into_iter()
        .map(|(name, key)| (name.to_owned(), key.sign(&joined.token)))
        .collect();
    let approval = hsm_client::ClusterApproval::Joined(joined);
    let created =
        admin.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-pass").approval(&approval)).await.unwrap();
    assert_eq!(created.succeeded().count(), 3, "each HSM took its own approved token");
    let users = admin.list_users().await.unwrap();
    let admin2_row = users.users.iter().find(|u| u.username == "admin2").unwrap();
    assert!(admin2_row.per_hsm.iter().all(|(_, u)| u.as_ref().is_some_and(|u| u.quorum)));
}

/// An HSM added with `init --add` clones the registered keys, MFA and the
/// quorum values before it serves, and refuses unapproved user changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hsm_clones_registered_keys_and_quorum_values() {
    use integration_tests::{TestRsaKey, process::ClusterDir};

    let cluster = ClusterDir::init(1);
    let hsm1 = cluster.start_hsm_with(1, &[], &[]);
    let client = hsm1.client().await;
    client.activate("admin-pass").await.unwrap();
    let admin = client.login("admin", Role::Admin, "admin-pass").await.unwrap();
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.unwrap();
    let admin2 = client.login("admin2", Role::Admin, "admin2-pass").await.unwrap();
    let key = TestRsaKey::fixed();
    for session in [&admin, &admin2] {
        let token = session.generate_quorum_token(QuorumService::Registration).await.unwrap();
        let signed = [(token.token.clone(), key.sign(&token.approval_data))];
        session.register_quorum_key(&key.spki(), &signed).await.unwrap();
    }
    admin.set_quorum_value(SetQuorumValue::new(QuorumService::User, 2)).await.unwrap();
    admin2.logout().await.unwrap();

    let out = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(["--add", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hsm2 = cluster.start_hsm_with(2, &[], &[]);
    assert!(hsm2.stderr_text().contains("cloned from the peer"), "{}", hsm2.stderr_text());
    let admin_on_2 = hsm2.client().await.login("admin", Role::Admin, "admin-pass").await.unwrap();
    let values = admin_on_2.list_quorum_values().await.unwrap();
    assert!(values.contains(&(QuorumService::User, 2)), "{values:?}");
    let users = admin_on_2.list_users().await.unwrap();
    let registered: Vec<&str> = users.iter().filter(|u| u.quorum).map(|u| u.username.as_str()).collect();
    assert_eq!(registered, ["admin", "admin2"]);
    let refused = admin_on_2.create_user(CreateUser::new("carol", Role::CryptoUser, "carol-pass")).await.unwrap_err();
    assert_eq!(refused, ClientError::FailedPrecondition(QUORUM_REFUSAL.into()));
    assert_eq!(
        admin_on_2.sync_status().await.unwrap().digest,
        admin.sync_status().await.unwrap().digest,
        "the clone is in step"
    );
}

/// Per-key quorum: a key made with a use quorum value of 2 signs only
/// with a key-usage approval by two of its owner and shared users, and one
/// with a manage quorum value of 2 is shared only with a key-management
/// approval.
#[test]
fn a_key_with_quorum_values_signs_and_changes_only_with_its_users_approval() {
    let dev = DevProcess::start(&["--hsms", "2"]);
    let dir = dev.dir.path().to_owned();
    dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok();
    let admin = pin("admin", "admin-pass");
    for cu in ["cu1", "cu2", "cu3"] {
        let password = format!("{cu}-pass");
        let create = ["user", "create", "--username", cu, "--role", "crypto-user", "--password", &password];
        dev.cli(&env(&admin), &create).ok();
    }
    let cu =
        |name: &str| [("CLOUDHSM_ROLE", "crypto-user".to_owned()), ("CLOUDHSM_PIN", format!("{name}:{name}-pass"))];
    let (k1, k2, k3) = (RsaKey::generate(&dir, "cu1"), RsaKey::generate(&dir, "cu2"), RsaKey::generate(&dir, "cu3"));
    for (name, key) in [("cu1", &k1), ("cu2", &k2), ("cu3", &k3)] {
        let file = dir.join(format!("{name}-registration.json"));
        let generate = ["quorum", "token-sign", "generate", "--service", "registration", "--token", path(&file)];
        dev.cli(&env(&cu(name)), &generate).ok();
        sign_mfa_file(&file, key);
        let register = ["user", "change-quorum", "token-sign", "register", "--public-key", path(&key.public)];
        let register: Vec<&str> = register.into_iter().chain(["--signed-token", path(&file)]).collect();
        assert_eq!(dev.cli(&env(&cu(name)), &register).ok(), json!({"username": name, "role": "crypto-user"}));
    }

    let generated = dev.cli(
        &env(&cu("cu1")),
        &[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "secp256r1",
            "--public-label",
            "team-pub",
            "--private-label",
            "team-priv",
            "--public-attributes",
            "verify=true",
            "--private-attributes",
            "sign=true",
            "--share-crypto-users",
            "cu2",
            "--use-private-key-quorum-value",
            "2",
            "--manage-private-key-quorum-value",
            "2",
        ],
    );
    let private = &generated.ok()["private_key"]["key-info"]["key-quorum-values"];
    assert_eq!(private, &json!({"manage-key-quorum-value": 2, "use-key-quorum-value": 2}));
    let too_many = dev.cli(
        &env(&cu("cu1")),
        &[
            "key",
            "generate-symmetric",
            "aes",
            "--label",
            "x",
            "--key-length-bytes",
            "16",
            "--use-key-quorum-value",
            "2",
        ],
    );
    assert!(too_many.err().contains("more than the 1 user(s)"), "a value above the key's users");

    let sign = |who: &[(&'static str, String); 2], approval: Option<&Path>| {
        let mut args = vec!["crypto", "sign", "ecdsa", "--key-filter", "attr.label=team-priv", "--hash-function"];
        args.extend(["sha256", "--data", "aGVsbG8="]);
        if let Some(file) = approval {
            args.extend(["--approval", path(file)]);
        }
        dev.cli(&env(who), &args)
    };
    assert_eq!(sign(&cu("cu1"), None).err(), QUORUM_REFUSAL);
    let token = |who: &str, service: &str, signers: &[(&str, &RsaKey)]| {
        let file = dir.join(format!("{who}-{service}-{}.token", signers.len()));
        let generate = ["quorum", "token-sign", "generate", "--service", service, "--token", path(&file)];
        dev.cli(&env(&cu(who)), &generate).ok();
        for (name, key) in signers {
            approve(&file, name, key);
        }
        file
    };
    // cu3 is registered but neither owns nor shares the key.
    let outsider = token("cu1", "key-usage", &[("cu1", &k1), ("cu3", &k3)]);
    assert!(sign(&cu("cu1"), Some(&outsider)).err().contains("'cu3' neither owns the key nor shares it"));
    let approved = token("cu2", "key-usage", &[("cu1", &k1), ("cu2", &k2)]);
    assert!(sign(&cu("cu2"), Some(&approved)).ok()["signature"].is_string(), "the shared user signs");
    assert!(sign(&cu("cu2"), Some(&approved)).err().contains("unknown to this HSM"), "spent");

    // Management: sharing with cu3 needs a key-management approval.
    let share = |approval: Option<&Path>| {
        let mut args = vec!["key", "share", "--filter", "attr.label=team-priv", "--username", "cu3"];
        args.extend(["--role", "crypto-user"]);
        if let Some(file) = approval {
            args.extend(["--approval", path(file)]);
        }
        dev.cli(&env(&cu("cu1")), &args)
    };
    assert_eq!(share(None).err(), QUORUM_REFUSAL);
    let usage_token = token("cu1", "key-usage", &[("cu1", &k1), ("cu2", &k2)]);
    assert!(share(Some(&usage_token)).err().contains("for the key-usage service, not the key-management service"));
    let managed = token("cu1", "key-management", &[("cu1", &k1), ("cu2", &k2)]);
    assert_eq!(share(Some(&managed)).ok(), json!({"message": "Key shared successfully"}));

    // Wrapping (exporting) it is key management too.
    let wrapper = ["key", "generate-symmetric", "aes", "--label", "wrapper", "--key-length-bytes", "32"];
    dev.cli(&env(&cu("cu1")), &[&wrapper[..], &["--attributes", "wrap=true", "unwrap=true"]].concat()).ok();
    let wrap = |approval: Option<&Path>| {
        let mut args = vec!["key", "wrap", "aes-pkcs5-pad", "--payload-filter", "attr.label=team-priv"];
        args.extend(["--wrapping-filter", "attr.label=wrapper"]);
        if let Some(file) = approval {
            args.extend(["--approval", path(file)]);
        }
        dev.cli(&env(&cu("cu1")), &args)
    };
    assert_eq!(wrap(None).err(), QUORUM_REFUSAL);
    let managed = token("cu1", "key-management", &[("cu2", &k2), ("cu3", &k3)]);
    let wrapped = wrap(Some(&managed)).ok()["wrapped_key_data"].as_str().unwrap().to_owned();

    // Keys made by import and unwrap take shares and quorum values too.
    let pem = dir.join("imported.pem");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path(&pem)]);
    let quorum = ["--share-crypto-users", "cu2", "--use-key-quorum-value", "2", "--manage-key-quorum-value", "2"];
    let import = ["key", "import", "pem", "--path", path(&pem), "--label", "imported", "--key-type-class"];
    let imported =
        dev.cli(&env(&cu("cu1")), &[&import[..], &["ec-private", "--attributes", "sign=true"], &quorum].concat());
    let info = &imported.ok()["key"]["key-info"];
    assert_eq!(info["key-quorum-values"], json!({"manage-key-quorum-value": 2, "use-key-quorum-value": 2}));
    assert_eq!(info["shared-users"][0]["username"], "cu2");
    let sign_imported = ["crypto", "sign", "ecdsa", "--key-filter", "attr.label=imported", "--hash-function"];
    let sign_imported = [&sign_imported[..], &["sha256", "--data", "aGVsbG8="]].concat();
    assert_eq!(dev.cli(&env(&cu("cu1")), &sign_imported).err(), QUORUM_REFUSAL);
    let unwrap = ["key", "unwrap", "aes-pkcs5-pad", "--filter", "attr.label=wrapper", "--key-type-class", "ec-private"];
    let unwrap = [&unwrap[..], &["--label", "unwrapped", "--data", &wrapped]].concat();
    let unwrapped = dev.cli(&env(&cu("cu1")), &[&unwrap[..], &["--attributes", "sign=true"], &quorum].concat());
    let info = &unwrapped.ok()["key"]["key-info"];
    assert_eq!(info["key-quorum-values"], json!({"manage-key-quorum-value": 2, "use-key-quorum-value": 2}));
    assert_eq!(info["shared-users"][0]["username"], "cu2");
    let too_many = dev.cli(&env(&cu("cu1")), &[&unwrap[..], &["--use-key-quorum-value", "2"]].concat());
    assert!(too_many.err().contains("more than the 1 user(s)"), "a value above the unwrapped key's users");
}

/// The `cluster` service's quorum value gates the cluster-wide mTLS
/// settings: registering and deregistering trust anchors and setting the
/// enforcement level.
#[tokio::test]
async fn the_cluster_quorum_value_gates_the_mtls_settings() {
    let hsm = TestHsm::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("admin2", Role::Admin, "admin2-pass")).await.unwrap();
    let admin2 = hsm.login("admin2", Role::Admin, "admin2-pass").await;
    let (k1, k2) = (RsaKey::generate(dir.path(), "a1"), RsaKey::generate(dir.path(), "a2"));
    register(&admin, &k1).await;
    register(&admin2, &k2).await;
    let anchor = hsm_daemon::pki::generate_ca("operators").unwrap().cert_pem;
    // Quorum off: no approval needed.
    admin.register_trust_anchor(RegisterTrustAnchor::new(&anchor)).await.unwrap();
    admin.set_quorum_value(SetQuorumValue::new(QuorumService::Cluster, 2)).await.unwrap();

    let refused = admin.deregister_trust_anchor(DeregisterTrustAnchor::new("0x01")).await.unwrap_err();
    assert_eq!(refused, ClientError::FailedPrecondition(QUORUM_REFUSAL.into()));
    let other = hsm_daemon::pki::generate_ca("others").unwrap().cert_pem;
    let refused = admin.register_trust_anchor(RegisterTrustAnchor::new(&other)).await.unwrap_err();
    assert_eq!(refused, ClientError::FailedPrecondition(QUORUM_REFUSAL.into()));
    let refused = admin.set_mtls_enforcement(SetMtlsEnforcement::new(hsm_client::MtlsLevel::None)).await.unwrap_err();
    assert_eq!(refused, ClientError::FailedPrecondition(QUORUM_REFUSAL.into()));
    assert_eq!(admin.list_trust_anchors().await.unwrap().len(), 1, "nothing changed");

    // A user-service token does not approve a cluster change.
    let token = admin.generate_quorum_token(QuorumService::User).await.unwrap();
    let wrong = signed(&token, &[("admin", &k1), ("admin2", &k2)]);
    assert!(admin.register_trust_anchor(RegisterTrustAnchor::new(&other).approval(&wrong)).await.is_err());
    // One approver is not enough; two are.
    let token = admin.generate_quorum_token(QuorumService::Cluster).await.unwrap();
    let one = signed(&token, &[("admin", &k1)]);
    let refused = admin.register_trust_anchor(RegisterTrustAnchor::new(&other).approval(&one)).await.unwrap_err();
    assert!(matches!(&refused, ClientError::FailedPrecondition(m) if m.contains("2 needed")), "{refused:?}");
    let token = admin.generate_quorum_token(QuorumService::Cluster).await.unwrap();
    let two = signed(&token, &[("admin", &k1), ("admin2", &k2)]);
    let registered = admin.register_trust_anchor(RegisterTrustAnchor::new(&other).approval(&two)).await.unwrap();
    assert_eq!(registered.reference, "0x02");
    let token = admin.generate_quorum_token(QuorumService::Cluster).await.unwrap();
    let two = signed(&token, &[("admin", &k1), ("admin2", &k2)]);
    admin.deregister_trust_anchor(DeregisterTrustAnchor::new("0x01").approval(&two)).await.unwrap();
    assert_eq!(admin.list_trust_anchors().await.unwrap().len(), 1);
}
