//! `describe-clusters`, `describe-backups` and `list-tags`: filters as the
//! API reference documents them, and pages (`MaxResults`, `NextToken`).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::control::api::ApiError;

/// The filters of a request (`Filters`: a name to the values any of which
/// matches), checked against the names the operation takes.
#[derive(Debug, Default)]
pub struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    /// Reads `Filters` from `input`, refusing a name `known` does not list.
    pub fn parse(input: &Value, known: &[&str]) -> Result<Self, ApiError> {
        let mut filters = Vec::new();
        if let Some(map) = input.get("Filters").and_then(Value::as_object) {
            for (name, values) in map {
                if !known.contains(&name.as_str()) {
                    return Err(ApiError::InvalidRequest(format!(
                        "Filters: unknown filter '{name}'; this operation takes {}",
                        known.join(", ")
                    )));
                }
                let values = values
                    .as_array()
                    .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                filters.push((name.clone(), values));
            }
        }
        Ok(Filters(filters))
    }

    /// Whether `value` passes filter `name` (true when there is no such
    /// filter; a filter with no values matches nothing).
    pub fn admits(&self, name: &str, value: &str) -> bool {
        self.0.iter().filter(|(n, _)| n == name).all(|(_, values)| values.iter().any(|v| v == value))
    }

    /// Whether `value` passes filter `name`, compared without case (states,
    /// `neverExpires`).
    pub fn admits_any_case(&self, name: &str, value: &str) -> bool {
        self.0.iter().filter(|(n, _)| n == name).all(|(_, values)| values.iter().any(|v| v.eq_ignore_ascii_case(value)))
    }
}

/// One page of `items`: from `NextToken` (an offset this server gave), at
/// most `MaxResults` (or `default` when absent); the token of the next page
/// if more remain.
pub fn page<T>(items: Vec<T>, input: &Value, default: usize) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match input.get("NextToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(token) => decode(token).ok_or_else(|| {
            ApiError::InvalidRequest("NextToken: not a token this service returned (use the last response's)".into())
        })?,
    };
    let size =
        input.get("MaxResults").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok()).unwrap_or(default).max(1);
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + page.len() < total).then(|| encode(start + page.len()));
    Ok((page, next))
}

fn encode(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("page:{offset}"))
}

fn decode(token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("page:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pages_walk_every_item_once_and_bad_tokens_are_refused() {
        let items: Vec<u32> = (0..7).collect();
        let mut seen = Vec::new();
        let mut input = json!({"MaxResults": 3});
        loop {
            let (page, next) = page(items.clone(), &input, 25).expect("page");
            seen.extend(page);
            match next {
                Some(token) => input = json!({"MaxResults": 3, "NextToken": token}),
                None => break,
            }
        }
        assert_eq!(seen, items);
        let bad = page(items, &json!({"NextToken": "nonsense!"}), 25).expect_err("refused");
        assert!(bad.to_string().contains("NextToken"), "{bad}");
    }

    #[test]
    fn filters_name_the_unknown_one_and_match_any_value() {
        let input = json!({"Filters": {"states": ["active", "UNINITIALIZED"]}});
        let filters = Filters::parse(&input, &["clusterIds", "states"]).expect("known");
        assert!(filters.admits_any_case("states", "ACTIVE"));
        assert!(!filters.admits_any_case("states", "DELETED"));
        assert!(filters.admits("clusterIds", "cluster-anything"));
        let unknown = Filters::parse(&json!({"Filters": {"colour": ["red"]}}), &["states"]).expect_err("unknown");
        assert!(unknown.to_string().contains("'colour'"), "{unknown}");
    }
}
