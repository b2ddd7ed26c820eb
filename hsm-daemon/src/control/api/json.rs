//! AWS JSON 1.1: `POST /` with `X-Amz-Target: BaldrApiService.<Op>` and
//! `Content-Type: application/x-amz-json-1.1`; the body is the input
//! structure as a JSON object (empty: `{}`). Timestamps travel as epoch
//! seconds, which is what the handler already speaks, so bodies pass
//! through as they are. Errors: `x-amzn-ErrorType: <Name>` and
//! `{"__type": "<Name>", "Message": "..."}`, which botocore reads.

use http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, Operation, model::MODEL};

pub(super) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operation `X-Amz-Target` names.
pub(super) fn operation(headers: &HeaderMap) -> Result<Operation, ApiError> {
    let unknown = |message: String| ApiError::UnknownOperation { message, status: http::StatusCode::BAD_REQUEST };
    let Some(target) = headers.get("x-amz-target") else {
        return Err(unknown("Missing X-Amz-Target header: expected BaldrApiService.<Operation>".to_owned()));
    };
    let target = target.to_str().unwrap_or("");
    target
        .strip_prefix(MODEL.target_prefix.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(Operation::parse)
        .ok_or_else(|| unknown(format!("Unknown operation: X-Amz-Target {:?}", clip(target))))
}

/// Refuses a request whose `Content-Type` is not AWS JSON 1.1 (parameters
/// such as `; charset=utf-8` are allowed).
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
    match content_type.map(media_type) {
        Some(media) if media.eq_ignore_ascii_case(CONTENT_TYPE) => Ok(()),
        Some(media) => Err(ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type {:?}: AWS JSON requests are {CONTENT_TYPE}",
            clip(media)
        ))),
        None => {
            Err(ApiError::UnsupportedMediaType(format!("Missing Content-Type: AWS JSON requests are {CONTENT_TYPE}")))
        }
    }
}

/// The input structure; an empty body is `{}`.
pub(super) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ApiError::Serialization(
            "The request body must be a JSON object (the operation's input structure)".to_owned(),
        )),
        Err(error) => Err(ApiError::Serialization(format!("The request body is not valid JSON: {error}"))),
    }
}

/// The output structure's bytes, nulls dropped.
pub(super) fn encode_output(output: &Value) -> Vec<u8> {
    serde_json::to_vec(&without_nulls(output)).unwrap_or_else(|_| b"{}".to_vec())
}

/// `{"__type": "<Name>", "Message": "..."}`.
pub(super) fn encode_error(error: &ApiError) -> Vec<u8> {
    let body = json!({"__type": error.code(), "Message": error.message()});
    body.to_string().into_bytes()
}

/// A copy with every null member and item removed (absent, to the SDKs).
pub(super) fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .filter(|(_, item)| !item.is_null())
                .map(|(key, item)| (key.clone(), without_nulls(item)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().filter(|i| !i.is_null()).map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The media type of a `Content-Type` (before any `;`), trimmed.
pub(super) fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// At most 64 characters of something a client sent, for a message.
pub(super) fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap())).collect()
    }

    #[test]
    fn the_target_names_the_operation() {
        assert_eq!(
            operation(&headers(&[("x-amz-target", "BaldrApiService.DescribeClusters")])),
            Ok(Operation::DescribeClusters)
        );
        for target in ["BaldrApiService.Nope", "Other.DescribeClusters", "BaldrApiServiceDescribeClusters", ""] {
            let error = operation(&headers(&[("x-amz-target", target)])).unwrap_err();
            assert_eq!(error.code(), "UnknownOperationException", "{target}");
            assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
        }
        assert_eq!(operation(&HeaderMap::new()).unwrap_err().code(), "UnknownOperationException");
    }

    #[test]
    fn only_aws_json_content_is_accepted() {
        assert!(check_content_type(&headers(&[("content-type", "application/x-amz-json-1.1")])).is_ok());
        assert!(check_content_type(&headers(&[("content-type", "application/x-amz-json-1.1; charset=utf-8")])).is_ok());
        for bad in ["application/cbor", "text/plain"] {
            let error = check_content_type(&headers(&[("content-type", bad)])).unwrap_err();
            assert_eq!(error.code(), "UnsupportedMediaTypeException");
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn bodies_decode_to_objects_or_fail_as_serialization_errors() {
        assert_eq!(decode(b""), Ok(json!({})));
        assert_eq!(decode(b" \n"), Ok(json!({})));
        assert_eq!(decode(br#"{"MaxResults": 5}"#), Ok(json!({"MaxResults": 5})));
        for bad in [&b"[1]"[..], b"5", b"{", b"{\"a\":", b"\xff\xfe", b"null"] {
            assert_eq!(decode(bad).unwrap_err().code(), "SerializationException", "{bad:?}");
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert_eq!(decode(deep.as_bytes()).unwrap_err().code(), "SerializationException");
    }

    #[test]
    fn errors_carry_type_and_message() {
        let body: Value =
            serde_json::from_slice(&encode_error(&ApiError::ResourceNotFound("no such cluster".into()))).unwrap();
        assert_eq!(body, json!({"__type": "CloudHsmResourceNotFoundException", "Message": "no such cluster"}));
    }
}
