//! An application in another language: `tests/python/roundtrip.py`, with
//! python-pkcs11 (PyPI), against the library and an in-process cluster of
//! two HSMs. It generates EC, RSA, Ed25519 and AES keys, signs, verifies,
//! encrypts, decrypts and digests, and checks ECDSA and RSA signatures with
//! its own arithmetic. `tests/python/raw_mechanisms.py` runs the raw
//! mechanisms TLS stacks use (`CKM_RSA_PKCS` over arbitrary data,
//! `CKM_RSA_X_509`, unpadded `CKM_AES_CBC`), checked with plain Python
//! arithmetic and a NIST SP 800-38A vector.
//! `tests/python/des3.py`: triple DES on a non-FIPS
//! cluster (and its absence on a FIPS one).
//!
//! Skipped, saying so, where python-pkcs11 is not installed, unless
//! `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it), which makes a missing
//! tool a failure.

mod common;

use std::{path::PathBuf, process::Command};

use common::{Rig, library_path, tool_present};
use hsm_daemon::{model::ClusterMode, testing::Options};

fn python_pkcs11_installed() -> bool {
    Command::new("python3").args(["-c", "import pkcs11"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn python_pkcs11_generates_signs_verifies_encrypts_and_decrypts() {
    run_script("roundtrip.py", 2);
}

#[test]
fn python_pkcs11_raw_rsa_and_unpadded_aes_cbc() {
    run_script("raw_mechanisms.py", 1);
}

/// Runs `tests/python/<script>` against a cluster of `hsms` HSMs (skipped
/// where python-pkcs11 is missing, as [`tool_present`] says).
fn run_script(script: &str, hsms: usize) {
    if !tool_present(python_pkcs11_installed(), "python-pkcs11 (pip install python-pkcs11)") {
        return;
    }
    let rig = Rig::with_users(hsms, &[], Options::default());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    rig.run_checks(script, Command::new("python3").arg(&path).arg(library_path()));
}

#[test]
fn python_pkcs11_uses_triple_des_on_non_fips_clusters_only() {
    if !tool_present(python_pkcs11_installed(), "python-pkcs11 (pip install python-pkcs11)") {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/des3.py");
    for mode in [ClusterMode::NonFips, ClusterMode::Fips] {
        let rig = Rig::with_users(1, &[], Options { mode, ..Options::default() });
        let what = format!("des3.py on a {mode} cluster");
        rig.run_checks(&what, Command::new("python3").arg(&script).arg(library_path()).arg(mode.to_string()));
    }
}
