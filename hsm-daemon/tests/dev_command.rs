//! `hsm-daemon dev` refuses settings it cannot honour, before it listens.
#![expect(clippy::unwrap_used, reason = "a test helper fails loudly on the first unexpected error")]

use std::process::{Command, Output};

fn dev(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_hsm-daemon")).arg("dev").arg("--dir").arg(dir.path()).args(args).output().unwrap()
}

fn refused_with(args: &[&str], message: &str) {
    let out = dev(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
}

#[test]
fn cluster_sizes_outside_1_to_28_and_a_fixed_port_for_several_hsms_are_refused() {
    refused_with(&["--hsms", "29"], "29 is not in 1..=28");
    refused_with(&["--hsms", "0"], "0 is not in 1..=28");
    refused_with(&["--hsms", "2", "--listen", "127.0.0.1:0"], "--listen: with more than one HSM");
}

#[test]
fn a_bad_admin_password_names_the_flag_and_the_rule() {
    refused_with(&["--admin-password", "short"], "invalid --admin-password: must be 7 to 32 characters long");
}

#[test]
fn an_impossible_kdf_cost_is_refused() {
    refused_with(&["--kdf-memory-kib", "1"], "invalid kdf");
}

#[test]
fn unknown_hsm_types_and_zero_timeouts_are_refused() {
    refused_with(&["--hsm-type", "hsm9.huge"], "must be hsm1.medium or hsm2m.medium");
    refused_with(&["--session-idle-timeout-secs", "0"], "session_idle_timeout_secs must be at least 1");
}
