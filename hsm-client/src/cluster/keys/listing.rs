//! Key lists across the cluster: every HSM's list merged by reference, each
//! key with its coverage, and paging over the merged list.

use std::collections::BTreeMap;

use super::{ClusterKey, ClusterKeyPage, Coverage};
use crate::{ClientError, ClusterSession, KeyInfo, ListKeys};

impl ClusterSession {
    /// Lists keys on every HSM and merges them by reference, each with its
    /// coverage. Paging (`max_items` 0 means all) runs over the merged list,
    /// and its token is an offset into it, as the CloudHSM CLI's is: the
    /// first page of two gives `next_token` "2", the next "4". A token
    /// survives no change to the keys in between (a key added or deleted
    /// before it shifts the pages), as AWS's offsets do not.
    pub async fn list_keys(&self, request: ListKeys<'_>) -> Result<ClusterKeyPage, ClientError> {
        let ListKeys { filters, max_items, starting_token } = request;
        let skip = starting_token.map(parse_offset).transpose()?.unwrap_or(0);
        let everything = ListKeys::default().filters(filters);
        let lists = self.on_all(|s| async move { Ok(s.list_keys(everything).await?.keys) }).await.into_result()?;
        let answered: Vec<(String, Vec<KeyInfo>)> =
            lists.succeeded().map(|(endpoint, keys)| (endpoint.to_owned(), keys.clone())).collect();
        let unanswered: Vec<(String, ClientError)> =
            lists.failed().map(|(endpoint, e)| (endpoint.to_owned(), e.clone())).collect();
        let merged = merge_keys(&answered, self.cluster_size(), &unanswered);
        let total = merged.len();
        let take = if max_items == 0 { usize::MAX } else { max_items as usize };
        let keys: Vec<ClusterKey> = merged.into_iter().skip(skip).take(take).collect();
        let shown = skip.saturating_add(keys.len());
        let next_token = (shown < total).then(|| shown.to_string());
        Ok(ClusterKeyPage { keys, total: total as u64, next_token, unanswered })
    }
}

/// A `starting_token`: the number of keys earlier pages listed, in decimal
/// (what `next_token` gave).
fn parse_offset(raw: &str) -> Result<usize, ClientError> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        // A count too large for usize is past the end of every list.
        return Ok(raw.parse().unwrap_or(usize::MAX));
    }
    let shown: String = raw.chars().take(40).collect();
    Err(ClientError::InvalidArgument(format!(
        "invalid starting_token: must be the next_token of an earlier page, a count of keys such as \"2\" (got \
         {shown:?})"
    )))
}

/// A key reference as a number, so that listings sort as the HSMs sort.
/// Errors as the HSM words them.
fn parse_reference(raw: &str, field: &str) -> Result<u64, ClientError> {
    let invalid = || {
        let shown: String = raw.chars().take(40).collect();
        ClientError::InvalidArgument(format!(
            "invalid {field}: must be a key reference: 0x and 1 to 16 hex digits (got {shown:?})"
        ))
    };
    let digits = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")).ok_or_else(invalid)?;
    if digits.is_empty() || digits.len() > 16 {
        return Err(invalid());
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid())
}

/// Sort position of a reference an HSM gave; one it could not have given
/// sorts last.
fn reference_order(reference: &str) -> u64 {
    parse_reference(reference, "key_reference").unwrap_or(u64::MAX)
}

/// Merges per-HSM listings (endpoint, keys) by reference: each key as the
/// first HSM showed it, with the endpoints that listed it.
fn merge_keys(
    lists: &[(String, Vec<KeyInfo>)],
    cluster_size: usize,
    unanswered: &[(String, ClientError)],
) -> Vec<ClusterKey> {
    let mut merged: BTreeMap<(u64, String), ClusterKey> = BTreeMap::new();
    for (endpoint, keys) in lists {
        for key in keys {
            let entry =
                merged.entry((reference_order(&key.reference), key.reference.clone())).or_insert_with(|| ClusterKey {
                    info: key.clone(),
                    coverage: Coverage {
                        holding: Vec::new(),
                        cluster_size,
                        session: key.session,
                        failures: unanswered.to_vec(),
                    },
                });
            entry.coverage.holding.push(endpoint.clone());
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoverageLabel;

    fn key(reference: &str, session: bool) -> KeyInfo {
        KeyInfo {
            reference: reference.into(),
            attributes: vec![("label".into(), reference.into())],
            owner: "cu".into(),
            shared_users: Vec::new(),
            session,
            manage_quorum: 0,
            use_quorum: 0,
        }
    }

    #[test]
    fn listings_merge_by_reference_in_numeric_order_with_who_holds_each_key() {
        let a = vec![key("0x0000000000100001", false), key("0x0000000000200002", false)];
        let b = vec![key("0x0000000000100001", false), key("0x00000000000fffff", true)];
        let down = vec![("c:1".to_owned(), ClientError::Unavailable("down".into()))];
        let merged = merge_keys(&[("a:1".into(), a), ("b:1".into(), b)], 3, &down);
        let shown: Vec<(&str, Vec<&str>, CoverageLabel)> = merged
            .iter()
            .map(|k| {
                (k.info.reference.as_str(), k.coverage.holding.iter().map(String::as_str).collect(), k.coverage.label())
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("0x00000000000fffff", vec!["b:1"], CoverageLabel::Session),
                ("0x0000000000100001", vec!["a:1", "b:1"], CoverageLabel::Partial),
                ("0x0000000000200002", vec!["a:1"], CoverageLabel::Partial),
            ]
        );
        assert_eq!(merged[1].coverage.failures, down);
    }

    #[test]
    fn references_parse_as_the_hsm_parses_them() {
        assert_eq!(parse_reference("0x0000000000100001", "f").unwrap(), 0x100001);
        assert_eq!(parse_reference("0XfF", "f").unwrap(), 0xff);
        for bad in ["", "0x", "12", "0x12345678901234567", "0xzz"] {
            let err = parse_reference(bad, "key_reference").unwrap_err();
            assert!(matches!(&err, ClientError::InvalidArgument(m) if m.starts_with("invalid key_reference")), "{err}");
        }
    }

    #[test]
    fn starting_tokens_are_counts_of_keys_already_listed() {
        assert_eq!(parse_offset("0").unwrap(), 0);
        assert_eq!(parse_offset("4").unwrap(), 4);
        assert_eq!(parse_offset("99999999999999999999999").unwrap(), usize::MAX, "past every list");
        for bad in ["", "-2", "2.0", " 2", "0x0000000000100001", "page-two"] {
            let err = parse_offset(bad).unwrap_err();
            assert!(
                matches!(&err, ClientError::InvalidArgument(m) if m.starts_with("invalid starting_token")),
                "{err}"
            );
        }
    }
}
