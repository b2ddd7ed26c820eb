//! Quorum and MFA token files in the CloudHSM CLI's shapes, signed exactly
//! as AWS's user guide walks through it, with the `openssl` and `base64`
//! binaries and nothing of this project's code:
//!
//! ```sh
//! echo -n '<unsigned or token>' | base64 -d > token.bin
//! openssl pkeyutl -sign -inkey key.pem -pkeyopt digest:sha256 -keyform PEM -in token.bin -out token.sig.bin
//! base64 -w0 token.sig.bin
//! ```
//!
//! Registration files (`{"version", "tokens": [{"approval_data",
//! "unsigned", "signed"}]}`, one entry per HSM), approval files (`{"version",
//! "approval_data", "token", "signatures"}`, one token for the cluster) and
//! MFA files (`{"version", "tokens": [{"unsigned", "signed"}]}`) are checked
//! key by key and used for `user change-quorum token-sign register`, a
//! quorum-gated `user create`, `user change-mfa token-sign` (with
//! `--change-password`) and `login ... mfa-token-sign`. A tampered signature
//! is refused with `error_code` 1 every time.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use integration_tests::{DevProcess, bin_dir};
use serde_json::{Value, json};

const QUORUM_REFUSAL: &str = "Quorum approval is required for this operation";

/// An RSA-2048 key pair made by `openssl` as the guide does.
struct RsaKey {
    private: PathBuf,
    public: PathBuf,
}

impl RsaKey {
    fn generate(dir: &Path, name: &str) -> RsaKey {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        run("openssl", &["genrsa", "-out", path(&private), "2048"]);
        run("openssl", &["rsa", "-in", path(&private), "-outform", "PEM", "-pubout", "-out", path(&public)]);
        RsaKey { private, public }
    }

    /// The guide's three steps for one base64 token: decode it to a file,
    /// `openssl pkeyutl -sign -pkeyopt digest:sha256` it, base64 the
    /// signature. Returns the base64 signature.
    fn sign_b64(&self, token_b64: &str) -> String {
        let dir = self.private.parent().unwrap();
        let (bin, sig) = (dir.join("token.bin"), dir.join("token.sig.bin"));
        let script = format!(
            "echo -n '{token_b64}' | base64 -d > '{bin}' && \
             openssl pkeyutl -sign -inkey '{key}' -pkeyopt digest:sha256 -keyform PEM -in '{bin}' -out '{sig}' && \
             base64 -w0 '{sig}'",
            bin = path(&bin),
            key = path(&self.private),
            sig = path(&sig),
        );
        run("sh", &["-c", &script])
    }
}

/// Runs a program that must be there (CI installs openssl): a missing one
/// fails the test rather than skipping it.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(file: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn write(file: &Path, doc: &Value) {
    std::fs::write(file, serde_json::to_string_pretty(doc).unwrap()).unwrap();
}

fn keys(doc: &Value) -> BTreeSet<&str> {
    doc.as_object().unwrap().keys().map(String::as_str).collect()
}

fn sha256_b64(b64: &str) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, &B64.decode(b64).unwrap()))
}

/// Fills in every entry's `"signed"` of a registration or MFA token file.
fn sign_entries(file: &Path, key: &RsaKey) {
    let mut doc = read(file);
    for entry in doc["tokens"].as_array_mut().unwrap() {
        entry["signed"] = json!(key.sign_b64(entry["unsigned"].as_str().unwrap()));
    }
    write(file, &doc);
}

/// Appends `username`'s signature of the token to an approval file.
fn approve(file: &Path, username: &str, key: &RsaKey) {
    let mut doc = read(file);
    let signature = key.sign_b64(doc["token"].as_str().unwrap());
    doc["signatures"].as_array_mut().unwrap().push(json!({"username": username, "signature": signature}));
    write(file, &doc);
}

/// Replaces a base64 signature with another valid base64 string of the same
/// length whose bytes differ (the first character changed).
fn tamper(signature: &str) -> String {
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &signature[1..])
}

/// A registration token file's exact shape: one entry per HSM, each with
/// its approval data, the SHA-256 of it, and an empty signature.
fn assert_registration_shape(doc: &Value, hsms: usize) {
    assert_eq!(keys(doc), BTreeSet::from(["version", "tokens"]), "{doc}");
    assert_eq!(doc["version"], "2.0");
    let entries = doc["tokens"].as_array().unwrap();
    assert_eq!(entries.len(), hsms, "one token per HSM: {doc}");
    for entry in entries {
        assert_eq!(keys(entry), BTreeSet::from(["approval_data", "unsigned", "signed"]), "{entry}");
        assert_eq!(entry["signed"], "");
        let unsigned = entry["unsigned"].as_str().unwrap();
        assert_eq!(B64.decode(unsigned).unwrap().len(), 32);
        assert_eq!(sha256_b64(entry["approval_data"].as_str().unwrap()), unsigned, "unsigned = SHA-256(approval_data)");
    }
    let distinct: BTreeSet<&str> = entries.iter().map(|e| e["approval_data"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), hsms, "each HSM's approval data is its own");
}

fn pin(role: &str, username: &str, password: &str) -> [(&'static str, String); 2] {
    [("CLOUDHSM_ROLE", role.to_owned()), ("CLOUDHSM_PIN", format!("{username}:{password}"))]
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

/// A two-HSM cluster, activated, with admin2 and admin registered as quorum
/// approvers through AWS-shaped registration files (checked key by key), a
/// tampered one refused first.
fn cluster_with_two_approvers() -> (DevProcess, PathBuf, RsaKey, RsaKey) {
    let dev = DevProcess::start(&["--hsms", "2"]);
    let dir = dev.dir.path().to_owned();
    dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok();
    let admin = pin("admin", "admin", "admin-pass");
    let create = ["user", "create", "--username", "admin2", "--role", "admin", "--password", "admin2-pass"];
    dev.cli(&env(&admin), &create).ok();
    let (k1, k2) = (RsaKey::generate(&dir, "admin"), RsaKey::generate(&dir, "admin2"));
    for (username, password, key) in [("admin", "admin-pass", &k1), ("admin2", "admin2-pass", &k2)] {
        let who = pin("admin", username, password);
        let file = dir.join(format!("{username}-registration.json"));
        let generate = ["quorum", "token-sign", "generate", "--service", "registration", "--token", path(&file)];
        assert_eq!(dev.cli(&env(&who), &generate).ok(), json!({"path": path(&file)}));
        assert_registration_shape(&read(&file), 2);
        sign_entries(&file, key);
        let register = |file: &Path| {
            dev.cli(
                &env(&who),
                &[
                    "user",
                    "change-quorum",
                    "token-sign",
                    "register",
                    "--public-key",
                    path(&key.public),
                    "--signed-token",
                    path(file),
                ],
            )
        };
        // Every "signed" tampered: refused, and nothing is registered.
        let mut forged = read(&file);
        for entry in forged["tokens"].as_array_mut().unwrap() {
            entry["signed"] = json!(tamper(entry["signed"].as_str().unwrap()));
        }
        let forged_file = dir.join(format!("{username}-forged.json"));
        write(&forged_file, &forged);
        assert!(register(&forged_file).err().contains("does not verify"), "a tampered signature");
        assert_eq!(register(&file).ok(), json!({"username": username, "role": "admin"}));
    }
    let users = dev.cli(&env(&admin), &["user", "list"]).ok();
    let registered: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["quorum"] == json!([{"strategy": "token-sign", "status": "enabled"}]))
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(registered, ["admin", "admin2"], "{users}");
    (dev, dir, k1, k2)
}

/// Writes an approval file for `service` as `who` and checks its exact
/// shape: one token for the cluster, the SHA-256 of every HSM's approval
/// data joined, with no signatures yet.
fn approval_file(dev: &DevProcess, who: &[(&'static str, String); 2], file: &Path, service: &str) {
    let generate = ["quorum", "token-sign", "generate", "--service", service, "--token", path(file)];
    assert_eq!(dev.cli(&env(who), &generate).ok(), json!({"path": path(file)}));
    let doc = read(file);
    assert_eq!(keys(&doc), BTreeSet::from(["version", "approval_data", "token", "signatures"]), "{doc}");
    assert_eq!(doc["version"], "2.0");
    assert_eq!(doc["signatures"], json!([]));
    let token = doc["token"].as_str().unwrap();
    assert_eq!(sha256_b64(doc["approval_data"].as_str().unwrap()), token, "token = SHA-256(approval_data)");
}

#[test]
fn registration_and_approval_files_signed_as_the_guide_says_gate_user_create() {
    let (dev, dir, k1, k2) = cluster_with_two_approvers();
    let admin = pin("admin", "admin", "admin-pass");
    let set = ["quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "2"];
    assert_eq!(dev.cli(&env(&admin), &set).ok(), json!("Set quorum value successful"));
    let create = |name: &str, approval: Option<&Path>| {
        let password = format!("{name}-pass1");
        let mut args = vec!["user", "create", "--username", name, "--role", "crypto-user", "--password", &password];
        if let Some(file) = approval {
            args.extend(["--approval", path(file)]);
        }
        dev.cli(&env(&admin), &args)
    };
    assert_eq!(create("carol", None).err(), QUORUM_REFUSAL);

    // One token for both HSMs; each admin signs it once.
    let file = dir.join("user.token");
    approval_file(&dev, &admin, &file, "user");
    approve(&file, "admin", &k1);
    approve(&file, "admin2", &k2);
    let signed = read(&file);
    assert_eq!(keys(&signed["signatures"][1]), BTreeSet::from(["username", "signature"]));
    // A tampered signature of admin2's: refused, the token left for a retry.
    let mut forged = signed.clone();
    forged["signatures"][1]["signature"] = json!(tamper(signed["signatures"][1]["signature"].as_str().unwrap()));
    let forged_file = dir.join("forged.token");
    write(&forged_file, &forged);
    let refused = create("carol", Some(&forged_file)).err();
    assert!(refused.contains("'admin2' does not verify"), "{refused}");
    // The file as signed: carol exists on both HSMs.
    assert_eq!(create("carol", Some(&file)).ok(), json!({"username": "carol", "role": "crypto-user"}));
    let users = dev.cli(&env(&admin), &["user", "list"]).ok();
    let carol = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "carol").unwrap();
    assert_eq!(carol["cluster-coverage"], "full", "{carol}");
    // Spent on every HSM: the same file approves nothing more.
    assert!(create("dave", Some(&file)).err().contains("unknown to this HSM"));

    // The quorum service's own approval file has the same shape.
    let file = dir.join("quorum.token");
    approval_file(&dev, &admin, &file, "quorum");
    // A registration file is no approval.
    let registration = dir.join("admin-registration.json");
    let wrong = create("dave", Some(&registration)).err();
    assert!(wrong.contains("registration or MFA token file"), "{wrong}");
}

#[test]
fn mfa_files_signed_as_the_guide_says_register_and_log_in_and_change_mfa_sets_the_password() {
    let (dev, dir, k1, k2) = cluster_with_two_approvers();
    let admin = pin("admin", "admin", "admin-pass");
    let create = ["user", "create", "--username", "officer1", "--role", "admin", "--password", "officer-old1"];
    dev.cli(&env(&admin), &create).ok();
    let set = ["quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "2"];
    dev.cli(&env(&admin), &set).ok();
    let officer_key = RsaKey::generate(&dir, "officer1");
    let stranger = RsaKey::generate(&dir, "stranger");
    let approval = |name: &str| {
        let file = dir.join(name);
        approval_file(&dev, &admin, &file, "user");
        approve(&file, "admin", &k1);
        approve(&file, "admin2", &k2);
        file
    };

    // MFA on for officer1 with a new password, under one approval that the
    // MFA key and the password change spend together.
    let unsigned = dir.join("unsigned-tokens.json");
    let on = approval("mfa-on.token");
    let args = [
        "user",
        "change-mfa",
        "token-sign",
        "--username",
        "officer1",
        "--role",
        "admin",
        "--change-password",
        "officer-new1",
        "--approval",
        path(&on),
        "--token",
        path(&unsigned),
    ];
    let public = officer_key.public.clone();
    let out = cli_dialog(&dev, &env(&admin), &args, "", |line| {
        if line.starts_with("Enter signed token file path") {
            let doc = read(&unsigned);
            assert_eq!(keys(&doc), BTreeSet::from(["version", "tokens"]), "{doc}");
            assert_eq!(doc["version"], "2.0");
            let entries = doc["tokens"].as_array().unwrap();
            assert_eq!(entries.len(), 2, "one token per HSM: {doc}");
            for entry in entries {
                assert_eq!(keys(entry), BTreeSet::from(["unsigned", "signed"]), "{entry}");
                assert_eq!(entry["signed"], "");
                assert_eq!(B64.decode(entry["unsigned"].as_str().unwrap()).unwrap().len(), 32);
            }
            sign_entries(&unsigned, &officer_key);
            Some(String::new())
        } else if line.starts_with("Enter public key PEM file path") {
            Some(path(&public).to_owned())
        } else {
            None
        }
    });
    assert_eq!(
        out.last(),
        Some(&json!({"error_code": 0, "data": {"username": "officer1", "role": "admin"}})),
        "{out:?}"
    );
    let users = dev.cli(&env(&admin), &["user", "list"]).ok();
    let officer = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "officer1").unwrap();
    assert_eq!(officer["mfa"], json!([{"strategy": "token-sign", "status": "enabled"}]));

    // Log in with MFA: the login file is signed as the guide says.
    let login = dir.join("login-tokens.json");
    // A login refused at the password asks nothing: the script then quits.
    let login_with = |password: &str, edit: &dyn Fn(&Path)| {
        let login = login.clone();
        let then = if password == "officer-old1" { "quit\n" } else { "" };
        let script = format!(
            "login --username officer1 --role admin --password {password} mfa-token-sign --token {}\n{then}",
            path(&login)
        );
        cli_dialog(&dev, &[], &["interactive"], &script, |line| {
            line.starts_with("Enter signed token file path").then(|| {
                edit(&login);
                format!("{}\nuser list\nquit", path(&login))
            })
        })
    };
    let signed_by_officer = |file: &Path| {
        let doc = read(file);
        assert_eq!(keys(&doc), BTreeSet::from(["version", "tokens"]), "{doc}");
        assert_eq!(doc["tokens"].as_array().unwrap().len(), 2, "{doc}");
        sign_entries(file, &officer_key);
    };
    let out = login_with("officer-new1", &signed_by_officer);
    assert_eq!(out[0], json!({"error_code": 0, "data": {"username": "officer1", "role": "admin"}}), "{out:?}");
    assert!(out[1]["data"]["users"].is_array(), "logged in: {out:?}");
    // The old password is gone.
    let out = login_with("officer-old1", &signed_by_officer);
    assert_eq!(out[0]["error_code"], 1, "the password from before change-mfa: {out:?}");
    // A tampered "signed", or one by another key, fails the login.
    let tampered = |file: &Path| {
        signed_by_officer(file);
        let mut doc = read(file);
        for entry in doc["tokens"].as_array_mut().unwrap() {
            entry["signed"] = json!(tamper(entry["signed"].as_str().unwrap()));
        }
        write(file, &doc);
    };
    let out = login_with("officer-new1", &tampered);
    assert_eq!(out[0]["error_code"], 1, "a tampered signature: {out:?}");
    let out = login_with("officer-new1", &|file: &Path| sign_entries(file, &stranger));
    assert_eq!(out[0]["error_code"], 1, "another key's signature: {out:?}");

    // MFA off, again with a new password and an approval: the password
    // alone logs in, the new one only.
    let off = approval("mfa-off.token");
    let args = [
        "user",
        "change-mfa",
        "token-sign",
        "--username",
        "officer1",
        "--role",
        "admin",
        "--change-password",
        "officer-new2",
        "--approval",
        path(&off),
        "--deregister",
    ];
    assert_eq!(dev.cli(&env(&admin), &args).ok(), json!({"username": "officer1", "role": "admin"}));
    let list = ["user", "list"];
    assert!(dev.cli(&env(&pin("admin", "officer1", "officer-new2")), &list).ok()["users"].is_array());
    assert!(dev.cli(&env(&pin("admin", "officer1", "officer-new1")), &list).err().contains("login failed"));
    // Without approval the MFA change (and so the password) is refused.
    let args = [
        "user",
        "change-mfa",
        "token-sign",
        "--username",
        "officer1",
        "--role",
        "admin",
        "--change-password",
        "officer-new3",
        "--deregister",
    ];
    assert_eq!(dev.cli(&env(&admin), &args).err(), QUORUM_REFUSAL);
    assert!(dev.cli(&env(&pin("admin", "officer1", "officer-new3")), &list).err().contains("login failed"));
}
