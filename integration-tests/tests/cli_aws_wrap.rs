//! `hsm-cli key wrap` / `key unwrap` against `hsm-daemon dev`, held to AWS's
//! CloudHSM CLI reference: every mechanism's JSON keys, AES-GCM's
//! `--tag-length-bits` and `--aad`, the zero-pad, PKCS #5 pad and RSA-PKCS
//! mechanisms checked against OpenSSL and ring, and EC unwrap without a
//! curve.
//!
//! Keys whose bytes a check needs are loaded known: OpenSSL encrypts them
//! with RSA-OAEP under an imported RSA key, and `key unwrap rsa-oaep` takes
//! them in.

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use integration_tests::{CliOutput, DevProcess};
use serde_json::Value;

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
const CU: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "cu1:cu1-pass")];

/// "hello world", base64.
const MESSAGE: &str = "aGVsbG8gd29ybGQ=";
/// The key-encryption key and payload loaded known (AES-256 each), and a
/// 20-byte generic secret (not a multiple of 8: padding shows).
const KEK: [u8; 32] = *b"kek-kek-kek-kek-kek-kek-kek-kek!";
const PAYLOAD: [u8; 32] = *b"payload-payload-payload-payload!";
const SECRET20: [u8; 20] = *b"twenty-byte-secret!!";
const OAEP: &str = "--hash-function sha256 --mgf mgf1-sha256";

/// An activated dev HSM with crypto user `cu1`.
fn hsm() -> DevProcess {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    let create = ["user", "create", "--username", "cu1", "--role", "crypto-user", "--password", "cu1-pass"];
    dev.cli(&ADMIN, &create).ok();
    dev
}

fn run(dev: &DevProcess, line: &str) -> CliOutput {
    dev.cli(&CU, &line.split_whitespace().collect::<Vec<_>>())
}

fn ok(dev: &DevProcess, line: &str) -> Value {
    run(dev, line).ok()
}

fn err(dev: &DevProcess, line: &str) -> String {
    run(dev, line).err()
}

/// A command clap refuses: its message (on standard error).
fn usage_error(dev: &DevProcess, line: &str) -> String {
    let out = run(dev, line);
    assert!(!out.success && out.stdout.is_empty(), "{line}: {}", out.stdout);
    out.stderr
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn file(dev: &DevProcess, name: &str) -> String {
    dev.dir.path().join(name).display().to_string()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn b64(data: &str) -> Vec<u8> {
    B64.decode(data).unwrap_or_else(|e| panic!("base64 {data:?}: {e}"))
}

/// Imports an OpenSSL-made RSA-2048 pair: `loader` (private, unwrap and
/// decrypt) and `loader-pub` (public, wrap and encrypt). Returns the
/// private key's PEM path.
fn import_rsa_loader(dev: &DevProcess) -> String {
    let private = file(dev, "loader.pem");
    let public = file(dev, "loader-pub.pem");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &private]);
    openssl(&["pkey", "-in", &private, "-pubout", "-out", &public]);
    ok(
        dev,
        &format!(
            "key import pem --path {private} --label loader --key-type-class rsa-private --attributes unwrap=true"
        ),
    );
    ok(
        dev,
        &format!(
            "key import pem --path {public} --label loader-pub --key-type-class rsa-public --attributes wrap=true"
        ),
    );
    private
}

/// Loads `bytes` as a new key labelled `label` through `key unwrap rsa-oaep`
/// of an OpenSSL RSA-OAEP ciphertext (needs [`import_rsa_loader`]).
fn load_known(dev: &DevProcess, label: &str, type_class: &str, bytes: &[u8], attributes: &str) -> Value {
    let plain = file(dev, &format!("{label}.bin"));
    let sealed = file(dev, &format!("{label}.oaep"));
    std::fs::write(&plain, bytes).expect("write key bytes");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &file(dev, "loader-pub.pem"),
        "-in",
        &plain,
        "-out",
        &sealed,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ]);
    ok(
        dev,
        &format!(
            "key unwrap rsa-oaep --filter attr.label=loader {OAEP} --key-type-class {type_class} --label {label} \
             --data-path {sealed} --attributes {attributes}"
        ),
    )
}

/// Encrypts with `encrypting` and decrypts with `decrypting` (AES-GCM):
/// both hold the same key bytes exactly when the message comes back.
fn same_aes_key(dev: &DevProcess, encrypting: &str, decrypting: &str) {
    let sealed = ok(dev, &format!("crypto encrypt aes-gcm --key-filter attr.label={encrypting} --data {MESSAGE}"));
    let (iv, ciphertext) = (sealed["iv"].as_str().expect("iv"), sealed["ciphertext"].as_str().expect("ciphertext"));
    let opened = ok(
        dev,
        &format!("crypto decrypt aes-gcm --key-filter attr.label={decrypting} --iv {iv} --ciphertext {ciphertext}"),
    );
    assert_eq!(opened["plaintext"], MESSAGE, "{encrypting} and {decrypting} hold different keys");
}

/// The unwrap output AWS shows: `{"key": {"key-reference", "key-info",
/// "attributes"}}`, the key not local.
fn assert_unwrap_shape(unwrapped: &Value) {
    assert_eq!(keys(unwrapped), set(&["key"]), "{unwrapped}");
    assert_eq!(keys(&unwrapped["key"]), set(&["key-reference", "key-info", "attributes"]), "{unwrapped}");
    assert_eq!(unwrapped["key"]["attributes"]["local"], false, "{unwrapped}");
    let reference = unwrapped["key"]["key-reference"].as_str().expect("key-reference");
    assert!(reference.starts_with("0x") && reference.len() == 18, "{reference}");
}

/// A wrapping mechanism as the test drives it.
struct Mech {
    name: &'static str,
    /// Label of the wrapping and of the unwrapping key.
    wrapping: &'static str,
    unwrapping: &'static str,
    /// Flags both directions take.
    flags: &'static str,
    /// `aes-gcm`: the IV comes back apart and goes back with `--iv`.
    split_iv: bool,
}

const MECHANISMS: [Mech; 8] = [
    Mech {
        name: "aes-gcm",
        wrapping: "kek",
        unwrapping: "kek",
        flags: "--tag-length-bits 64 --aad 0x10",
        split_iv: true,
    },
    Mech {
        name: "cloudhsm-aes-gcm",
        wrapping: "kek",
        unwrapping: "kek",
        flags: "--tag-length-bits 128 --aad 0a0b0c",
        split_iv: false,
    },
    Mech { name: "aes-no-pad", wrapping: "kek", unwrapping: "kek", flags: "", split_iv: false },
    Mech { name: "aes-pkcs5-pad", wrapping: "kek", unwrapping: "kek", flags: "", split_iv: false },
    Mech { name: "aes-zero-pad", wrapping: "kek", unwrapping: "kek", flags: "", split_iv: false },
    Mech { name: "rsa-oaep", wrapping: "loader-pub", unwrapping: "loader", flags: OAEP, split_iv: false },
    Mech { name: "rsa-aes", wrapping: "loader-pub", unwrapping: "loader", flags: OAEP, split_iv: false },
    Mech { name: "rsa-pkcs", wrapping: "loader-pub", unwrapping: "loader", flags: "", split_iv: false },
];

/// Wraps `payload` with `mech` and checks the output's keys; returns the
/// output.
fn wrap(dev: &DevProcess, mech: &Mech, payload: &str) -> Value {
    let Mech { name, wrapping, flags, split_iv, .. } = mech;
    let wrapped = ok(
        dev,
        &format!(
            "key wrap {name} --payload-filter attr.label={payload} --wrapping-filter attr.label={wrapping} {flags}"
        ),
    );
    let mut expected = vec!["payload_key_reference", "wrapping_key_reference", "wrapped_key_data"];
    if *split_iv {
        expected.push("iv");
    }
    assert_eq!(keys(&wrapped), set(&expected), "{name}: {wrapped}");
    wrapped
}

/// Unwraps what [`wrap`] printed into a key labelled `label`.
fn unwrap(dev: &DevProcess, mech: &Mech, wrapped: &Value, type_class: &str, label: &str, attributes: &str) -> Value {
    let Mech { name, unwrapping, flags, .. } = mech;
    let data = wrapped["wrapped_key_data"].as_str().expect("wrapped_key_data");
    let iv = wrapped["iv"].as_str().map(|iv| format!("--iv {iv}")).unwrap_or_default();
    let unwrapped = ok(
        dev,
        &format!(
            "key unwrap {name} --filter attr.label={unwrapping} {flags} {iv} --key-type-class {type_class} \
             --label {label} --data {data} --attributes {attributes}"
        ),
    );
    assert_unwrap_shape(&unwrapped);
    unwrapped
}

/// Every mechanism wraps an AES key and unwraps a copy that decrypts what
/// the original encrypts (and the other way round); the outputs have
/// exactly AWS's keys.
#[test]
fn every_mechanism_round_trips_to_a_working_key_with_aws_output_keys() {
    let dev = hsm();
    import_rsa_loader(&dev);
    load_known(&dev, "kek", "aes", &KEK, "wrap=true unwrap=true");
    let payload = ok(
        &dev,
        "key generate-symmetric aes --label payload --key-length-bytes 32 --attributes encrypt=true decrypt=true",
    );
    let payload_ref = payload["key"]["key-reference"].as_str().expect("payload reference").to_owned();
    for mech in &MECHANISMS {
        let wrapped = wrap(&dev, mech, "payload");
        assert_eq!(wrapped["payload_key_reference"], payload_ref.as_str(), "{}", mech.name);
        let copy = format!("copy-{}", mech.name);
        let unwrapped = unwrap(&dev, mech, &wrapped, "aes", &copy, "encrypt=true decrypt=true");
        assert_eq!(unwrapped["key"]["attributes"]["label"], copy.as_str());
        assert_eq!(unwrapped["key"]["attributes"]["key-length-bytes"], 32, "{}", mech.name);
        assert_eq!(
            unwrapped["key"]["attributes"]["check-value"], payload["key"]["attributes"]["check-value"],
            "{}",
            mech.name
        );
        same_aes_key(&dev, &copy, "payload");
        same_aes_key(&dev, "payload", &copy);
    }
}

/// AES-GCM: `--tag-length-bits 64` makes an 8-byte tag that matches ring's
/// full tag cut short, with the AAD bound in; other lengths are refused
/// naming the flag and the values; unwrapping with another AAD, none, or
/// another tag length fails.
#[test]
fn gcm_tag_length_and_aad_take_effect() {
    let dev = hsm();
    import_rsa_loader(&dev);
    load_known(&dev, "kek", "aes", &KEK, "wrap=true unwrap=true");
    load_known(&dev, "payload", "aes", &PAYLOAD, "encrypt=true decrypt=true");
    let aes_gcm = &MECHANISMS[0];
    let wrapped = wrap(&dev, aes_gcm, "payload");
    let iv = hex::decode(wrapped["iv"].as_str().expect("iv").trim_start_matches("0x")).expect("hex iv");
    assert_eq!(iv.len(), 12);
    let data = b64(wrapped["wrapped_key_data"].as_str().expect("data"));
    assert_eq!(data.len(), 32 + 8, "a 64-bit tag after the 32-byte key");

    // ring: AES-256-GCM of the payload under the KEK with AAD 0x10; the
    // HSM's tag is the first 8 bytes of ring's.
    let key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &KEK).expect("key"));
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(&iv).expect("nonce");
    let mut theirs = PAYLOAD.to_vec();
    key.seal_in_place_append_tag(nonce, ring::aead::Aad::from([0x10u8]), &mut theirs).expect("seal");
    assert_eq!(data, theirs[..32 + 8], "ciphertext and truncated tag");

    // The same with a full tag on cloudhsm-aes-gcm: IV || ciphertext || tag.
    let cloudhsm = wrap(&dev, &MECHANISMS[1], "payload");
    let blob = b64(cloudhsm["wrapped_key_data"].as_str().expect("data"));
    assert_eq!(blob.len(), 12 + 32 + 16);
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(&blob[..12]).expect("nonce");
    let mut opened = blob[12..].to_vec();
    let plain = key.open_in_place(nonce, ring::aead::Aad::from([0x0a, 0x0b, 0x0c]), &mut opened).expect("ring opens");
    assert_eq!(plain, PAYLOAD);

    // The tag lengths AWS's AES-GCM takes, and no others.
    for bits in [96, 104, 112, 120] {
        let line = format!(
            "key wrap aes-gcm --payload-filter attr.label=payload --wrapping-filter attr.label=kek --tag-length-bits {bits}"
        );
        let data = b64(ok(&dev, &line)["wrapped_key_data"].as_str().expect("data"));
        assert_eq!(data.len(), 32 + bits / 8, "{bits}-bit tag");
    }
    let base = "--payload-filter attr.label=payload --wrapping-filter attr.label=kek";
    for (mechanism, bits) in [("aes-gcm", "100"), ("cloudhsm-aes-gcm", "32"), ("aes-gcm", "256")] {
        let msg = usage_error(&dev, &format!("key wrap {mechanism} {base} --tag-length-bits {bits}"));
        assert!(msg.contains(&format!("invalid value '{bits}' for '--tag-length-bits")), "{msg}");
        assert!(msg.contains("64, 96, 104, 112, 120, 128"), "{msg}");
    }
    let msg = usage_error(
        &dev,
        &format!(
            "key unwrap aes-gcm --filter attr.label=kek --key-type-class aes --label x --data AA== --iv {} --tag-length-bits 48",
            wrapped["iv"].as_str().expect("iv")
        ),
    );
    assert!(msg.contains("'--tag-length-bits") && msg.contains("64, 96, 104, 112, 120, 128"), "{msg}");

    // Unwrapping needs the same AAD and tag length.
    let data = wrapped["wrapped_key_data"].as_str().expect("data");
    let iv = wrapped["iv"].as_str().expect("iv");
    let unwrap_line = |flags: &str, label: &str| {
        format!(
            "key unwrap aes-gcm --filter attr.label=kek --iv {iv} {flags} --key-type-class aes --label {label} --data {data}"
        )
    };
    for (flags, why) in [
        ("--tag-length-bits 64 --aad 0x11", "another AAD"),
        ("--tag-length-bits 64", "no AAD"),
        ("--tag-length-bits 96 --aad 0x10", "another tag length"),
    ] {
        let msg = err(&dev, &unwrap_line(flags, "bad"));
        assert!(msg.contains("not authentic") || msg.contains("shorter"), "{why}: {msg}");
    }
    let blob = cloudhsm["wrapped_key_data"].as_str().expect("data");
    let msg = err(
        &dev,
        &format!(
            "key unwrap cloudhsm-aes-gcm --filter attr.label=kek --tag-length-bits 128 --aad 0a0b0d \
             --key-type-class aes --label bad --data {blob}"
        ),
    );
    assert!(msg.contains("not authentic"), "{msg}");
    assert!(ok(&dev, "key list --filter attr.label=bad")["matched_keys"].as_array().expect("keys").is_empty());
    // With the right ones the copy works.
    ok(&dev, &unwrap_line("--tag-length-bits 64 --aad 0x10 --attributes encrypt=true decrypt=true", "good"));
    same_aes_key(&dev, "good", "payload");
}

/// The AES key wraps match OpenSSL on known keys: aes-zero-pad is RFC 5649
/// (OpenSSL's id-aes256-wrap-pad), aes-pkcs5-pad is PKCS #5 padding then
/// RFC 3394 (id-aes256-wrap), aes-no-pad is RFC 3394. Each also unwraps
/// what OpenSSL made.
#[test]
fn aes_key_wraps_match_openssl_on_known_keys() {
    let dev = hsm();
    import_rsa_loader(&dev);
    load_known(&dev, "kek", "aes", &KEK, "wrap=true unwrap=true");
    load_known(&dev, "payload", "aes", &PAYLOAD, "encrypt=true decrypt=true");
    load_known(&dev, "secret20", "generic-secret", &SECRET20, "sign=true verify=true");
    let kek_hex = hex::encode(KEK);
    let openssl_wrap = |cipher: &str, iv: &str, input: &[u8], name: &str| {
        let path = file(&dev, name);
        std::fs::write(&path, input).expect("write input");
        openssl(&["enc", cipher, "-K", &kek_hex, "-iv", iv, "-in", &path])
    };
    let pkcs5 = |bytes: &[u8]| {
        let pad = 8 - bytes.len() % 8;
        let mut padded = bytes.to_vec();
        padded.extend(std::iter::repeat_n(u8::try_from(pad).expect("pad"), pad));
        padded
    };
    let cases: [(&str, &str, &[u8]); 2] = [("payload", "aes", &PAYLOAD), ("secret20", "generic-secret", &SECRET20)];
    for (label, type_class, bytes) in cases {
        let expected = [
            ("aes-zero-pad", openssl_wrap("-id-aes256-wrap-pad", "A65959A6", bytes, "zero.in")),
            ("aes-pkcs5-pad", openssl_wrap("-id-aes256-wrap", "A6A6A6A6A6A6A6A6", &pkcs5(bytes), "pkcs5.in")),
        ];
        for (name, theirs) in expected {
            let line = format!("key wrap {name} --payload-filter attr.label={label} --wrapping-filter attr.label=kek");
            let ours = b64(ok(&dev, &line)["wrapped_key_data"].as_str().expect("data"));
            assert_eq!(hex::encode(&ours), hex::encode(&theirs), "{name} of {label}");
            // And OpenSSL's bytes unwrap to a key with the same check value.
            let copy = format!("{label}-{name}");
            let unwrapped = ok(
                &dev,
                &format!(
                    "key unwrap {name} --filter attr.label=kek --key-type-class {type_class} --label {copy} --data {}",
                    B64.encode(&theirs)
                ),
            );
            assert_unwrap_shape(&unwrapped);
            let original = ok(&dev, &format!("key list --filter attr.label={label} --verbose"));
            assert_eq!(
                unwrapped["key"]["attributes"]["check-value"], original["matched_keys"][0]["attributes"]["check-value"],
                "{copy}"
            );
            assert_eq!(unwrapped["key"]["attributes"]["key-length-bytes"], bytes.len(), "{copy}");
        }
    }
    // On a 32-byte key zero padding adds nothing (32 + 8 bytes out) while
    // PKCS #5 adds a whole 8-byte block (40 + 8).
    let zero = ok(&dev, "key wrap aes-zero-pad --payload-filter attr.label=payload --wrapping-filter attr.label=kek");
    let pkcs5_pad =
        ok(&dev, "key wrap aes-pkcs5-pad --payload-filter attr.label=payload --wrapping-filter attr.label=kek");
    assert_eq!(b64(zero["wrapped_key_data"].as_str().expect("data")).len(), 40);
    assert_eq!(b64(pkcs5_pad["wrapped_key_data"].as_str().expect("data")).len(), 48, "8 bytes of PKCS #5 padding");
    let theirs = openssl_wrap("-id-aes256-wrap", "A6A6A6A6A6A6A6A6", &PAYLOAD, "kw.in");
    let ours = ok(&dev, "key wrap aes-no-pad --payload-filter attr.label=payload --wrapping-filter attr.label=kek");
    assert_eq!(b64(ours["wrapped_key_data"].as_str().expect("data")), theirs, "aes-no-pad is RFC 3394");
    // aes-pkcs5-pad output whose padding is wrong is refused.
    let unpadded = openssl_wrap("-id-aes256-wrap", "A6A6A6A6A6A6A6A6", &PAYLOAD, "nopad.in");
    let msg = err(
        &dev,
        &format!(
            "key unwrap aes-pkcs5-pad --filter attr.label=kek --key-type-class aes --label bad --data {}",
            B64.encode(&unpadded)
        ),
    );
    assert!(msg.contains("not authentic"), "{msg}");
}

/// rsa-pkcs is RSA PKCS #1 v1.5: OpenSSL decrypts the wrapped bytes to the
/// known key with the imported private key, and what OpenSSL encrypts
/// unwraps to a key that works.
#[test]
fn rsa_pkcs_is_pkcs1_v15_encryption_of_the_key() {
    let dev = hsm();
    let private = import_rsa_loader(&dev);
    load_known(&dev, "payload", "aes", &PAYLOAD, "encrypt=true decrypt=true");
    let wrapped =
        ok(&dev, "key wrap rsa-pkcs --payload-filter attr.label=payload --wrapping-filter attr.label=loader-pub");
    assert_eq!(keys(&wrapped), set(&["payload_key_reference", "wrapping_key_reference", "wrapped_key_data"]));
    let sealed = b64(wrapped["wrapped_key_data"].as_str().expect("data"));
    assert_eq!(sealed.len(), 256, "one RSA-2048 block");
    let sealed_path = file(&dev, "rsa-pkcs.bin");
    std::fs::write(&sealed_path, &sealed).expect("write");
    let opened = openssl(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        &private,
        "-in",
        &sealed_path,
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
    ]);
    assert_eq!(opened, PAYLOAD);
    // OAEP decryption of the same bytes fails: the padding is PKCS #1 v1.5.
    let oaep = Command::new("openssl")
        .args(["pkeyutl", "-decrypt", "-inkey", &private, "-in", &sealed_path, "-pkeyopt", "rsa_padding_mode:oaep"])
        .output()
        .expect("openssl runs");
    assert!(!oaep.status.success());

    // OpenSSL's PKCS #1 v1.5 encryption of a key unwraps to that key.
    let plain = file(&dev, "kek.bin");
    std::fs::write(&plain, KEK).expect("write");
    let theirs = openssl(&["pkeyutl", "-encrypt", "-pubin", "-inkey", &file(&dev, "loader-pub.pem"), "-in", &plain]);
    let unwrapped = ok(
        &dev,
        &format!(
            "key unwrap rsa-pkcs --filter attr.label=loader --key-type-class aes --label kek-copy \
             --attributes encrypt=true decrypt=true --data {}",
            B64.encode(&theirs)
        ),
    );
    assert_unwrap_shape(&unwrapped);
    load_known(&dev, "kek", "aes", &KEK, "encrypt=true decrypt=true");
    same_aes_key(&dev, "kek-copy", "kek");
}

/// `key unwrap --key-type-class ec-private` takes no curve: the copy is on
/// the wrapped key's curve and signs what the original's public key
/// verifies. `--curve` is refused saying why.
#[test]
fn ec_unwrap_takes_the_curve_from_the_wrapped_key() {
    let dev = hsm();
    ok(&dev, "key generate-symmetric aes --label kek --key-length-bytes 32 --attributes wrap=true unwrap=true");
    for (name, curve) in [("p256", "secp256r1"), ("p384", "secp384r1")] {
        let pair = ok(
            &dev,
            &format!(
                "key generate-asymmetric-pair ec --curve {curve} --public-label {name}-pub --private-label {name} \
                 --public-attributes verify=true --private-attributes sign=true"
            ),
        );
        assert_eq!(pair["private_key"]["attributes"]["curve"], curve);
        for mech in [&MECHANISMS[4], &MECHANISMS[0]] {
            let wrapped = wrap(&dev, mech, name);
            let copy = format!("{name}-{}", mech.name);
            let unwrapped = unwrap(&dev, mech, &wrapped, "ec-private", &copy, "sign=true");
            let attributes = &unwrapped["key"]["attributes"];
            assert_eq!(attributes["curve"], curve, "{copy}: {unwrapped}");
            assert_eq!(attributes["class"], "private-key");
            assert_eq!(attributes["key-type"], "ec");
            assert_eq!(attributes["ec-point"], pair["private_key"]["attributes"]["ec-point"], "{copy}");
            let signed = ok(
                &dev,
                &format!("crypto sign ecdsa --key-filter attr.label={copy} --hash-function sha256 --data {MESSAGE}"),
            );
            let signature = signed["signature"].as_str().expect("signature");
            ok(
                &dev,
                &format!(
                    "crypto verify ecdsa --key-filter attr.label={name}-pub --hash-function sha256 --data {MESSAGE} \
                     --signature {signature}"
                ),
            );
        }
    }
    let wrapped = wrap(&dev, &MECHANISMS[4], "p256");
    let data = wrapped["wrapped_key_data"].as_str().expect("data");
    let msg = err(
        &dev,
        &format!(
            "key unwrap aes-zero-pad --filter attr.label=kek --key-type-class ec-private --curve secp256r1 \
             --label x --data {data}"
        ),
    );
    assert_eq!(
        msg,
        "--curve secp256r1: key unwrap takes no curve; an EC private key's curve comes from the wrapped key"
    );
    // An EC key claimed as RSA is refused by the HSM.
    let msg = err(
        &dev,
        &format!(
            "key unwrap aes-zero-pad --filter attr.label=kek --key-type-class rsa-private --label x --data {data}"
        ),
    );
    assert!(msg.contains("invalid key"), "{msg}");
}

/// `--payload-approval` is AWS's name for the wrap's quorum token; the
/// emulator's earlier `--approval` still works. (Parsing only: a missing
/// file is reported under the flag's name.)
#[test]
fn wrap_takes_aws_payload_approval_flag() {
    let dev = hsm();
    ok(&dev, "key generate-symmetric aes --label kek --key-length-bytes 32 --attributes wrap=true unwrap=true");
    ok(&dev, "key generate-symmetric aes --label payload --key-length-bytes 16");
    let missing = file(&dev, "no-such-token.json");
    for flag in ["--payload-approval", "--approval"] {
        let msg = err(
            &dev,
            &format!(
                "key wrap aes-no-pad --payload-filter attr.label=payload --wrapping-filter attr.label=kek {flag} {missing}"
            ),
        );
        assert!(msg.contains(&missing), "{flag}: {msg}");
    }
}
