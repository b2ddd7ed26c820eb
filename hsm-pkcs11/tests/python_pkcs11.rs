//! An application in another language: `tests/python/roundtrip.py`, with
//! python-pkcs11 (PyPI), against the library and an in-process cluster of
//! two HSMs. It generates EC, RSA, Ed25519 and AES keys, signs, verifies,
//! encrypts, decrypts and digests, and checks ECDSA and RSA signatures with
//! its own arithmetic.
//!
//! Skipped, saying so, where python-pkcs11 is not installed, unless
//! `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it), which makes a missing
//! tool a failure.

mod common;

use std::{path::PathBuf, process::Command};

use common::{Rig, library_path, tool_present};
use hsm_daemon::testing::Options;

fn python_pkcs11_installed() -> bool {
    Command::new("python3").args(["-c", "import pkcs11"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn python_pkcs11_generates_signs_verifies_encrypts_and_decrypts() {
    if !tool_present(python_pkcs11_installed(), "python-pkcs11 (pip install python-pkcs11)") {
        return;
    }
    let rig = Rig::with_users(2, &[], Options::default());

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/roundtrip.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(library_path())
        .arg("alice:alice-pass")
        .env(hsm_pkcs11::CONFIG_ENV, &rig.client_env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "roundtrip.py failed");
    assert!(stdout.contains("all checks passed"));
}
