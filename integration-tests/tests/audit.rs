//! The audit log end to end: `hsm-daemon dev` records logins, user creation,
//! key generation and refusals with consecutive sequence numbers; an admin
//! reads them through `hsm-cli audit list` (a crypto user may not); the log
//! survives a restart and continues; `hsm-daemon audit verify` passes on the
//! untouched file and fails once one byte of it changes; and no password or
//! session token is anywhere in it.

#![expect(clippy::unwrap_used, reason = "test helpers unwrap")]

use std::{path::Path, process::Command};

use hsm_client::{ClientConfig, HsmClient};
use hsm_proto::v1::{self as pb, session_service_client::SessionServiceClient, user_service_client::UserServiceClient};
use integration_tests::{DevProcess, bin_dir};
use serde_json::Value;

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
const ALICE: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "alice:alice-pass1")];

/// Logs in as alice through the API and, with that session, asks to create a
/// user (refused); returns the session token, which the log must not hold.
fn refused_with_token(dev: &DevProcess) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = HsmClient::connect(&ClientConfig::from_parts(&dev.endpoint, &dev.ca_cert).unwrap()).await.unwrap();
        let login = pb::LoginRequest {
            username: "alice".into(),
            role: pb::Role::CryptoUser.into(),
            password: "alice-pass1".into(),
            ..Default::default()
        };
        let token = SessionServiceClient::new(client.channel()).login(login).await.unwrap().into_inner().session_token;
        let mut request = tonic::Request::new(pb::CreateUserRequest {
            username: "mallory".into(),
            role: pb::Role::Admin.into(),
            password: "mallory-pass".into(),
            ..Default::default()
        });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let refused = UserServiceClient::new(client.channel()).create_user(request).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        token
    })
}

fn verify(dir: &Path) -> (bool, String) {
    let out =
        Command::new(bin_dir().join("hsm-daemon")).args(["audit", "verify", "--data-dir"]).arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn records(data: &Value) -> Vec<Value> {
    data["records"].as_array().unwrap().clone()
}

fn find<'a>(records: &'a [Value], opcode: &str, user: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["opcode"] == opcode && r["user"] == user).collect()
}

#[test]
fn the_audit_log_records_reads_survives_and_verifies() {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    dev.cli(&ADMIN, &["user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass1"])
        .ok();
    let key = dev.cli(&ALICE, &["key", "generate-symmetric", "aes", "--label", "k1", "--key-length-bytes", "32"]).ok();
    let key_ref = key["key"]["key-reference"].as_str().unwrap().to_owned();
    let token = refused_with_token(&dev);
    let denied = dev.cli(&ALICE, &["audit", "list"]).err();
    assert!(denied.contains("audit list") && denied.contains("crypto-user"), "{denied}");

    let all = records(&dev.cli(&ADMIN, &["audit", "list"]).ok());
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "consecutive from 1: {all:#?}");
    assert_eq!(all[0]["opcode"], "HSM_START");

    assert!(!find(&all, "CN_LOGIN", "admin").is_empty(), "{all:#?}");
    let alice_logins = find(&all, "CN_LOGIN", "alice");
    assert!(alice_logins.iter().all(|r| r["success"] == true && r["session"].as_u64().is_some()), "{all:#?}");
    let created = find(&all, "CN_CREATE_USER", "admin");
    assert_eq!(created.len(), 1, "{all:#?}");
    assert_eq!((&created[0]["target"], &created[0]["response"]), (&Value::from("alice"), &Value::from("OK")));
    let generated = find(&all, "CN_GENERATE_KEY", "alice");
    assert_eq!(generated.len(), 1, "{all:#?}");
    assert_eq!(generated[0]["key_refs"], serde_json::json!([key_ref]));

    // The refusals: alice creating a user, alice reading the log.
    let refused = find(&all, "CN_CREATE_USER", "alice");
    assert_eq!(refused.len(), 1, "{all:#?}");
    assert_eq!(
        (&refused[0]["denied"], &refused[0]["response"]),
        (&Value::from(true), &Value::from("PERMISSION_DENIED"))
    );
    assert_eq!(refused[0]["role"], "crypto-user");
    let read = find(&all, "CN_READ_AUDIT_LOG", "alice");
    assert!(read.len() == 1 && read[0]["denied"] == true, "{all:#?}");

    // No secret reached the file: passwords, the token, nor its public half.
    let data_dir = dev.dir.path().join("hsm-1-data");
    let file = std::fs::read_to_string(data_dir.join("audit.log")).unwrap();
    let (session_id, _) = token.split_once('.').unwrap();
    for secret in ["admin-pass", "alice-pass1", "mallory-pass", token.as_str(), session_id] {
        assert!(!file.contains(secret), "{secret} is in the audit log");
    }
    let (ok, text) = verify(dev.dir.path());
    assert!(ok && text.contains(&format!("{} records, chain intact", all.len() + 1)), "{text}");

    // Paging, then a restart: the sequence continues after a new start record.
    let page = dev.cli(&ADMIN, &["audit", "list", "--from", "2", "--limit", "2"]).ok();
    assert_eq!(records(&page).iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(page["next_seq"], 4);
    let before = page["last_seq"].as_u64().unwrap();
    let dev = dev.restart(&[]);
    let after = dev.cli(&ADMIN, &["audit", "list", "--from", &(before + 1).to_string()]).ok();
    let after = records(&after);
    assert_eq!(after[0]["seq"], before + 1);
    assert_eq!(after[0]["boot"], 1);
    // The admin's logout after paging, then the restart; an allowed read is
    // not recorded.
    let opcodes: Vec<&str> = after.iter().map(|r| r["opcode"].as_str().unwrap()).collect();
    assert_eq!(opcodes[..2], ["CN_LOGOUT", "HSM_START"], "{after:#?}");
    assert_eq!(after[1]["boot"], 2);
    let (ok, text) = verify(dev.dir.path());
    assert!(ok, "{text}");

    // One byte changed: verification fails and names the line.
    let path = dev.dir.path().join("hsm-1-data/audit.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = String::from_utf8_lossy(&bytes).find("\"target\":\"alice\"").unwrap() + "\"target\":\"".len();
    bytes[at] = b'A';
    std::fs::write(&path, &bytes).unwrap();
    let (ok, text) = verify(dev.dir.path());
    assert!(!ok, "{text}");
    let line = String::from_utf8_lossy(&bytes[..at]).matches('\n').count() + 1;
    assert!(text.contains(&format!("line {line} ")) && text.contains("hash mismatch"), "{text}");
}
