//! Keys as the key commands print them: in the CloudHSM CLI's field order,
//! attributes typed as it types them, and where in the cluster each key is.

use hsm_client::{ClientError, ClusterKey, ClusterKeyPage, CoverageLabel, KeyInfo};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{to_value, with_failures};

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

#[cfg(test)]
mod tests {
    use hsm_client::Coverage;
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
}
