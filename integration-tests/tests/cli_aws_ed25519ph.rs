//! `hsm-cli crypto sign ed25519ph` / `crypto verify ed25519ph` (HashEdDSA) as
//! processes against `hsm-daemon dev`, checked against RFC 8032's Ed25519ph
//! test vector (section 7.3), the example on AWS's reference pages (which
//! signs the same "abc" with the same key) and ed25519-dalek.

use base64::Engine as _;
use ed25519_dalek::{Digest as _, Sha512};
use integration_tests::{CliOutput, DevProcess, pem};
use serde_json::{Value, json};

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];

/// RFC 8032 section 7.3, "TEST abc".
const RFC_SEED: &str = "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42";
const RFC_PUBLIC: &str = "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf";
const RFC_SIGNATURE: &str = "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
                             31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406";
/// "abc", base64.
const ABC: &str = "YWJj";
/// The signature AWS's `crypto sign ed25519ph` example prints for `--data YWJj`.
const AWS_EXAMPLE_SIGNATURE: &str =
    "mKcCIvC4Ehqp0w+BPWg/gJ5GK0acf/h2OUmbuU5trkEx+FBCRjwqNVogA9BirfWqoQuMYeY2Biqq0RwqJgg0Bg==";
const VERIFIED: &str = "Signature verified successfully";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex")
}

/// An activated dev HSM with crypto user `cu1`.
fn hsm_with_cu() -> DevProcess {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    dev.cli(&ADMIN, &["user", "create", "--username", "cu1", "--role", "crypto-user", "--password", "cu1-pass"]).ok();
    dev
}

fn cu(dev: &DevProcess, line: &str) -> CliOutput {
    dev.cli(
        &[("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", "cu1:cu1-pass")],
        &line.split_whitespace().collect::<Vec<_>>(),
    )
}

fn ok(dev: &DevProcess, line: &str) -> Value {
    cu(dev, line).ok()
}

fn err(dev: &DevProcess, line: &str) -> String {
    cu(dev, line).err()
}

/// Clap's refusal of the flags: no JSON, a failing status, the reason on
/// standard error.
fn usage_error(dev: &DevProcess, line: &str) -> String {
    let out = cu(dev, line);
    assert!(!out.success, "{line}: {}", out.stdout);
    assert!(out.stdout.is_empty(), "{line}: {}", out.stdout);
    out.stderr
}

fn path(dev: &DevProcess, name: &str) -> String {
    dev.dir.path().join(name).display().to_string()
}

/// Imports RFC 8032's key pair through `key import pem`: the seed as RFC 8410
/// PKCS#8 (`rfc-priv`, sign=true), the public key as SPKI (`rfc-pub`,
/// verify=true). Returns the private key's reference.
fn import_rfc_pair(dev: &DevProcess) -> String {
    let pkcs8 = [unhex("302e020100300506032b657004220420"), unhex(RFC_SEED)].concat();
    let spki = [unhex("302a300506032b6570032100"), unhex(RFC_PUBLIC)].concat();
    let private_pem = path(dev, "rfc-priv.pem");
    let public_pem = path(dev, "rfc-pub.pem");
    std::fs::write(&private_pem, pem("PRIVATE KEY", &pkcs8)).expect("private PEM");
    std::fs::write(&public_pem, pem("PUBLIC KEY", &spki)).expect("public PEM");
    let private = ok(
        dev,
        &format!(
            "key import pem --path {private_pem} --label rfc-priv --key-type-class ed25519-private --attributes sign=true"
        ),
    );
    ok(
        dev,
        &format!(
            "key import pem --path {public_pem} --label rfc-pub --key-type-class ed25519-public --attributes verify=true"
        ),
    );
    private["key"]["key-reference"].as_str().expect("key-reference").to_owned()
}

#[test]
fn rfc_8032_vector_signs_byte_for_byte_and_verifies() {
    let dev = hsm_with_cu();
    let reference = import_rfc_pair(&dev);
    let expected = b64(&unhex(RFC_SIGNATURE));
    assert_eq!(expected, AWS_EXAMPLE_SIGNATURE, "AWS's example is the RFC's signature");

    // Raw data: the HSM hashes it with SHA-512. Ed25519 is deterministic,
    // so the signature is the RFC's, byte for byte, in AWS's JSON shape.
    let signed = ok(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type raw --hash-function sha512 --data {ABC}"
        ),
    );
    assert_eq!(signed, json!({"key-reference": reference, "signature": expected}));

    // The SHA-512 digest of "abc" (made by ed25519-dalek's sha2, not the HSM)
    // signed as a digest gives the same signature.
    let digest = b64(&Sha512::digest(b"abc"));
    let signed = ok(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type digest --hash-function sha512 --data {digest}"
        ),
    );
    assert_eq!(signed, json!({"key-reference": reference, "signature": expected}));

    // AWS's verify example, with raw data and with the digest.
    for (data_type, data) in [("raw", ABC), ("digest", digest.as_str())] {
        let verified = ok(
            &dev,
            &format!(
                "crypto verify ed25519ph --hash-function sha512 --key-filter attr.label=rfc-pub --data-type {data_type} --data {data} --signature {AWS_EXAMPLE_SIGNATURE}"
            ),
        );
        assert_eq!(verified, json!({"message": VERIFIED}), "{data_type}");
    }

    // A tampered signature, or other data, fails.
    let mut tampered = unhex(RFC_SIGNATURE);
    tampered[0] ^= 1;
    let tampered = b64(&tampered);
    let verify = |data_type: &str, data: &str, signature: &str| {
        format!(
            "crypto verify ed25519ph --key-filter attr.label=rfc-pub --data-type {data_type} --hash-function sha512 --data {data} --signature {signature}"
        )
    };
    assert_eq!(err(&dev, &verify("raw", ABC, &tampered)), "Signature verification failed");
    assert_eq!(err(&dev, &verify("raw", "YWJk", &expected)), "Signature verification failed");
    assert_eq!(err(&dev, &verify("digest", &b64(&Sha512::digest(b"abd")), &expected)), "Signature verification failed");

    // Pure Ed25519 and Ed25519ph never verify as each other (RFC 8032's
    // domain separation), nor is Ed25519ph pure Ed25519 over the digest.
    let pure = ok(&dev, &format!("crypto sign ed25519 --key-filter attr.label=rfc-priv --data {ABC}"));
    let pure = pure["signature"].as_str().expect("signature");
    assert_ne!(pure, expected);
    assert_eq!(err(&dev, &verify("raw", ABC, pure)), "Signature verification failed");
    for data in [ABC, digest.as_str()] {
        let as_pure =
            format!("crypto verify ed25519 --key-filter attr.label=rfc-pub --data {data} --signature {expected}");
        assert_eq!(err(&dev, &as_pure), "Signature verification failed");
    }

    // AWS's file example: --data-path and --signature-path.
    let data_path = path(&dev, "data.txt");
    let signature_path = path(&dev, "signature-file");
    std::fs::write(&data_path, b"abc").expect("data file");
    std::fs::write(&signature_path, unhex(RFC_SIGNATURE)).expect("signature file");
    let signed = ok(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type raw --hash-function sha512 --data-path {data_path}"
        ),
    );
    assert_eq!(signed["signature"], expected);
    let verified = ok(
        &dev,
        &format!(
            "crypto verify ed25519ph --hash-function sha512 --key-filter attr.label=rfc-pub --data-type raw --data-path {data_path} --signature-path {signature_path}"
        ),
    );
    assert_eq!(verified, json!({"message": VERIFIED}));
}

#[test]
fn generated_keys_agree_with_ed25519_dalek() {
    let dev = hsm_with_cu();
    ok(
        &dev,
        "key generate-asymmetric-pair ec --curve ed25519 --public-label ed-pub --private-label ed-priv \
         --public-attributes verify=true --private-attributes sign=true",
    );
    let pem_path = path(&dev, "ed-pub.pem");
    ok(&dev, &format!("key generate-file --encoding pem --path {pem_path} --filter attr.label=ed-pub"));
    let pem_text = std::fs::read_to_string(&pem_path).expect("exported PEM");
    let body: String = pem_text.lines().filter(|l| !l.starts_with("-----")).collect();
    let spki = unb64(&body);
    let public: [u8; 32] = spki[spki.len() - 32..].try_into().expect("32-byte key");
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public).expect("an Ed25519 point");

    // A message longer than pure Ed25519's 16,000-byte guidance, from a file.
    let message: Vec<u8> = (0..16_384u32).map(|i| (i * 31 % 251) as u8).collect();
    let data_path = path(&dev, "long.bin");
    std::fs::write(&data_path, &message).expect("data file");
    let signed = ok(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=ed-priv --data-type raw --hash-function sha512 --data-path {data_path}"
        ),
    );
    let signature = ed25519_dalek::Signature::from_slice(&unb64(signed["signature"].as_str().expect("signature")))
        .expect("64 bytes");
    public.verify_prehashed(Sha512::new_with_prefix(&message), None, &signature).expect("dalek verifies the HSM's");
    assert!(public.verify_strict(&message, &signature).is_err(), "not a pure Ed25519 signature");

    // The other way: dalek signs with RFC 8032's key, the HSM verifies.
    import_rfc_pair(&dev);
    let seed: [u8; 32] = unhex(RFC_SEED).try_into().expect("32 bytes");
    let theirs = ed25519_dalek::SigningKey::from_bytes(&seed)
        .sign_prehashed(Sha512::new_with_prefix(&message), None)
        .expect("dalek signs");
    let verified = ok(
        &dev,
        &format!(
            "crypto verify ed25519ph --key-filter attr.label=rfc-pub --data-type digest --hash-function sha512 --data {} --signature {}",
            b64(&Sha512::digest(&message)),
            b64(&theirs.to_bytes())
        ),
    );
    assert_eq!(verified, json!({"message": VERIFIED}));
    let ours = ok(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type raw --hash-function sha512 --data-path {data_path}"
        ),
    );
    assert_eq!(ours["signature"], b64(&theirs.to_bytes()), "deterministic: the same bytes as dalek's");
}

#[test]
fn wrong_hash_function_digest_length_or_key_is_refused() {
    let dev = hsm_with_cu();
    import_rfc_pair(&dev);
    ok(
        &dev,
        "key generate-asymmetric-pair ec --curve secp256r1 --public-label p256-pub --private-label p256-priv --private-attributes sign=true",
    );

    // AWS documents sha512 as the only hash; any other is refused by name.
    for hash in ["sha256", "sha384", "sha1"] {
        let sign = usage_error(
            &dev,
            &format!(
                "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type raw --hash-function {hash} --data {ABC}"
            ),
        );
        let verify = usage_error(
            &dev,
            &format!(
                "crypto verify ed25519ph --key-filter attr.label=rfc-pub --data-type raw --hash-function {hash} --data {ABC} --signature {AWS_EXAMPLE_SIGNATURE}"
            ),
        );
        for refusal in [sign, verify] {
            assert!(
                refusal.contains(&format!("invalid value '{hash}' for '--hash-function <HASH_FUNCTION>'")),
                "{refusal}"
            );
            assert!(refusal.contains("[possible values: sha512]"), "{refusal}");
        }
    }
    // Both --data-type and --hash-function are required, as on AWS.
    let refusal = usage_error(
        &dev,
        &format!("crypto sign ed25519ph --key-filter attr.label=rfc-priv --hash-function sha512 --data {ABC}"),
    );
    assert!(refusal.contains("--data-type <DATA_TYPE>"), "{refusal}");
    let refusal = usage_error(
        &dev,
        &format!("crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type raw --data {ABC}"),
    );
    assert!(refusal.contains("--hash-function <HASH_FUNCTION>"), "{refusal}");

    // A digest is SHA-512's 64 bytes.
    for len in [32usize, 48, 63, 65] {
        let digest = b64(&vec![7; len]);
        let expected = format!("--data-type digest: the data must be a sha512 digest of 64 bytes, not {len} bytes");
        let sign = format!(
            "crypto sign ed25519ph --key-filter attr.label=rfc-priv --data-type digest --hash-function sha512 --data {digest}"
        );
        assert_eq!(err(&dev, &sign), expected);
        let verify = format!(
            "crypto verify ed25519ph --key-filter attr.label=rfc-pub --data-type digest --hash-function sha512 --data {digest} --signature {AWS_EXAMPLE_SIGNATURE}"
        );
        assert_eq!(err(&dev, &verify), expected);
    }

    // An EC key is not an Ed25519 key.
    let refusal = err(
        &dev,
        &format!(
            "crypto sign ed25519ph --key-filter attr.label=p256-priv --data-type raw --hash-function sha512 --data {ABC}"
        ),
    );
    assert!(refusal.contains("Ed25519ph cannot be used with a EC P-256 private key"), "{refusal}");

    // The help lists AWS's flags and values.
    let help = cu(&dev, "crypto sign ed25519ph -h").stdout;
    for text in [
        "--key-filter",
        "--data-path",
        "--data <DATA>",
        "--approval",
        "[possible values: raw, digest]",
        "[possible values: sha512]",
    ] {
        assert!(help.contains(text), "{text} missing from {help}");
    }
}
