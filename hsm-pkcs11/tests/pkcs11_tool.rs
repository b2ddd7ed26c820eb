//! OpenSC's `pkcs11-tool` (Debian package `opensc`) against the library and
//! an in-process HSM, as a user would run it; `openssl` checks the
//! signatures with the public keys read out through PKCS#11.
//!
//! Skipped, saying so, where `pkcs11-tool` or `openssl` is not installed,
//! unless `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it), which makes a
//! missing tool a failure.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::{
    path::Path,
    process::{Command, Output},
};

use common::{Rig, library_path, tool_present};
use hsm_daemon::testing::Options;

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Runs pkcs11-tool with the library and `args`.
fn tool(client_env: &Path, args: &[&str]) -> Output {
    let module = library_path();
    let output = Command::new("pkcs11-tool")
        .env(hsm_pkcs11::CONFIG_ENV, client_env)
        .arg("--module")
        .arg(&module)
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "pkcs11-tool {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ok(client_env: &Path, args: &[&str]) -> String {
    let output = tool(client_env, args);
    assert!(output.status.success(), "pkcs11-tool {} failed", args.join(" "));
    String::from_utf8(output.stdout).unwrap()
}

/// `args` after alice's login.
fn as_alice<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["--login", "--pin", "alice:alice-pass"][..], args].concat()
}

#[test]
fn pkcs11_tool_makes_keys_that_sign_what_openssl_verifies() {
    let present = installed("pkcs11-tool") && installed("openssl");
    if !tool_present(present, "pkcs11-tool (apt-get install opensc) or openssl") {
        return;
    }
    let rig = Rig::with_users(1, &[], Options::default());
    let env = &rig.client_env;
    let file = |name: &str| rig.file(name);
    let data = file("data.txt");
    std::fs::write(&data, b"signed by pkcs11-tool").unwrap();

    assert!(ok(env, &["--show-info"]).contains("hsm-emulator"));
    assert!(ok(env, &["--list-slots"]).contains("token label        : hsm-emulator"));

    ok(env, &as_alice(&["--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec", "--id", "01"]));
    ok(env, &as_alice(&["--keypairgen", "--key-type", "rsa:2048", "--label", "rsa", "--id", "02"]));
    let listed = ok(env, &as_alice(&["--list-objects"]));
    assert_eq!(listed.matches("label:      ec").count(), 2, "{listed}");

    // EC: sign (DER, as openssl wants it), export the public key, verify.
    let (ec_sig, ec_pub) = (file("ec.sig"), file("ec.der"));
    let sign =
        ["--sign", "-m", "ECDSA-SHA256", "--id", "01", "--signature-format", "openssl", "-i", &data, "-o", &ec_sig];
    ok(env, &as_alice(&sign));
    ok(env, &as_alice(&["--read-object", "--type", "pubkey", "--id", "01", "-o", &ec_pub]));
    let openssl = |key: &str, sig: &str| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-keyform", "DER", "-verify", key, "-signature", sig, &data])
            .output()
            .unwrap()
    };
    let verified = openssl(&ec_pub, &ec_sig);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));

    // RSA: the same, and pkcs11-tool's own verify.
    let (rsa_sig, rsa_pub) = (file("rsa.sig"), file("rsa.der"));
    ok(env, &as_alice(&["--sign", "-m", "SHA256-RSA-PKCS", "--id", "02", "-i", &data, "-o", &rsa_sig]));
    ok(env, &as_alice(&["--read-object", "--type", "pubkey", "--id", "02", "-o", &rsa_pub]));
    assert!(openssl(&rsa_pub, &rsa_sig).status.success());
    let verify =
        as_alice(&["--verify", "-m", "SHA256-RSA-PKCS", "--id", "02", "-i", &data, "--signature-file", &rsa_sig]);
    assert!(ok(env, &verify).contains("Signature is valid"));

    // The tool's self-test: random numbers, digests, RSA signatures and
    // decryption, without an error.
    let tested = ok(env, &as_alice(&["--test"]));
    assert!(tested.contains("No errors"), "{tested}");

    // An admin's PIN logs in but cannot sign.
    let refused = tool(
        env,
        &[
            "--login",
            "--pin",
            "admin:admin-pass",
            "--sign",
            "-m",
            "ECDSA-SHA256",
            "--id",
            "01",
            "-i",
            &data,
            "-o",
            &file("x.sig"),
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CKR_USER_NOT_LOGGED_IN"));
    // A wrong password is a wrong PIN.
    let wrong = tool(env, &["--login", "--pin", "alice:wrong-pass", "--list-objects"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("CKR_PIN_INCORRECT"));

    ok(env, &as_alice(&["--delete-object", "--type", "privkey", "--id", "02"]));
    let listed = ok(env, &as_alice(&["--list-objects", "--type", "privkey"]));
    assert!(listed.contains("label:      ec") && !listed.contains("label:      rsa"), "{listed}");
}

/// pkcs11-tool's own tests of fork(), threads and EC keys, each bounded by
/// `timeout` so that a hang fails the test instead of stalling it.
#[test]
fn pkcs11_tool_fork_thread_and_ec_tests_finish() {
    let present = installed("pkcs11-tool") && Command::new("timeout").arg("--version").output().is_ok();
    if !tool_present(present, "pkcs11-tool (apt-get install opensc) or timeout") {
        return;
    }
    let rig = Rig::with_users(2, &[], Options::default());
    let bounded = |args: &[&str]| {
        let output = Command::new("timeout")
            .args(["--kill-after=10", "120", "pkcs11-tool", "--module"])
            .arg(library_path())
            .args(args)
            .env(hsm_pkcs11::CONFIG_ENV, &rig.client_env)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        eprintln!("pkcs11-tool {}: {}\n{stdout}{stderr}", args.join(" "), output.status);
        assert!(output.status.success(), "pkcs11-tool {} failed or hung", args.join(" "));
        format!("{stdout}{stderr}")
    };

    // The child of a process that initialised the library calls
    // C_Initialize, which succeeds (it used to hang).
    assert!(bounded(&["--test-fork"]).contains("Calling C_Initialize in forked child process"));
    // Three threads: two initialise (one of them gets
    // CKR_CRYPTOKI_ALREADY_INITIALIZED, which the tool expects), all read
    // the info, the slots and the token at once.
    let threads = bounded(&["--test-threads", "ILGISLT0", "--test-threads", "ILGISLT0", "--test-threads", "GISLT0"]);
    assert_eq!(threads.matches("serial num").count(), 3, "each thread read the token");
    // The EC test: generate, re-label, sign, delete. Its changes of
    // CKA_ID are refused with CKR_ATTRIBUTE_READ_ONLY, as CloudHSM has
    // it (the id is fixed when the key is made), and it reports them as
    // warnings; everything else must work.
    let ec = as_alice(&["--session-rw", "--test-ec", "--id", "0e", "--key-type", "EC:prime256v1"]);
    let ec = bounded(&ec);
    assert!(ec.contains("==> OK"), "{ec}");
    assert!(!ec.contains("CKR_") || ec.lines().filter(|l| l.contains("CKR_")).all(|l| l.starts_with("warning")));
}
