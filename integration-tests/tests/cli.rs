//! `hsm-daemon dev` and `hsm-cli` as processes, the way a user runs them:
//! the README's session and the acceptance steps.

use integration_tests::DevProcess;
use serde_json::json;

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];

fn as_user<'a>(role: &'a str, pin: &'a str) -> [(&'a str, &'a str); 2] {
    [("CLOUDHSM_ROLE", role), ("CLOUDHSM_PIN", pin)]
}

#[test]
fn the_acceptance_session_from_activation_to_deletion() {
    let dev = DevProcess::start(&[]);

    // Logged out: cluster info works, user commands are refused by the HSM.
    let info = dev.cli(&[], &["cluster", "hsm-info"]).ok();
    let hsm = &info["hsms"][0];
    for key in [
        "vendor",
        "model",
        "serial-number",
        "hardware-version-major",
        "hardware-version-minor",
        "firmware-version-major",
        "firmware-version-minor",
        "firmware-build-number",
        "firmware-id",
        "fips-state",
    ] {
        assert!(hsm[key].is_string(), "hsm-info lacks {key}: {info}");
    }
    let refused = dev.cli(&[], &["user", "list"]).err();
    assert_eq!(
        refused,
        "user list is not permitted for an unauthenticated session (role: unauthenticated); log in first"
    );
    let refused = dev
        .cli(&[], &["user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass"])
        .err();
    assert!(refused.contains("user create") && refused.contains("unauthenticated"), "{refused}");

    // Activation works once.
    assert_eq!(
        dev.cli(&[], &["cluster", "activate", "--password", "admin-pass"]).ok(),
        json!("Cluster activation successful")
    );
    assert_eq!(
        dev.cli(&[], &["cluster", "activate", "--password", "other-pass"]).err(),
        "the cluster is already activated"
    );

    // An admin creates crypto users.
    let created = dev
        .cli(&ADMIN, &["user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass"]);
    assert_eq!(created.ok(), json!({"username": "alice", "role": "crypto-user"}));
    dev.cli(&ADMIN, &["user", "create", "--username", "bob", "--role", "crypto-user", "--password", "bob-pass1"]).ok();

    // The crypto user changes their own password but nothing else.
    let alice = as_user("crypto-user", "alice:alice-pass");
    dev.cli(
        &alice,
        &["user", "change-password", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass2"],
    )
    .ok();
    let alice = as_user("crypto-user", "alice:alice-pass2");
    let refused = dev
        .cli(&alice, &["user", "create", "--username", "carol", "--role", "crypto-user", "--password", "carol-pass"]);
    assert_eq!(refused.err(), "user create is not permitted for role crypto-user (CU)");
    let refused = dev.cli(
        &alice,
        &["user", "change-password", "--username", "bob", "--role", "crypto-user", "--password", "bob-pass9"],
    );
    assert_eq!(
        refused.err(),
        "user change-password (another user's password) is not permitted for role crypto-user (CU)"
    );

    // An admin changes anyone's password.
    dev.cli(
        &ADMIN,
        &["user", "change-password", "--username", "bob", "--role", "crypto-user", "--password", "bob-pass2"],
    )
    .ok();
    dev.cli(&as_user("crypto-user", "bob:bob-pass2"), &["user", "list"]).ok();

    // Six wrong passwords lock bob; user list shows it; an admin's change unlocks.
    for _ in 0..6 {
        let failed = dev.cli(&as_user("crypto-user", "bob:wrong-pass"), &["user", "list"]).err();
        assert_eq!(failed, "login failed: invalid username, role or password");
    }
    let locked = dev.cli(&as_user("crypto-user", "bob:bob-pass2"), &["user", "list"]).err();
    assert!(locked.contains("locked"), "{locked}");
    let listed = dev.cli(&ADMIN, &["user", "list"]).ok();
    let bob = listed["users"].as_array().unwrap().iter().find(|u| u["username"] == "bob").unwrap().clone();
    assert_eq!(
        bob,
        json!({"username": "bob", "role": "crypto-user", "locked": "true", "mfa": [], "quorum": [], "cluster-coverage": "full"})
    );
    dev.cli(
        &ADMIN,
        &["user", "change-password", "--username", "bob", "--role", "crypto-user", "--password", "bob-pass3"],
    )
    .ok();
    let listed = dev.cli(&as_user("crypto-user", "bob:bob-pass3"), &["user", "list"]).ok();
    assert!(listed["users"].as_array().unwrap().iter().any(|u| u["username"] == "bob" && u["locked"] == "false"));

    // An admin deletes a user who is not logged in.
    let deleted = dev.cli(&ADMIN, &["user", "delete", "--username", "bob", "--role", "crypto-user"]).ok();
    assert_eq!(deleted, json!({"username": "bob", "role": "crypto-user"}));
    let listed = dev.cli(&ADMIN, &["user", "list"]).ok();
    let names: Vec<&str> =
        listed["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "alice", "app_user"]);
}

#[test]
fn interactive_mode_keeps_a_session_between_login_and_logout() {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    let script = "login --username admin --role admin --password admin-pass\n\
                  user create --username carol --role crypto-user --password carol-pass\n\
                  logout\n\
                  user list\n\
                  quit\n";
    let out = dev.cli_with_stdin(&[], &["interactive"], Some(script));
    assert!(out.success, "{}", out.stderr);
    let replies: Vec<serde_json::Value> = out
        .stdout
        .split("aws-cloudhsm > ")
        .filter(|s| !s.trim().is_empty())
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")))
        .collect();
    assert_eq!(replies.len(), 4, "{}", out.stdout);
    assert_eq!(replies[0], json!({"error_code": 0, "data": {"username": "admin", "role": "admin"}}));
    assert_eq!(replies[1]["data"], json!({"username": "carol", "role": "crypto-user"}));
    assert_eq!(replies[2], json!({"error_code": 0, "data": "Logout successful"}));
    assert_eq!(replies[3]["error_code"], 1, "logged out again: {}", replies[3]);
}

#[test]
fn cluster_sync_status_shows_a_digest_that_follows_the_state() {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    let refused = dev.cli(&[], &["cluster", "sync-status"]).err();
    assert!(refused.contains("cluster sync-status") && refused.contains("unauthenticated"), "{refused}");
    let first = dev.cli(&ADMIN, &["cluster", "sync-status"]).ok();
    let row = &first["hsms"][0];
    assert_eq!(row["digest"].as_str().unwrap().len(), 64, "{first}");
    assert_eq!((row["users"].as_u64(), row["keys"].as_u64()), (Some(2), Some(0)));
    assert_eq!(dev.cli(&ADMIN, &["cluster", "sync-status"]).ok(), first, "stable while nothing changes");
    dev.cli(&ADMIN, &["user", "create", "--username", "carol", "--role", "crypto-user", "--password", "carol-pass"])
        .ok();
    let after = dev.cli(&ADMIN, &["cluster", "sync-status"]).ok();
    assert_ne!(after["hsms"][0]["digest"], row["digest"]);
    assert_eq!(after["hsms"][0]["users"], 3);
}
