//! `hsm-cli key ...` and `crypto ...` without an HSM: malformed flags get
//! clap's usage error naming the flag, and what the HSM cannot do is refused
//! (in the JSON envelope) before any HSM is contacted.
#![expect(clippy::unwrap_used, reason = "a test helper fails loudly on the first unexpected error")]

use std::process::{Command, Output};

use serde_json::Value;

/// Runs `hsm-cli` with no HSM configured at all.
fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsm-cli"))
        .args(args)
        .env_remove("HSM_ENDPOINTS")
        .env_remove("HSM_CA_CERT")
        .env_remove("CLOUDHSM_ROLE")
        .env_remove("CLOUDHSM_PIN")
        .output()
        .unwrap()
}

/// The `data` of an `error_code` 1 envelope, checking the exit status too.
fn refusal(args: &str) -> String {
    let out = cli(&args.split_whitespace().collect::<Vec<_>>());
    assert!(!out.status.success(), "{args}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args}: {e}"));
    assert_eq!(json["error_code"], 1);
    json["data"].as_str().unwrap().to_owned()
}

/// Clap's usage error on standard error.
fn usage_error(args: &str) -> String {
    let out = cli(&args.split_whitespace().collect::<Vec<_>>());
    assert!(!out.status.success(), "{args}");
    assert!(out.stdout.is_empty(), "{args}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn filters_must_be_references_or_attribute_terms() {
    let err = usage_error("key list --filter label=x");
    assert!(err.contains("'--filter <FILTER>...'") && err.contains("attr.KEY_ATTRIBUTE_NAME"), "{err}");
    let err = usage_error("key delete --filter key-reference=");
    assert!(err.contains("key-reference needs a value"), "{err}");
    let err = usage_error("crypto sign ecdsa --key-filter attr.=x --hash-function sha256 --data AA==");
    assert!(err.contains("'--key-filter <KEY_FILTER>...'"), "{err}");
    let err = usage_error("key delete");
    assert!(err.contains("--filter"), "{err}");
}

#[test]
fn attributes_must_be_name_value_pairs() {
    let err = usage_error("key generate-symmetric aes --label a --key-length-bytes 32 --attributes sign");
    assert!(err.contains("'--attributes <ATTRIBUTES>...'") && err.contains("KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE"));
}

#[test]
fn data_comes_from_exactly_one_place() {
    let err = usage_error("crypto sign ecdsa --key-filter attr.label=k --hash-function sha256");
    assert!(err.contains("--data <DATA>|--data-path <DATA_PATH>"), "{err}");
    let err =
        usage_error("crypto sign ecdsa --key-filter attr.label=k --hash-function sha256 --data AA== --data-path f");
    assert!(err.contains("cannot be used with"), "{err}");
    let err = usage_error("crypto verify ed25519 --key-filter attr.label=k --data AA==");
    assert!(err.contains("--signature <SIGNATURE>|--signature-path <SIGNATURE_PATH>"), "{err}");
}

#[test]
fn values_outside_the_cli_lists_are_named() {
    let err = usage_error("key generate-asymmetric-pair ec --curve p256 --public-label a --private-label b");
    assert!(err.contains("invalid value 'p256'") && err.contains("secp256k1") && err.contains("ed25519"), "{err}");
    let err = usage_error("crypto sign ecdsa --key-filter attr.label=k --hash-function md5 --data AA==");
    assert!(err.contains("invalid value 'md5'"), "{err}");
    // Ed25519ph: RFC 8032's SHA-512 only, and both flags required, as AWS has them.
    let err = usage_error(
        "crypto sign ed25519ph --key-filter attr.label=k --data-type raw --hash-function sha256 --data AA==",
    );
    assert!(err.contains("invalid value 'sha256' for '--hash-function <HASH_FUNCTION>'"), "{err}");
    assert!(err.contains("[possible values: sha512]"), "{err}");
    let err = usage_error(
        "crypto verify ed25519ph --key-filter attr.label=k --hash-function sha512 --data AA== --signature AA==",
    );
    assert!(err.contains("--data-type <DATA_TYPE>"), "{err}");
    let err = usage_error("crypto sign ed25519ph --key-filter attr.label=k --data-type digest --data AA==");
    assert!(err.contains("--hash-function <HASH_FUNCTION>"), "{err}");
    let err = usage_error("key import pem --path f --label l --key-type-class dsa-public");
    assert!(err.contains("rsa-public") && err.contains("ed25519-private"), "{err}");
}

#[test]
fn parameters_the_hsm_fixes_are_checked_before_connecting() {
    let err = usage_error(
        "key wrap aes-gcm --payload-filter attr.label=p --wrapping-filter attr.label=w --tag-length-bits 100",
    );
    assert!(err.contains("invalid value '100' for '--tag-length-bits") && err.contains("64, 96, 104"), "{err}");
    let msg = refusal(
        "key wrap aes-gcm --payload-filter attr.label=p --wrapping-filter attr.label=w --tag-length-bits 64 --aad 0xzz",
    );
    assert!(msg.starts_with("--aad: not valid hex"), "{msg}");
    let msg = refusal(
        "key wrap rsa-aes --payload-filter attr.label=p --wrapping-filter attr.label=w --hash-function sha256 --mgf mgf1-sha1",
    );
    assert_eq!(msg, "--mgf mgf1-sha1: the mask generation function must use --hash-function's hash (mgf1-sha256)");
    let msg = refusal(
        "crypto sign rsa-pkcs-pss --key-filter attr.label=k --hash-function sha384 --mgf mgf1-sha384 --salt-length 10 --data AA==",
    );
    assert_eq!(msg, "--salt-length 10: the emulator's RSA-PSS uses a salt as long as the hash (48 bytes for sha384)");
    let msg = refusal(
        "key unwrap aes-gcm --filter attr.label=w --key-type-class aes --label l --data AA== --iv 00 --tag-length-bits 128",
    );
    assert_eq!(msg, "--iv: must be 12 bytes (24 hex digits), got 1");
    let msg = refusal(
        "key unwrap aes-no-pad --filter attr.label=w --key-type-class ec-private --curve secp256r1 --label l --data AA==",
    );
    assert!(msg.starts_with("--curve secp256r1: key unwrap takes no curve"), "{msg}");
    let msg = refusal("key share --filter attr.label=k --username bob --role admin");
    assert!(msg.starts_with("--role admin: keys are shared with crypto users only"), "{msg}");
}

#[test]
fn everything_else_needs_an_hsm_and_says_where_to_find_one() {
    let msg = refusal("key list");
    assert!(msg.contains("HSM_ENDPOINTS"), "{msg}");
}
