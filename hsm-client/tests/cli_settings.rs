//! `hsm-cli` explains missing or malformed settings with the JSON envelope
//! (or, for bad flags, clap's usage error), before it contacts any HSM.
#![expect(clippy::unwrap_used, reason = "a test helper fails loudly on the first unexpected error")]

use std::process::{Command, Output};

use serde_json::Value;

fn cli(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hsm-cli"));
    command
        .args(args)
        .env_remove("HSM_ENDPOINTS")
        .env_remove("HSM_CA_CERT")
        .env_remove("CLOUDHSM_ROLE")
        .env_remove("CLOUDHSM_PIN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// The `data` of an `error_code` 1 envelope, checking the exit status too.
fn error_message(out: &Output) -> String {
    assert!(!out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error_code"], 1);
    json["data"].as_str().unwrap().to_owned()
}

#[test]
fn without_an_endpoint_the_cli_says_where_to_get_one() {
    let msg = error_message(&cli(&[], &["cluster", "hsm-info"]));
    assert!(msg.contains("HSM_ENDPOINTS") && msg.contains("client.env"), "{msg}");
    let msg = error_message(&cli(&[("HSM_ENDPOINTS", "127.0.0.1:1")], &["cluster", "hsm-info"]));
    assert!(msg.contains("HSM_CA_CERT"), "{msg}");
    let msg = error_message(&cli(
        &[("HSM_ENDPOINTS", "127.0.0.1:1"), ("HSM_CA_CERT", "/nonexistent/ca.pem")],
        &["cluster", "hsm-info"],
    ));
    assert!(msg.contains("/nonexistent/ca.pem"), "{msg}");
}

#[test]
fn malformed_login_variables_are_named() {
    let env = |role, pin| [("CLOUDHSM_ROLE", role), ("CLOUDHSM_PIN", pin)];
    assert_eq!(
        error_message(&cli(&env("admin", "no-colon"), &["user", "list"])),
        "CLOUDHSM_PIN: must be username:password"
    );
    assert_eq!(
        error_message(&cli(&env("root", "admin:admin-pass"), &["user", "list"])),
        "CLOUDHSM_ROLE 'root': must be admin or crypto-user"
    );
}

#[test]
fn bad_flags_get_a_usage_error() {
    let out = cli(&[], &["user", "delete", "--username", "x", "--role", "superuser"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'superuser'") && stderr.contains("admin, crypto-user"), "{stderr}");
}
