//! SigV4 verification (`AWS4-HMAC-SHA256`, signing name `cloudhsm`), in
//! two steps so that a request that is not even signed is refused before
//! its body is read: [`check_head`] parses the `Authorization` header and
//! checks the key, the scope and the date; [`verify`] then checks the
//! signature over the canonical request, body included.
//!
//! The canonical request is built as AWS's SigV4 specification and its
//! test suite say (the suite's vectors are replayed in the tests, with
//! requests signed by botocore): the path's segments encoded once more
//! (non-S3 services), the query's names and values decoded, re-encoded and
//! sorted, headers lower-cased, trimmed, inner spaces collapsed and
//! repeated ones joined with commas, the body's SHA-256.

use std::fmt;

use http::{HeaderMap, request::Parts};
use ring::{
    digest::{SHA256, digest},
    hmac,
};
use zeroize::Zeroizing;

use super::{ApiError, time};

/// The signing name botocore's model gives the service.
pub(super) const SERVICE: &str = "cloudhsm";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's date may be from the server's clock.
const SKEW_SECONDS: i64 = 15 * 60;

/// The one access key the server accepts, and its secret.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials { access_key_id: access_key_id.into(), secret_access_key: Zeroizing::new(secret_access_key.into()) }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=
/// ..., Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authorization {
    pub(super) access_key_id: String,
    /// `YYYYMMDD`, the scope's date.
    pub(super) date: String,
    pub(super) region: String,
    pub(super) service: String,
    pub(super) terminator: String,
    /// Lower-case names, as the header lists them (`host;x-amz-date`).
    pub(super) signed_headers: String,
    /// Hex, as sent.
    pub(super) signature: String,
    /// `X-Amz-Date`, filled in by [`check_head`].
    pub(super) timestamp: String,
}

/// Parses the header; [`ApiError::IncompleteSignature`] naming what is
/// missing or malformed.
pub(super) fn parse_authorization(header: &str) -> Result<Authorization, ApiError> {
    let incomplete = |what: &str| ApiError::IncompleteSignature(what.to_owned());
    let Some(parameters) = header.strip_prefix(ALGORITHM).filter(|rest| rest.starts_with(' ')) else {
        return Err(incomplete(
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm \
             (\"AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...\").",
        ));
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for parameter in parameters.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = parameter.split_once('=') else {
            return Err(incomplete(&format!(
                "Authorization header parameter '{}' is not of the form name=value.",
                parameter.chars().take(40).collect::<String>()
            )));
        };
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let require = |value: Option<&str>, name: &str| {
        value
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| incomplete(&format!("Authorization header requires '{name}' parameter.")))
    };
    let credential = require(credential, "Credential")?;
    let signed_headers = require(signed_headers, "SignedHeaders")?;
    let signature = require(signature, "Signature")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(
            "Authorization header's Credential must be \
             <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request.",
        ));
    };
    if access_key_id.is_empty() || date.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete(
            "Authorization header's Credential has an empty access key id, date, region or service.",
        ));
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        terminator: terminator.to_owned(),
        signed_headers,
        signature,
        timestamp: String::new(),
    })
}

/// What can be checked before the body is read: that the request is
/// signed, by the configured key, for this service, at a date within 15
/// minutes of `now` (Unix seconds).
pub(super) fn check_head(headers: &HeaderMap, credentials: &Credentials, now: i64) -> Result<Authorization, ApiError> {
    let Some(header) = headers.get(http::header::AUTHORIZATION) else {
        return Err(ApiError::MissingAuthenticationToken("Missing Authentication Token".to_owned()));
    };
    let header = header
        .to_str()
        .map_err(|_| ApiError::IncompleteSignature("Authorization header is not visible ASCII.".to_owned()))?;
    let mut authorization = parse_authorization(header)?;
    if authorization.access_key_id != credentials.access_key_id {
        return Err(ApiError::UnrecognizedClient("The security token included in the request is invalid.".to_owned()));
    }
    if authorization.terminator != "aws4_request" {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            authorization.terminator
        )));
    }
    if authorization.service != SERVICE {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{SERVICE}'."
        )));
    }
    if !authorization.signed_headers.split(';').any(|name| name == "host") {
        return Err(ApiError::InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let Some(timestamp) = headers.get("x-amz-date").and_then(|value| value.to_str().ok()) else {
        return Err(ApiError::IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".to_owned(),
        ));
    };
    let Some(signed_at) = time::parse_basic(timestamp) else {
        return Err(ApiError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{timestamp}'. \
             See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if authorization.date != timestamp[..8] {
        return Err(ApiError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{timestamp}'.",
            authorization.date,
            &timestamp[..8]
        )));
    }
    if signed_at < now - SKEW_SECONDS {
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {timestamp} is now earlier than {} ({} - 15 min.)",
            time::format_basic(now - SKEW_SECONDS),
            time::format_basic(now)
        )));
    }
    if signed_at > now + SKEW_SECONDS {
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {timestamp} is still later than {} ({} + 15 min.)",
            time::format_basic(now + SKEW_SECONDS),
            time::format_basic(now)
        )));
    }
    authorization.timestamp = timestamp.to_owned();
    Ok(authorization)
}

/// Checks the signature over the request and its body.
pub(super) fn verify(
    parts: &Parts,
    body: &[u8],
    authorization: &Authorization,
    credentials: &Credentials,
) -> Result<(), ApiError> {
    let body_hash = hex::encode(digest(&SHA256, body));
    if let Some(claimed) = parts.headers.get("x-amz-content-sha256")
        && claimed.as_bytes() != body_hash.as_bytes()
    {
        return Err(ApiError::InvalidSignature(
            "The provided 'x-amz-content-sha256' header does not match what was computed.".to_owned(),
        ));
    }
    let canonical = canonical_request(parts, &authorization.signed_headers, &body_hash);
    if signature_matches(&canonical, authorization, &credentials.secret_access_key) {
        Ok(())
    } else {
        Err(ApiError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .to_owned(),
        ))
    }
}

/// Whether `authorization.signature` is the HMAC of the string to sign
/// under the key derived from `secret` and the scope (compared in
/// constant time by ring).
fn signature_matches(canonical_request: &str, authorization: &Authorization, secret: &str) -> bool {
    let Ok(claimed) = hex::decode(&authorization.signature) else {
        return false;
    };
    let scope = format!(
        "{}/{}/{}/{}",
        authorization.date, authorization.region, authorization.service, authorization.terminator
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        authorization.timestamp,
        hex::encode(digest(&SHA256, canonical_request.as_bytes()))
    );
    let sign = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let secret_key = Zeroizing::new(format!("AWS4{secret}"));
    let date_key = sign(secret_key.as_bytes(), &authorization.date);
    let region_key = sign(date_key.as_ref(), &authorization.region);
    let service_key = sign(region_key.as_ref(), &authorization.service);
    let signing_key = sign(service_key.as_ref(), &authorization.terminator);
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_ref());
    hmac::verify(&key, string_to_sign.as_bytes(), &claimed).is_ok()
}

/// The canonical request: method, path, query, the signed headers, their
/// names, the payload hash, one to a line.
pub(super) fn canonical_request(parts: &Parts, signed_headers: &str, body_hash: &str) -> String {
    let mut canonical = String::new();
    canonical.push_str(parts.method.as_str());
    canonical.push('\n');
    canonical.push_str(&canonical_path(parts.uri.path()));
    canonical.push('\n');
    canonical.push_str(&canonical_query(parts.uri.query().unwrap_or("")));
    canonical.push('\n');
    for name in signed_headers.split(';') {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&header_value(parts, name));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(signed_headers);
    canonical.push('\n');
    canonical.push_str(body_hash);
    canonical
}

/// The path with dot segments removed, each byte outside the unreserved
/// set (and `/`) percent-encoded: the wire's escapes are encoded again,
/// as non-S3 services sign.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut raw = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = raw.next() {
        let last = raw.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if trailing_slash && !normalized.ends_with('/') {
        normalized.push('/');
    }
    encode(normalized.as_bytes(), true)
}

/// Names and values decoded, then encoded as SigV4 wants, sorted by name
/// then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), false), encode(&decode(value), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// Every value of the header, trimmed, inner runs of spaces collapsed,
/// joined with commas; the URI's authority for a `host` the request
/// does not carry (HTTP/2).
fn header_value(parts: &Parts, name: &str) -> String {
    let values: Vec<String> = parts
        .headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if values.is_empty() && name == "host" {
        return parts.uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    }
    values.join(",")
}

/// Percent-encodes all but `A-Z a-z 0-9 - _ . ~` (and `/` if asked).
fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-decodes; a `%` not followed by two hex digits stays as it is.
fn decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(&[high, low]) = bytes.get(index + 1..index + 3)
            && let (Some(high), Some(low)) = (hex_digit(high), hex_digit(low))
        {
            out.push(high << 4 | low);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    out
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).and_then(|digit| u8::try_from(digit).ok())
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
