//! `hsm-cli key ...` and `crypto ...` as processes against `hsm-daemon dev`:
//! the key-management acceptance flow.

use integration_tests::{CliOutput, DevProcess};
use serde_json::{Value, json};

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];

/// "hello world" and a tampered copy, base64.
const MESSAGE: &str = "aGVsbG8gd29ybGQ=";
const TAMPERED: &str = "aGVsbG8gd29ybGQh";

/// An activated dev HSM with crypto users made by the admin.
fn hsm_with_users(users: &[&str]) -> DevProcess {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    for user in users {
        let password = format!("{user}-pass");
        dev.cli(&ADMIN, &["user", "create", "--username", user, "--role", "crypto-user", "--password", &password]).ok();
    }
    dev
}

/// Runs `hsm-cli` as crypto user `user` (password `<user>-pass`).
fn as_cu(dev: &DevProcess, user: &str, args: &[&str]) -> CliOutput {
    let pin = format!("{user}:{user}-pass");
    dev.cli(&[("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", &pin)], args)
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs a command line (no quoting needed) as `user` and expects success.
fn ok(dev: &DevProcess, user: &str, line: &str) -> Value {
    as_cu(dev, user, &words(line)).ok()
}

/// Runs a command line as `user` and expects an error message.
fn err(dev: &DevProcess, user: &str, line: &str) -> String {
    as_cu(dev, user, &words(line)).err()
}

fn path(dev: &DevProcess, name: &str) -> String {
    dev.dir.path().join(name).display().to_string()
}

/// Generates a pair labelled `<name>-pub` / `<name>-priv` that can sign and
/// verify; returns the data printed.
fn generate_pair(dev: &DevProcess, user: &str, name: &str, kind: &str) -> Value {
    let kind = match kind {
        "rsa" => "rsa --modulus-size-bits 2048 --public-exponent 65537".to_owned(),
        curve => format!("ec --curve {curve}"),
    };
    ok(
        dev,
        user,
        &format!(
            "key generate-asymmetric-pair {kind} --public-label {name}-pub --private-label {name}-priv \
             --public-attributes verify=true --private-attributes sign=true"
        ),
    )
}

#[test]
fn every_key_pair_kind_signs_exports_and_verifies() {
    let dev = hsm_with_users(&["cu1"]);
    let cases = [
        ("p256", "secp256r1", "ecdsa", "ec", "ec-public"),
        ("p384", "secp384r1", "ecdsa", "ec", "ec-public"),
        ("k256", "secp256k1", "ecdsa", "ec", "ec-public"),
        ("ed", "ed25519", "ed25519", "ec-edwards", "ed25519-public"),
        ("rsa", "rsa", "rsa-pkcs", "rsa", "rsa-public"),
    ];
    for (name, kind, mechanism, key_type, type_class) in cases {
        let pair = generate_pair(&dev, "cu1", name, kind);
        let public = &pair["public_key"];
        let private = &pair["private_key"];
        assert_eq!(public["attributes"]["class"], "public-key", "{pair}");
        assert_eq!(private["attributes"]["class"], "private-key", "{pair}");
        assert_eq!(private["attributes"]["key-type"], key_type, "{pair}");
        assert_eq!(private["attributes"]["sign"], true, "{pair}");
        assert_eq!(private["key-info"]["key-owners"], json!([{"username": "cu1", "key-coverage": "full"}]));
        if kind.starts_with("secp") {
            assert_eq!(public["attributes"]["curve"], kind, "{pair}");
        }

        let hash = if mechanism == "ed25519" { String::new() } else { " --hash-function sha256".to_owned() };
        let signed = ok(
            &dev,
            "cu1",
            &format!("crypto sign {mechanism} --key-filter attr.label={name}-priv{hash} --data {MESSAGE}"),
        );
        assert_eq!(signed["key-reference"], private["key-reference"]);
        let signature = signed["signature"].as_str().expect("signature").to_owned();

        // Export the public key and import it back as a new key.
        let pem_path = path(&dev, &format!("{name}-pub.pem"));
        let written = ok(
            &dev,
            "cu1",
            &format!("key generate-file --encoding pem --path {pem_path} --filter attr.label={name}-pub"),
        );
        assert_eq!(written, json!({"message": "Successfully generated key file"}));
        let pem = std::fs::read_to_string(&pem_path).expect("exported PEM");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let imported = ok(
            &dev,
            "cu1",
            &format!(
                "key import pem --path {pem_path} --label {name}-imported --key-type-class {type_class} \
                 --attributes verify=true"
            ),
        );
        assert_eq!(imported["message"], "Successfully imported key");
        assert_eq!(imported["key"]["attributes"]["local"], false, "{imported}");

        for verifier in [format!("{name}-pub"), format!("{name}-imported")] {
            let verified = ok(
                &dev,
                "cu1",
                &format!(
                    "crypto verify {mechanism} --key-filter attr.label={verifier}{hash} --data {MESSAGE} --signature {signature}"
                ),
            );
            assert_eq!(verified, json!({"message": "Signature verified successfully"}));
            let rejected = err(
                &dev,
                "cu1",
                &format!(
                    "crypto verify {mechanism} --key-filter attr.label={verifier}{hash} --data {TAMPERED} --signature {signature}"
                ),
            );
            assert_eq!(rejected, "Signature verification failed");
        }

        // A wrong --key-type-class is refused, and no key is left behind.
        let wrong = if type_class == "rsa-public" { "ec-public" } else { "rsa-public" };
        let refused = err(
            &dev,
            "cu1",
            &format!("key import pem --path {pem_path} --label {name}-wrong --key-type-class {wrong}"),
        );
        assert!(refused.starts_with(&format!("--key-type-class {wrong} does not match")), "{refused}");
        assert_eq!(ok(&dev, "cu1", &format!("key list --filter attr.label={name}-wrong"))["total_key_count"], 0);
    }

    // RSA-PSS and digests signed as such.
    let pss = "--hash-function sha256 --mgf mgf1-sha256 --salt-length 32";
    let signed =
        ok(&dev, "cu1", &format!("crypto sign rsa-pkcs-pss --key-filter attr.label=rsa-priv {pss} --data {MESSAGE}"));
    let signature = signed["signature"].as_str().expect("signature");
    ok(
        &dev,
        "cu1",
        &format!(
            "crypto verify rsa-pkcs-pss --key-filter attr.label=rsa-pub {pss} --data {MESSAGE} --signature {signature}"
        ),
    );
    let digest = ok(&dev, "cu1", &format!("crypto digest --hash-function sha256 --data {MESSAGE}"));
    let digest = digest["digest"].as_str().expect("digest");
    let signed = ok(
        &dev,
        "cu1",
        &format!(
            "crypto sign ecdsa --key-filter attr.label=p256-priv --hash-function sha256 --data-type digest --data {digest}"
        ),
    );
    let signature = signed["signature"].as_str().expect("signature");
    ok(
        &dev,
        "cu1",
        &format!(
            "crypto verify ecdsa --key-filter attr.label=p256-pub --hash-function sha256 --data {MESSAGE} --signature {signature}"
        ),
    );

    // Signatures and data from files.
    let data_path = path(&dev, "message.txt");
    std::fs::write(&data_path, "hello world").expect("data file");
    let signature_path = path(&dev, "message.sig");
    let signed =
        ok(&dev, "cu1", &format!("crypto sign ed25519 --key-filter attr.label=ed-priv --data-path {data_path}"));
    let raw = base64_decode(signed["signature"].as_str().expect("signature"));
    std::fs::write(&signature_path, raw).expect("signature file");
    ok(
        &dev,
        "cu1",
        &format!(
            "crypto verify ed25519 --key-filter attr.label=ed-pub --data {MESSAGE} --signature-path {signature_path}"
        ),
    );

    // pem is for public keys, reference-pem for private keys.
    let refused =
        err(&dev, "cu1", &format!("key generate-file --encoding pem --path {data_path} --filter attr.label=p256-priv"));
    assert!(refused.contains("--encoding pem writes public keys"), "{refused}");
    let reference_path = path(&dev, "p256-priv.pem");
    ok(
        &dev,
        "cu1",
        &format!("key generate-file --encoding reference-pem --path {reference_path} --filter attr.label=p256-priv"),
    );
    let reference = std::fs::read_to_string(&reference_path).expect("reference PEM");
    let private_ref =
        ok(&dev, "cu1", "key list --filter attr.label=p256-priv")["matched_keys"][0]["key-reference"].clone();
    assert!(reference.starts_with("-----BEGIN HSM EMULATOR KEY REFERENCE-----\n"), "{reference}");
    assert!(
        reference.contains(&format!("Key-Reference: {}\n", private_ref.as_str().expect("reference"))),
        "{reference}"
    );
}

/// Standard base64, decoded without a dependency (test data only).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64 character") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn symmetric_keys_are_generated_listed_paged_used_and_wrapped() {
    let dev = hsm_with_users(&["cu1"]);
    let aes = ok(
        &dev,
        "cu1",
        "key generate-symmetric aes --label aes-main --key-length-bytes 32 --attributes encrypt=true decrypt=true wrap=true unwrap=true",
    );
    assert_eq!(aes["key"]["attributes"]["key-type"], "aes");
    assert_eq!(aes["key"]["attributes"]["key-length-bytes"], 32);
    assert_eq!(aes["key"]["attributes"]["encrypt"], true);
    let secret = ok(
        &dev,
        "cu1",
        "key generate-symmetric generic-secret --label hmac-main --key-length-bytes 32 --attributes sign=true verify=true",
    );
    assert_eq!(secret["key"]["attributes"]["key-type"], "generic-secret");
    for i in 1..=4 {
        ok(&dev, "cu1", &format!("key generate-symmetric aes --label aes-extra-{i} --key-length-bytes 16"));
    }

    // Filters: by attribute, several terms, by reference.
    let aes_keys = ok(&dev, "cu1", "key list --filter attr.key-type=aes --max-items 0");
    assert_eq!(aes_keys["total_key_count"], 5);
    assert_eq!(aes_keys["returned_key_count"], 5);
    let one = ok(&dev, "cu1", "key list --filter attr.key-type=generic-secret attr.label=hmac-main --verbose");
    assert_eq!(one["total_key_count"], 1);
    assert_eq!(one["matched_keys"][0]["attributes"]["class"], "secret-key");
    assert_eq!(one["matched_keys"][0]["key-info"]["shared-users"], json!([]));
    let reference = one["matched_keys"][0]["key-reference"].as_str().expect("reference").to_owned();
    let by_reference = ok(&dev, "cu1", &format!("key list --filter key-reference={reference}"));
    assert_eq!(
        by_reference["matched_keys"],
        json!([{"key-reference": reference, "attributes": {"label": "hmac-main"}}])
    );
    assert_eq!(ok(&dev, "cu1", "key list --filter attr.label=missing")["total_key_count"], 0);

    // Pages of two until next_token runs out.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut line = "key list --max-items 2".to_owned();
        if let Some(t) = &token {
            line.push_str(&format!(" --starting-token {t}"));
        }
        let page = ok(&dev, "cu1", &line);
        assert_eq!(page["total_key_count"], 6);
        let keys = page["matched_keys"].as_array().expect("keys");
        assert!(keys.len() <= 2 && page["returned_key_count"] == keys.len());
        seen.extend(keys.iter().map(|k| k["key-reference"].as_str().expect("reference").to_owned()));
        match page.get("next_token") {
            Some(next) => token = Some(next.as_str().expect("token").to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 6, "pages overlap: {seen:?}");
    // The default page is ten keys, as the CloudHSM CLI's.
    assert_eq!(ok(&dev, "cu1", "key list")["returned_key_count"], 6);

    // A filter that selects several keys is refused by commands that need one.
    let several = err(&dev, "cu1", &format!("crypto encrypt aes-ecb --key-filter attr.key-type=aes --data {MESSAGE}"));
    assert_eq!(
        several,
        "multiple keys match the filter --key-filter attr.key-type=aes (5 keys); refine it to select a single key"
    );
    let none = err(&dev, "cu1", "key delete --filter attr.label=missing");
    assert_eq!(none, "no key matches the filter --filter attr.label=missing");

    // Encryption round trips.
    let sealed = ok(
        &dev,
        "cu1",
        &format!("crypto encrypt aes-gcm --key-filter attr.label=aes-main --data {MESSAGE} --aad AQID"),
    );
    let (iv, ciphertext) = (sealed["iv"].as_str().expect("iv"), sealed["ciphertext"].as_str().expect("ciphertext"));
    let opened = ok(
        &dev,
        "cu1",
        &format!(
            "crypto decrypt aes-gcm --key-filter attr.label=aes-main --iv {iv} --aad AQID --ciphertext {ciphertext}"
        ),
    );
    assert_eq!(opened["plaintext"], MESSAGE);
    let sealed =
        ok(&dev, "cu1", &format!("crypto encrypt aes-cbc-pad --key-filter attr.label=aes-main --data {MESSAGE}"));
    let (iv, ciphertext) = (sealed["iv"].as_str().expect("iv"), sealed["ciphertext"].as_str().expect("ciphertext"));
    let opened = ok(
        &dev,
        "cu1",
        &format!("crypto decrypt aes-cbc-pad --key-filter attr.label=aes-main --iv {iv} --ciphertext {ciphertext}"),
    );
    assert_eq!(opened["plaintext"], MESSAGE);

    // Digest and HMAC.
    let digest = ok(&dev, "cu1", "crypto digest --hash-function sha256 --data YWJj");
    assert_eq!(digest, json!({"hash-function": "sha256", "digest": "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="}));
    let tag = ok(
        &dev,
        "cu1",
        &format!("crypto hmac sign --key-filter attr.label=hmac-main --hash-function sha256 --data {MESSAGE}"),
    );
    let tag = tag["signature"].as_str().expect("tag").to_owned();
    ok(
        &dev,
        "cu1",
        &format!(
            "crypto hmac verify --key-filter attr.label=hmac-main --hash-function sha256 --data {MESSAGE} --signature {tag}"
        ),
    );
    let bad = err(
        &dev,
        "cu1",
        &format!(
            "crypto hmac verify --key-filter attr.label=hmac-main --hash-function sha256 --data {TAMPERED} --signature {tag}"
        ),
    );
    assert_eq!(bad, "Signature verification failed");

    // Wrap the HMAC key three ways and unwrap copies that compute the same tag.
    let payload = "--payload-filter attr.label=hmac-main --wrapping-filter attr.label=aes-main";
    let unwrap_common =
        "--filter attr.label=aes-main --key-type-class generic-secret --attributes sign=true verify=true";
    let wrapped = ok(&dev, "cu1", &format!("key wrap aes-pkcs5-pad {payload}"));
    assert_eq!(wrapped["payload_key_reference"], reference.as_str());
    let data = wrapped["wrapped_key_data"].as_str().expect("wrapped data");
    ok(&dev, "cu1", &format!("key unwrap aes-pkcs5-pad {unwrap_common} --label copy-kwp --data {data}"));

    let gcm = ok(&dev, "cu1", &format!("key wrap aes-gcm {payload} --tag-length-bits 128"));
    let iv = gcm["iv"].as_str().expect("iv");
    assert!(iv.starts_with("0x") && iv.len() == 26, "{gcm}");
    let data = gcm["wrapped_key_data"].as_str().expect("wrapped data");
    ok(
        &dev,
        "cu1",
        &format!("key unwrap aes-gcm {unwrap_common} --label copy-gcm --iv {iv} --tag-length-bits 128 --data {data}"),
    );

    let wrapped_path = path(&dev, "hmac.wrapped");
    let filed = ok(&dev, "cu1", &format!("key wrap aes-no-pad {payload} --path {wrapped_path}"));
    assert_eq!(filed["wrapped_key_path"], wrapped_path.as_str());
    let unwrapped =
        ok(&dev, "cu1", &format!("key unwrap aes-no-pad {unwrap_common} --label copy-kw --data-path {wrapped_path}"));
    assert_eq!(unwrapped["key"]["attributes"]["local"], false);
    assert_eq!(unwrapped["key"]["attributes"]["key-length-bytes"], 32);

    for copy in ["copy-kwp", "copy-gcm", "copy-kw"] {
        let again = ok(
            &dev,
            "cu1",
            &format!("crypto hmac sign --key-filter attr.label={copy} --hash-function sha256 --data {MESSAGE}"),
        );
        assert_eq!(again["signature"], tag.as_str(), "{copy}");
    }

    // Attributes change; keys are deleted.
    let set = ok(&dev, "cu1", "key set-attribute --filter attr.label=aes-extra-1 --name encrypt --value true");
    assert_eq!(set, json!({"message": "Attribute set successfully"}));
    let listed = ok(&dev, "cu1", "key list --filter attr.label=aes-extra-1 --verbose");
    assert_eq!(listed["matched_keys"][0]["attributes"]["encrypt"], true);
    assert_eq!(
        ok(&dev, "cu1", "key delete --filter attr.label=aes-extra-1"),
        json!({"message": "Key deleted successfully"})
    );
    assert_eq!(ok(&dev, "cu1", "key list --filter attr.label=aes-extra-1")["total_key_count"], 0);
}

#[test]
fn a_shared_key_can_be_used_but_not_managed_until_it_is_unshared() {
    let dev = hsm_with_users(&["cu1", "cu2", "cu3"]);
    generate_pair(&dev, "cu1", "team", "secp256r1");
    let sign = format!("crypto sign ecdsa --key-filter attr.label=team-priv --hash-function sha256 --data {MESSAGE}");

    // Before sharing, cu2 cannot even see the private key (the public one, yes).
    assert_eq!(err(&dev, "cu2", &sign), "no key matches the filter --key-filter attr.label=team-priv");
    assert_eq!(ok(&dev, "cu2", "key list --filter attr.label=team-pub")["total_key_count"], 1);

    let shared = ok(&dev, "cu1", "key share --filter attr.label=team-priv --username cu2 --role crypto-user");
    assert_eq!(shared, json!({"message": "Key shared successfully"}));
    let listed = ok(&dev, "cu1", "key list --filter attr.label=team-priv --verbose");
    assert_eq!(
        listed["matched_keys"][0]["key-info"]["shared-users"],
        json!([{"username": "cu2", "key-coverage": "full"}])
    );

    // cu2 signs, and the signature verifies.
    let signature = ok(&dev, "cu2", &sign)["signature"].as_str().expect("signature").to_owned();
    ok(
        &dev,
        "cu2",
        &format!(
            "crypto verify ecdsa --key-filter attr.label=team-pub --hash-function sha256 --data {MESSAGE} --signature {signature}"
        ),
    );

    // ... but cannot delete, share, unshare, modify or export a reference to it.
    for line in [
        "key delete --filter attr.label=team-priv",
        "key share --filter attr.label=team-priv --username cu3 --role crypto-user",
        "key unshare --filter attr.label=team-priv --username cu2 --role crypto-user",
        "key set-attribute --filter attr.label=team-priv --name label --value stolen",
    ] {
        let refused = err(&dev, "cu2", line);
        assert!(refused.contains("owner"), "{line}: {refused}");
    }
    assert_eq!(ok(&dev, "cu1", "key list --filter attr.label=team-priv")["total_key_count"], 1);

    let unshared = ok(&dev, "cu1", "key unshare --filter attr.label=team-priv --username cu2 --role crypto-user");
    assert_eq!(unshared, json!({"message": "Key unshared successfully"}));
    assert_eq!(err(&dev, "cu2", &sign), "no key matches the filter --key-filter attr.label=team-priv");
}

#[test]
fn session_keys_live_as_long_as_the_interactive_session() {
    let dev = hsm_with_users(&["cu1"]);
    let script = "login --username cu1 --role crypto-user --password cu1-pass\n\
                  key generate-symmetric aes --label temp --key-length-bytes 16 --session\n\
                  key list --filter attr.label=temp --verbose\n\
                  logout\n\
                  login --username cu1 --role crypto-user --password cu1-pass\n\
                  key list --filter attr.label=temp\n\
                  quit\n";
    let out = dev.cli_with_stdin(&[], &["interactive"], Some(script));
    assert!(out.success, "{}", out.stderr);
    let replies: Vec<Value> = out
        .stdout
        .split("aws-cloudhsm > ")
        .filter(|s| !s.trim().is_empty())
        .map(|s| serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")))
        .collect();
    assert_eq!(replies.len(), 6, "{}", out.stdout);
    assert_eq!(replies[1]["data"]["key"]["attributes"]["token"], false, "{}", replies[1]);
    assert_eq!(replies[2]["data"]["total_key_count"], 1, "{}", replies[2]);
    assert_eq!(replies[5]["data"]["total_key_count"], 0, "{}", replies[5]);
}
