//! OpenSSL through libp11's PKCS#11 engine (Debian
//! `libengine-pkcs11-openssl`) with the library under test, as AWS's
//! SSL/TLS offload guide uses its own OpenSSL engine: `pkcs11-tool` makes a
//! key pair on the HSM; `openssl req -x509 -engine pkcs11 -keyform engine`
//! makes a self-signed certificate with it that `openssl verify` accepts;
//! `openssl pkeyutl -engine pkcs11 -sign` signs a digest that `openssl
//! pkeyutl -verify` accepts with the public key read out through PKCS#11,
//! without the engine. The engine is configured by an `OPENSSL_CONF` file
//! that names the library and alice's PIN.
//!
//! Skipped, saying so, where `openssl`, `pkcs11-tool` or the engine is not
//! installed, unless `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it),
//! which makes a missing tool a failure.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::process::Command;

use common::{
    Rig,
    engine::{Engine, LIMIT, bounded, pkcs11_tool, plain_openssl, tools_present},
};
use hsm_daemon::testing::Options;

#[test]
fn the_engine_certifies_and_signs_with_an_ec_p256_key_on_the_hsm() {
    certify_and_sign("EC:prime256v1", &[]);
}

#[test]
fn the_engine_certifies_and_signs_with_an_rsa_2048_key_on_the_hsm() {
    // PKCS#1 v1.5 over a DigestInfo: `CKM_RSA_PKCS` with a digest.
    certify_and_sign("rsa:2048", &["-pkeyopt", "digest:sha256"]);
}

#[test]
fn the_engine_signs_rsa_pss_with_an_rsa_2048_key_on_the_hsm() {
    // A salt as long as the digest, as TLS uses: libp11 signs with
    // CKM_RSA_PKCS_PSS.
    certify_and_sign(
        "rsa:2048",
        &["-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"],
    );
}

#[test]
fn the_engine_signs_rsa_pss_with_the_longest_salt_with_an_rsa_2048_key_on_the_hsm() {
    // Any other salt: libp11 pads in OpenSSL and signs with raw RSA,
    // CKM_RSA_X_509.
    certify_and_sign(
        "rsa:2048",
        &["-pkeyopt", "digest:sha256", "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:max"],
    );
}

#[test]
fn the_engine_signs_bare_bytes_with_an_rsa_2048_key_on_the_hsm() {
    // No digest named: libp11 signs the bytes as they are with CKM_RSA_PKCS
    // (PKCS#1 v1.5 padding, no DigestInfo).
    certify_and_sign("rsa:2048", &[]);
}

/// Makes a `key_type` pair on the HSM with pkcs11-tool, certifies it and
/// signs a SHA-256 digest with it through the engine (`sign_options` given
/// to both `pkeyutl`s), and checks both without the engine.
fn certify_and_sign(key_type: &str, sign_options: &[&str]) {
    if !tools_present(&[]) {
        return;
    }
    let rig = Rig::with_users(1, &[], Options::default());
    let engine = Engine::new(&rig);
    let file = |name: &str| rig.file(name);
    let label = "openssl-engine";
    let uri = format!("pkcs11:object={label};type=private");

    pkcs11_tool(
        &rig.client_env,
        &["--keypairgen", "--key-type", key_type, "--label", label, "--id", "42", "--usage-sign"],
    );

    // A self-signed certificate, its signature made on the HSM, checked by
    // OpenSSL alone; its public key is the HSM's.
    let (certificate, public) = (file("cert.pem"), file("public.pem"));
    engine.self_signed_certificate(&uri, &certificate);
    let verified = plain_openssl(&["verify", "-CAfile", &certificate, &certificate]);
    assert!(verified.contains(": OK"), "{verified}");
    engine.public_key_pem(label, &public);
    let certified = plain_openssl(&["x509", "-in", &certificate, "-noout", "-pubkey"]);
    assert_eq!(certified, std::fs::read_to_string(&public).unwrap(), "the certificate holds the HSM's public key");

    // A digest signed through the engine, verified without it; a changed
    // digest is refused, so the check can fail.
    let (data, digest, signature) = (file("data.txt"), file("data.sha256"), file("data.sig"));
    std::fs::write(&data, b"signed through libp11's engine").unwrap();
    plain_openssl(&["dgst", "-sha256", "-binary", "-out", &digest, &data]);
    let sign = ["pkeyutl", "-engine", "pkcs11", "-keyform", "engine", "-inkey", &uri, "-sign", "-in", &digest];
    engine.openssl(&[&sign[..], &["-out", &signature], sign_options].concat());
    let verify = |digest: &str| {
        let mut openssl = Command::new("openssl");
        openssl
            .args(["pkeyutl", "-verify", "-pubin", "-inkey", &public, "-in", digest, "-sigfile", &signature])
            .args(sign_options)
            .env("OPENSSL_CONF", "/dev/null");
        bounded(&mut openssl, LIMIT)
    };
    let verified = verify(&digest);
    assert!(verified.status.success(), "the signature does not verify");
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Signature Verified Successfully"));
    let other = file("other.sha256");
    std::fs::write(&other, [0x5a; 32]).unwrap();
    assert!(!verify(&other).status.success(), "a signature over another digest verifies");
}
