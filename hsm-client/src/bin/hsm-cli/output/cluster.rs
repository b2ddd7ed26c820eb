//! The cluster commands' data: the HSMs, mTLS trust anchors and
//! enforcement, sync status, and the audit log.

use hsm_client::{AuditPage, ClusterInfo, CoverageLabel, FanOut, HsmInfo, MtlsLevel, SyncStatus, TrustAnchor};
use serde::Serialize;
use serde_json::Value;

use super::{to_value, with_failures};

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
    use hsm_client::{ClientError, HsmResult};
    use serde_json::json;

    use super::*;

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
