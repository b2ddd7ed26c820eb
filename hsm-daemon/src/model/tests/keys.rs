//! Keys on the pure model: attributes, owners and shares, session keys,
//! quotas, listing, sync digests and masked objects.

use std::sync::Arc;

use super::*;
use crate::crypto::{Curve, KeyMaterial};

fn template(pairs: &[(&str, &str)]) -> Template {
    Template::parse(&pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect::<Vec<_>>()).unwrap()
}

impl Fixture {
    /// An activated HSM with crypto users alice, bob and carol, each
    /// logged in; returns their callers and the admin's.
    fn with_crypto_users() -> (Self, Caller, Caller, Caller, Caller) {
        Self::with_crypto_users_at(1)
    }

    fn with_crypto_users_at(index: u32) -> (Self, Caller, Caller, Caller, Caller) {
        let mut f = Fixture::activated_at(index);
        for n in ["bob", "carol"] {
            let h = f.hash("user-pass");
            f.hsm.create_user(name(n), Role::CryptoUser, h, None).unwrap();
        }
        let caller = |f: &mut Fixture, user: &str, role: Role, pass: &str| {
            let t = f.login(user, role, pass).unwrap();
            f.caller(Operation::ListKeys, &t).unwrap()
        };
        let alice = caller(&mut f, "alice", Role::CryptoUser, "alice-pass");
        let bob = caller(&mut f, "bob", Role::CryptoUser, "user-pass");
        let carol = caller(&mut f, "carol", Role::CryptoUser, "user-pass");
        let admin = caller(&mut f, "admin", Role::Admin, "admin-pass");
        (f, alice, bob, carol, admin)
    }

    /// A session of the appliance user.
    fn appliance(&mut self) -> Caller {
        let t = self.login("app_user", Role::Appliance, "appliance-secret").unwrap();
        self.caller(Operation::InsertMaskedObject, &t).unwrap()
    }

    fn aes(&mut self, owner: &Caller, attrs: &[(&str, &str)], session: bool) -> KeyRef {
        let material = KeyMaterial::generate_aes(256, &mut self.rng).unwrap();
        let new = vec![NewKey { material: Arc::new(material), template: template(attrs), local: true }];
        self.hsm.store_keys(owner, KeyCreation { session, ..KeyCreation::new(new) }).unwrap()[0].reference
    }

    fn ec_pair(&mut self, owner: &Caller) -> (KeyRef, KeyRef) {
        let views = self.try_ec_pair(owner).unwrap();
        (views[0].reference, views[1].reference)
    }

    fn try_ec_pair(&mut self, owner: &Caller) -> Result<Vec<KeyView>, ModelError> {
        let (private, public) = KeyMaterial::generate_ec(Curve::P256, &mut self.rng).unwrap();
        let new = vec![
            NewKey { material: Arc::new(public), template: template(&[("verify", "true")]), local: true },
            NewKey { material: Arc::new(private), template: template(&[("sign", "true")]), local: true },
        ];
        self.hsm.store_keys(owner, KeyCreation::new(new))
    }
}

fn denied(r: Result<impl std::fmt::Debug, ModelError>) -> String {
    match r {
        Err(e @ ModelError::KeyPermission { .. }) => e.to_string(),
        other => panic!("expected a key permission error, got {other:?}"),
    }
}

#[test]
fn key_references_print_as_cloudhsm_shows_them_and_parse_back() {
    let r = KeyRef::new(0x1c0686);
    assert_eq!(r.to_string(), "0x00000000001c0686");
    assert_eq!(KeyRef::parse("key_reference", "0x00000000001c0686").unwrap(), r);
    assert_eq!(KeyRef::parse("key_reference", "0x1C0686").unwrap(), r);
    for bad in ["", "0x", "1c0686", "0xzz", "0x11111111111111111"] {
        let err = KeyRef::parse("key_reference", bad).unwrap_err().to_string();
        assert!(err.starts_with("invalid key_reference: must be a key reference"), "{bad:?}: {err}");
    }
}

#[test]
fn keys_are_used_only_for_what_their_attributes_allow() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let k = f.aes(&alice, &[("encrypt", "true")], false);
    assert!(f.hsm.key_for_use(&alice, k, Usage::Encrypt).is_ok());
    let err = f.hsm.key_for_use(&alice, k, Usage::Decrypt).unwrap_err();
    assert_eq!(err, ModelError::KeyAttribute { reference: k, attribute: AttrName::Decrypt });
    assert!(err.to_string().contains("its decrypt attribute is false"), "{err}");
}

#[test]
fn shared_users_use_but_do_not_manage_and_others_do_not_see() {
    let (mut f, alice, bob, carol, _) = Fixture::with_crypto_users();
    let k = f.aes(&alice, &[("encrypt", "true"), ("wrap", "true")], false);
    let w = f.aes(&alice, &[("wrap", "true")], false);
    assert_eq!(f.hsm.key_for_use(&bob, k, Usage::Encrypt).unwrap_err(), ModelError::KeyNotFound { reference: k });
    f.hsm.share_key(&alice, k, name("bob")).unwrap();
    assert!(f.hsm.key_for_use(&bob, k, Usage::Encrypt).is_ok());
    assert!(denied(f.hsm.delete_key(&bob, k)).contains("only the key's owner can delete it"));
    assert!(denied(f.hsm.share_key(&bob, k, name("carol"))).contains("share"));
    assert!(denied(f.hsm.unshare_key(&bob, k, &name("bob"))).contains("unshare"));
    assert!(denied(f.hsm.set_key_attribute(&bob, k, AttrName::Label, "x")).contains("modify"));
    f.hsm.share_key(&alice, w, name("bob")).unwrap();
    assert!(denied(f.hsm.keys_for_wrap(&bob, w, k)).contains("wrap"));
    assert!(f.hsm.key_for_use(&carol, k, Usage::Encrypt).is_err());
    assert_eq!(f.hsm.list_keys(&carol, &KeyQuery::default()).unwrap().total, 0);
    assert_eq!(f.hsm.list_keys(&bob, &KeyQuery::default()).unwrap().total, 2);

    f.hsm.unshare_key(&alice, k, &name("bob")).unwrap();
    assert_eq!(f.hsm.key_for_use(&bob, k, Usage::Encrypt).unwrap_err(), ModelError::KeyNotFound { reference: k });
}

#[test]
fn public_keys_are_usable_and_listed_by_every_crypto_user_but_not_shared() {
    let (mut f, alice, bob, ..) = Fixture::with_crypto_users();
    let (public, private) = f.ec_pair(&alice);
    assert!(f.hsm.key_for_use(&bob, public, Usage::Verify).is_ok());
    assert!(f.hsm.public_key(&bob, public).is_ok());
    assert!(f.hsm.key_for_use(&bob, private, Usage::Sign).is_err());
    let listed = f.hsm.list_keys(&bob, &KeyQuery::default()).unwrap();
    assert_eq!(listed.keys.iter().map(|k| k.reference).collect::<Vec<_>>(), [public]);
    let err = f.hsm.share_key(&alice, public, name("bob")).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
}

#[test]
fn admins_list_every_key_and_set_only_trusted() {
    let (mut f, alice, _, _, admin) = Fixture::with_crypto_users();
    let k = f.aes(&alice, &[("wrap", "true")], false);
    assert_eq!(f.hsm.list_keys(&admin, &KeyQuery::default()).unwrap().total, 1);
    let shown = f.hsm.set_key_attribute(&admin, k, AttrName::Trusted, "true").unwrap();
    assert!(shown.attrs.trusted);
    assert!(denied(f.hsm.set_key_attribute(&admin, k, AttrName::Label, "x")).contains("only the trusted"));
    assert!(denied(f.hsm.set_key_attribute(&alice, k, AttrName::Trusted, "false")).contains("only admins"));
    assert!(denied(f.hsm.key_for_use(&admin, k, Usage::Wrap)).contains("admins cannot use keys"));
    assert!(f.hsm.delete_key(&admin, k).is_err());
}

#[test]
fn a_key_is_shared_with_at_most_seven_crypto_users() {
    let (mut f, alice, _, _, _) = Fixture::with_crypto_users();
    let k = f.aes(&alice, &[], false);
    let err = f.hsm.share_key(&alice, k, name("admin")).unwrap_err();
    assert!(err.to_string().contains("not a crypto user"), "{err}");
    for i in 0..8 {
        let h = f.hash("user-pass");
        f.hsm.create_user(name(&format!("cu{i}")), Role::CryptoUser, h, None).unwrap();
    }
    for i in 0..7 {
        f.hsm.share_key(&alice, k, name(&format!("cu{i}"))).unwrap();
    }
    let err = f.hsm.share_key(&alice, k, name("cu7")).unwrap_err();
    assert_eq!(err, ModelError::KeyQuota { what: "users a key is shared with", max: 7 });
}

#[test]
fn a_crypto_user_who_owns_keys_cannot_be_deleted() {
    let (mut f, alice, bob, ..) = Fixture::with_crypto_users();
    let k = f.aes(&bob, &[], false);
    f.hsm.share_key(&bob, k, name("carol")).unwrap();
    f.hsm.logout(&bob).unwrap();
    let err = f.hsm.delete_user(&name("bob"), Role::CryptoUser, f.now).unwrap_err();
    assert_eq!(err, ModelError::UserOwnsKeys { username: name("bob"), count: 1 });
    assert_eq!(f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap().total, 0, "the key stays, unseen");
}

#[test]
fn session_keys_vanish_when_their_session_ends() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let token_key = f.aes(&alice, &[], false);
    let session_key = f.aes(&alice, &[], true);
    let listed = f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap();
    assert_eq!(listed.total, 2);
    assert!(listed.keys.iter().any(|k| k.reference == session_key && k.session && !k.attrs.token));
    f.hsm.logout(&alice).unwrap();
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let alice = f.caller(Operation::ListKeys, &t).unwrap();
    let listed = f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap();
    assert_eq!(listed.keys.iter().map(|k| k.reference).collect::<Vec<_>>(), [token_key]);

    // Expiry ends a session too.
    f.aes(&alice, &[], true);
    f.hsm.expire_sessions(f.now + Duration::from_secs(600));
    let admin_t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let alice = f.caller(Operation::ListKeys, &admin_t).unwrap();
    assert_eq!(f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap().total, 1);
}

#[test]
fn quotas_bound_keys_and_asymmetric_keys_and_pairs_are_all_or_nothing() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    f.ec_pair(&alice);
    f.ec_pair(&alice);
    let err = f.try_ec_pair(&alice).unwrap_err();
    assert_eq!(err, ModelError::KeyQuota { what: "asymmetric keys", max: 4 });
    assert_eq!(f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap().total, 4, "nothing half-stored");
    for _ in 0..4 {
        f.aes(&alice, &[], false);
    }
    let material = KeyMaterial::generate_aes(128, &mut f.rng).unwrap();
    let new = vec![NewKey { material: Arc::new(material), template: Template::default(), local: true }];
    assert_eq!(
        f.hsm.store_keys(&alice, KeyCreation::new(new)).unwrap_err(),
        ModelError::KeyQuota { what: "keys", max: 8 }
    );
}

#[test]
fn deleted_pairs_give_their_asymmetric_quota_back() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let (public, private) = f.ec_pair(&alice);
    f.ec_pair(&alice);
    f.hsm.delete_key(&alice, public).unwrap();
    f.hsm.delete_key(&alice, private).unwrap();
    // Two asymmetric keys of four: a pair fits again, and then no more.
    f.ec_pair(&alice);
    let err = f.try_ec_pair(&alice).unwrap_err();
    assert_eq!(err, ModelError::KeyQuota { what: "asymmetric keys", max: 4 });
}

#[test]
fn attribute_rules_follow_cloudhsm() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let k = f.aes(&alice, &[("label", "first"), ("extractable", "false")], false);
    let shown = f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap().keys.remove(0);
    assert_eq!(shown.attribute(AttrName::Label).as_deref(), Some("first"));
    assert_eq!(shown.attribute(AttrName::KeyLengthBytes).as_deref(), Some("32"));
    assert_eq!(shown.attribute(AttrName::Class).as_deref(), Some("secret-key"));
    assert_eq!(shown.attribute(AttrName::NeverExtractable).as_deref(), Some("true"));
    assert_eq!(shown.attribute(AttrName::Local).as_deref(), Some("true"));
    assert_eq!(shown.attribute(AttrName::Modulus), None);

    let set = |f: &mut Fixture, n: AttrName, v: &str| f.hsm.set_key_attribute(&alice, k, n, v);
    assert!(set(&mut f, AttrName::Extractable, "true").unwrap_err().to_string().contains("fixed"));
    assert!(set(&mut f, AttrName::CheckValue, "0x00").unwrap_err().to_string().contains("read-only"));
    assert!(set(&mut f, AttrName::Sign, "maybe").unwrap_err().to_string().contains("true or false"));
    set(&mut f, AttrName::WrapWithTrusted, "true").unwrap();
    assert!(set(&mut f, AttrName::WrapWithTrusted, "false").unwrap_err().to_string().contains("read-only once true"));
    set(&mut f, AttrName::Modifiable, "false").unwrap();
    let err = set(&mut f, AttrName::Label, "second").unwrap_err();
    assert_eq!(err, ModelError::KeyAttribute { reference: k, attribute: AttrName::Modifiable });

    let err = Template::parse(&[("local".into(), "false".into())]).unwrap_err();
    assert_eq!(err.to_string(), "invalid attributes: local cannot be set when a key is created");
    let err = Template::parse(&[("colour".into(), "red".into())]).unwrap_err();
    assert_eq!(err.to_string(), "invalid attributes: unknown attribute \"colour\"");
}

#[test]
fn wrapping_needs_an_extractable_target_and_trust_when_asked() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let w = f.aes(&alice, &[("wrap", "true")], false);
    let fixed = f.aes(&alice, &[("extractable", "false")], false);
    let err = f.hsm.keys_for_wrap(&alice, w, fixed).unwrap_err();
    assert_eq!(err, ModelError::KeyAttribute { reference: fixed, attribute: AttrName::Extractable });
    let guarded = f.aes(&alice, &[("wrap-with-trusted", "true")], false);
    assert!(denied(f.hsm.keys_for_wrap(&alice, w, guarded)).contains("wrap-with-trusted"));
    let plain = f.aes(&alice, &[], false);
    assert!(f.hsm.keys_for_wrap(&alice, w, plain).is_ok());
}

#[test]
fn listing_filters_and_pages() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let refs: Vec<KeyRef> =
        (0..5).map(|i| f.aes(&alice, &[("label", if i % 2 == 0 { "even" } else { "odd" })], false)).collect();
    let q = |filters: &[(&str, &str)], max: usize, token: Option<String>| KeyQuery {
        filters: filters.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        max_items: max,
        starting_token: token,
    };
    let even = f.hsm.list_keys(&alice, &q(&[("attr.label", "even")], 0, None)).unwrap();
    assert_eq!(even.total, 3);
    let one = f.hsm.list_keys(&alice, &q(&[("key-reference", &refs[1].to_string())], 0, None)).unwrap();
    assert_eq!(one.keys.iter().map(|k| k.reference).collect::<Vec<_>>(), [refs[1]]);

    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = f.hsm.list_keys(&alice, &q(&[], 2, token)).unwrap();
        assert_eq!(page.total, 5);
        assert!(page.keys.len() <= 2);
        seen.extend(page.keys.iter().map(|k| k.reference));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, refs);

    let err = f.hsm.list_keys(&alice, &q(&[("label", "x")], 0, None)).unwrap_err();
    assert!(err.to_string().contains("use attr.NAME=VALUE"), "{err}");
    let err = f.hsm.list_keys(&alice, &q(&[], 2, Some("page-two".into()))).unwrap_err();
    assert!(err.to_string().starts_with("invalid starting_token"), "{err}");
}

/// Label filters go through an index kept as keys come, change and go;
/// what they find, their totals and their pages must be what a walk over
/// every key finds.
#[test]
fn label_filters_agree_with_a_walk_over_every_key_as_keys_change() {
    let (mut f, alice, bob, _, admin) = Fixture::with_crypto_users();
    let q = |filters: &[(&str, &str)], max: usize, token: Option<String>| KeyQuery {
        filters: filters.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        max_items: max,
        starting_token: token,
    };
    // Every page of a listing, and the totals each page reported.
    let pages = |f: &Fixture, who: &Caller, filters: &[(&str, &str)]| {
        let (mut seen, mut totals, mut token) = (Vec::new(), BTreeSet::new(), None);
        loop {
            let page = f.hsm.list_keys(who, &q(filters, 2, token)).unwrap();
            seen.extend(page.keys.iter().map(|k| k.reference));
            totals.insert(page.total);
            token = page.next_token;
            if token.is_none() {
                return (seen, totals);
            }
        }
    };
    // The same, found by walking every key (no filter) and comparing.
    let walked = |f: &Fixture, who: &Caller, label: &str| -> Vec<KeyRef> {
        let all = f.hsm.list_keys(who, &q(&[], 0, None)).unwrap().keys;
        all.iter().filter(|k| k.attrs.label.eq_ignore_ascii_case(label)).map(|k| k.reference).collect()
    };
    let check = |f: &Fixture, label: &str| {
        for who in [&alice, &bob, &admin] {
            let (seen, totals) = pages(f, who, &[("attr.label", label)]);
            let want = walked(f, who, label);
            assert_eq!(seen, want, "label {label}");
            assert_eq!(totals, BTreeSet::from([want.len()]), "every page has the same total");
        }
    };
    let a = f.aes(&alice, &[("label", "Same")], false);
    let b = f.aes(&alice, &[("label", "same")], false);
    let c = f.aes(&bob, &[("label", "same")], false);
    let d = f.aes(&alice, &[("label", "other")], false);
    let e = f.aes(&alice, &[("label", "same")], true);
    check(&f, "same");
    check(&f, "SAME");
    check(&f, "other");
    assert_eq!(pages(&f, &admin, &[("attr.label", "same")]).0, [a, b, c, e]);
    assert_eq!(pages(&f, &alice, &[("attr.label", "same"), ("key-reference", &b.to_string())]).0, [b]);

    f.hsm.set_key_attribute(&alice, a, AttrName::Label, "other").unwrap();
    f.hsm.delete_key(&alice, b).unwrap();
    check(&f, "same");
    check(&f, "other");
    assert_eq!(pages(&f, &admin, &[("attr.label", "other")]).0, [a, d]);
    f.hsm.set_key_attribute(&alice, d, AttrName::Label, "fresh").unwrap();
    assert_eq!(pages(&f, &admin, &[("attr.label", "fresh")]).0, [d]);
    assert_eq!(f.hsm.end_all_sessions(), 4);
    let t = f.login("admin", Role::Admin, "admin-pass").unwrap();
    let admin = f.caller(Operation::ListKeys, &t).unwrap();
    assert_eq!(pages(&f, &admin, &[("attr.label", "same")]).0, [c], "the session key went with its session");
    // Admins without filters: every key, counted without a walk.
    let (all, totals) = pages(&f, &admin, &[]);
    assert_eq!((all, totals), (vec![a, c, d], BTreeSet::from([3])));
    assert_eq!(f.hsm.list_keys(&admin, &q(&[("attr.label", "none")], 0, None)).unwrap().total, 0);
}

/// The store keeps each key's sync digest so that a restart parses
/// nothing; a key restored without one gets the same digest computed.
#[test]
fn restored_keys_have_the_digests_they_were_stored_with() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    f.ec_pair(&alice);
    f.aes(&alice, &[("label", "k")], false);
    let changes = f.hsm.take_changes();
    let keys: Vec<PersistedKey> = changes.keys.into_iter().filter_map(|(_, k)| k).collect();
    assert!(keys.iter().all(|k| k.digest.is_some()));
    let without: Vec<PersistedKey> = keys.iter().map(|k| PersistedKey { digest: None, ..k.clone() }).collect();
    let range = KeyRange::for_index(1).unwrap();
    let digests = |keys| Keys::restore(KeyQuotas::HSM2M, range, 0x0010_0001, keys, vec![]).digests();
    let stored = digests(keys);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored, digests(without));
}

/// A restore of many keys builds the label index and the census on a
/// second thread: they must find every key as keys added one by one
/// are found.
#[test]
fn a_large_restore_indexes_every_key() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    f.aes(&alice, &[("label", "k")], false);
    let one = f.hsm.take_changes().keys.into_iter().find_map(|(_, k)| k).unwrap();
    let count = crate::model::keys::PARALLEL_RESTORE as u64 + 7;
    let label = |i: u64| if i.is_multiple_of(2) { format!("Shared-{}", i % 100) } else { format!("own-{i}") };
    let keys: Vec<PersistedKey> = (0..count)
        .map(|i| {
            let mut key = PersistedKey { reference: KeyRef::new(0x0010_0001 + i), ..one.clone() };
            key.attrs.label = label(i);
            key
        })
        .collect();
    let restored = Keys::restore(KeyQuotas::OFF, KeyRange::for_index(1).unwrap(), 0x0010_0001, keys, vec![]);
    let admin = Actor { user: &name("admin"), identity: Identity::CryptoOfficer };
    let found = |label: &str| {
        let query = KeyQuery { filters: vec![("attr.label".to_owned(), label.to_owned())], ..KeyQuery::default() };
        let page = restored.list(admin, &query).unwrap();
        page.keys.iter().map(|k| k.reference.value() - 0x0010_0001).collect::<Vec<_>>()
    };
    assert_eq!(found("shared-42"), (0..count).filter(|i| i % 100 == 42).collect::<Vec<_>>());
    assert_eq!(found("own-12345"), [12345]);
    assert_eq!(found(&format!("own-{}", count - 2)), [count - 2]);
    assert_eq!(found("own-12346"), Vec::<u64>::new());
    assert_eq!(restored.census().values().sum::<usize>() as u64, count);
}

#[test]
fn hsms_in_step_have_equal_sync_digests_and_any_difference_shows() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users();
    let (mut b, alice_b, ..) = Fixture::with_crypto_users();
    // Password hashes are salted per HSM: they are not compared.
    let h = b.hash("another-pass");
    b.hsm.change_user_password(&name("bob"), Role::CryptoUser, h, Deregister::default()).unwrap();
    let same_key = |f: &mut Fixture, who: &Caller| {
        let material = KeyMaterial::from_raw_secret(crate::crypto::KeyKind::Aes, &[7u8; 32]).unwrap();
        let new = vec![NewKey { material: Arc::new(material), template: template(&[("label", "k")]), local: true }];
        f.hsm.store_keys(who, KeyCreation::new(new)).unwrap()[0].reference
    };
    let ka = same_key(&mut a, &alice_a);
    let kb = same_key(&mut b, &alice_b);
    assert_eq!(ka, kb);
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
    assert_eq!((a.hsm.sync_status().users, a.hsm.sync_status().keys), (5, 1));

    a.hsm.share_key(&alice_a, ka, name("carol")).unwrap();
    assert_ne!(a.hsm.sync_status().digest, b.hsm.sync_status().digest, "a share shows");
    b.hsm.share_key(&alice_b, kb, name("carol")).unwrap();
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());

    a.hsm.set_key_attribute(&alice_a, ka, AttrName::Label, "renamed").unwrap();
    assert_ne!(a.hsm.sync_status().digest, b.hsm.sync_status().digest, "an attribute shows");
    b.hsm.set_key_attribute(&alice_b, kb, AttrName::Label, "renamed").unwrap();
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());

    // Session keys are never synchronised; users are.
    a.aes(&alice_a, &[], true);
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
    let h = a.hash("dave-pass1");
    a.hsm.create_user(name("dave"), Role::CryptoUser, h, None).unwrap();
    assert_ne!(a.hsm.sync_status().digest, b.hsm.sync_status().digest, "a user shows");
}

/// Copies key `reference` from `from` to `to` as `who` on each side;
/// returns whether `to` took it.
fn copy(from: &Fixture, from_who: &Caller, to: &mut Fixture, to_who: &Caller, reference: KeyRef) -> bool {
    let object = from.hsm.extract_masked(from_who, &MaskTarget::Key(reference)).unwrap();
    to.hsm.insert_masked(to_who, object).unwrap()
}

#[test]
fn triple_des_keys_live_on_non_fips_clusters_only() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, ..) = Fixture::with_crypto_users_at(2);
    a.hsm.cluster.mode = ClusterMode::NonFips;
    let material = KeyMaterial::generate_des3(&mut a.rng).unwrap();
    let new = vec![NewKey { material: Arc::new(material), template: template(&[("encrypt", "true")]), local: true }];
    let k = a.hsm.store_keys(&alice_a, KeyCreation::new(new)).unwrap()[0].reference;
    assert!(a.hsm.key_for_use(&alice_a, k, Usage::Encrypt).is_ok());
    assert!(a.hsm.permit_cipher(crate::crypto::Cipher::Des3Cbc).is_ok());
    // A FIPS HSM takes no copy (`key replicate` into a FIPS clone) and
    // no triple DES cipher.
    let object = a.hsm.extract_masked(&alice_a, &MaskTarget::Key(k)).unwrap();
    let err = b.hsm.insert_masked(&alice_b, object).unwrap_err();
    assert!(matches!(err, ModelError::FipsMode { .. }), "{err}");
    assert!(err.to_string().contains("the cluster is in FIPS mode"), "{err}");
    assert!(matches!(b.hsm.permit_cipher(crate::crypto::Cipher::Des3Ecb), Err(ModelError::FipsMode { .. })));
    assert!(b.hsm.permit_cipher(crate::crypto::Cipher::AesEcb).is_ok());
    // A key of a mode the HSM does not hold is never used.
    a.hsm.cluster.mode = ClusterMode::Fips;
    let refused = a.hsm.key_for_use(&alice_a, k, Usage::Encrypt);
    assert!(matches!(refused, Err(ModelError::FipsMode { .. })), "{refused:?}");
}

#[test]
fn hsms_of_a_cluster_hand_out_disjoint_references_and_copies_keep_them() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, ..) = Fixture::with_crypto_users_at(2);
    let ka = a.aes(&alice_a, &[("label", "made-on-a"), ("encrypt", "true")], false);
    let kb = b.aes(&alice_b, &[("label", "made-on-b")], false);
    assert_eq!(ka.to_string(), "0x0000000000100001", "HSM 1 keeps the references a lone HSM hands out");
    assert_eq!(kb.to_string(), "0x0000010000100001");
    assert!(copy(&a, &alice_a, &mut b, &alice_b, ka));
    assert!(copy(&b, &alice_b, &mut a, &alice_a, kb));
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
    // The copy is the same key: same attributes, usable on the other HSM.
    let page = b.hsm.list_keys(&alice_b, &KeyQuery::default()).unwrap();
    assert_eq!(page.keys.iter().map(|k| k.attrs.label.as_str()).collect::<Vec<_>>(), ["made-on-a", "made-on-b"]);
    assert!(b.hsm.key_for_use(&alice_b, ka, Usage::Encrypt).is_ok());
    // New keys on either HSM still come from its own range.
    assert_eq!(b.aes(&alice_b, &[], false).to_string(), "0x0000010000100002");
    assert_eq!(a.aes(&alice_a, &[], false).to_string(), "0x0000000000100002");
    // Copying again changes nothing.
    assert!(!copy(&a, &alice_a, &mut b, &alice_b, ka));
}

#[test]
fn newer_versions_win_and_older_copies_and_deleted_keys_do_not_return() {
    let (mut a, alice_a, _, _, admin_a) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, ..) = Fixture::with_crypto_users_at(2);
    let k = a.aes(&alice_a, &[], false);
    let v1 = a.hsm.extract_masked(&alice_a, &MaskTarget::Key(k)).unwrap();
    assert!(b.hsm.insert_masked(&alice_b, v1.clone()).unwrap());

    a.hsm.share_key(&alice_a, k, name("carol")).unwrap();
    assert_ne!(a.hsm.sync_status(), b.hsm.sync_status());
    assert!(copy(&a, &admin_a, &mut b, &alice_b, k), "a share is a newer version");
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
    assert!(!b.hsm.insert_masked(&alice_b, v1.clone()).unwrap(), "an old copy does not roll the share back");

    a.hsm.delete_key(&alice_a, k).unwrap();
    let digests = a.hsm.key_digests();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].stamp, Stamp { version: 3, digest: None }, "a tombstone at the next version");
    assert!(copy(&a, &alice_a, &mut b, &alice_b, k), "the tombstone deletes the copy");
    assert_eq!(b.hsm.list_keys(&alice_b, &KeyQuery::default()).unwrap().total, 0);
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
    assert!(!b.hsm.insert_masked(&alice_b, v1).unwrap(), "a deleted key does not come back");
    assert_eq!(b.hsm.list_keys(&alice_b, &KeyQuery::default()).unwrap().total, 0);
}

#[test]
fn equal_versions_made_on_two_hsms_settle_the_same_way_on_both() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, ..) = Fixture::with_crypto_users_at(2);
    let k = a.aes(&alice_a, &[], false);
    assert!(copy(&a, &alice_a, &mut b, &alice_b, k));
    a.hsm.set_key_attribute(&alice_a, k, AttrName::Label, "from-a").unwrap();
    b.hsm.set_key_attribute(&alice_b, k, AttrName::Label, "from-b").unwrap();
    let from_a = a.hsm.extract_masked(&alice_a, &MaskTarget::Key(k)).unwrap();
    let from_b = b.hsm.extract_masked(&alice_b, &MaskTarget::Key(k)).unwrap();
    let took_b = a.hsm.insert_masked(&alice_a, from_b).unwrap();
    let took_a = b.hsm.insert_masked(&alice_b, from_a).unwrap();
    assert!(took_a != took_b, "exactly one side gives way");
    assert_eq!(a.hsm.sync_status(), b.hsm.sync_status());
}

#[test]
fn masked_object_rules_follow_owners_and_the_appliance_user() {
    let (mut a, alice_a, bob_a, _, admin_a) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, bob_b, _, admin_b) = Fixture::with_crypto_users_at(2);
    let k = a.aes(&alice_a, &[], false);
    a.hsm.share_key(&alice_a, k, name("bob")).unwrap();
    let session_key = a.aes(&alice_a, &[], true);
    // bob uses the key but may not take it; alice, admins and the
    // appliance user may.
    assert!(denied(a.hsm.extract_masked(&bob_a, &MaskTarget::Key(k))).contains("extracts only keys it owns"));
    let au_a = a.appliance();
    for who in [&alice_a, &admin_a, &au_a] {
        assert!(a.hsm.extract_masked(who, &MaskTarget::Key(k)).is_ok());
    }
    let err = a.hsm.extract_masked(&alice_a, &MaskTarget::Key(session_key)).unwrap_err();
    assert!(err.to_string().contains("session key"), "{err}");
    // Someone else's key cannot be inserted by a crypto user.
    let object = a.hsm.extract_masked(&admin_a, &MaskTarget::Key(k)).unwrap();
    assert!(denied(b.hsm.insert_masked(&bob_b, object.clone())).contains("inserts only keys it owns"));
    assert!(b.hsm.insert_masked(&admin_b, object).unwrap());
    // Users: the appliance user (cloning) and admins (user replicate)
    // copy them; crypto users do not.
    assert!(matches!(
        a.hsm.extract_masked(&alice_a, &MaskTarget::User(name("alice"))),
        Err(ModelError::ObjectPermission { .. })
    ));
    let h = a.hash("dave-pass1");
    a.hsm.create_user(name("dave"), Role::CryptoUser, h, None).unwrap();
    let dave = a.hsm.extract_masked(&au_a, &MaskTarget::User(name("dave"))).unwrap();
    assert!(matches!(b.hsm.insert_masked(&bob_b, dave.clone()), Err(ModelError::ObjectPermission { .. })));
    let au_b = b.appliance();
    assert!(b.hsm.insert_masked(&au_b, dave.clone()).unwrap());
    assert!(!b.hsm.insert_masked(&au_b, dave).unwrap(), "an existing user is never replaced");
    assert!(b.login("dave", Role::CryptoUser, "dave-pass1").is_ok(), "the password hash travels");
    let h = a.hash("erin-pass1");
    a.hsm.create_user(name("erin"), Role::CryptoUser, h, None).unwrap();
    let erin = a.hsm.extract_masked(&admin_a, &MaskTarget::User(name("erin"))).unwrap();
    assert!(b.hsm.insert_masked(&admin_b, erin.clone()).unwrap());
    assert!(!b.hsm.insert_masked(&admin_b, erin).unwrap(), "not over an existing user either");
    assert!(b.login("erin", Role::CryptoUser, "erin-pass1").is_ok());
    let _ = alice_b;
}

#[test]
fn a_key_of_a_user_this_hsm_lacks_is_refused_until_the_user_exists() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users_at(1);
    let mut b = Fixture::activated_at(2);
    let t = b.login("admin", Role::Admin, "admin-pass").unwrap();
    let admin_b = b.caller(Operation::InsertMaskedObject, &t).unwrap();
    let k = a.aes(&alice_a, &[], false);
    a.hsm.share_key(&alice_a, k, name("bob")).unwrap();
    let object = a.hsm.extract_masked(&alice_a, &MaskTarget::Key(k)).unwrap();
    let err = b.hsm.insert_masked(&admin_b, object.clone()).unwrap_err().to_string();
    assert!(err.contains("'bob'") && err.contains("not a crypto user on this HSM"), "{err}");
    let h = b.hash("bob-pass-1");
    b.hsm.create_user(name("bob"), Role::CryptoUser, h, None).unwrap();
    assert!(b.hsm.insert_masked(&admin_b, object).unwrap());
}

#[test]
fn a_new_hsm_takes_the_clusters_admin_and_becomes_active() {
    let mut a = Fixture::activated_at(1);
    let au_a = {
        let t = a.login("app_user", Role::Appliance, "appliance-secret").unwrap();
        a.caller(Operation::ExtractMaskedObject, &t).unwrap()
    };
    let admin = a.hsm.extract_masked(&au_a, &MaskTarget::User(name("admin"))).unwrap();
    let mut b = Fixture::at(1_024, 2);
    let preco = b.login("admin", Role::Admin, "password").unwrap();
    // A client cannot do it through the new HSM's appliance user (before
    // activation it may only list users); the HSM's own clone does.
    let t = b.login("app_user", Role::Appliance, "appliance-secret").unwrap();
    assert!(matches!(b.caller(Operation::InsertMaskedObject, &t), Err(ModelError::NotActivated { .. })));
    assert!(b.hsm.insert_masked(&Caller::this_hsm(), admin).unwrap());
    assert_eq!(b.hsm.cluster_info().state, ClusterState::Active);
    assert!(b.login("admin", Role::Admin, "admin-pass").is_ok());
    assert!(b.caller(Operation::GetClusterInfo, &preco).is_err(), "the precrypto officer's session ended");
}

#[test]
fn a_reset_brings_back_users_keys_and_tombstones_exactly_and_tells_the_store_all_of_it() {
    let (mut f, alice, ..) = Fixture::with_crypto_users();
    let kept = f.aes(&alice, &[("label", "kept")], false);
    let deleted = f.aes(&alice, &[], false);
    f.hsm.delete_key(&alice, deleted).unwrap();
    f.hsm.take_changes();
    let snapshot = f.hsm.snapshot();
    let before = f.hsm.sync_status();
    let digests = f.hsm.key_digests();
    assert_eq!((snapshot.users.len(), snapshot.keys.len(), snapshot.tombstones.len()), (5, 1, 1));

    // Afterwards: a new user and key, a changed key, a session key.
    let h = f.hash("dave-pass1");
    f.hsm.create_user(name("dave"), Role::CryptoUser, h, None).unwrap();
    let added = f.aes(&alice, &[], false);
    f.hsm.set_key_attribute(&alice, kept, AttrName::Label, "renamed").unwrap();
    f.aes(&alice, &[], true);
    let dave = f.login("dave", Role::CryptoUser, "dave-pass1").unwrap();
    f.hsm.take_changes();
    assert_ne!(f.hsm.sync_status(), before);

    let closed = f.hsm.reset(snapshot.clone());
    assert_eq!(closed, 5, "alice, bob, carol, the admin and dave were logged in");
    assert_eq!(f.hsm.sync_status(), before);
    assert_eq!(f.hsm.key_digests(), digests, "versions and the tombstone are back too");
    assert!(matches!(f.caller(Operation::ListKeys, &dave), Err(ModelError::InvalidSession { .. })));
    assert_eq!(f.login("dave", Role::CryptoUser, "dave-pass1").unwrap_err(), ModelError::LoginFailed);
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let alice = f.caller(Operation::ListKeys, &t).unwrap();
    let listed = f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap();
    assert_eq!(listed.keys.iter().map(|k| (k.reference, k.attrs.label.as_str())).collect::<Vec<_>>(), [(kept, "kept")]);
    assert_eq!(f.aes(&alice, &[], false), added, "references are handed out again as from the snapshot");

    // The store is told about every row on either side: dave and the
    // added key go, the rest is written as the snapshot holds it.
    let (mut again, alice_again, ..) = Fixture::with_crypto_users();
    let h = again.hash("erin-pass1");
    again.hsm.create_user(name("erin"), Role::CryptoUser, h, None).unwrap();
    let first = again.aes(&alice_again, &[], false);
    let other = again.aes(&alice_again, &[], false);
    again.hsm.take_changes();
    again.hsm.reset(snapshot);
    let changes = again.hsm.take_changes();
    let users: Vec<(&str, bool)> = changes.users.iter().map(|(n, u)| (n.as_str(), u.is_some())).collect();
    assert_eq!(
        users,
        [("admin", true), ("alice", true), ("app_user", true), ("bob", true), ("carol", true), ("erin", false)]
    );
    assert_eq!((first, other), (kept, deleted));
    assert_eq!(
        changes.keys.iter().map(|(r, k)| (*r, k.is_some())).collect::<Vec<_>>(),
        [(kept, true), (deleted, false)]
    );
    assert_eq!(changes.tombstones.iter().map(|(r, t)| (*r, t.is_some())).collect::<Vec<_>>(), [(deleted, true)]);
    assert!(changes.meta.is_some());
}

#[test]
fn ending_every_session_logs_everyone_out_and_drops_session_keys() {
    let (mut f, alice, bob, ..) = Fixture::with_crypto_users();
    let token_key = f.aes(&alice, &[], false);
    f.aes(&bob, &[], true);
    assert_eq!(f.hsm.end_all_sessions(), 4);
    assert_eq!(f.hsm.end_all_sessions(), 0);
    let t = f.login("bob", Role::CryptoUser, "user-pass").unwrap();
    let bob = f.caller(Operation::ListKeys, &t).unwrap();
    let listed = f.hsm.list_keys(&bob, &KeyQuery::default()).unwrap();
    assert_eq!(listed.total, 0, "bob's session key is gone, alice's token key is not his to see");
    let t = f.login("alice", Role::CryptoUser, "alice-pass").unwrap();
    let alice = f.caller(Operation::ListKeys, &t).unwrap();
    assert_eq!(f.hsm.list_keys(&alice, &KeyQuery::default()).unwrap().keys[0].reference, token_key);
}

#[test]
fn references_restored_from_the_store_stay_in_the_hsms_range() {
    let (mut a, alice_a, ..) = Fixture::with_crypto_users_at(1);
    let (mut b, alice_b, ..) = Fixture::with_crypto_users_at(3);
    let k = b.aes(&alice_b, &[], false);
    assert!(copy(&b, &alice_b, &mut a, &alice_a, k));
    let changes = a.hsm.take_changes();
    let keys: Vec<PersistedKey> = changes.keys.into_iter().filter_map(|(_, k)| k).collect();
    let restored = Keys::restore(KeyQuotas::HSM2M, KeyRange::for_index(1).unwrap(), 0x0010_0001, keys, vec![]);
    assert_eq!(restored.next_ref(), 0x0010_0001, "a copy from HSM 3's range does not move HSM 1's counter");
}
