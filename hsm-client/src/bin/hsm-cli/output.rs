//! The CloudHSM CLI's JSON output: `{"error_code": 0, "data": ...}` on
//! success, `{"error_code": 1, "data": "<message>"}` on failure.
//!
//! Data shapes are serde structs so that fields keep the CLI's order; the
//! shapes of the key and crypto commands follow the CloudHSM CLI's examples.
//!
//! # Across the cluster
//! Every command runs against all HSMs in `HSM_ENDPOINTS`. Where the
//! CloudHSM CLI has a word for the cluster's state, this CLI uses it:
//! `"cluster-coverage"` of a key is `"full"` (on every HSM), `"session"` (a
//! session key, on its one HSM) or `"partial"` (on some HSMs; then
//! `"hsms-holding"` lists them); a user's `"role"`, `"locked"` and
//! `"cluster-coverage"` read `"inconsistent"` where HSMs disagree (then
//! `"hsms"` shows each HSM's view). A command that took effect on some HSMs
//! but not all still prints `error_code` 0, and its data gains
//! `"failed-hsms": [{"hsm": "host:port", "error": "..."}]` naming each HSM
//! it did not reach and why (data that is a bare string, such as
//! activation's, becomes `{"message": ..., "failed-hsms": ...}`); running
//! it again repairs them. Fully
//! successful commands print exactly what the CloudHSM CLI prints, and a
//! command that failed everywhere prints `error_code` 1.

use hsm_client::{
    AuditPage, ClientError, ClusterInfo, ClusterKey, ClusterKeyPage, ClusterUser, CoverageLabel, FanOut, HsmInfo,
    KeyInfo, MtlsLevel, Role, SyncStatus, TrustAnchor, UserList,
};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Serialize)]
struct Envelope<'a> {
    error_code: u8,
    data: &'a Value,
}

/// The JSON text for a command's outcome.
pub(crate) fn render(outcome: &Result<Value, String>) -> String {
    let (error_code, data) = match outcome {
        Ok(data) => (0, data.clone()),
        Err(message) => (1, Value::String(message.clone())),
    };
    // Serialising a `Value` cannot fail; fall back to compact output if it
    // ever did.
    serde_json::to_string_pretty(&Envelope { error_code, data: &data })
        .unwrap_or_else(|_| format!("{{\"error_code\":{error_code},\"data\":{data}}}"))
}

/// `{"username": ..., "role": ...}`, as login and the user commands print.
pub(crate) fn user_ref(username: &str, role: Role) -> Value {
    #[derive(Serialize)]
    struct UserRef<'a> {
        username: &'a str,
        role: String,
    }
    to_value(UserRef { username, role: role.to_string() })
}

/// Adds `"failed-hsms"` to `data` (an object) when some HSMs were not
/// reached.
pub(crate) fn with_failures<'a>(
    mut data: Value,
    failures: impl IntoIterator<Item = (&'a str, &'a ClientError)>,
) -> Value {
    #[derive(Serialize)]
    struct Failed<'a> {
        hsm: &'a str,
        error: String,
    }
    let failed: Vec<Failed<'_>> = failures.into_iter().map(|(hsm, e)| Failed { hsm, error: e.to_string() }).collect();
    if let (false, Value::Object(map)) = (failed.is_empty(), &mut data) {
        map.insert("failed-hsms".into(), to_value(failed));
    }
    data
}

/// What the user commands print: the user, and the HSMs the change missed.
pub(crate) fn user_change(change: &FanOut<hsm_client::UserChange>, username: &str, role: Role) -> Value {
    let (name, role) = change.first().map_or((username, role), |c| (c.user.username.as_str(), c.user.role));
    with_failures(user_ref(name, role), change.failed())
}

/// `user list`'s data: one row per user across the cluster.
pub(crate) fn users(list: &UserList) -> Value {
    #[derive(Serialize)]
    struct Row<'a> {
        username: &'a str,
        role: String,
        locked: String,
        mfa: Vec<Value>,
        quorum: Vec<Value>,
        #[serde(rename = "cluster-coverage")]
        cluster_coverage: &'static str,
        /// Only for an inconsistent user: what each HSM holds.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        hsms: Vec<PerHsm<'a>>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum PerHsm<'a> {
        Present { hsm: &'a str, role: String, locked: &'static str },
        Absent { hsm: &'a str, present: bool },
    }
    #[derive(Serialize)]
    struct Users<'a> {
        users: Vec<Row<'a>>,
    }
    fn row(u: &ClusterUser) -> Row<'_> {
        let hsms = if u.is_consistent() {
            Vec::new()
        } else {
            u.per_hsm
                .iter()
                .map(|(hsm, user)| match user {
                    Some(user) => PerHsm::Present { hsm, role: user.role.to_string(), locked: flag(user.locked) },
                    None => PerHsm::Absent { hsm, present: false },
                })
                .collect()
        };
        Row {
            username: &u.username,
            role: u.role.to_string(),
            locked: u.locked.map(flag).to_string(),
            mfa: strategy(u, |user| user.mfa),
            quorum: strategy(u, |user| user.quorum),
            cluster_coverage: if u.on_every_hsm() { "full" } else { "inconsistent" },
            hsms,
        }
    }
    let data = to_value(Users { users: list.users.iter().map(row).collect() });
    with_failures(data, list.unanswered.iter().map(|(hsm, e)| (hsm.as_str(), e)))
}

/// `[{"strategy": "token-sign", "status": "enabled"}]` where a user has the
/// key registered on every HSM that holds it (`"inconsistent"` where only
/// some do), `[]` where none.
fn strategy(u: &ClusterUser, registered: impl Fn(&hsm_client::User) -> bool) -> Vec<Value> {
    let held: Vec<bool> = u.per_hsm.iter().filter_map(|(_, user)| user.as_ref().map(&registered)).collect();
    let status = match (held.iter().all(|r| *r), held.iter().any(|r| *r)) {
        (_, false) => return Vec::new(),
        (true, true) => "enabled",
        (false, true) => "inconsistent",
    };
    vec![serde_json::json!({"strategy": "token-sign", "status": status})]
}

fn flag(on: bool) -> &'static str {
    if on { "true" } else { "false" }
}

/// `cluster hsm-info`'s data: the fields the CloudHSM CLI prints, as strings.
pub(crate) fn hsm_info(info: &ClusterInfo) -> Value {
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Hsm<'a> {
        vendor: &'a str,
        model: &'a str,
        serial_number: &'a str,
        hardware_version_major: String,
        hardware_version_minor: String,
        firmware_version_major: String,
        firmware_version_minor: String,
        firmware_build_number: String,
        firmware_id: &'a str,
        fips_state: &'a str,
        /// Where the HSM is, and whether it answered (`UNAVAILABLE` if not).
        address: &'a str,
        state: &'a str,
    }
    #[derive(Serialize)]
    struct Hsms<'a> {
        hsms: Vec<Hsm<'a>>,
    }
    fn row(h: &HsmInfo) -> Hsm<'_> {
        Hsm {
            vendor: &h.vendor,
            model: &h.model,
            serial_number: &h.serial_number,
            hardware_version_major: h.hardware_version_major.to_string(),
            hardware_version_minor: h.hardware_version_minor.to_string(),
            firmware_version_major: h.firmware_version_major.to_string(),
            firmware_version_minor: h.firmware_version_minor.to_string(),
            firmware_build_number: h.firmware_build_number.to_string(),
            firmware_id: &h.firmware_id,
            fips_state: &h.fips_state,
            address: &h.address,
            state: &h.state,
        }
    }
    to_value(Hsms { hsms: info.hsms.iter().map(row).collect() })
}

/// `{"message": ...}`, as commands without other output print.
pub(crate) fn message(text: &str) -> Value {
    #[derive(Serialize)]
    struct Message<'a> {
        message: &'a str,
    }
    to_value(Message { message: text })
}

/// One trust anchor as `cluster mtls` prints it.
#[derive(Serialize)]
struct Anchor<'a> {
    #[serde(rename = "certificate-reference")]
    reference: &'a str,
    certificate: &'a str,
    /// `full` when every HSM holds it, else `partial`.
    #[serde(rename = "cluster-coverage")]
    coverage: String,
}

/// `cluster mtls register-trust-anchor`: `{"trust_anchor": {...}}`.
pub(crate) fn trust_anchor_registered(registered: &FanOut<TrustAnchor>) -> Value {
    #[derive(Serialize)]
    struct Registered<'a> {
        trust_anchor: Anchor<'a>,
    }
    let Some(anchor) = registered.first() else { return Value::Null };
    let coverage =
        if registered.failed().next().is_none() { CoverageLabel::Full } else { CoverageLabel::Partial }.to_string();
    let shown = Registered {
        trust_anchor: Anchor { reference: &anchor.reference, certificate: &anchor.certificate, coverage },
    };
    with_failures(to_value(shown), registered.failed())
}

/// `cluster mtls list-trust-anchors`: every anchor any HSM holds, with
/// whether all of them hold it.
pub(crate) fn trust_anchors(lists: &FanOut<Vec<TrustAnchor>>) -> Value {
    #[derive(Serialize)]
    struct Listed<'a> {
        trust_anchors: Vec<Anchor<'a>>,
    }
    let answered: Vec<&Vec<TrustAnchor>> = lists.succeeded().map(|(_, anchors)| anchors).collect();
    let mut shown: Vec<Anchor<'_>> = Vec::new();
    for anchor in answered.iter().flat_map(|anchors| anchors.iter()) {
        if shown.iter().any(|a| a.reference == anchor.reference && a.certificate == anchor.certificate) {
            continue;
        }
        let everywhere = answered.iter().all(|anchors| anchors.contains(anchor)) && lists.failed().next().is_none();
        let coverage = if everywhere { CoverageLabel::Full } else { CoverageLabel::Partial }.to_string();
        shown.push(Anchor { reference: &anchor.reference, certificate: &anchor.certificate, coverage });
    }
    shown.sort_by(|a, b| a.reference.cmp(b.reference));
    with_failures(to_value(Listed { trust_anchors: shown }), lists.failed())
}

/// `cluster mtls get-enforcement`: the level, or `inconsistent` where the
/// HSMs disagree.
pub(crate) fn mtls_enforcement(levels: &FanOut<MtlsLevel>) -> Value {
    #[derive(Serialize)]
    struct Level {
        #[serde(rename = "mtls-enforcement-level")]
        level: String,
    }
    let mut seen = levels.succeeded().map(|(_, level)| *level);
    let first = seen.next();
    let level = match first {
        Some(first) if seen.all(|l| l == first) => first.to_string(),
        _ => "inconsistent".to_owned(),
    };
    with_failures(to_value(Level { level }), levels.failed())
}

/// Attributes the CLI prints as JSON booleans.
const BOOLEAN_ATTRIBUTES: [&str; 18] = [
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
];

/// Attributes the CLI prints as JSON numbers.
const NUMBER_ATTRIBUTES: [&str; 2] = ["key-length-bytes", "modulus-size-bits"];

/// One attribute value, typed as the CLI prints it.
fn attribute_value(name: &str, value: &str) -> Value {
    if BOOLEAN_ATTRIBUTES.contains(&name)
        && let Ok(b) = value.parse::<bool>()
    {
        return Value::Bool(b);
    }
    if NUMBER_ATTRIBUTES.contains(&name)
        && let Ok(n) = value.parse::<u64>()
    {
        return Value::from(n);
    }
    Value::String(value.to_owned())
}

fn attributes(info: &KeyInfo) -> Map<String, Value> {
    info.attributes.iter().map(|(name, value)| (name.clone(), attribute_value(name, value))).collect()
}

#[derive(Serialize)]
struct UserCoverage<'a> {
    username: &'a str,
    #[serde(rename = "key-coverage")]
    key_coverage: &'static str,
}

fn coverage(username: &str) -> UserCoverage<'_> {
    UserCoverage { username, key_coverage: "full" }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct QuorumValues {
    manage_key_quorum_value: u32,
    use_key_quorum_value: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct KeyDetails<'a> {
    key_owners: Vec<UserCoverage<'a>>,
    shared_users: Vec<UserCoverage<'a>>,
    key_quorum_values: QuorumValues,
    cluster_coverage: String,
    /// Only when partial: the HSMs that hold the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    hsms_holding: Option<&'a [String]>,
}

/// A key with its information and every attribute (`key list --verbose`, and
/// what creating commands print).
#[derive(Serialize)]
struct FullKey<'a> {
    #[serde(rename = "key-reference")]
    key_reference: &'a str,
    #[serde(rename = "key-info")]
    key_info: KeyDetails<'a>,
    attributes: Map<String, Value>,
}

fn full_key(key: &ClusterKey) -> FullKey<'_> {
    let info = &key.info;
    let label = key.coverage.label();
    FullKey {
        key_reference: &info.reference,
        key_info: KeyDetails {
            key_owners: vec![coverage(&info.owner)],
            shared_users: info.shared_users.iter().map(|u| coverage(u)).collect(),
            key_quorum_values: QuorumValues {
                manage_key_quorum_value: info.manage_quorum,
                use_key_quorum_value: info.use_quorum,
            },
            cluster_coverage: label.to_string(),
            hsms_holding: (label == CoverageLabel::Partial).then_some(key.coverage.holding.as_slice()),
        },
        attributes: attributes(info),
    }
}

/// A key as `key list` shows it without `--verbose`: reference and label.
#[derive(Serialize)]
struct BriefKey<'a> {
    #[serde(rename = "key-reference")]
    key_reference: &'a str,
    attributes: BriefAttributes<'a>,
}

#[derive(Serialize)]
struct BriefAttributes<'a> {
    label: &'a str,
}

/// `{"key": {...}}`, as `key generate-symmetric` and `key unwrap` print.
pub(crate) fn key(key: &ClusterKey) -> Value {
    #[derive(Serialize)]
    struct Created<'a> {
        key: FullKey<'a>,
    }
    key_change(to_value(Created { key: full_key(key) }), key)
}

/// `key import pem`'s data: the key and a message.
pub(crate) fn imported_key(key: &ClusterKey) -> Value {
    #[derive(Serialize)]
    struct Imported<'a> {
        key: FullKey<'a>,
        message: &'static str,
    }
    key_change(to_value(Imported { key: full_key(key), message: "Successfully imported key" }), key)
}

/// `key generate-asymmetric-pair`'s data.
pub(crate) fn key_pair(public: &ClusterKey, private: &ClusterKey) -> Value {
    #[derive(Serialize)]
    struct Pair<'a> {
        public_key: FullKey<'a>,
        private_key: FullKey<'a>,
    }
    let data = to_value(Pair { public_key: full_key(public), private_key: full_key(private) });
    // Both halves travel together; an HSM that missed either is named once.
    let mut failed: Vec<(&str, &ClientError)> = Vec::new();
    for (hsm, e) in public.coverage.failures.iter().chain(&private.coverage.failures) {
        if !failed.iter().any(|(seen, _)| *seen == hsm.as_str()) {
            failed.push((hsm.as_str(), e));
        }
    }
    with_failures(data, failed)
}

/// A key command's data, with the HSMs the key (or its change) could not be
/// copied to.
pub(crate) fn key_change(data: Value, key: &ClusterKey) -> Value {
    with_failures(data, key.coverage.failures.iter().map(|(hsm, e)| (hsm.as_str(), e)))
}

/// `key list`'s data.
pub(crate) fn key_list(page: &ClusterKeyPage, verbose: bool) -> Value {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Entry<'a> {
        Full(FullKey<'a>),
        Brief(BriefKey<'a>),
    }
    #[derive(Serialize)]
    struct Listing<'a> {
        matched_keys: Vec<Entry<'a>>,
        total_key_count: u64,
        returned_key_count: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_token: Option<&'a str>,
    }
    let matched_keys = page
        .keys
        .iter()
        .map(|k| {
            if verbose {
                Entry::Full(full_key(k))
            } else {
                let label = k.info.attribute("label").unwrap_or_default();
                Entry::Brief(BriefKey { key_reference: &k.info.reference, attributes: BriefAttributes { label } })
            }
        })
        .collect();
    let data = to_value(Listing {
        matched_keys,
        total_key_count: page.total,
        returned_key_count: page.keys.len(),
        next_token: page.next_token.as_deref(),
    });
    with_failures(data, page.unanswered.iter().map(|(hsm, e)| (hsm.as_str(), e)))
}

/// Where `key wrap` put the wrapped key.
#[derive(Debug)]
pub(crate) enum Wrapped {
    /// Printed, base64.
    Data(String),
    /// Written to this file.
    File(String),
}

/// `key wrap`'s data, with the CloudHSM CLI's snake_case keys. `iv` (hex)
/// only for `aes-gcm`; `wrapped_key_path` (an emulator addition) in place of
/// `wrapped_key_data` when the bytes went to `--path`.
pub(crate) fn wrapped(payload: &str, wrapping: &str, iv: Option<&str>, out: &Wrapped) -> Value {
    #[derive(Serialize)]
    struct WrapOutput<'a> {
        payload_key_reference: &'a str,
        wrapping_key_reference: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        iv: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wrapped_key_data: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        wrapped_key_path: Option<&'a str>,
    }
    let (data, path) = match out {
        Wrapped::Data(d) => (Some(d.as_str()), None),
        Wrapped::File(p) => (None, Some(p.as_str())),
    };
    to_value(WrapOutput {
        payload_key_reference: payload,
        wrapping_key_reference: wrapping,
        iv,
        wrapped_key_data: data,
        wrapped_key_path: path,
    })
}

/// `crypto sign` and `crypto hmac sign`: the key and the base64 signature.
pub(crate) fn signature(reference: &str, signature: &str) -> Value {
    #[derive(Serialize)]
    struct Signed<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        signature: &'a str,
    }
    to_value(Signed { key_reference: reference, signature })
}

/// `crypto encrypt`: the key, the IV (base64, when the cipher has one) and
/// the ciphertext (base64).
pub(crate) fn encrypted(reference: &str, iv: Option<&str>, ciphertext: &str) -> Value {
    #[derive(Serialize)]
    struct Encrypted<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        iv: Option<&'a str>,
        ciphertext: &'a str,
    }
    to_value(Encrypted { key_reference: reference, iv, ciphertext })
}

/// `crypto decrypt`: the key and the plaintext (base64).
pub(crate) fn decrypted(reference: &str, plaintext: &str) -> Value {
    #[derive(Serialize)]
    struct Decrypted<'a> {
        #[serde(rename = "key-reference")]
        key_reference: &'a str,
        plaintext: &'a str,
    }
    to_value(Decrypted { key_reference: reference, plaintext })
}

/// `crypto digest`: the hash function and the digest (base64).
pub(crate) fn digest(hash_function: &str, digest: &str) -> Value {
    #[derive(Serialize)]
    struct Digest<'a> {
        #[serde(rename = "hash-function")]
        hash_function: &'a str,
        digest: &'a str,
    }
    to_value(Digest { hash_function, digest })
}

pub(crate) fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `cluster sync-status`'s data: one row per HSM (its digest, or why it
/// could not be read), and whether all digests are equal.
pub(crate) fn sync_status(statuses: &FanOut<SyncStatus>) -> Value {
    #[derive(Serialize)]
    #[serde(untagged, rename_all = "kebab-case")]
    enum Row<'a> {
        #[serde(rename_all = "kebab-case")]
        Read {
            hsm_id: &'a str,
            address: &'a str,
            digest: String,
            users: u64,
            keys: u64,
        },
        Unread {
            address: &'a str,
            error: String,
        },
    }
    #[derive(Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Hsms<'a> {
        hsms: Vec<Row<'a>>,
        in_sync: bool,
    }
    let rows = statuses
        .hsms
        .iter()
        .map(|h| match &h.outcome {
            Ok(s) => Row::Read {
                hsm_id: &s.hsm_id,
                address: &h.endpoint,
                digest: hex::encode(&s.digest),
                users: s.users,
                keys: s.keys,
            },
            Err(e) => Row::Unread { address: &h.endpoint, error: e.to_string() },
        })
        .collect();
    to_value(Hsms { hsms: rows, in_sync: statuses.in_sync() })
}

/// `audit list`'s data: the page itself for a one-HSM cluster, otherwise
/// one entry per HSM (its page, or why it could not be read).
pub(crate) fn audit_list(pages: &FanOut<AuditPage>) -> Value {
    #[derive(Serialize)]
    struct Page<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<&'a str>,
        records: &'a [hsm_client::AuditRecord],
        next_seq: u64,
        last_seq: u64,
    }
    #[derive(Serialize)]
    struct Unread<'a> {
        address: &'a str,
        error: String,
    }
    fn page<'a>(address: Option<&'a str>, p: &'a AuditPage) -> Page<'a> {
        Page { address, records: &p.records, next_seq: p.next_seq, last_seq: p.last_seq }
    }
    if let [only] = pages.hsms.as_slice()
        && let Ok(p) = &only.outcome
    {
        return to_value(page(None, p));
    }
    let hsms: Vec<Value> = pages
        .hsms
        .iter()
        .map(|h| match &h.outcome {
            Ok(p) => to_value(page(Some(&h.endpoint), p)),
            Err(e) => to_value(Unread { address: &h.endpoint, error: e.to_string() }),
        })
        .collect();
    serde_json::json!({ "hsms": hsms })
}

#[cfg(test)]
mod tests {
    use hsm_client::{Coverage, HsmResult, Merged, User};
    use serde_json::json;

    use super::*;

    fn on(holding: &[&str], cluster_size: usize) -> Coverage {
        Coverage {
            holding: holding.iter().map(|h| h.to_string()).collect(),
            cluster_size,
            session: false,
            failures: Vec::new(),
        }
    }

    fn aes_key() -> ClusterKey {
        ClusterKey { info: aes_info(), coverage: on(&["a:1", "b:1"], 2) }
    }

    fn aes_info() -> KeyInfo {
        KeyInfo {
            reference: "0x0000000000100001".into(),
            attributes: vec![
                ("key-type".into(), "aes".into()),
                ("label".into(), "true".into()),
                ("id".into(), String::new()),
                ("class".into(), "secret-key".into()),
                ("encrypt".into(), "true".into()),
                ("token".into(), "false".into()),
                ("key-length-bytes".into(), "32".into()),
            ],
            owner: "cu1".into(),
            shared_users: vec!["cu2".into()],
            session: true,
            manage_quorum: 0,
            use_quorum: 0,
        }
    }

    #[test]
    fn a_key_prints_as_the_cloudhsm_cli_shows_it_in_order_and_typed() {
        let shown = key(&aes_key());
        assert_eq!(
            shown,
            json!({"key": {
                "key-reference": "0x0000000000100001",
                "key-info": {
                    "key-owners": [{"username": "cu1", "key-coverage": "full"}],
                    "shared-users": [{"username": "cu2", "key-coverage": "full"}],
                    "key-quorum-values": {"manage-key-quorum-value": 0, "use-key-quorum-value": 0},
                    "cluster-coverage": "full"
                },
                "attributes": {
                    "key-type": "aes", "label": "true", "id": "", "class": "secret-key",
                    "encrypt": true, "token": false, "key-length-bytes": 32
                }
            }})
        );
        // Field order is the CLI's, not alphabetical.
        let text = serde_json::to_string(&shown).unwrap();
        assert!(text.find("key-reference") < text.find("key-info") && text.find("key-info") < text.find("attributes"));
        assert!(text.find("\"key-type\"") < text.find("\"label\""));
    }

    #[test]
    fn a_listing_is_brief_unless_verbose_and_has_a_token_only_when_there_is_more() {
        let page =
            ClusterKeyPage { keys: vec![aes_key()], total: 3, next_token: Some("1".into()), unanswered: Vec::new() };
        assert_eq!(
            key_list(&page, false),
            json!({
                "matched_keys": [{"key-reference": "0x0000000000100001", "attributes": {"label": "true"}}],
                "total_key_count": 3,
                "returned_key_count": 1,
                "next_token": "1"
            })
        );
        let last = ClusterKeyPage { next_token: None, ..page };
        let verbose = key_list(&last, true);
        assert_eq!(verbose["matched_keys"][0]["key-info"]["key-owners"][0]["username"], "cu1");
        assert!(verbose.get("next_token").is_none(), "{verbose}");
    }

    #[test]
    fn wrapped_keys_print_data_or_the_file_they_went_to() {
        let printed = wrapped("0x1", "0x2", Some("0x00"), &Wrapped::Data("AAAA".into()));
        assert_eq!(
            printed,
            json!({"payload_key_reference": "0x1", "wrapping_key_reference": "0x2", "iv": "0x00", "wrapped_key_data": "AAAA"})
        );
        let filed = wrapped("0x1", "0x2", None, &Wrapped::File("/tmp/k".into()));
        assert_eq!(
            filed,
            json!({"payload_key_reference": "0x1", "wrapping_key_reference": "0x2", "wrapped_key_path": "/tmp/k"})
        );
    }

    #[test]
    fn a_key_missing_on_some_hsms_is_partial_names_its_holders_and_the_failures() {
        let mut partial = aes_key();
        partial.coverage = on(&["a:1", "c:1"], 3);
        partial.coverage.failures = vec![("b:1".into(), ClientError::Unavailable("connection refused".into()))];
        let shown = key(&partial);
        assert_eq!(shown["key"]["key-info"]["cluster-coverage"], "partial");
        assert_eq!(shown["key"]["key-info"]["hsms-holding"], json!(["a:1", "c:1"]));
        assert_eq!(shown["failed-hsms"], json!([{"hsm": "b:1", "error": "connection refused"}]));

        let mut session = aes_key();
        session.coverage = Coverage { session: true, ..on(&["b:1"], 3) };
        let shown = key(&session);
        assert_eq!(shown["key"]["key-info"]["cluster-coverage"], "session");
        assert!(shown["key"]["key-info"].get("hsms-holding").is_none() && shown.get("failed-hsms").is_none());
    }

    #[test]
    fn users_that_differ_between_hsms_print_inconsistent_with_each_hsms_view() {
        let user = |name: &str, role, locked| User { username: name.into(), role, locked, quorum: false, mfa: false };
        let list = UserList {
            users: vec![
                ClusterUser {
                    username: "admin".into(),
                    role: Merged::Consistent(Role::Admin),
                    locked: Merged::Consistent(false),
                    per_hsm: vec![
                        ("a:1".into(), Some(user("admin", Role::Admin, false))),
                        ("b:1".into(), Some(user("admin", Role::Admin, false))),
                    ],
                },
                ClusterUser {
                    username: "bob".into(),
                    role: Merged::Consistent(Role::CryptoUser),
                    locked: Merged::Inconsistent,
                    per_hsm: vec![("a:1".into(), Some(user("bob", Role::CryptoUser, true))), ("b:1".into(), None)],
                },
            ],
            unanswered: vec![("c:1".into(), ClientError::Unavailable("connection refused".into()))],
        };
        assert_eq!(
            users(&list),
            json!({
                "users": [
                    {"username": "admin", "role": "admin", "locked": "false", "mfa": [], "quorum": [], "cluster-coverage": "full"},
                    {"username": "bob", "role": "crypto-user", "locked": "inconsistent", "mfa": [], "quorum": [],
                     "cluster-coverage": "inconsistent",
                     "hsms": [{"hsm": "a:1", "role": "crypto-user", "locked": "true"}, {"hsm": "b:1", "present": false}]}
                ],
                "failed-hsms": [{"hsm": "c:1", "error": "connection refused"}]
            })
        );
    }

    #[test]
    fn sync_status_shows_every_hsm_and_whether_they_agree() {
        let status = |id: &str, d: u8| SyncStatus { hsm_id: id.into(), digest: vec![d], users: 2, keys: 1 };
        let row = |endpoint: &str, outcome| HsmResult { endpoint: endpoint.into(), outcome };
        let agree = FanOut { hsms: vec![row("a:1", Ok(status("hsm-a", 1))), row("b:1", Ok(status("hsm-b", 1)))] };
        assert_eq!(
            sync_status(&agree),
            json!({"hsms": [
                {"hsm-id": "hsm-a", "address": "a:1", "digest": "01", "users": 2, "keys": 1},
                {"hsm-id": "hsm-b", "address": "b:1", "digest": "01", "users": 2, "keys": 1}
            ], "in-sync": true})
        );
        let down = FanOut {
            hsms: vec![row("a:1", Ok(status("hsm-a", 1))), row("b:1", Err(ClientError::Unavailable("refused".into())))],
        };
        let shown = sync_status(&down);
        assert_eq!(shown["hsms"][1], json!({"address": "b:1", "error": "refused"}));
        assert_eq!(shown["in-sync"], false);
    }
}
