//! An application in Java: the JDK's SunPKCS11 provider with the library
//! (`tests/java/SunPkcs11Probe.java`), against an in-process HSM. It signs
//! with EC and RSA keys it generates (verified by the JDK's own
//! providers), round-trips AES-CBC and draws random bytes.
//!
//! SunPKCS11 leaves unset the usage flags of the keys it generates, and
//! CloudHSM (as PKCS#11 has it) defaults them to false, so the provider's
//! configuration sets them, as a Java application using CloudHSM's
//! library through SunPKCS11 would.
//!
//! Skipped, saying so, where `javac` and `java` are not installed, unless
//! `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it).

mod common;

use std::process::Command;

use common::{Rig, library_path, tool_present};
use hsm_daemon::testing::Options;

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn java_sunpkcs11_signs_encrypts_and_draws_random_bytes() {
    if !tool_present(installed("javac") && installed("java"), "a JDK (javac and java)") {
        return;
    }
    let rig = Rig::with_users(1, &[], Options::default());
    let classes = rig.file("classes");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/SunPkcs11Probe.java");
    let compiled = Command::new("javac").arg("-d").arg(&classes).arg(&source).output().unwrap();
    assert!(compiled.status.success(), "javac: {}", String::from_utf8_lossy(&compiled.stderr));

    let config = rig.file("sunpkcs11.cfg");
    let usage = "attributes(generate, CKO_PRIVATE_KEY, *) = {\n  CKA_SIGN = true\n}\n\
                 attributes(generate, CKO_PUBLIC_KEY, *) = {\n  CKA_VERIFY = true\n}\n\
                 attributes(generate, CKO_SECRET_KEY, *) = {\n  CKA_ENCRYPT = true\n  CKA_DECRYPT = true\n}\n";
    let library = library_path();
    std::fs::write(&config, format!("name = HsmEmulator\nlibrary = {}\nslot = 1\n{usage}", library.display())).unwrap();

    rig.run_checks("SunPkcs11Probe", Command::new("java").arg("-cp").arg(&classes).arg("SunPkcs11Probe").arg(&config));
}
