//! Input checked against the operation's input shape before any handler
//! runs: types, required members, lengths, ranges, sizes, enums and
//! patterns, every failure counted and listed in AWS's validation style:
//!
//! ```text
//! 2 validation errors detected: Value 'abc' at 'clusterId' failed to satisfy
//! constraint: Member must satisfy regular expression pattern:
//! cluster-[2-7a-zA-Z]{11,16}; Value null at 'hsmId' failed to satisfy
//! constraint: Member must not be null
//! ```
//!
//! Paths name members as AWS does, first letter lower-cased, list items
//! 1-based (`tagList.2.member.key`), map values under their key
//! (`filters.clusterIds`). Members the model does not know are dropped, as
//! AWS ignores them, and so are nulls (JSON's "absent"), so that the
//! handler sees only the model's members.

use serde_json::{Map, Value};

use super::{
    ApiError, Operation,
    model::{MODEL, Range, ServiceModel, Shape, StringShape},
};

/// Shapes whose values never appear in a message (a password).
const SECRET_SHAPES: &[&str] = &["PreCoPassword"];

/// Longest value (in characters) quoted in a message; longer ones are cut,
/// so that a 20,000-character certificate does not fill the error.
const QUOTED_MAX: usize = 128;

/// Checks `input` against `operation`'s input shape; returns it with
/// unknown members and nulls removed, or every violation as
/// [`ApiError::InvalidRequest`].
pub(super) fn check_input(operation: Operation, input: Value) -> Result<Value, ApiError> {
    let Some(shapes) = MODEL.operation(operation) else {
        return Err(ApiError::InternalFailure(format!("operation {operation} is missing from the service model")));
    };
    let mut checker = Checker { model: &MODEL, errors: Vec::new() };
    let checked = checker.check(&shapes.input, "", input);
    match checker.errors.len() {
        0 => Ok(checked),
        1 => Err(ApiError::InvalidRequest(format!("1 validation error detected: {}", checker.errors.join("; ")))),
        n => Err(ApiError::InvalidRequest(format!("{n} validation errors detected: {}", checker.errors.join("; ")))),
    }
}

struct Checker<'m> {
    model: &'m ServiceModel,
    errors: Vec<String>,
}

impl Checker<'_> {
    /// Checks one value of shape `shape_name` at `path`; returns it cleaned.
    fn check(&mut self, shape_name: &str, path: &str, value: Value) -> Value {
        let Some(shape) = self.model.shape(shape_name) else {
            // Every reference resolves (a unit test walks them): nothing to
            // check against, so the value passes as it is.
            return value;
        };
        match (shape, value) {
            (Shape::Structure(structure), Value::Object(mut object)) => {
                let mut checked = Map::new();
                for (member, member_shape) in &structure.members {
                    let member_path = join(path, &lower_first(member));
                    match object.remove(member) {
                        None | Some(Value::Null) => {
                            if structure.required.contains(member) {
                                self.fail_null(&member_path);
                            }
                        }
                        Some(value) => {
                            let value = self.check(member_shape, &member_path, value);
                            checked.insert(member.clone(), value);
                        }
                    }
                }
                Value::Object(checked)
            }
            (Shape::List { member, size }, Value::Array(items)) => {
                let rendered = render(&Value::Array(items.clone()), secret(member));
                self.check_size(path, &rendered, items.len(), *size);
                let items = items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        self.check(member, &format!("{}.{}.member", path_or_input(path), index + 1), item)
                    })
                    .collect();
                Value::Array(items)
            }
            (Shape::Map { key, value: value_shape, size }, Value::Object(entries)) => {
                let rendered = render(&Value::Object(entries.clone()), secret(value_shape));
                self.check_size(path, &rendered, entries.len(), *size);
                let mut checked = Map::new();
                for (entry_key, entry_value) in entries {
                    self.check(key, path, Value::String(entry_key.clone()));
                    if entry_value.is_null() {
                        continue;
                    }
                    let entry_path = format!("{}.{entry_key}", path_or_input(path));
                    let entry_value = self.check(value_shape, &entry_path, entry_value);
                    checked.insert(entry_key, entry_value);
                }
                Value::Object(checked)
            }
            (Shape::String(string), Value::String(text)) => {
                self.check_string(shape_name, string, path, &text);
                Value::String(text)
            }
            (Shape::Integer { range }, Value::Number(number)) => {
                match number.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
                    Some(n) => self.check_range(path, n, *range),
                    None => self.fail(path, &number.to_string(), "Member must be a 32-bit integer"),
                }
                Value::Number(number)
            }
            (Shape::Boolean, value @ Value::Bool(_)) => value,
            (Shape::Timestamp, value @ Value::Number(_)) => value,
            (shape, value) => {
                let rule = match shape {
                    Shape::Structure(_) => "Member must be a structure",
                    Shape::List { .. } => "Member must be a list",
                    Shape::Map { .. } => "Member must be a map",
                    Shape::String(_) => "Member must be a string",
                    Shape::Integer { .. } => "Member must be a 32-bit integer",
                    Shape::Boolean => "Member must be a boolean",
                    Shape::Timestamp => "Member must be a timestamp (epoch seconds)",
                };
                self.fail(path, &render(&value, secret(shape_name)), rule);
                value
            }
        }
    }

    fn check_string(&mut self, shape_name: &str, string: &StringShape, path: &str, text: &str) {
        let rendered = render_str(text, secret(shape_name));
        let length = text.chars().count() as u64;
        if let Some(min) = string.length.min.filter(|&min| length < min) {
            self.fail(path, &rendered, &format!("Member must have length greater than or equal to {min}"));
        }
        if let Some(max) = string.length.max.filter(|&max| length > max) {
            self.fail(path, &rendered, &format!("Member must have length less than or equal to {max}"));
        }
        if let Some(values) = &string.values
            && !values.iter().any(|allowed| allowed == text)
        {
            self.fail(path, &rendered, &format!("Member must satisfy enum value set: [{}]", values.join(", ")));
        }
        if let Some(pattern) = &string.pattern
            && !pattern.regex.is_match(text)
        {
            self.fail(path, &rendered, &format!("Member must satisfy regular expression pattern: {}", pattern.source));
        }
    }

    fn check_size(&mut self, path: &str, rendered: &str, size: usize, limits: Range<u64>) {
        let size = size as u64;
        if let Some(min) = limits.min.filter(|&min| size < min) {
            self.fail(path, rendered, &format!("Member must have length greater than or equal to {min}"));
        }
        if let Some(max) = limits.max.filter(|&max| size > max) {
            self.fail(path, rendered, &format!("Member must have length less than or equal to {max}"));
        }
    }

    fn check_range(&mut self, path: &str, n: i64, range: Range<i64>) {
        if let Some(min) = range.min.filter(|&min| n < min) {
            self.fail(path, &n.to_string(), &format!("Member must have value greater than or equal to {min}"));
        }
        if let Some(max) = range.max.filter(|&max| n > max) {
            self.fail(path, &n.to_string(), &format!("Member must have value less than or equal to {max}"));
        }
    }

    fn fail(&mut self, path: &str, rendered: &str, rule: &str) {
        self.errors
            .push(format!("Value '{rendered}' at '{}' failed to satisfy constraint: {rule}", path_or_input(path)));
    }

    fn fail_null(&mut self, path: &str) {
        self.errors.push(format!("Value null at '{path}' failed to satisfy constraint: Member must not be null"));
    }
}

/// The top level has no member name; AWS says `input` there.
fn path_or_input(path: &str) -> &str {
    if path.is_empty() { "input" } else { path }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() { member.to_owned() } else { format!("{path}.{member}") }
}

/// `ClusterId` -> `clusterId`, as AWS names members in messages.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn secret(shape_name: &str) -> bool {
    SECRET_SHAPES.contains(&shape_name)
}

/// A value as AWS quotes it (Java's `toString`: `[a, b]`, `{k=v}`), cut
/// to [`QUOTED_MAX`] characters; a secret shape's value as `***`.
fn render(value: &Value, secret: bool) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Null => out.push_str("null"),
            Value::String(text) => out.push_str(text),
            Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(entries) => {
                out.push('{');
                for (index, (key, item)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(key);
                    out.push('=');
                    write(item, out);
                }
                out.push('}');
            }
        }
    }
    if secret {
        return "***".to_owned();
    }
    let mut out = String::new();
    write(value, &mut out);
    render_str(&out, false)
}

fn render_str(text: &str, secret: bool) -> String {
    if secret {
        return "***".to_owned();
    }
    if text.chars().count() <= QUOTED_MAX {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(QUOTED_MAX).collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusal(operation: Operation, input: Value) -> String {
        match check_input(operation, input) {
            Err(ApiError::InvalidRequest(message)) => message,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_pattern_is_reported_as_aws_does() {
        assert_eq!(
            refusal(Operation::DeleteCluster, json!({"ClusterId": "abc"})),
            "1 validation error detected: Value 'abc' at 'clusterId' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"
        );
    }

    #[test]
    fn a_missing_required_member_is_null() {
        assert_eq!(
            refusal(Operation::DeleteCluster, json!({})),
            "1 validation error detected: Value null at 'clusterId' failed to satisfy constraint: \
             Member must not be null"
        );
        // null is absence.
        assert!(refusal(Operation::DeleteCluster, json!({"ClusterId": null})).contains("Value null"));
    }

    #[test]
    fn every_error_is_counted_and_listed() {
        let message = refusal(Operation::CreateHsm, json!({"ClusterId": "cluster-x", "AvailabilityZone": "mars-1a"}));
        assert!(message.starts_with("2 validation errors detected: "), "{message}");
        assert!(message.contains("at 'clusterId'"), "{message}");
        assert!(message.contains("Value 'mars-1a' at 'availabilityZone'"), "{message}");
        assert_eq!(message.matches("; ").count(), 1, "{message}");
    }

    #[test]
    fn lengths_ranges_sizes_and_enums_are_checked() {
        let message =
            refusal(Operation::DescribeClusters, json!({"MaxResults": 0, "Filters": {"clusterIds": ["cluster-x"]}}));
        assert!(
            message.contains(
                "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
            ),
            "{message}"
        );
        // A bad enum and a too-short password, which is never quoted.
        let message = refusal(
            Operation::CreateCluster,
            json!({
                "HsmType": "hsm1.medium",
                "SubnetIds": ["subnet-0123abcd"],
                "Mode": "SOMETIMES",
            }),
        );
        assert!(
            message.contains("Value 'SOMETIMES' at 'mode' failed to satisfy constraint: Member must satisfy enum value set: [FIPS, NON_FIPS]"),
            "{message}"
        );
        // Within every limit: no error.
        let input = json!({"ClusterId": "cluster-igklspoyj5v", "SignedCert": "x", "TrustAnchor": "y"});
        assert!(check_input(Operation::InitializeCluster, input).is_ok());
    }

    #[test]
    fn lists_are_checked_item_by_item_with_one_based_paths() {
        let message = refusal(
            Operation::TagResource,
            json!({
                "ResourceId": "cluster-igklspoyj5v",
                "TagList": [{"Key": "ok", "Value": "v"}, {"Key": "bad;key", "Value": "v"}],
            }),
        );
        assert!(message.contains("Value 'bad;key' at 'tagList.2.member.key'"), "{message}");
        let message = refusal(Operation::TagResource, json!({"ResourceId": "cluster-igklspoyj5v", "TagList": []}));
        assert!(
            message.contains("Value '[]' at 'tagList' failed to satisfy constraint: Member must have length greater than or equal to 1"),
            "{message}"
        );
    }

    #[test]
    fn types_are_checked() {
        let message = refusal(Operation::DescribeBackups, json!({"MaxResults": "5", "SortAscending": 1}));
        assert!(message.starts_with("2 validation errors detected"), "{message}");
        assert!(message.contains("at 'maxResults' failed to satisfy constraint: Member must be a 32-bit integer"));
        assert!(message.contains("at 'sortAscending' failed to satisfy constraint: Member must be a boolean"));
        let message = refusal(Operation::DescribeBackups, json!({"MaxResults": 1.5}));
        assert!(message.contains("Member must be a 32-bit integer"), "{message}");
    }

    #[test]
    fn secrets_are_never_quoted() {
        let input = json!({
            "ClusterId": "cluster-igklspoyj5v",
            "SignedCert": "x",
            "TrustAnchor": "y",
        });
        assert!(check_input(Operation::InitializeCluster, input).is_ok());
        // PreCoPassword appears in outputs only; check the renderer directly.
        assert_eq!(render(&json!("hunter22"), secret("PreCoPassword")), "***");
    }

    #[test]
    fn unknown_members_and_nulls_are_dropped() {
        let checked =
            check_input(Operation::DescribeClusters, json!({"MaxResults": 5, "NextToken": null, "Whatever": {"x": 1}}))
                .unwrap();
        assert_eq!(checked, json!({"MaxResults": 5}));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "A!".repeat(100);
        let message = refusal(Operation::DeleteBackup, json!({"BackupId": long}));
        assert!(message.contains("..."), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}
