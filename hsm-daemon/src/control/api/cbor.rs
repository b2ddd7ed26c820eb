//! Smithy RPC v2 CBOR: `POST /service/BaldrApiService/operation/<Op>`
//! with `smithy-protocol: rpc-v2-cbor`; the body is the input structure
//! as a CBOR map (`Content-Type: application/cbor`), or empty. Responses
//! carry the same header and content type; errors are a map with
//! `__type` (`com.amazonaws.cloudhsmv2#<Name>`) and `Message`.
//!
//! The handler speaks JSON: input is turned into JSON here (tag 1
//! timestamps become epoch-seconds numbers, byte strings base64 text, the
//! way the JSON protocol carries blobs), and output back into CBOR, the
//! output shape telling which numbers are timestamps (tag 1).

use base64::Engine;
use ciborium::Value as Cbor;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Number, Value};

use super::{
    ApiError, Operation,
    json::{clip, media_type},
    model::{MODEL, Shape},
};

pub(super) const CONTENT_TYPE: &str = "application/cbor";
/// The value of the `smithy-protocol` header, both ways.
pub(super) const PROTOCOL: &str = "rpc-v2-cbor";
/// Where RPC v2 paths start.
pub(super) const PATH_PREFIX: &str = "/service/";
/// The Smithy namespace of the service's shapes, for `__type`.
const NAMESPACE: &str = "com.amazonaws.cloudhsmv2";

/// The operation the path names; a 404 `UnknownOperationException`
/// otherwise (the path is the resource, and it does not exist).
pub(super) fn operation(path: &str) -> Result<Operation, ApiError> {
    let unknown = || ApiError::UnknownOperation {
        message: format!("Unknown operation: {}", clip(path)),
        status: StatusCode::NOT_FOUND,
    };
    let rest = path.strip_prefix(PATH_PREFIX).ok_or_else(unknown)?;
    let (service, rest) = rest.split_once('/').ok_or_else(unknown)?;
    if service != MODEL.target_prefix {
        return Err(unknown());
    }
    let name = rest.strip_prefix("operation/").ok_or_else(unknown)?;
    Operation::parse(name).ok_or_else(unknown)
}

/// `smithy-protocol` must say `rpc-v2-cbor`; a body must be
/// `application/cbor`; an `Accept` header must allow CBOR.
pub(super) fn check_headers(headers: &HeaderMap, body_is_empty: bool) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or(""));
    match header("smithy-protocol") {
        Some(PROTOCOL) => {}
        Some(other) => {
            return Err(ApiError::Serialization(format!(
                "Unsupported smithy-protocol header {:?}: expected {PROTOCOL}",
                clip(other)
            )));
        }
        None => {
            return Err(ApiError::Serialization(format!(
                "Missing smithy-protocol header: RPC v2 requests carry smithy-protocol: {PROTOCOL}"
            )));
        }
    }
    match header(http::header::CONTENT_TYPE.as_str()).map(media_type) {
        Some(media) if media.eq_ignore_ascii_case(CONTENT_TYPE) => {}
        None if body_is_empty => {}
        Some(media) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Unsupported Content-Type {:?}: RPC v2 CBOR requests are {CONTENT_TYPE}",
                clip(media)
            )));
        }
        None => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Missing Content-Type: an RPC v2 CBOR request body is {CONTENT_TYPE}"
            )));
        }
    }
    if let Some(accept) = header(http::header::ACCEPT.as_str()) {
        let allows_cbor = accept
            .split(',')
            .map(media_type)
            .any(|media| ["application/cbor", "application/*", "*/*"].iter().any(|ok| media.eq_ignore_ascii_case(ok)));
        if !allows_cbor {
            return Err(ApiError::NotAcceptable(format!(
                "Accept {:?} does not allow {CONTENT_TYPE}, the only response type",
                clip(accept)
            )));
        }
    }
    Ok(())
}

/// The input structure as JSON; an empty body is `{}`.
pub(super) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let mut rest = body;
    let value: Cbor = ciborium::from_reader(&mut rest)
        .map_err(|error| ApiError::Serialization(format!("The request body is not valid CBOR: {error}")))?;
    if !rest.is_empty() {
        return Err(ApiError::Serialization(format!(
            "The request body has {} bytes after its CBOR data item",
            rest.len()
        )));
    }
    match to_json(value)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(ApiError::Serialization(
            "The request body must be a CBOR map (the operation's input structure)".to_owned(),
        )),
    }
}

/// The output structure of `operation` as CBOR, timestamps as tag 1.
pub(super) fn encode_output(operation: Operation, output: &Value) -> Vec<u8> {
    let shape = MODEL.operation(operation).map(|shapes| shapes.output.as_str());
    encode(&to_cbor(shape, output))
}

/// `{"__type": "com.amazonaws.cloudhsmv2#<Name>", "Message": "..."}`.
pub(super) fn encode_error(error: &ApiError) -> Vec<u8> {
    encode(&Cbor::Map(vec![
        (Cbor::Text("__type".to_owned()), Cbor::Text(format!("{NAMESPACE}#{}", error.code()))),
        (Cbor::Text("Message".to_owned()), Cbor::Text(error.message().to_owned())),
    ]))
}

fn encode(value: &Cbor) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Err(error) = ciborium::into_writer(value, &mut bytes) {
        // Writing a Value into a Vec cannot fail short of allocation; say
        // so if it ever does rather than send half a body.
        tracing::error!(error = %error, "control API: encoding a CBOR response failed");
        bytes = vec![0xa0];
    }
    bytes
}

fn serialization(message: &str) -> ApiError {
    ApiError::Serialization(format!("The request body cannot be read: {message}"))
}

/// CBOR to JSON: tag 1 to its number, byte strings to base64 text; what
/// JSON cannot hold (NaN, integers past 64 bits, non-text map keys, other
/// tags) is a serialization error.
fn to_json(value: Cbor) -> Result<Value, ApiError> {
    Ok(match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(flag) => Value::Bool(flag),
        Cbor::Integer(integer) => integer_to_json(i128::from(integer))?,
        Cbor::Float(float) => float_to_json(float)?,
        Cbor::Text(text) => Value::String(text),
        Cbor::Bytes(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Cbor::Array(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Cbor::Map(entries) => {
            let mut object = Map::new();
            for (key, item) in entries {
                let Cbor::Text(key) = key else {
                    return Err(serialization("a map key is not a text string"));
                };
                object.insert(key, to_json(item)?);
            }
            Value::Object(object)
        }
        Cbor::Tag(1, inner) => match *inner {
            Cbor::Integer(integer) => integer_to_json(i128::from(integer))?,
            Cbor::Float(float) => float_to_json(float)?,
            _ => return Err(serialization("a timestamp (tag 1) is not a number")),
        },
        Cbor::Tag(tag, _) => return Err(serialization(&format!("unsupported CBOR tag {tag}"))),
        _ => return Err(serialization("unsupported CBOR simple value")),
    })
}

fn integer_to_json(integer: i128) -> Result<Value, ApiError> {
    if let Ok(signed) = i64::try_from(integer) {
        Ok(Value::Number(signed.into()))
    } else if let Ok(unsigned) = u64::try_from(integer) {
        Ok(Value::Number(unsigned.into()))
    } else {
        Err(serialization("an integer does not fit in 64 bits"))
    }
}

fn float_to_json(float: f64) -> Result<Value, ApiError> {
    Number::from_f64(float).map(Value::Number).ok_or_else(|| serialization("NaN or infinity where a number belongs"))
}

/// JSON to CBOR along `shape` (if known): numbers in timestamp members
/// become tag 1; nulls are left out.
fn to_cbor(shape: Option<&str>, value: &Value) -> Cbor {
    let shape = shape.and_then(|name| MODEL.shape(name));
    match (shape, value) {
        (Some(Shape::Timestamp), Value::Number(number)) => Cbor::Tag(1, Box::new(number_to_cbor(number))),
        (Some(Shape::Structure(structure)), Value::Object(entries)) => Cbor::Map(
            entries
                .iter()
                .filter(|(_, item)| !item.is_null())
                .map(|(key, item)| {
                    let member = structure.members.iter().find(|(name, _)| name == key).map(|(_, s)| s.as_str());
                    (Cbor::Text(key.clone()), to_cbor(member, item))
                })
                .collect(),
        ),
        (Some(Shape::List { member, .. }), Value::Array(items)) => {
            Cbor::Array(items.iter().filter(|item| !item.is_null()).map(|item| to_cbor(Some(member), item)).collect())
        }
        (Some(Shape::Map { value: value_shape, .. }), Value::Object(entries)) => Cbor::Map(
            entries
                .iter()
                .filter(|(_, item)| !item.is_null())
                .map(|(key, item)| (Cbor::Text(key.clone()), to_cbor(Some(value_shape), item)))
                .collect(),
        ),
        (_, Value::Null) => Cbor::Null,
        (_, Value::Bool(flag)) => Cbor::Bool(*flag),
        (_, Value::Number(number)) => number_to_cbor(number),
        (_, Value::String(text)) => Cbor::Text(text.clone()),
        (_, Value::Array(items)) => {
            Cbor::Array(items.iter().filter(|item| !item.is_null()).map(|item| to_cbor(None, item)).collect())
        }
        (_, Value::Object(entries)) => Cbor::Map(
            entries
                .iter()
                .filter(|(_, item)| !item.is_null())
                .map(|(key, item)| (Cbor::Text(key.clone()), to_cbor(None, item)))
                .collect(),
        ),
    }
}

fn number_to_cbor(number: &Number) -> Cbor {
    if let Some(signed) = number.as_i64() {
        Cbor::Integer(signed.into())
    } else if let Some(unsigned) = number.as_u64() {
        Cbor::Integer(unsigned.into())
    } else {
        Cbor::Float(number.as_f64().unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
#[path = "cbor_tests.rs"]
mod tests;
