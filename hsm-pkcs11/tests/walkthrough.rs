//! `deploy/tls-offload/walkthrough.sh`, the TLS offload walkthrough that
//! `docs/tls-offload.md` shows, run as a user runs it, so that it cannot
//! rot: `hsm-daemon dev`, `hsm-cli`, libp11's engine with the library under
//! test, nginx with two workers and curl over TLS 1.2 and 1.3.
//!
//! It drives `hsm-daemon` and `hsm-cli` from cargo's target directory,
//! which `cargo test --workspace` (the README's and CI's test command)
//! builds; `cargo test -p hsm-pkcs11` alone leaves them as they were, so
//! after a change to the daemon run `cargo build -p hsm-daemon -p
//! hsm-client` first (an older daemon refuses what a newer library asks).
//! Skipped, saying so, where they or the outside tools are missing,
//! unless `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it), which makes
//! that a failure.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{
    engine::{bounded, free_port, tools_present},
    library_path, tool_present,
};

#[test]
fn the_walkthrough_serves_tls_with_ec_and_rsa_keys_on_the_hsm() {
    walk(&["ec", "rsa"]);
}

/// Runs the walkthrough for `key_types` and checks every page came over
/// the TLS version asked for.
fn walk(key_types: &[&str]) {
    if !tools_present(&["nginx", "curl", "setsid"]) {
        return;
    }
    // target/debug/deps/<test> -> target/debug, where cargo leaves the binaries.
    let bin = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_owned();
    let built = ["hsm-daemon", "hsm-cli"].iter().all(|b| bin.join(b).exists());
    if !tool_present(built, "hsm-daemon or hsm-cli (cargo build -p hsm-daemon -p hsm-client)") {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/tls-offload/walkthrough.sh");
    let work = tempfile::tempdir().unwrap();
    let mut command = Command::new("bash");
    command
        .arg(&script)
        .arg(&bin)
        .arg(work.path())
        .env("HSM_PKCS11_MODULE", library_path())
        .env("KEY_TYPES", key_types.join(" "))
        // The cheap password hashing tests use: hsm-daemon reads these.
        .env("HSM_KDF_MEMORY_KIB", "8")
        .env("HSM_KDF_ITERATIONS", "1")
        .env_remove("OPENSSL_CONF")
        .env_remove(hsm_pkcs11::CONFIG_ENV);
    for kt in key_types {
        command.env(format!("PORT_{}", kt.to_uppercase()), free_port().to_string());
    }
    let output = bounded(&mut command, Duration::from_secs(300));
    let out = String::from_utf8(output.stdout).unwrap();
    eprintln!("{out}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the walkthrough failed: {}", output.status);
    for kt in key_types {
        for version in ["1.2", "1.3"] {
            let page = format!("tls-{kt} served by worker ");
            assert!(
                out.lines().any(|l| l.starts_with(&page) && l.contains(&format!(" over TLSv{version} "))),
                "no tls-{kt} page over TLS {version} in:\n{out}"
            );
        }
    }
    assert!(out.contains("== Done"), "{out}");
}
