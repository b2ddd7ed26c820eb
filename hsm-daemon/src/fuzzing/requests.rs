//! Requests through the gate and the services of a populated HSM:
//! sequences of calls ([`requests()`]) and key listings in pages
//! ([`key_filters()`]).

use hsm_proto::v1::{self as pb, Rpc};
use prost::Message as _;
use tonic::Code;

use super::{Reused, check, expect, reused, seeds};
use crate::service::rig::{ADMIN_PASSWORD, Rig, USER_PASSWORD, block_on};

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
pub(super) struct Sessions {
    admin: String,
    pub(super) alice: String,
    bob: String,
    /// A token whose session was closed.
    logged_out: String,
}

/// A rig with an admin, two crypto users (`alice`, `bob`) and alice's keys:
/// an EC P-256 pair shared with bob, an AES-256 key and an HMAC key.
pub(super) async fn populated() -> (Rig, Sessions) {
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
/// One HSM serves up to [`REUSES`](super::REUSES) inputs (making one is most of an
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

thread_local! {
    static REQUEST_RIG: std::cell::RefCell<Reused<(Rig, Sessions)>> = const { std::cell::RefCell::new(None) };
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
