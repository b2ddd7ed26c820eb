//! `hsm-cli key generate-*` and `key list` against AWS's CloudHSM CLI
//! reference: every output carries exactly the keys, in the order, that
//! AWS's examples show (pages `cloudhsm_cli-key-generate-asymmetric-pair-rsa`,
//! `-ec`, `cloudhsm_cli-key-generate-symmetric-aes`, `-generic-secret` and
//! `cloudhsm_cli-key-list`), the pair's quorum flags are AWS's and take
//! effect, and `key list` pages by offset as AWS does.

use std::process::Command;

use integration_tests::{CliOutput, DevProcess};
use serde_json::{Value, json};

const ADMIN: [(&str, &str); 2] = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];

/// The attributes every key shows, in AWS's order (its examples list them
/// so for AES, RSA and EC keys, public and private alike).
const COMMON: [&str; 24] = [
    "key-type",
    "label",
    "id",
    "check-value",
    "class",
    "encrypt",
    "decrypt",
    "token",
    "always-sensitive",
    "derive",
    "destroyable",
    "extractable",
    "local",
    "modifiable",
    "never-extractable",
    "private",
    "sensitive",
    "sign",
    "trusted",
    "unwrap",
    "verify",
    "wrap",
    "wrap-with-trusted",
    "key-length-bytes",
];

/// What RSA keys show after [`COMMON`].
const RSA_EXTRA: [&str; 3] = ["public-exponent", "modulus", "modulus-size-bits"];
/// What EC keys show after [`COMMON`].
const EC_EXTRA: [&str; 2] = ["ec-point", "curve"];

/// An activated dev HSM with crypto users made by the admin.
fn hsm_with_users(users: &[&str]) -> DevProcess {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    for user in users {
        let password = format!("{user}-pass");
        dev.cli(&ADMIN, &["user", "create", "--username", user, "--role", "crypto-user", "--password", &password]).ok();
    }
    dev
}

/// Runs a command line (no quoting needed) as crypto user `user`.
fn as_cu(dev: &DevProcess, user: &str, line: &str) -> CliOutput {
    let pin = format!("{user}:{user}-pass");
    let args: Vec<&str> = line.split_whitespace().collect();
    dev.cli(&[("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", &pin)], &args)
}

fn ok(dev: &DevProcess, user: &str, line: &str) -> Value {
    as_cu(dev, user, line).ok()
}

fn as_admin(dev: &DevProcess, line: &str) -> Value {
    let args: Vec<&str> = line.split_whitespace().collect();
    dev.cli(&ADMIN, &args).ok()
}

/// The names of an object's fields, in order.
fn names(value: &Value) -> Vec<&str> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect()
}

fn attribute_names(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}

/// Checks one key as AWS shows it in a creating command's output and in
/// `key list --verbose`: its fields, its key information and its attributes,
/// all in AWS's order.
fn assert_full_key(key: &Value, extra: &[&'static str]) {
    assert_eq!(names(key), ["key-reference", "key-info", "attributes"], "{key}");
    let info = &key["key-info"];
    assert_eq!(names(info), ["key-owners", "shared-users", "key-quorum-values", "cluster-coverage"], "{info}");
    for user in info["key-owners"].as_array().into_iter().chain(info["shared-users"].as_array()).flatten() {
        assert_eq!(names(user), ["username", "key-coverage"], "{user}");
    }
    assert_eq!(names(&info["key-quorum-values"]), ["manage-key-quorum-value", "use-key-quorum-value"]);
    assert_eq!(info["cluster-coverage"], "full");
    assert_eq!(names(&key["attributes"]), attribute_names(extra), "{key}");
}

/// Runs `openssl` with `args`; returns standard output.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The public key of `label`, written by `key generate-file`, as DER.
fn exported_spki(dev: &DevProcess, user: &str, label: &str) -> Vec<u8> {
    let pem = dev.dir.path().join(format!("{label}.pem"));
    let pem = pem.to_str().expect("path");
    ok(dev, user, &format!("key generate-file --encoding pem --path {pem} --filter attr.label={label}"));
    openssl(&["pkey", "-pubin", "-in", pem, "-outform", "DER"])
}

fn hex_attribute(key: &Value, name: &str) -> Vec<u8> {
    let text = key["attributes"][name].as_str().unwrap_or_else(|| panic!("{name} in {key}"));
    hex::decode(text.trim_start_matches("0x")).expect("hex")
}

#[test]
fn generated_pairs_show_what_aws_shows_on_both_keys() {
    let dev = hsm_with_users(&["cu1"]);

    let rsa = ok(
        &dev,
        "cu1",
        "key generate-asymmetric-pair rsa --public-exponent 65537 --modulus-size-bits 2048 \
         --public-label rsa-public-key-example --private-label rsa-private-key-example",
    );
    assert_eq!(names(&rsa), ["public_key", "private_key"]);
    let (public, private) = (&rsa["public_key"], &rsa["private_key"]);
    assert_full_key(public, &RSA_EXTRA);
    assert_full_key(private, &RSA_EXTRA);
    for key in [public, private] {
        assert_eq!(
            key["key-info"],
            json!({
                "key-owners": [{"username": "cu1", "key-coverage": "full"}],
                "shared-users": [],
                "key-quorum-values": {"manage-key-quorum-value": 0, "use-key-quorum-value": 0},
                "cluster-coverage": "full"
            })
        );
        assert_eq!(key["attributes"]["public-exponent"], "0x010001");
        assert_eq!(key["attributes"]["modulus-size-bits"], 2048);
        assert_eq!(key["attributes"]["id"], "");
    }
    // A public key holds nothing secret; the private key always was.
    let flags = |key: &Value| {
        let a = &key["attributes"];
        [&a["sensitive"], &a["always-sensitive"], &a["never-extractable"]].map(Value::clone)
    };
    assert_eq!(flags(public), [json!(false), json!(false), json!(false)]);
    assert_eq!(flags(private), [json!(true), json!(true), json!(false)]);
    // AWS shows 512 for a 2048-bit public key, and about 1217 (PKCS #8
    // DER, whose length varies with the numbers) for its private key. At
    // most 1220: every INTEGER at its longest (n and d 257 bytes with a
    // sign byte, the five CRT numbers 129). Each number without its sign
    // byte takes one off; under 1200 would need a dozen bytes of leading
    // zeros.
    assert_eq!(public["attributes"]["key-length-bytes"], 512);
    let private_len = private["attributes"]["key-length-bytes"].as_u64().expect("number");
    assert!((1200..=1220).contains(&private_len), "{private_len}");
    // The modulus is the exported public key's, as openssl reads it.
    let pem = dev.dir.path().join("rsa.pem");
    let pem = pem.to_str().expect("path");
    ok(
        &dev,
        "cu1",
        &format!("key generate-file --encoding pem --path {pem} --filter attr.label=rsa-public-key-example"),
    );
    let modulus = String::from_utf8(openssl(&["rsa", "-pubin", "-in", pem, "-noout", "-modulus"])).expect("text");
    let modulus = hex::decode(modulus.trim().trim_start_matches("Modulus=")).expect("hex");
    assert_eq!(hex_attribute(public, "modulus"), modulus);
    assert_eq!(hex_attribute(private, "modulus"), modulus);

    let ec = ok(
        &dev,
        "cu1",
        "key generate-asymmetric-pair ec --curve secp224r1 --public-label ec-public-key-example \
         --private-label ec-private-key-example --public-attributes encrypt=true --private-attributes decrypt=true",
    );
    let (public, private) = (&ec["public_key"], &ec["private_key"]);
    assert_full_key(public, &EC_EXTRA);
    assert_full_key(private, &EC_EXTRA);
    assert_eq!(flags(public), [json!(false), json!(false), json!(false)]);
    assert_eq!(flags(private), [json!(true), json!(true), json!(false)]);
    assert_eq!((&public["attributes"]["encrypt"], &private["attributes"]["decrypt"]), (&json!(true), &json!(true)));
    // AWS's numbers for P-224: the 57-byte point; PKCS #8 DER of 122 bytes.
    assert_eq!(public["attributes"]["key-length-bytes"], 57);
    assert_eq!(private["attributes"]["key-length-bytes"], 122);
    assert_eq!(public["attributes"]["curve"], "secp224r1");
    // The point ends the exported SubjectPublicKeyInfo.
    let spki = exported_spki(&dev, "cu1", "ec-public-key-example");
    let point = hex_attribute(public, "ec-point");
    assert_eq!((point.len(), spki.ends_with(&point)), (57, true), "{}", hex::encode(&spki));
    assert_eq!(hex_attribute(private, "ec-point"), point);
    assert_eq!(public["attributes"]["check-value"], private["attributes"]["check-value"]);

    // Listed verbosely, a key shows what its creation showed.
    let listed = ok(&dev, "cu1", "key list --filter attr.label=ec-private-key-example --verbose");
    assert_eq!(listed["matched_keys"][0], *private);
}

/// A private key's `key-length-bytes` is the length of its PKCS #8 DER, as
/// openssl writes it for the same key.
#[test]
fn an_imported_private_key_counts_its_pkcs8_bytes_as_openssl_does() {
    let dev = hsm_with_users(&["cu1"]);
    let dir = dev.dir.path();
    let cases = [
        ("rsa", "rsa-private", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..]),
        ("p224", "ec-private", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-224"][..]),
    ];
    for (name, type_class, algorithm) in cases {
        let pem = dir.join(format!("{name}.pem"));
        let pem = pem.to_str().expect("path");
        openssl(&[&["genpkey"][..], algorithm, &["-out", pem]].concat());
        let der = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", pem, "-outform", "DER"]);
        let imported = ok(
            &dev,
            "cu1",
            &format!("key import pem --path {pem} --label {name} --key-type-class {type_class} --attributes sign=true"),
        );
        let extra: &[&str] = if name == "rsa" { &RSA_EXTRA } else { &EC_EXTRA };
        assert_full_key(&imported["key"], extra);
        assert_eq!(imported["key"]["attributes"]["key-length-bytes"], der.len(), "{name}");
        assert_eq!(imported["key"]["attributes"]["local"], false);
    }
}

#[test]
fn generated_symmetric_keys_show_what_aws_shows() {
    let dev = hsm_with_users(&["cu1"]);
    let aes = ok(&dev, "cu1", "key generate-symmetric aes --label example-aes --key-length-bytes 24");
    assert_eq!(names(&aes), ["key"]);
    assert_full_key(&aes["key"], &[]);
    let a = &aes["key"]["attributes"];
    assert_eq!(
        (&a["key-type"], &a["class"], &a["key-length-bytes"]),
        (&json!("aes"), &json!("secret-key"), &json!(24))
    );
    assert_eq!(
        (&a["sensitive"], &a["always-sensitive"], &a["never-extractable"]),
        (&json!(true), &json!(true), &json!(false))
    );

    let secret = ok(
        &dev,
        "cu1",
        "key generate-symmetric generic-secret --label generic-secret-example --key-length-bytes 32 \
         --attributes sign=true verify=true",
    );
    assert_full_key(&secret["key"], &[]);
    assert_eq!(secret["key"]["attributes"]["key-type"], "generic-secret");
    assert_eq!(secret["key"]["attributes"]["key-length-bytes"], 32);
}

/// `--manage-private-key-quorum-value` and `--use-private-key-quorum-value`
/// set the private key's quorum values, as AWS's example with `cu2 cu3 cu4`
/// shows them; the public key has none; signing then needs approval.
#[test]
fn a_pairs_quorum_flags_are_awss_and_set_the_private_keys_values() {
    let dev = hsm_with_users(&["cu1", "cu2", "cu3", "cu4"]);
    let pair = ok(
        &dev,
        "cu1",
        "key generate-asymmetric-pair ec --curve secp256r1 --public-label ec-public-key-example \
         --private-label ec-private-key-example --public-attributes verify=true --private-attributes sign=true \
         --share-crypto-users cu2 cu3 cu4 --manage-private-key-quorum-value 4 --use-private-key-quorum-value 2",
    );
    let full = |user: &str| json!({"username": user, "key-coverage": "full"});
    assert_eq!(
        pair["private_key"]["key-info"],
        json!({
            "key-owners": [full("cu1")],
            "shared-users": [full("cu2"), full("cu3"), full("cu4")],
            "key-quorum-values": {"manage-key-quorum-value": 4, "use-key-quorum-value": 2},
            "cluster-coverage": "full"
        })
    );
    assert_eq!(
        pair["public_key"]["key-info"],
        json!({
            "key-owners": [full("cu1")],
            "shared-users": [],
            "key-quorum-values": {"manage-key-quorum-value": 0, "use-key-quorum-value": 0},
            "cluster-coverage": "full"
        })
    );
    let listed = ok(&dev, "cu2", "key list --filter attr.label=ec-private-key-example --verbose");
    assert_eq!(listed["matched_keys"][0]["key-info"], pair["private_key"]["key-info"]);

    // The use value takes effect: signing needs two approvals.
    let sign = "crypto sign ecdsa --key-filter attr.label=ec-private-key-example --hash-function sha256 --data aGk=";
    assert_eq!(as_cu(&dev, "cu1", sign).err(), "Quorum approval is required for this operation");
    // The public key verifies without one (a signature of nothing valid is refused, not gated).
    let verify = "crypto verify ecdsa --key-filter attr.label=ec-public-key-example --hash-function sha256 \
                  --data aGk= --signature AAAA";
    assert_ne!(as_cu(&dev, "cu1", verify).err(), "Quorum approval is required for this operation");

    // A value above the owner and the users shared with is refused.
    let too_many = as_cu(
        &dev,
        "cu1",
        "key generate-asymmetric-pair ec --curve secp256r1 --public-label p --private-label q \
         --share-crypto-users cu2 --use-private-key-quorum-value 3",
    )
    .err();
    assert!(
        too_many.contains("--use-private-key-quorum-value") && too_many.contains("3 is more than the 2"),
        "{too_many}"
    );
    // The symmetric commands' names are not the pair's.
    let wrong = as_cu(
        &dev,
        "cu1",
        "key generate-asymmetric-pair ec --curve secp256r1 --public-label p --private-label q \
         --use-key-quorum-value 1",
    );
    assert!(!wrong.success && wrong.stderr.contains("--use-key-quorum-value"), "{wrong:?}");
    assert_eq!(ok(&dev, "cu1", "key list --filter attr.label=q")["total_key_count"], 0, "nothing made");
}

/// Five keys, two a page: `next_token` "2", then "4", then none, as AWS's
/// example pages; `--starting-token` takes any of them.
#[test]
fn key_list_pages_by_the_offset_aws_returns() {
    let dev = hsm_with_users(&["cu1"]);
    for n in 0..5 {
        ok(&dev, "cu1", &format!("key generate-symmetric aes --label page-{n} --key-length-bytes 16"));
    }
    let all = ok(&dev, "cu1", "key list --max-items 0");
    assert_eq!(names(&all), ["matched_keys", "total_key_count", "returned_key_count"], "no token when all fit");
    let everything: Vec<Value> = all["matched_keys"].as_array().expect("keys").clone();
    assert_eq!(everything.len(), 5);

    let first = ok(&dev, "cu1", "key list --max-items 2");
    assert_eq!(names(&first), ["matched_keys", "total_key_count", "returned_key_count", "next_token"]);
    assert_eq!((&first["total_key_count"], &first["returned_key_count"]), (&json!(5), &json!(2)));
    assert_eq!(first["next_token"], "2");
    assert_eq!(first["matched_keys"].as_array().expect("keys")[..], everything[0..2]);

    let second = ok(&dev, "cu1", "key list --max-items 2 --starting-token 2");
    assert_eq!(second["next_token"], "4");
    assert_eq!((&second["total_key_count"], &second["returned_key_count"]), (&json!(5), &json!(2)));
    assert_eq!(second["matched_keys"].as_array().expect("keys")[..], everything[2..4]);

    let last = ok(&dev, "cu1", "key list --max-items 2 --starting-token 4");
    assert_eq!(names(&last), ["matched_keys", "total_key_count", "returned_key_count"], "the last page: {last}");
    assert_eq!((&last["total_key_count"], &last["returned_key_count"]), (&json!(5), &json!(1)));
    assert_eq!(last["matched_keys"].as_array().expect("keys")[..], everything[4..]);

    // Any offset starts a page, and a filter pages over its matches.
    let from_three = ok(&dev, "cu1", "key list --starting-token 3");
    assert_eq!(from_three["matched_keys"].as_array().expect("keys")[..], everything[3..]);
    let past = ok(&dev, "cu1", "key list --starting-token 9");
    assert_eq!((&past["matched_keys"], &past["returned_key_count"]), (&json!([]), &json!(0)));
    assert_eq!(past["total_key_count"], 5);
    assert!(past.get("next_token").is_none());
    let verbose = ok(&dev, "cu1", "key list --max-items 1 --starting-token 1 --verbose --filter attr.key-type=aes");
    assert_eq!(verbose["next_token"], "2");
    assert_eq!(verbose["matched_keys"][0]["key-reference"], everything[1]["key-reference"]);

    for bad in ["abc", "-1", "2.5", "0x0000000000100001"] {
        let refused = as_cu(&dev, "cu1", &format!("key list --starting-token={bad}")).err();
        assert!(
            refused.starts_with("invalid --starting-token: must be the next_token of an earlier page"),
            "{refused}"
        );
        assert!(refused.contains(&format!("(got {bad:?})")), "{refused}");
    }
}

/// Crypto users see reference and label, or with `--verbose` everything;
/// for admins the flag has no effect, as AWS's help says.
#[test]
fn verbose_shows_everything_to_crypto_users_and_changes_nothing_for_admins() {
    let dev = hsm_with_users(&["cu1", "cu2"]);
    ok(&dev, "cu1", "key generate-symmetric aes --label mine --key-length-bytes 32");
    ok(
        &dev,
        "cu2",
        "key generate-asymmetric-pair ec --curve secp224r1 --public-label theirs-pub --private-label theirs",
    );

    let brief = ok(&dev, "cu1", "key list");
    let keys = brief["matched_keys"].as_array().expect("keys");
    // cu1's key and cu2's public key; never cu2's private key.
    assert_eq!(keys.len(), 2, "{brief}");
    for key in keys {
        assert_eq!(names(key), ["key-reference", "attributes"], "{key}");
        assert_eq!(names(&key["attributes"]), ["label"], "{key}");
    }
    let labels: Vec<&Value> = keys.iter().map(|k| &k["attributes"]["label"]).collect();
    assert_eq!(labels, [&json!("mine"), &json!("theirs-pub")]);

    let verbose = ok(&dev, "cu1", "key list --verbose");
    let keys = verbose["matched_keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    assert_full_key(&keys[0], &[]);
    assert_full_key(&keys[1], &EC_EXTRA);
    assert_eq!(keys[1]["key-info"]["key-owners"][0]["username"], "cu2");

    // Admins see every key, reference and label, with or without --verbose.
    let admin = as_admin(&dev, "key list");
    assert_eq!(admin["total_key_count"], 3);
    for key in admin["matched_keys"].as_array().expect("keys") {
        assert_eq!(names(key), ["key-reference", "attributes"], "{key}");
        assert_eq!(names(&key["attributes"]), ["label"], "{key}");
    }
    assert_eq!(as_admin(&dev, "key list --verbose"), admin);
    assert_eq!(as_admin(&dev, "key list -v --max-items 1"), as_admin(&dev, "key list --max-items 1"));
}
