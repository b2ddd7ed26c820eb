//! What the fuzz targets (`hsm-daemon/fuzz`, run with `cargo fuzz`) call:
//! one entry point per kind of input that reaches the HSM from outside, and
//! the seeds of their corpus. Every entry takes arbitrary bytes and must
//! return without panicking; where a property holds for every input (an
//! accepted key exports and re-imports as itself, a listing's pages add up,
//! an approved call had two valid approvers, no error names a secret), it
//! asserts it, so that the fuzzer reports a wrong answer as it reports a
//! crash.
//!
//! The same entries replay the committed corpus in the ordinary test suite
//! (`tests/fuzz_corpus.rs`), so that every input a fuzzer once kept, and
//! every crash it found, stays a test on stable Rust.
//!
//! # Layout
//! - [`Target`]: the targets, by name, with their entry and seeds.
//! - one function per target below, then the fixtures they share.

use std::sync::OnceLock;

use hsm_proto::v1::{self as pb, Rpc};
use prost::Message as _;
use rand::SeedableRng as _;
use tonic::Code;

use crate::{
    crypto::{Curve, KeyClass, KeyKind, KeyMaterial},
    model::{
        AdminSetup, AnchorCert, ApproverKey, Hsm, HsmSetup, KdfParams, KeyRange, Limits, Mtls, Password, PasswordHash,
    },
    seed::Seed,
    service::rig::{self, ADMIN_PASSWORD, Answer, Rig, USER_PASSWORD, block_on},
    settings::Settings,
    store::{self, Backing, Masker, Opened, Store},
};

/// The fuzz targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Sequences of gRPC requests, through the gate and the services.
    Requests,
    /// `key list` filters and paging.
    KeyFilters,
    /// PEM, DER and raw key material, and quorum approvers' public keys.
    KeyImport,
    /// Masked objects (`InsertMaskedObject`).
    MaskedObject,
    /// Backup files (`hsm-daemon restore`).
    Backup,
    /// Signed quorum token files (`--approval FILE`) and the approvals
    /// they carry.
    QuorumApproval,
    /// Seed files (`--seed`).
    Seed,
    /// The daemon's config file (`--config`).
    Settings,
    /// mTLS trust anchors (`cluster mtls register-trust-anchor`).
    TrustAnchor,
}

impl Target {
    pub const ALL: [Target; 9] = [
        Target::Requests,
        Target::KeyFilters,
        Target::KeyImport,
        Target::MaskedObject,
        Target::Backup,
        Target::QuorumApproval,
        Target::Seed,
        Target::Settings,
        Target::TrustAnchor,
    ];

    /// The name of its `cargo fuzz` target and corpus folder.
    pub fn name(self) -> &'static str {
        match self {
            Target::Requests => "requests",
            Target::KeyFilters => "key_filters",
            Target::KeyImport => "key_import",
            Target::MaskedObject => "masked_object",
            Target::Backup => "backup",
            Target::QuorumApproval => "quorum_approval",
            Target::Seed => "seed",
            Target::Settings => "settings",
            Target::TrustAnchor => "trust_anchor",
        }
    }

    /// Feeds one input to the target: whether it got past parsing to the
    /// step behind it (a seed always should).
    pub fn run(self, data: &[u8]) -> bool {
        match self {
            Target::Requests => requests(data),
            Target::KeyFilters => key_filters(data),
            Target::KeyImport => key_import(data),
            Target::MaskedObject => masked_object(data),
            Target::Backup => backup(data),
            Target::QuorumApproval => quorum_approval(data),
            Target::Seed => seed(data),
            Target::Settings => settings(data),
            Target::TrustAnchor => trust_anchor(data),
        }
    }

    /// As [`Target::run`], on HSMs made for this input alone rather than
    /// kept from earlier inputs (the same as `HSM_FUZZ_FRESH`): what
    /// replaying one crash needs.
    pub fn run_alone(self, data: &[u8]) -> bool {
        ALONE.set(true);
        let reached = self.run(data);
        ALONE.set(false);
        reached
    }

    /// Valid inputs to start the corpus from.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Target::Requests => seeds::requests(),
            Target::KeyFilters => seeds::key_filters(),
            Target::KeyImport => seeds::key_import(),
            Target::MaskedObject => seeds::masked_object(),
            Target::Backup => seeds::backup(),
            Target::QuorumApproval => seeds::quorum_approval(),
            Target::Seed => seeds::seed(),
            Target::Settings => seeds::settings(),
            Target::TrustAnchor => seeds::trust_anchor(),
        }
    }
}

mod seeds;

// ---- requests ----

/// Most calls one input makes.
const MAX_CALLS: usize = 16;

/// Who makes a call (the low 3 bits of its second byte).
fn authorization(who: u8, sessions: &Sessions) -> Option<String> {
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    match who & 7 {
        0 => None,
        1 => bearer(&sessions.admin),
        2 => bearer(&sessions.alice),
        3 => bearer(&sessions.bob),
        4 => bearer(&sessions.logged_out),
        5 => bearer("0000000000000000000000000000000000000000000000000000000000000000"),
        6 => Some("Basic YWRtaW46YWRtaW4tcGFzcw==".into()),
        _ => bearer("not a token"),
    }
}

/// The sessions of a [`Rig`] set up by [`populated`].
#[derive(Debug)]
struct Sessions {
    admin: String,
    alice: String,
    bob: String,
    /// A token whose session was closed.
    logged_out: String,
}

/// A rig with an admin, two crypto users (`alice`, `bob`) and alice's keys:
/// an EC P-256 pair shared with bob, an AES-256 key and an HMAC key.
async fn populated() -> (Rig, Sessions) {
    let mut rig = Rig::new().await;
    let admin = expect(rig.login("admin", pb::Role::Admin, ADMIN_PASSWORD).await, "the admin logs in");
    for user in ["alice", "bob"] {
        expect(rig.create_user(&admin, user, pb::Role::CryptoUser, None).await, "creating a user");
    }
    let alice = expect(rig.login("alice", pb::Role::CryptoUser, USER_PASSWORD).await, "alice logs in");
    let bob = expect(rig.login("bob", pb::Role::CryptoUser, USER_PASSWORD).await, "bob logs in");
    let logged_out = expect(rig.login("bob", pb::Role::CryptoUser, USER_PASSWORD).await, "bob logs in again");
    let _: pb::LogoutResponse =
        expect(rig.typed(Rpc::Logout, Some(&logged_out), &pb::LogoutRequest {}).await, "logging out");
    for request in seeds::alice_keys() {
        match request {
            seeds::KeyRequest::Pair(r) => {
                let _: pb::KeyPairResponse = expect(rig.typed(Rpc::GenerateKeyPair, Some(&alice), &r).await, "a pair");
            }
            seeds::KeyRequest::Symmetric(r) => {
                let _: pb::KeyResponse =
                    expect(rig.typed(Rpc::GenerateSymmetricKey, Some(&alice), &r).await, "a secret key");
            }
        }
    }
    (rig, Sessions { admin, alice, bob, logged_out })
}

/// Runs a sequence of calls on a populated HSM. Each call is
/// `[rpc][who][length: u16 LE][body]`: `rpc` indexes [`Rpc::ALL`], `who`'s
/// low bits pick the caller ([`authorization`]) and its high bits move the
/// clock by that many 2-minute steps first.
///
/// One HSM serves up to [`REUSES`] inputs (making one is most of an
/// input's cost), so an input may meet what earlier ones left; with
/// `HSM_FUZZ_FRESH` set, each input gets a new HSM (to replay a crash
/// alone).
///
/// Properties: no call answers `Internal` or `Unknown` (bad input is the
/// caller's fault, and says so), no answer names a password or session
/// token, and the HSM keeps serving.
pub fn requests(data: &[u8]) -> bool {
    REQUEST_RIG.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (rig, sessions) = reused(&mut cell, |(rig, _)| !rig.is_healthy(), || block_on(populated()));
        block_on(calls(rig, sessions, data))
    })
}

/// Inputs one rig serves before a new one replaces it.
const REUSES: u32 = 64;

thread_local! {
    static REQUEST_RIG: std::cell::RefCell<Reused<(Rig, Sessions)>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// Set by [`Target::run_alone`].
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A rig kept across inputs, and how many it has served.
type Reused<T> = Option<(T, u32)>;

/// The rig in `slot`, replaced by `make`'s when it has served [`REUSES`]
/// inputs or `spent` says it cannot serve another (and always with
/// `HSM_FUZZ_FRESH`).
fn reused<T>(slot: &mut Reused<T>, spent: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &mut T {
    static FRESH: OnceLock<bool> = OnceLock::new();
    let fresh = *FRESH.get_or_init(|| std::env::var_os("HSM_FUZZ_FRESH").is_some());
    let stale = |(value, uses): &(T, u32)| fresh || ALONE.get() || *uses >= REUSES || spent(value);
    if slot.as_ref().is_none_or(stale) {
        *slot = None;
        *slot = Some((make(), 0));
    }
    let (value, uses) = slot.get_or_insert_with(|| unreachable!("just made"));
    *uses += 1;
    value
}

async fn calls(rig: &mut Rig, sessions: &Sessions, data: &[u8]) -> bool {
    let secrets = [ADMIN_PASSWORD, USER_PASSWORD, &sessions.admin, &sessions.alice, &sessions.bob];
    let mut rest = data;
    let mut rsa_generated = false;
    let mut any_ok = false;
    for _ in 0..MAX_CALLS {
        let [rpc, who, lo, hi, tail @ ..] = rest else { break };
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let rpc = Rpc::ALL[usize::from(*rpc) % Rpc::ALL.len()];
        if slow(rpc, body, &mut rsa_generated) {
            continue;
        }
        let steps = u64::from(who >> 3);
        if steps > 0 {
            rig.advance(std::time::Duration::from_secs(120 * steps));
        }
        let answer = rig.call(rpc, authorization(*who, sessions).as_deref(), body).await;
        check(&answer, rpc, &secrets);
        assert!(rig.is_healthy(), "{rpc:?} stopped the HSM");
        any_ok |= answer.code == Code::Ok;
    }
    any_ok
}

/// Whether to skip a call that would only spend time: generating an RSA
/// key above 2048 bits (seconds each, and no parsing the others lack), or
/// a second RSA key in one input.
fn slow(rpc: Rpc, body: &[u8], rsa_generated: &mut bool) -> bool {
    if rpc != Rpc::GenerateKeyPair {
        return false;
    }
    let Ok(request) = pb::GenerateKeyPairRequest::decode(body) else { return false };
    let Some(pb::generate_key_pair_request::Parameters::Rsa(rsa)) = request.parameters else { return false };
    let skip = rsa.modulus_size_bits > 2048 || *rsa_generated;
    *rsa_generated = true;
    skip
}

/// The properties every answer has.
fn check(answer: &Answer, rpc: Rpc, secrets: &[&str]) {
    assert!(
        !matches!(answer.code, Code::Internal | Code::Unknown),
        "{rpc:?} answered {:?}: {}",
        answer.code,
        answer.message
    );
    for secret in secrets {
        assert!(!answer.message.contains(secret), "{rpc:?}'s error names a secret: {}", answer.message);
    }
}

// ---- key filters ----

/// Lists alice's keys with the filters of `data`: its first byte is the page
/// size (0: one page), the rest lines of `name=value`, where a line
/// starting with `#` is a starting token instead.
///
/// Properties: following `next_token` visits every key of the unpaged
/// listing once and no other, in pages no larger than asked, and the total
/// is the same on every page.
pub fn key_filters(data: &[u8]) -> bool {
    let Some((&max_items, text)) = data.split_first() else { return false };
    let text = String::from_utf8_lossy(text);
    let mut filters = Vec::new();
    let mut starting_token = String::new();
    for line in text.lines().take(64) {
        if let Some(token) = line.strip_prefix('#') {
            starting_token = token.to_owned();
        } else {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            filters.push(pb::Attribute { name: name.to_owned(), value: value.to_owned() });
        }
    }
    FILTER_RIG.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (rig, sessions) = reused(&mut cell, |(rig, _)| !rig.is_healthy(), || block_on(populated()));
        block_on(async {
            let mut listed = false;
            for token in [&sessions.alice, &sessions.admin] {
                listed |= list_in_pages(rig, token, &filters, u32::from(max_items), &starting_token).await;
            }
            listed
        })
    })
}

thread_local! {
    static FILTER_RIG: std::cell::RefCell<Reused<(Rig, Sessions)>> = const { std::cell::RefCell::new(None) };
}

/// Whether the first page listed.
async fn list_in_pages(
    rig: &mut Rig,
    token: &str,
    filters: &[pb::Attribute],
    max_items: u32,
    starting_token: &str,
) -> bool {
    let list = |max_items: u32, starting_token: String| pb::ListKeysRequest {
        filters: filters.to_vec(),
        max_items,
        starting_token,
    };
    let request = list(max_items, starting_token.into());
    let first = match rig.typed::<pb::ListKeysResponse>(Rpc::ListKeys, Some(token), &request).await {
        Ok(page) => page,
        Err(answer) => {
            check(&answer, Rpc::ListKeys, &[]);
            return false;
        }
    };
    if !starting_token.is_empty() {
        return true;
    }
    let all: pb::ListKeysResponse =
        expect(rig.typed(Rpc::ListKeys, Some(token), &list(0, String::new())).await, "the unpaged listing");
    let all: Vec<String> = all.keys.iter().map(|k| k.key_reference.clone()).collect();
    let mut seen = Vec::new();
    let mut page = first;
    loop {
        assert!(max_items == 0 || page.keys.len() <= max_items as usize, "a page larger than max_items");
        assert_eq!(page.total_key_count as usize, all.len(), "pages disagree on the total");
        seen.extend(page.keys.iter().map(|k| k.key_reference.clone()));
        if page.next_token.is_empty() {
            break;
        }
        assert!(seen.len() <= all.len(), "paging visits more keys than the listing holds");
        page = expect(
            rig.typed(Rpc::ListKeys, Some(token), &list(max_items, page.next_token.clone())).await,
            "the next page",
        );
    }
    assert_eq!(seen, all, "the pages do not add up to the listing");
    true
}

// ---- key import ----

/// The kinds of key, for inputs that name one by a byte.
const KINDS: [KeyKind; 10] = [
    KeyKind::Aes,
    KeyKind::GenericSecret,
    KeyKind::Rsa,
    KeyKind::Ec(Curve::P224),
    KeyKind::Ec(Curve::P256),
    KeyKind::Ec(Curve::P384),
    KeyKind::Ec(Curve::P521),
    KeyKind::Ec(Curve::Secp256k1),
    KeyKind::Ed25519,
    KeyKind::Des3,
];
const CLASSES: [KeyClass; 3] = [KeyClass::Secret, KeyClass::Public, KeyClass::Private];

/// Parses key material. The first byte picks the form: PEM, PKCS#8 or
/// SEC1/PKCS#1 private DER, SPKI public DER, raw secret (of the kind the
/// second byte names), a stored encoding (kind and class from the next
/// bytes), or a quorum approver's SPKI.
///
/// Properties: an accepted key's stored encoding reads back as the same key
/// (same check value), and its public half exports as PEM that imports as
/// the same public key.
pub fn key_import(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let parsed = match form % 6 {
        0 => KeyMaterial::from_pem(&String::from_utf8_lossy(rest)),
        1 => KeyMaterial::from_der_private(rest),
        2 => KeyMaterial::from_der_public(rest),
        3 => {
            let Some((&kind, bytes)) = rest.split_first() else { return false };
            KeyMaterial::from_raw_secret(KINDS[usize::from(kind) % KINDS.len()], bytes)
        }
        4 => {
            let [kind, class, bytes @ ..] = rest else { return false };
            let kind = KINDS[usize::from(*kind) % KINDS.len()];
            KeyMaterial::from_wrappable(kind, CLASSES[usize::from(*class) % CLASSES.len()], bytes)
        }
        _ => {
            let Ok(key) = ApproverKey::from_spki("public_key", rest) else { return false };
            assert!(!key.verifies(b"message", rest), "a quorum key verified its own encoding as a signature");
            return true;
        }
    };
    let Ok(key) = parsed else { return false };
    let stored = expect(key.to_wrappable(), "an accepted key's stored encoding");
    let again = expect(KeyMaterial::from_wrappable(key.kind(), key.class(), &stored), "re-reading a stored key");
    assert_eq!(key.check_value(), again.check_value(), "a key read back from its encoding differs");
    assert_eq!(key.ec_point(), again.ec_point());
    assert_eq!(key.modulus(), again.modulus());
    if let Some(public) = key.public_half() {
        let pem = expect(public.public_pem(), "exporting an accepted key's public half");
        let imported = expect(KeyMaterial::from_pem(&pem), "importing an exported public key");
        assert_eq!(imported.ec_point(), public.ec_point(), "an exported EC public key imports as another");
        assert_eq!(imported.modulus(), public.modulus(), "an exported RSA public key imports as another");
        assert_eq!(imported.kind(), key.kind());
    }
    true
}

// ---- masked objects ----

/// Opens a masked object of the rigs' cluster. The first byte's low bit
/// picks what the rest is: a whole masked object, or an encoded payload
/// that is first sealed as one (so that the fuzzer reaches the decoding
/// behind the seal).
///
/// Properties: an object that opens masks again, and the new one opens as
/// the same object.
pub fn masked_object(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let masker = Masker::new(&rig::cluster_key(), &rig::cluster().id);
    let bytes = if form & 1 == 0 { rest.to_vec() } else { expect(masker.seal(rest), "sealing a payload") };
    let Ok(object) = masker.unmask(&bytes) else { return false };
    let again = expect(masker.mask(&object), "masking an object that opened");
    let reopened = expect(masker.unmask(&again), "opening an object masked again");
    assert_eq!(format!("{object:?}"), format!("{reopened:?}"), "masking again changed the object");
    true
}

// ---- backups ----

/// Restores a backup of the rigs' cluster. The first byte picks what the
/// rest is: 0 a whole backup file, 1 to 3 a payload of that format that is
/// first sealed as a backup (reaching the decoding behind the seal).
///
/// Properties: a backup that decodes restores into a new store, which
/// holds its users and keys, and into a model.
pub fn backup(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let cluster = rig::cluster();
    let key = rig::cluster_key();
    let bytes = match form % 4 {
        0 => rest.to_vec(),
        version => expect(
            store::seal_backup(u32::from(version), rest, &key, cluster.id.as_str(), "hsm-fuzz"),
            "sealing a payload",
        ),
    };
    let Ok(state) = store::decode_backup(&bytes, &key, &cluster) else { return false };
    let (users, keys) = (state.users.len(), state.keys.len());
    let hsm = fixtures().setup.hsm.clone();
    let opened = expect(Store::open(&Backing::Memory, &key, cluster.id.as_str(), hsm.id.as_str()), "a new store");
    let Opened::New(new) = opened else { panic!("a store in memory was not new") };
    expect(new.initialize(&cluster, &hsm, &store::changes_of(state)), "writing a decoded backup");
    let loaded = expect(new.load(), "reading a restored store");
    assert_eq!((loaded.users.len(), loaded.keys.len()), (users, keys), "the store lost what the backup held");
    let _ = Hsm::restore(fixtures().setup.clone(), loaded);
    true
}

// ---- quorum approvals ----

/// Presents the signed token file `data` (JSON, as approvers complete it)
/// with an admin's `user create`, on an HSM whose `user` service needs two
/// approvals from its two admins, both with registered quorum keys.
///
/// Property: the call succeeds only if the file carries this HSM's token
/// with valid signatures by both admins.
pub fn quorum_approval(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(file) = hsm_client::ClusterApproval::from_json(text) else { return false };
    QUORUM_RIG.with(|cell| {
        let mut cell = cell.borrow_mut();
        // A user made spends the token: the next input needs a new one.
        let (rig, gated) =
            reused(&mut cell, |(rig, gated)| gated.spent || !rig.is_healthy(), || block_on(quorum_rig()));
        let Ok(approval) = file.for_hsm(&rig.hsm_id()) else { return false };
        let approval = approval.to_proto();
        match block_on(rig.create_user(&gated.admin, "carol", pb::Role::CryptoUser, Some(approval.clone()))) {
            Ok(()) => {
                gated.spent = true;
                let approvers = valid_approvers(&approval, gated);
                assert!(approvers >= 2, "a user was created with {approvers} valid approvals of 2");
            }
            Err(answer) => check(&answer, Rpc::CreateUser, &[ADMIN_PASSWORD, USER_PASSWORD]),
        }
        true
    })
}

thread_local! {
    static QUORUM_RIG: std::cell::RefCell<Reused<(Rig, Gated)>> = const { std::cell::RefCell::new(None) };
}

/// What a rig from [`quorum_rig`] gives: the admin's session, and the
/// token it generated for the `user` service with the data approvers sign.
#[derive(Debug)]
pub(crate) struct Gated {
    pub(crate) admin: String,
    pub(crate) token: Vec<u8>,
    pub(crate) approval_data: Vec<u8>,
    /// Whether a call spent the token.
    pub(crate) spent: bool,
}

/// An HSM with two admins (`admin`, `admin2`), each with a registered
/// quorum key ([`approvers`]), the `user` service's quorum value at 2, and
/// a token for it generated by `admin`.
pub(crate) async fn quorum_rig() -> (Rig, Gated) {
    let mut rig = Rig::new().await;
    let admin = expect(rig.login("admin", pb::Role::Admin, ADMIN_PASSWORD).await, "the admin logs in");
    expect(rig.create_user(&admin, "admin2", pb::Role::Admin, None).await, "creating a second admin");
    let admin2 = expect(rig.login("admin2", pb::Role::Admin, USER_PASSWORD).await, "admin2 logs in");
    for (session, approver) in [&admin, &admin2].into_iter().zip(approvers()) {
        let token = generate_token(&mut rig, session, pb::QuorumServiceName::Registration).await;
        let request = pb::RegisterQuorumKeyRequest {
            public_key: approver.spki.clone(),
            token: token.token,
            signature: approver.sign(&token.approval_data),
            ..Default::default()
        };
        let _: pb::RegisterQuorumKeyResponse =
            expect(rig.typed(Rpc::RegisterQuorumKey, Some(session), &request).await, "registering a quorum key");
    }
    let request = pb::SetQuorumValueRequest { service: pb::QuorumServiceName::User.into(), value: 2, approval: None };
    let _: pb::SetQuorumValueResponse =
        expect(rig.typed(Rpc::SetQuorumValue, Some(&admin), &request).await, "setting the user quorum");
    let token = generate_token(&mut rig, &admin, pb::QuorumServiceName::User).await;
    (rig, Gated { admin, token: token.token, approval_data: token.approval_data, spent: false })
}

async fn generate_token(
    rig: &mut Rig,
    session: &str,
    service: pb::QuorumServiceName,
) -> pb::GenerateQuorumTokenResponse {
    let request = pb::GenerateQuorumTokenRequest { service: service.into() };
    expect(rig.typed(Rpc::GenerateQuorumToken, Some(session), &request).await, "generating a quorum token")
}

/// How many of the two admins signed `gated`'s token validly in `approval`
/// (checked with ring, apart from the HSM).
fn valid_approvers(approval: &pb::Approval, gated: &Gated) -> usize {
    if approval.token != gated.token {
        return 0;
    }
    ["admin", "admin2"]
        .into_iter()
        .zip(approvers())
        .filter(|(name, approver)| {
            approval
                .signatures
                .iter()
                .any(|s| s.username == *name && approver.verifies(&gated.approval_data, &s.signature))
        })
        .count()
}

/// A quorum approver's fixed RSA key (`approvers.pem`: fixtures, used by
/// nothing but fuzzing and its corpus).
pub(crate) struct Approver {
    pair: ring::signature::RsaKeyPair,
    pub(crate) spki: Vec<u8>,
}

impl std::fmt::Debug for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approver").finish_non_exhaustive()
    }
}

impl Approver {
    /// As `openssl pkeyutl -sign -pkeyopt digest:sha256` signs a token.
    pub(crate) fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        expect(
            self.pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, data, &mut signature).map_err(|_| "signing"),
            "an approver signs",
        );
        signature
    }

    fn verifies(&self, data: &[u8], signature: &[u8]) -> bool {
        ApproverKey::from_spki("public_key", &self.spki).is_ok_and(|key| key.verifies(data, signature))
    }
}

/// The two approvers of [`quorum_rig`]'s admins.
pub(crate) fn approvers() -> &'static [Approver; 2] {
    static APPROVERS: OnceLock<[Approver; 2]> = OnceLock::new();
    APPROVERS.get_or_init(|| {
        use rustls::pki_types::{PrivateKeyDer, pem::PemObject as _};
        let pem = include_str!("approvers.pem");
        let mut keys = PrivateKeyDer::pem_slice_iter(pem.as_bytes()).map(|key| {
            let der = expect(key.map_err(|e| e.to_string()), "approvers.pem holds PKCS#8 keys");
            let pair = expect(
                ring::signature::RsaKeyPair::from_pkcs8(der.secret_der()).map_err(|e| e.to_string()),
                "an approver's key",
            );
            let material = expect(KeyMaterial::from_der_private(der.secret_der()), "an approver's key");
            let public = expect(material.public_half().ok_or("no public half"), "an approver's public key");
            let spki = expect(public.to_wrappable(), "an approver's public key").to_vec();
            Approver { pair, spki }
        });
        let (Some(first), Some(second)) = (keys.next(), keys.next()) else { panic!("approvers.pem holds two keys") };
        [first, second]
    })
}

// ---- seeds ----

/// Most keys a seed may declare for this target to plan it (planning
/// generates them).
const MAX_PLANNED_KEYS: usize = 64;

/// Parses a seed file; one that declares few keys and no RSA key to
/// generate is also planned and applied to a new HSM.
pub fn seed(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(seed) = Seed::parse(text) else { return false };
    if seed.cheap_to_plan(MAX_PLANNED_KEYS)
        && let Ok(plan) = seed.plan(&KdfParams::TESTING, Some(1))
    {
        let mut hsm = Hsm::new(fixtures().setup.clone());
        let _ = plan.apply(&mut hsm);
    }
    true
}

// ---- settings ----

/// Parses a daemon config file and resolves it, with every file it names
/// replaced by a valid fixture (so that the fuzzer explores the settings,
/// not the disk) and the store in memory.
pub fn settings(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let Ok(mut settings) = Settings::from_toml(text) else { return false };
    let files = &fixtures().files;
    let fixture = |field: &mut Option<std::path::PathBuf>, path: &std::path::Path| {
        if field.is_some() {
            *field = Some(path.to_owned());
        }
    };
    fixture(&mut settings.appliance_password_file, &files.password);
    fixture(&mut settings.tls_cert, &files.cert);
    fixture(&mut settings.client_ca, &files.cert);
    fixture(&mut settings.ca_cert, &files.cert);
    fixture(&mut settings.tls_key, &files.key);
    fixture(&mut settings.master_key_file, &files.master_key);
    fixture(&mut settings.cluster_key_file, &files.master_key);
    fixture(&mut settings.masking_key_file, &files.master_key);
    settings.seed = None;
    settings.data_dir = None;
    settings.ephemeral = Some(true);
    let _ = settings.kdf();
    let _ = settings.metrics_addr();
    let _ = settings.cluster_key();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let _ = settings.resolve(settings.listen_addr(), None, &mut rng);
    true
}

// ---- trust anchors ----

/// Parses a trust anchor: the first byte's low bit picks PEM or DER.
///
/// Properties: an accepted anchor reads back from its own PEM and DER as
/// the same certificate, registers, and makes a TLS client verifier.
pub fn trust_anchor(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let parsed = if form & 1 == 0 {
        AnchorCert::from_pem("certificate", &String::from_utf8_lossy(rest))
    } else {
        AnchorCert::from_der("certificate", rest)
    };
    let Ok(cert) = parsed else { return false };
    let from_pem = expect(AnchorCert::from_pem("certificate", &cert.pem()), "an anchor's own PEM");
    assert_eq!(from_pem.der(), cert.der(), "an anchor's PEM holds another certificate");
    let mut mtls = Mtls::default();
    expect(mtls.register(cert), "registering an anchor on an HSM with none");
    let _ = rig::client_verifier(&mtls);
    true
}

// ---- fixtures ----

/// What the targets share, made once per process.
#[derive(Debug)]
struct Fixtures {
    /// A new HSM of the rigs' cluster (passwords hashed with the testing KDF).
    setup: HsmSetup,
    files: Files,
}

/// Valid files for the settings a config file names.
#[derive(Debug)]
struct Files {
    /// Keeps the files until the process ends.
    _dir: tempfile::TempDir,
    password: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    master_key: std::path::PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let hsm = crate::model::HsmIdentity::generate(&mut rng, "127.0.0.1:1".into(), rig::cluster().mode);
        let mut hash = |p: &str| -> PasswordHash {
            let password = expect(Password::parse("password", p), "a fixture password");
            expect(password.hash(&KdfParams::TESTING, &mut rng), "hashing a fixture password")
        };
        let setup = HsmSetup {
            cluster: rig::cluster(),
            hsm,
            limits: Limits::for_type(rig::cluster().hsm_type),
            key_range: expect(KeyRange::for_index(1), "HSM 1's key range"),
            admin: AdminSetup::Activated(hash(ADMIN_PASSWORD)),
            appliance: hash("appliance-pass"),
            decoy: hash("decoy-password"),
        };
        let dir = expect(tempfile::tempdir(), "a folder for fixture files");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            expect(std::fs::write(&path, text), "writing a fixture file");
            path
        };
        let ca = expect(crate::pki::generate_ca("cluster-fuzz"), "a fixture CA");
        let certified =
            expect(crate::pki::issue_server(&ca, "hsm-fuzz", &["localhost".into()]), "a fixture certificate");
        let files = Files {
            password: write("appliance-password", "appliance-pass\n"),
            cert: write("cert.pem", &ca.cert_pem),
            key: write("key.pem", &certified.key_pem),
            master_key: write("master.key", &format!("{}\n", rig::CLUSTER_KEY_HEX)),
            _dir: dir,
        };
        Fixtures { setup, files }
    })
}

/// The value of a step a target cannot go on without; its failure is a
/// finding, reported as a panic like any other.
fn expect<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: {e:?}"),
    }
}
