//! Seeds: the example file, what a plan gives each HSM, determinism, and a
//! refusal with its line for each kind of mistake.

use std::{path::Path, time::Instant};

use rand::{SeedableRng, rngs::StdRng};

use super::*;
use crate::crypto::KeyKind;
use crate::model::{
    AdminSetup, AttrName, ClusterIdentity, ClusterMode, HsmIdentity, HsmSetup, KeyQuery, KeyView, Operation, SyncStatus,
};

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed.toml")
}

/// The P-256 public key of the example's imported private key (SPKI PEM,
/// made with openssl beside the private key).
const EXAMPLE_IMPORTED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEoC2eXrVFeENxoYJ/9+9zkVGkqksI
GD/qqoEMbZ1RX5lthE3kLsh0tUtGZT7MNv2qQ92zUlKXkhYHHh104u0vTA==
-----END PUBLIC KEY-----
";

fn plan_example(deterministic: Option<u64>) -> SeedPlan {
    Seed::from_file(&example_path()).unwrap().plan(&KdfParams::TESTING, deterministic).unwrap()
}

/// A new HSM `index` of one cluster, activated with the plan's admin.
fn new_hsm(plan: &SeedPlan, index: u32) -> Hsm {
    let mut rng = StdRng::seed_from_u64(u64::from(index));
    let k = KdfParams::TESTING;
    let pw = |raw: &str| Password::parse("password", raw).unwrap();
    let mut hsm = Hsm::new(HsmSetup {
        cluster: ClusterIdentity {
            id: ClusterId::parse("cluster-seedexample").unwrap(),
            hsm_type: HsmType::Hsm2mMedium,
            mode: ClusterMode::Fips,
        },
        hsm: HsmIdentity::generate(&mut rng, "127.0.0.1:2223".into(), ClusterMode::Fips),
        limits: Limits::for_type(HsmType::Hsm2mMedium),
        key_range: KeyRange::for_index(index).unwrap(),
        admin: AdminSetup::Activated(plan.admin_hash().unwrap().clone()),
        appliance: pw("appliance-secret").hash(&k, &mut rng).unwrap(),
        decoy: pw("decoy-secret").hash(&k, &mut rng).unwrap(),
    });
    plan.apply(&mut hsm).unwrap();
    hsm
}

/// Logs in to `hsm` and returns the caller the gate would establish.
fn caller(hsm: &mut Hsm, user: &str, role: Role, password: &str) -> Caller {
    let now = Instant::now();
    let attempt = hsm.login_attempt(&Username::parse("u", user).unwrap(), role).unwrap();
    let ok = attempt.hash().verify(&Password::parse("p", password).unwrap());
    assert!(ok, "{user} logs in with the seed's password");
    let (token, _) = hsm.finish_login(attempt, ok, now, &mut StdRng::seed_from_u64(1)).unwrap();
    hsm.admit(Operation::ListKeys, Some(token.expose()), now).unwrap()
}

fn all_keys(hsm: &mut Hsm, caller: &Caller) -> Vec<KeyView> {
    hsm.list_keys(caller, &KeyQuery::default()).unwrap().keys
}

fn by_label<'a>(keys: &'a [KeyView], label: &str) -> &'a KeyView {
    keys.iter().find(|k| k.attrs.label == label).unwrap_or_else(|| panic!("no key labelled {label}"))
}

#[test]
fn the_example_seeds_users_and_keys_with_references_from_hsm_1() {
    let seed = Seed::from_file(&example_path()).unwrap();
    assert_eq!(seed.cluster_id().map(ClusterId::as_str), Some("cluster-seedexample"));
    assert_eq!((seed.hsms(), seed.hsm_type()), (Some(1), Some(HsmType::Hsm2mMedium)));
    assert_eq!(seed.mode(), Some(crate::model::ClusterMode::Fips));
    assert!(seed.sets_admin_password() && seed.generates_keys());
    let plan = seed.plan(&KdfParams::TESTING, None).unwrap();
    assert_eq!((plan.user_count(), plan.key_count()), (3, 14));
    let labels: Vec<(String, String)> =
        plan.key_references().into_iter().map(|(label, r)| (label, r.to_string())).collect();
    let expected = [
        "alice-aes",
        "alice-hmac",
        "alice-p256-pub",
        "alice-p256",
        "bob-ed25519-pub",
        "bob-ed25519",
        "bob-imported-p256",
        "partner-rsa-pub",
        // `count = 3`: numbered pairs.
        "bulk-1-pub",
        "bulk-1",
        "bulk-2-pub",
        "bulk-2",
        "bulk-3-pub",
        "bulk-3",
    ];
    for (i, (label, reference)) in labels.iter().enumerate() {
        assert_eq!(label, expected[i]);
        assert_eq!(reference, &format!("0x{:016x}", 0x0010_0001 + i), "HSM 1's range, in file order");
    }

    let mut hsm = new_hsm(&plan, 1);
    let users: Vec<(String, Role)> = hsm.list_users().into_iter().map(|u| (u.username.to_string(), u.role)).collect();
    assert_eq!(
        users,
        [
            ("admin".to_owned(), Role::Admin),
            ("alice".to_owned(), Role::CryptoUser),
            ("app_user".to_owned(), Role::Appliance),
            ("auditor".to_owned(), Role::Admin),
            ("bob".to_owned(), Role::CryptoUser),
        ]
    );
    caller(&mut hsm, "admin", Role::Admin, "admin-pass");
    caller(&mut hsm, "auditor", Role::Admin, "auditor-pass");
    let alice = caller(&mut hsm, "alice", Role::CryptoUser, "alice-pass");
    let keys = all_keys(&mut hsm, &alice);
    assert_eq!(keys.len(), 10, "alice sees her keys, the key bob shares with her and every public key");
    assert!(keys.iter().all(|k| k.attrs.label != "bob-ed25519"));

    let aes = by_label(&keys, "alice-aes");
    assert_eq!((aes.owner.as_str(), aes.shared.len()), ("alice", 1));
    assert_eq!(aes.shared[0].as_str(), "bob");
    assert_eq!(aes.attribute(AttrName::KeyLengthBytes).as_deref(), Some("32"));
    assert!(aes.attrs.encrypt && aes.attrs.unwrap && !aes.attrs.sign && aes.attrs.local && aes.attrs.token);

    let hmac = by_label(&keys, "alice-hmac");
    assert_eq!(hmac.attribute(AttrName::Id).as_deref(), Some("0x0102"));
    assert!(!hmac.attrs.local, "fixed material is imported, not local");
    let fixed = KeyMaterial::from_raw_secret(
        KeyKind::GenericSecret,
        &hex::decode("6b22454cf6b342879dc78cfcf5d4da9982f1fab72422b4698bd51e94d21b657e").unwrap(),
    )
    .unwrap();
    assert_eq!(hmac.facts.check_value, fixed.check_value());

    let p256 = by_label(&keys, "alice-p256");
    assert!(p256.attrs.sign && !p256.attrs.extractable && p256.attrs.never_extractable);
    assert_eq!(p256.attribute(AttrName::Curve).as_deref(), Some("secp256r1"));
    assert_eq!(by_label(&keys, "alice-p256-pub").facts.ec_point, p256.facts.ec_point);
    assert!(by_label(&keys, "alice-p256-pub").attrs.verify);

    let imported = by_label(&keys, "bob-imported-p256");
    assert_eq!(imported.owner.as_str(), "bob");
    let known = KeyMaterial::from_pem(EXAMPLE_IMPORTED_PUBLIC).unwrap();
    assert_eq!(imported.facts.ec_point, known.ec_point(), "the imported key is the PEM's key");

    let rsa = by_label(&keys, "partner-rsa-pub");
    assert_eq!(rsa.attribute(AttrName::ModulusSizeBits).as_deref(), Some("2048"));
    let file = std::fs::read_to_string(example_path().with_file_name("seed-rsa-public.pem")).unwrap();
    assert_eq!(rsa.facts.modulus, KeyMaterial::from_pem(&file).unwrap().modulus());

    // bob's own keys: his pair and his import, alice's shared AES key and
    // the public keys; not alice's HMAC key or her private P-256 key.
    let bob = caller(&mut hsm, "bob", Role::CryptoUser, "bob-pass1");
    let seen: Vec<String> = all_keys(&mut hsm, &bob).into_iter().map(|k| k.attrs.label).collect();
    assert!(seen.contains(&"alice-aes".to_owned()) && !seen.contains(&"alice-hmac".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"alice-p256".to_owned()), "{seen:?}");
}

#[test]
fn every_hsm_of_the_cluster_starts_with_the_same_digest_and_hsm_1_continues_the_references() {
    let plan = plan_example(None);
    let mut hsms: Vec<Hsm> = (1..=3).map(|i| new_hsm(&plan, i)).collect();
    let status: Vec<SyncStatus> = hsms.iter().map(Hsm::sync_status).collect();
    assert_eq!(status[0], status[1]);
    assert_eq!(status[0], status[2]);
    assert_eq!((status[0].users, status[0].keys), (5, 14));

    // A new key on HSM 1 takes the next reference of its range; on HSM 2 the
    // first of HSM 2's.
    for (i, expected) in [(0, "0x000000000010000f"), (1, "0x0000010000100001")] {
        let hsm = &mut hsms[i];
        let alice = caller(hsm, "alice", Role::CryptoUser, "alice-pass");
        let material = KeyMaterial::generate_aes(128, &mut StdRng::seed_from_u64(3)).unwrap();
        let new = vec![NewKey { material: Arc::new(material), template: Template::default(), local: true }];
        let stored = hsm.store_keys(&alice, crate::model::KeyCreation::new(new)).unwrap();
        assert_eq!(stored[0].reference.to_string(), expected);
    }
}

#[test]
fn deterministic_plans_repeat_generated_keys_and_random_ones_do_not() {
    /// Reference, check value and public point of each key alice sees.
    type Facts = (KeyRef, [u8; 3], Option<Vec<u8>>);
    let facts = |plan: &SeedPlan| -> Vec<Facts> {
        let mut hsm = new_hsm(plan, 1);
        let alice = caller(&mut hsm, "alice", Role::CryptoUser, "alice-pass");
        all_keys(&mut hsm, &alice).into_iter().map(|k| (k.reference, k.facts.check_value, k.facts.ec_point)).collect()
    };
    let seven = facts(&plan_example(Some(7)));
    assert_eq!(seven, facts(&plan_example(Some(7))));
    assert_ne!(seven, facts(&plan_example(Some(8))));
    let random = facts(&plan_example(None));
    assert_ne!(random, facts(&plan_example(None)));
    // References never depend on randomness.
    let references = |f: &[Facts]| f.iter().map(|k| k.0).collect::<Vec<_>>();
    assert_eq!(references(&seven), references(&random));
}

#[test]
fn an_empty_seed_and_a_cluster_only_seed_are_valid() {
    let empty = Seed::parse("").unwrap();
    assert!(!empty.sets_admin_password() && !empty.generates_keys());
    let plan = empty.plan(&KdfParams::TESTING, None).unwrap();
    assert!(plan.admin_hash().is_none() && plan.key_count() == 0);
    let seed = Seed::parse("[cluster]\nhsms = 3\nid = \"cluster-abc\"\n").unwrap();
    assert_eq!(seed.hsms(), Some(3));
}

/// Users every bad seed below starts from: 12 lines.
const BASE: &str = r#"[cluster]
admin_password = "admin-pass"

[[users]]
username = "alice"
role = "crypto-user"
password = "alice-pass"

[[users]]
username = "auditor"
role = "admin"
password = "auditor-pass"
"#;

const BASE_LINES: usize = 12;

/// A valid key entry to vary: lines 13 to 18.
const KEY: &str = r#"[[keys]]
label = "k"
owner = "alice"
type = "aes"
key_length_bytes = 16
"#;

#[test]
fn the_base_of_the_bad_seeds_is_good() {
    assert_eq!(BASE.lines().count(), BASE_LINES);
    Seed::parse(&format!("{BASE}{KEY}")).unwrap().plan(&KdfParams::TESTING, None).unwrap();
}

#[test]
fn each_kind_of_mistake_is_refused_with_its_line_and_reason() {
    // BASE, then a user from line 13 (its username on line 14).
    let user = |name: &str, role: &str, password: &str| {
        format!("{BASE}[[users]]\nusername = \"{name}\"\nrole = \"{role}\"\npassword = \"{password}\"\n")
    };
    // BASE, then a key of alice's labelled k (lines 13 to 15), then `rest`.
    let alices = |rest: &str| format!("{BASE}[[keys]]\nlabel = \"k\"\nowner = \"alice\"\n{rest}");
    // BASE and KEY (lines 13 to 17), then `extra` from line 18.
    let key = |extra: &str| format!("{BASE}{KEY}{extra}");
    let public = EXAMPLE_IMPORTED_PUBLIC;
    let aes128 = "00112233445566778899aabbccddeeff";
    let cases: Vec<(String, usize, &str)> = vec![
        // TOML itself.
        (format!("{BASE}[[keys]\n"), 13, "unclosed array table"),
        (user("bob", "crypto-user", "bob-pass1") + "colour = 1\n", 17, "unknown field `colour`"),
        (format!("{BASE}[[users]]\nusername = \"bob\"\npassword = \"bob-pass1\"\n"), 13, "missing field `role`"),
        (format!("{BASE}[extras]\n"), 13, "unknown field `extras`"),
        // Users.
        (user("bob", "operator", "bob-pass1"), 15, "unknown variant `operator`"),
        (user("Alice", "crypto-user", "alice-pass"), 14, "'alice' is already declared on line 4"),
        (user("bob", "crypto-user", "short"), 16, "must be 7 to 32 characters"),
        (user("bob-1", "crypto-user", "bob-pass1"), 14, "only letters, digits and '_'"),
        (user("admin", "admin", "bob-pass1"), 14, "comes with every cluster"),
        (user("bob", "crypto-user", "bob-pass1").replace(BASE, ""), 1, "set admin_password in [cluster]"),
        // The cluster.
        ("[cluster]\nhsms = 29\n".to_owned(), 2, "hsms must be 1 to 28"),
        ("[cluster]\nid = \"my-cluster\"\n".to_owned(), 2, "must be 'cluster-'"),
        ("[cluster]\nhsm_type = \"hsm9.huge\"\n".to_owned(), 2, "hsm1.medium or hsm2m.medium"),
        ("[cluster]\nmode = \"FAST\"\n".to_owned(), 2, "must be FIPS or NON_FIPS"),
        ("[cluster]\nadmin_password = \"pw\"\n".to_owned(), 2, "invalid admin_password"),
        // Keys: types and parameters.
        (alices("type = \"des\"\n"), 16, "unknown variant `des`"),
        (key("curve = \"secp256r1\"\n"), 18, "curve does not apply to generated aes keys"),
        (alices("type = \"aes\"\nkey_length_bytes = 15\n"), 17, "AES keys are 128, 192 or 256 bits"),
        (alices("type = \"aes\"\n"), 14, "a generated aes key needs key_length_bytes"),
        (alices("public_label = \"kp\"\ntype = \"ec\"\n"), 14, "needs curve"),
        (alices("type = \"ec\"\ncurve = \"secp256r1\"\n"), 13, "name its public key with public_label"),
        (alices("public_label = \"kp\"\ntype = \"ec\"\ncurve = \"ed25519\"\n"), 18, "type = \"ed25519\""),
        (
            alices("public_label = \"kp\"\ntype = \"rsa\"\nmodulus_size_bits = 2048\npublic_exponent = 65536\n"),
            19,
            "public_exponent",
        ),
        (key("public_label = \"kp\"\n"), 18, "public_label names the public key of a generated pair only"),
        // Keys: material.
        (alices("type = \"aes\"\nhex = \"00112233\"\n"), 17, "AES keys are 16, 24 or 32 bytes"),
        (alices("type = \"aes\"\nhex = \"zz\"\n"), 17, "even number of hex digits"),
        (alices("type = \"ec\"\npem = \"not a pem\"\n"), 17, "pem: invalid key: PEM"),
        (alices(&format!("type = \"rsa\"\npem = '''\n{public}'''\n")), 17, "pem holds an ec secp256r1 key, not rsa"),
        (alices(&format!("type = \"ec\"\ncurve = \"secp384r1\"\npem = '''\n{public}'''\n")), 18, "not ec secp384r1"),
        (alices("type = \"ec\"\npem_file = \"no-such.pem\"\n"), 17, "pem_file no-such.pem"),
        (alices(&format!("type = \"aes\"\nhex = \"{aes128}\"\npem = \"x\"\n")), 18, "give the material once"),
        (alices("type = \"aes\"\npem = \"x\"\n"), 17, "aes keys are given as hex"),
        (
            alices(&format!("type = \"aes\"\nhex = \"{aes128}\"\nkey_length_bytes = 16\n")),
            18,
            "key_length_bytes does not apply to aes keys given as pem or hex",
        ),
        // Keys: owners, shares, labels, attributes.
        (format!("{BASE}{}", KEY.replace("alice", "auditor")), 15, "owner 'auditor' is not a crypto user of this seed"),
        (format!("{BASE}{}", KEY.replace("alice", "carol")), 15, "owner 'carol' is not a crypto user"),
        (key("share_with = [\"auditor\"]\n"), 18, "share_with: 'auditor' is not a crypto user"),
        (key("share_with = [\"alice\"]\n"), 18, "share_with: 'alice' owns the key"),
        (
            alices(&format!("type = \"ec\"\npem = '''\n{public}'''\nshare_with = [\"alice\"]\n")),
            23,
            "a public key is not shared",
        ),
        (format!("{BASE}{KEY}{KEY}"), 19, "label 'k' is already used on line 14"),
        (key("attributes = { sign = \"yes\" }\n"), 18, "sign must be true or false"),
        (key("attributes = { token = false }\n"), 18, "token cannot be set when a key is created"),
        (key("attributes = { colour = true }\n"), 18, "unknown attribute \"colour\""),
        (key("attributes = { label = \"x\" }\n"), 18, "set the label with label ="),
        (key("attributes = { encrypt = 1.5 }\n"), 18, "not a float"),
        (key("public_attributes = { verify = true }\n"), 18, "public_attributes apply to the public key"),
        (key("session = true\n"), 18, "unknown field `session`"),
        // Keys: count.
        (key("count = 0\n"), 18, "count must be 1 to 10000000"),
        (key("count = 10000001\n"), 18, "count must be 1 to 10000000"),
        (key("count = \"many\"\n"), 18, "invalid type"),
        (key("count = 2\n"), 14, "with count = 2, the label must hold {n}"),
        (
            alices("public_label = \"kp\"\ntype = \"ec\"\ncurve = \"secp256r1\"\ncount = 2\n")
                .replace("\"k\"", "\"k{n}\""),
            16,
            "with count = 2, the label must hold {n}",
        ),
        (
            format!("{BASE}{}{}", KEY.replace("\"k\"", "\"k2\""), KEY.replace("\"k\"", "\"k{n}\"") + "count = 3\n"),
            19,
            "label 'k2' is already used on line 14",
        ),
        (key("count = 99999\n").replace("\"k\"", &format!("\"{}{{n}}\"", "x".repeat(123))), 14, "at most 127"),
        ("[cluster]\nkey_quota = \"none\"\n".to_owned(), 2, "key_quota must be \"hsm-type\" or \"off\""),
    ];
    for (text, line, reason) in cases {
        let err = Seed::parse(&text).expect_err(&text);
        let shown = err.to_string();
        assert_eq!(err.line(), Some(line), "{shown}\n--- in ---\n{text}");
        assert!(shown.contains(reason), "expected {reason:?} in: {shown}");
        assert!(shown.starts_with(&format!("seed, line {line}, column ")), "{shown}");
    }
}

/// `count` declares many keys alike, numbered in their labels; beyond the
/// HSM type's quota only with `key_quota = "off"`.
#[test]
fn counted_keys_are_numbered_and_bounded_by_the_quota_unless_it_is_off() {
    let entry = |count: usize| {
        format!(
            "[[keys]]\nlabel = \"k-{{n}}\"\nowner = \"alice\"\ntype = \"aes\"\nhex = \"{}\"\ncount = {count}\n",
            "00".repeat(16)
        )
    };
    let plan = Seed::parse(&format!("{BASE}{}", entry(3))).unwrap().plan(&KdfParams::TESTING, None).unwrap();
    let labels: Vec<String> = plan.key_references().into_iter().map(|(label, _)| label).collect();
    assert_eq!(labels, ["k-1", "k-2", "k-3"]);

    let over = 16_667;
    let err = Seed::parse(&format!("{BASE}{}", entry(over))).unwrap().plan(&KdfParams::TESTING, None).unwrap_err();
    assert_eq!(err.line(), Some(13), "{err}");
    assert!(err.to_string().contains("16666"), "{err}");
    let off = format!("{}key_quota = \"off\"\n{}{}", &BASE[..10], &BASE[10..], entry(over));
    let seed = Seed::parse(&off).unwrap();
    assert!(seed.quotas_off());
    assert_eq!(seed.plan(&KdfParams::TESTING, None).unwrap().key_count(), over);
}

#[test]
fn a_seed_holds_no_more_users_than_its_hsm_type_allows() {
    // hsm1.medium: 250 users, admin and app_user included.
    let user = |i: usize| format!("[[users]]\nusername = \"u{i}\"\nrole = \"crypto-user\"\npassword = \"password\"\n");
    let head = "[cluster]\nhsm_type = \"hsm1.medium\"\nadmin_password = \"admin-pass\"\n";
    let fits: String = (0..248).map(user).collect();
    Seed::parse(&format!("{head}{fits}")).unwrap();
    let err = Seed::parse(&format!("{head}{fits}{}", user(248))).unwrap_err();
    assert_eq!(err.line(), Some(4 + 248 * 4), "{err}");
    assert!(err.to_string().contains("more users than an HSM holds (250)"), "{err}");
}

#[test]
fn a_file_error_names_the_file_and_pem_files_are_read_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.toml");
    std::fs::write(dir.path().join("pub.pem"), EXAMPLE_IMPORTED_PUBLIC).unwrap();
    let text = format!("{BASE}[[keys]]\nlabel = \"k\"\nowner = \"alice\"\ntype = \"ec\"\npem_file = \"pub.pem\"\n");
    std::fs::write(&path, &text).unwrap();
    let plan = Seed::from_file(&path).unwrap().plan(&KdfParams::TESTING, None).unwrap();
    assert_eq!(plan.key_count(), 1);

    std::fs::write(&path, format!("{BASE}{KEY}share_with = [\"bob\"]\n")).unwrap();
    let shown = Seed::from_file(&path).unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("seed file {}, line 18, column 15: share_with: 'bob'", path.display())),
        "{shown}"
    );

    let missing = Seed::from_file(&dir.path().join("absent.toml")).unwrap_err();
    assert!(missing.line().is_none() && missing.to_string().contains("absent.toml"), "{missing}");
}

#[test]
fn passwords_and_secret_bytes_never_appear_in_refusals() {
    let secret_hex = "00112233445566778899aabbccddeeffzz";
    let text = format!("{BASE}[[keys]]\nlabel = \"k\"\nowner = \"alice\"\ntype = \"aes\"\nhex = \"{secret_hex}\"\n");
    let shown = Seed::parse(&text).unwrap_err().to_string();
    assert!(!shown.contains("0011223344"), "{shown}");
    let text = "[cluster]\nadmin_password = \"abc\"\n";
    let shown = Seed::parse(text).unwrap_err().to_string();
    assert!(!shown.contains("\"abc\"") && !shown.contains(" abc"), "{shown}");
}

#[test]
fn the_model_refuses_a_plan_on_an_hsm_that_already_has_its_users() {
    let plan = plan_example(None);
    let mut hsm = new_hsm(&plan, 1);
    let err = plan.apply(&mut hsm).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
