//! `tests/c/spec.c`, compiled with the system's C compiler, drives the
//! library through its C ABI as a C application does: calls before
//! `C_Initialize`, a key pair's default `CKA_TOKEN`, the return codes that
//! end an operation (and `CKR_BUFFER_TOO_SMALL`, which does not), and
//! `fork()`: a child that inherited the initialised library fails fast with
//! `CKR_CRYPTOKI_NOT_INITIALIZED`, then initialises and signs, while the
//! parent carries on.
//!
//! Skipped, saying so, where no `cc` is installed, unless
//! `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it).

mod common;

use std::{path::Path, process::Command};

use common::{Rig, library_path, tool_present};
use hsm_daemon::testing::Options;

#[test]
fn a_c_program_sees_what_pkcs11_says_including_after_fork() {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let present = Command::new(&compiler).arg("--version").output().is_ok_and(|o| o.status.success());
    if !tool_present(present, "a C compiler (cc)") {
        return;
    }
    let rig = Rig::with_users(2, &[], Options::default());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/spec.c");
    let program = rig.file("spec");
    let compiled = Command::new(&compiler)
        .args(["-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror", "-o", &program])
        .arg(&source)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(compiled.status.success(), "{} failed: {}", compiler, String::from_utf8_lossy(&compiled.stderr));
    rig.run_checks("tests/c/spec.c", Command::new(&program).arg(library_path()));
}
