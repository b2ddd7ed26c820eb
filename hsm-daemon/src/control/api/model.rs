//! The service model, parsed once: each operation's input and output
//! shape, and every shape with its constraints, patterns compiled.
//!
//! `service-2.json` is botocore's model of the CloudHSM v2 API (API
//! version 2017-04-28, `botocore/data/cloudhsmv2/2017-04-28/
//! service-2.json.gz` in botocore 1.44.18, Apache-2.0), with every
//! `documentation` field removed and nothing else changed.

use std::{collections::HashMap, sync::LazyLock};

use regex::Regex;
use serde::Deserialize;

use super::Operation;

/// The model as botocore ships it, minus its `documentation` fields.
const SOURCE: &str = include_str!("service-2.json");

/// The model, parsed on first use.
pub(super) static MODEL: LazyLock<ServiceModel> = LazyLock::new(|| {
    // The model is a constant of this crate, and the unit tests parse it and
    // check every operation and pattern: a failure here is a build defect,
    // never something a request can cause.
    ServiceModel::parse(SOURCE).expect("the embedded service model parses")
});

/// Operations and shapes, by name.
#[derive(Debug)]
pub(super) struct ServiceModel {
    /// `BaldrApiService`: the `X-Amz-Target` prefix and the RPC v2 path's
    /// service name.
    pub(super) target_prefix: String,
    operations: HashMap<String, OperationShapes>,
    shapes: HashMap<String, Shape>,
}

/// The shapes one operation reads and writes.
#[derive(Debug, Clone)]
pub(super) struct OperationShapes {
    pub(super) input: String,
    pub(super) output: String,
}

/// One shape, with the constraints the model gives it.
#[derive(Debug)]
pub(super) enum Shape {
    Structure(Structure),
    List { member: String, size: Range<u64> },
    Map { key: String, value: String, size: Range<u64> },
    String(StringShape),
    Integer { range: Range<i64> },
    Boolean,
    Timestamp,
}

/// A structure's members in the model's order (so that errors come in a
/// stable order), and which must be present.
#[derive(Debug)]
pub(super) struct Structure {
    /// (member name, shape name).
    pub(super) members: Vec<(String, String)>,
    pub(super) required: Vec<String>,
}

#[derive(Debug)]
pub(super) struct StringShape {
    pub(super) length: Range<u64>,
    pub(super) pattern: Option<Pattern>,
    /// The allowed values, if the shape is an enum.
    pub(super) values: Option<Vec<String>>,
}

/// A `pattern` constraint: the model's text (for messages) and the regex
/// that must match the whole value.
#[derive(Debug)]
pub(super) struct Pattern {
    pub(super) source: String,
    pub(super) regex: Regex,
}

/// `min`/`max`, either or both absent.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Range<T> {
    pub(super) min: Option<T>,
    pub(super) max: Option<T>,
}

/// Why the model would not load (only ever a defect of the embedded file).
#[derive(Debug, thiserror::Error)]
pub(super) enum ModelError {
    #[error("service model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("service model: shape {shape}: pattern {pattern:?}: {source}")]
    Pattern {
        shape: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("service model: operation {0}: no input or output shape")]
    Operation(String),
}

impl ServiceModel {
    fn parse(source: &str) -> Result<ServiceModel, ModelError> {
        let raw: RawModel = serde_json::from_str(source)?;
        let operations = raw
            .operations
            .into_iter()
            .map(|(name, operation)| match (operation.input, operation.output) {
                (Some(input), Some(output)) => Ok((name, OperationShapes { input: input.shape, output: output.shape })),
                _ => Err(ModelError::Operation(name)),
            })
            .collect::<Result<_, _>>()?;
        let shapes = raw
            .shapes
            .into_iter()
            .map(|(name, shape)| {
                let shape = Shape::from_raw(&name, shape)?;
                Ok((name, shape))
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(ServiceModel { target_prefix: raw.metadata.target_prefix, operations, shapes })
    }

    /// The input and output shapes of `operation`.
    ///
    /// `None` only if the model lacks an operation of [`Operation::ALL`],
    /// which a unit test rules out.
    pub(super) fn operation(&self, operation: Operation) -> Option<&OperationShapes> {
        self.operations.get(operation.name())
    }

    pub(super) fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// Every operation name the model has (for the tests that hold it and
    /// [`Operation`] in step).
    #[cfg(test)]
    pub(super) fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }
}

impl Shape {
    fn from_raw(name: &str, raw: RawShape) -> Result<Shape, ModelError> {
        Ok(match raw {
            RawShape::Structure { members, required } => {
                let members = members
                    .into_iter()
                    .map(|(member, reference)| {
                        let reference: RawRef = serde_json::from_value(reference)?;
                        Ok((member, reference.shape))
                    })
                    .collect::<Result<_, ModelError>>()?;
                Shape::Structure(Structure { members, required })
            }
            RawShape::List { member, min, max } => Shape::List { member: member.shape, size: Range { min, max } },
            RawShape::Map { key, value, min, max } => {
                Shape::Map { key: key.shape, value: value.shape, size: Range { min, max } }
            }
            RawShape::String { min, max, pattern, values } => {
                let pattern = pattern
                    .map(|source| {
                        // AWS matches a pattern against the whole value,
                        // with Java's ASCII-only `\d` (the regex crate's
                        // is Unicode's); `[0-9]` is valid inside a class
                        // too, as a nested class.
                        let ascii_digits = source.replace(r"\d", "[0-9]");
                        Regex::new(&format!("^(?:{ascii_digits})$"))
                            .map(|regex| Pattern { source: source.clone(), regex })
                            .map_err(|error| ModelError::Pattern {
                                shape: name.to_owned(),
                                pattern: source,
                                source: Box::new(error),
                            })
                    })
                    .transpose()?;
                Shape::String(StringShape { length: Range { min, max }, pattern, values })
            }
            RawShape::Integer { min, max } => Shape::Integer { range: Range { min, max } },
            RawShape::Boolean {} => Shape::Boolean,
            RawShape::Timestamp {} => Shape::Timestamp,
        })
    }
}

#[derive(Deserialize)]
struct RawModel {
    metadata: RawMetadata,
    operations: HashMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetadata {
    target_prefix: String,
}

#[derive(Deserialize)]
struct RawOperation {
    input: Option<RawRef>,
    output: Option<RawRef>,
}

#[derive(Deserialize)]
struct RawRef {
    shape: String,
}

/// A shape as the model writes it; keys this module does not use
/// (`exception`, `fault`) are ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawShape {
    Structure {
        /// Kept as a JSON map: with serde_json's `preserve_order`, in the
        /// model's order.
        members: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        required: Vec<String>,
    },
    List {
        member: RawRef,
        min: Option<u64>,
        max: Option<u64>,
    },
    Map {
        key: RawRef,
        value: RawRef,
        min: Option<u64>,
        max: Option<u64>,
    },
    String {
        min: Option<u64>,
        max: Option<u64>,
        pattern: Option<String>,
        #[serde(rename = "enum")]
        values: Option<Vec<String>>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean {},
    Timestamp {},
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_model_and_the_operation_enum_list_the_same_operations() {
        let ours: BTreeSet<&str> = Operation::ALL.iter().map(|operation| operation.name()).collect();
        let model: BTreeSet<&str> = MODEL.operation_names().collect();
        assert_eq!(ours, model);
        for &operation in Operation::ALL {
            let shapes = MODEL.operation(operation).unwrap();
            assert_eq!(shapes.input, format!("{operation}Request"));
            assert_eq!(shapes.output, format!("{operation}Response"));
            assert!(matches!(MODEL.shape(&shapes.input), Some(Shape::Structure(_))), "{operation}");
            assert!(matches!(MODEL.shape(&shapes.output), Some(Shape::Structure(_))), "{operation}");
            assert_eq!(Operation::parse(operation.name()), Some(operation));
        }
        assert_eq!(Operation::parse("describeClusters"), None);
        assert_eq!(MODEL.target_prefix, "BaldrApiService");
    }

    #[test]
    fn every_shape_reference_resolves() {
        for shape in MODEL.shapes.values() {
            let references: Vec<&String> = match shape {
                Shape::Structure(structure) => structure.members.iter().map(|(_, s)| s).collect(),
                Shape::List { member, .. } => vec![member],
                Shape::Map { key, value, .. } => vec![key, value],
                Shape::String(_) | Shape::Integer { .. } | Shape::Boolean | Shape::Timestamp => {
                    vec![]
                }
            };
            for reference in references {
                assert!(MODEL.shape(reference).is_some(), "{reference}");
            }
        }
    }

    #[test]
    fn patterns_match_whole_values_including_unicode_classes() {
        let pattern = |name: &str| match MODEL.shape(name) {
            Some(Shape::String(StringShape { pattern: Some(pattern), .. })) => &pattern.regex,
            _ => panic!("{name} has no pattern"),
        };
        assert!(pattern("ClusterId").is_match("cluster-igklspoyj5v"));
        assert!(!pattern("ClusterId").is_match("xcluster-igklspoyj5v"));
        assert!(!pattern("ClusterId").is_match("cluster-igklspoyj5v!"));
        assert!(pattern("TagKey").is_match("Ünïcödé name_1"));
        assert!(!pattern("TagKey").is_match("semi;colon"));
        assert!(pattern("Cert").is_match("-----BEGIN CERTIFICATE-----\nMIIB+/=\n"));
        // `\d` is ASCII, as in Java: an Arabic-Indic three is no digit.
        assert!(pattern("Region").is_match("us-east-1"));
        assert!(!pattern("Region").is_match("us-east-\u{663}"));
    }
}
