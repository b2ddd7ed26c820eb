//! SigV4 against AWS's published test suite (the `aws-sig-v4-test-suite`
//! requests, as the AWS SDK for JavaScript v3 carries them in
//! `packages/signature-v4/src/suite.fixture.ts`) and against requests
//! botocore signed (`testdata/botocore-sigv4.json`).

use http::{Request, request::Parts};

use super::*;

const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, when the suite's requests were signed.
const SUITE_NOW: i64 = 1_440_938_160;

/// (name, method, path and query as on the wire, extra headers, body,
/// expected signature).
type SuiteCase =
    (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], &'static str, &'static str);

const SUITE: &[SuiteCase] = &[
    ("get-vanilla", "GET", "/", &[], "", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        &[],
        "",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET",
        "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        &[],
        "",
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    (
        "get-vanilla-utf8-query",
        "GET",
        "/?%E1%88%B4=bar",
        &[],
        "",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-unreserved",
        "GET",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        &[],
        "",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-header-key-duplicate",
        "GET",
        "/",
        &[("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
        "",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-order",
        "GET",
        "/",
        &[("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
        "",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        "",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    ("post-vanilla", "POST", "/", &[], "", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    (
        "post-vanilla-query",
        "POST",
        "/?Param1=value1",
        &[],
        "",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    (
        "post-header-value-case",
        "POST",
        "/",
        &[("My-Header1", "VALUE1")],
        "",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "Param1=value1",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    (
        "post-x-www-form-urlencoded-parameters",
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
        "Param1=value1",
        "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    ),
];

fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// The suite's signed headers: the request's, lower-cased, sorted, once.
fn signed_headers(parts: &Parts) -> String {
    let mut names: Vec<&str> = parts.headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(";")
}

#[test]
fn the_aws_test_suite_signatures_verify() {
    for &(name, method, uri, extra, body, signature) in SUITE {
        let mut headers = vec![("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")];
        headers.extend_from_slice(extra);
        let parts = parts(method, uri, &headers);
        let authorization = Authorization {
            access_key_id: SUITE_KEY.to_owned(),
            date: "20150830".to_owned(),
            region: "us-east-1".to_owned(),
            // The suite signs for a service named "service"; the scope is
            // checked apart from the signature (check_head).
            service: "service".to_owned(),
            terminator: "aws4_request".to_owned(),
            signed_headers: signed_headers(&parts),
            signature: signature.to_owned(),
            timestamp: "20150830T123600Z".to_owned(),
        };
        let credentials = Credentials::new(SUITE_KEY, SUITE_SECRET);
        assert_eq!(verify(&parts, body.as_bytes(), &authorization, &credentials), Ok(()), "{name}");
        // One bit of the body or one header changed: refused.
        let tampered = format!("{body}x");
        assert!(verify(&parts, tampered.as_bytes(), &authorization, &credentials).is_err(), "{name}");
        let wrong = Credentials::new(SUITE_KEY, "not the secret");
        assert!(verify(&parts, body.as_bytes(), &authorization, &wrong).is_err(), "{name}");
    }
}

#[test]
fn the_suite_canonical_request_for_get_vanilla_query_order_key_case() {
    let parts = parts(
        "GET",
        "/?Param2=value2&Param1=value1",
        &[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
    );
    let empty = hex::encode(digest(&SHA256, b""));
    assert_eq!(
        canonical_request(&parts, "host;x-amz-date", &empty),
        "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
         host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn paths_are_normalized_and_encoded_again() {
    assert_eq!(canonical_path(""), "/");
    assert_eq!(canonical_path("/"), "/");
    assert_eq!(canonical_path("/example/.."), "/");
    assert_eq!(canonical_path("/./example/./"), "/example/");
    assert_eq!(canonical_path("/a/b/../c"), "/a/c");
    assert_eq!(canonical_path("/%E1%88%B4"), "/%25E1%2588%25B4");
    assert_eq!(
        canonical_path("/service/BaldrApiService/operation/ListTags"),
        "/service/BaldrApiService/operation/ListTags"
    );
}

#[derive(serde::Deserialize)]
struct BotocoreVectors {
    signed_at: String,
    requests: Vec<BotocoreRequest>,
}

#[derive(serde::Deserialize)]
struct BotocoreRequest {
    protocol: String,
    method: String,
    path: String,
    headers: serde_json::Map<String, serde_json::Value>,
    body_hex: String,
}

fn botocore_vectors() -> BotocoreVectors {
    serde_json::from_str(include_str!("testdata/botocore-sigv4.json")).unwrap()
}

fn botocore_parts(request: &BotocoreRequest) -> Parts {
    let headers: Vec<(&str, &str)> =
        request.headers.iter().map(|(name, value)| (name.as_str(), value.as_str().unwrap())).collect();
    parts(&request.method, &request.path, &headers)
}

#[test]
fn requests_signed_by_botocore_verify_in_both_protocols() {
    let vectors = botocore_vectors();
    let now = time::parse_basic(&vectors.signed_at).unwrap();
    let credentials = Credentials::new(SUITE_KEY, SUITE_SECRET);
    let mut protocols = Vec::new();
    for request in &vectors.requests {
        let parts = botocore_parts(request);
        let body = hex::decode(&request.body_hex).unwrap();
        let authorization = check_head(&parts.headers, &credentials, now).unwrap();
        assert_eq!(authorization.region, "us-east-1");
        assert_eq!(verify(&parts, &body, &authorization, &credentials), Ok(()), "{}", request.path);
        let mut tampered = body.clone();
        tampered[body.len() / 2] ^= 1;
        assert!(matches!(
            verify(&parts, &tampered, &authorization, &credentials),
            Err(ApiError::InvalidSignature(message)) if message.starts_with(
                "The request signature we calculated does not match the signature you provided."
            )
        ));
        protocols.push(request.protocol.clone());
    }
    protocols.dedup();
    assert_eq!(protocols, ["json", "rpc-v2-cbor"]);
}

#[test]
fn a_matching_content_sha256_header_is_accepted_and_a_wrong_one_refused() {
    let vectors = botocore_vectors();
    let now = time::parse_basic(&vectors.signed_at).unwrap();
    let credentials = Credentials::new(SUITE_KEY, SUITE_SECRET);
    let request = &vectors.requests[0];
    let body = hex::decode(&request.body_hex).unwrap();
    let mut parts = botocore_parts(request);
    let authorization = check_head(&parts.headers, &credentials, now).unwrap();
    // Unsigned, but it matches: the signature still verifies.
    parts.headers.insert("x-amz-content-sha256", hex::encode(digest(&SHA256, &body)).parse().unwrap());
    assert_eq!(verify(&parts, &body, &authorization, &credentials), Ok(()));
    parts.headers.insert("x-amz-content-sha256", hex::encode(digest(&SHA256, b"other")).parse().unwrap());
    assert!(matches!(
        verify(&parts, &body, &authorization, &credentials),
        Err(ApiError::InvalidSignature(message)) if message.contains("x-amz-content-sha256")
    ));
}

fn head(headers: &[(&str, &str)], now: i64) -> Result<Authorization, ApiError> {
    check_head(&parts("POST", "/", headers).headers, &Credentials::new(SUITE_KEY, SUITE_SECRET), now)
}

const GOOD: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cloudhsm/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=00ff";

#[test]
fn the_head_check_refuses_each_fault_with_aws_error_names() {
    let date = ("X-Amz-Date", "20150830T123600Z");
    let auth = |value| ("Authorization", value);
    assert!(head(&[auth(GOOD), date], SUITE_NOW).is_ok());
    assert!(matches!(head(&[date], SUITE_NOW), Err(ApiError::MissingAuthenticationToken(_))));
    for malformed in [
        "Bearer abc",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cloudhsm/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cloudhsm/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=00",
    ] {
        assert!(
            matches!(head(&[auth(malformed), date], SUITE_NOW), Err(ApiError::IncompleteSignature(_))),
            "{malformed}"
        );
    }
    let other_key = GOOD.replace("AKIDEXAMPLE", "AKIDOTHER");
    assert!(matches!(head(&[auth(&other_key), date], SUITE_NOW), Err(ApiError::UnrecognizedClient(_))));
    let other_service = GOOD.replace("/cloudhsm/", "/s3/");
    assert!(matches!(
        head(&[auth(&other_service), date], SUITE_NOW),
        Err(ApiError::InvalidSignature(message)) if message.contains("'cloudhsm'")
    ));
    let no_host = GOOD.replace("host;", "");
    assert!(matches!(head(&[auth(&no_host), date], SUITE_NOW), Err(ApiError::InvalidSignature(_))));
    assert!(matches!(head(&[auth(GOOD)], SUITE_NOW), Err(ApiError::IncompleteSignature(_))));
    assert!(matches!(
        head(&[auth(GOOD), ("X-Amz-Date", "2015-08-30T12:36:00Z")], SUITE_NOW),
        Err(ApiError::IncompleteSignature(_))
    ));
    assert!(matches!(
        head(&[auth(GOOD), ("X-Amz-Date", "20150831T123600Z")], SUITE_NOW + 86_400),
        Err(ApiError::InvalidSignature(message)) if message.starts_with("Date in Credential scope does not match")
    ));
}

#[test]
fn signatures_hold_for_fifteen_minutes_either_way() {
    let headers = [("Authorization", GOOD), ("X-Amz-Date", "20150830T123600Z")];
    assert!(head(&headers, SUITE_NOW + 15 * 60).is_ok());
    assert!(head(&headers, SUITE_NOW - 15 * 60).is_ok());
    assert_eq!(
        head(&headers, SUITE_NOW + 15 * 60 + 1),
        Err(ApiError::InvalidSignature(
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z \
             (20150830T125101Z - 15 min.)"
                .to_owned()
        ))
    );
    assert!(matches!(
        head(&headers, SUITE_NOW - 15 * 60 - 1),
        Err(ApiError::InvalidSignature(message)) if message.starts_with("Signature not yet current")
    ));
}

#[test]
fn credentials_never_show_their_secret() {
    let shown = format!("{:?}", Credentials::new(SUITE_KEY, SUITE_SECRET));
    assert!(shown.contains(SUITE_KEY));
    assert!(!shown.contains(SUITE_SECRET));
}
