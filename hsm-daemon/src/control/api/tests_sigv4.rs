//! SigV4 through the whole server: requests botocore signed are served;
//! each fault is refused before the handler runs.

use super::*;
use crate::control::clock::FixedClock;

const KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[derive(serde::Deserialize)]
struct Vectors {
    signed_at: String,
    requests: Vec<Signed>,
}

#[derive(serde::Deserialize)]
struct Signed {
    method: String,
    path: String,
    headers: serde_json::Map<String, Value>,
    body_hex: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("testdata/botocore-sigv4.json")).unwrap()
}

fn request(signed: &Signed) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(signed.method.as_str()).uri(signed.path.as_str());
    for (name, value) in &signed.headers {
        builder = builder.header(name.as_str(), value.as_str().unwrap());
    }
    builder.body(Full::new(Bytes::from(hex::decode(&signed.body_hex).unwrap()))).unwrap()
}

fn signed_at(vectors: &Vectors) -> i64 {
    super::super::time::parse_basic(&vectors.signed_at).unwrap()
}

fn config(key: &str, now: i64) -> ApiConfig {
    ApiConfig {
        credentials: Some(Credentials::new(key, SECRET)),
        clock: Arc::new(FixedClock::new(now)),
        ..ApiConfig::default()
    }
}

#[tokio::test]
async fn requests_botocore_signed_are_served_with_their_region_and_key() {
    let vectors = vectors();
    let fixture = fixture(config(KEY, signed_at(&vectors) + 60));
    for signed in &vectors.requests {
        let answer = send(&fixture, request(signed)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}: {:?}", signed.path, String::from_utf8_lossy(&answer.body));
    }
    let calls = fixture.handler.calls.lock().unwrap();
    assert_eq!(calls.len(), 4);
    let expected = RequestContext { region: Some("us-east-1".to_owned()), access_key_id: Some(KEY.to_owned()) };
    for (context, _, _) in calls.iter() {
        assert_eq!(context, &expected);
    }
    assert_eq!(calls[3].1, Operation::TagResource);
    assert_eq!(calls[3].2["TagList"][0]["Value"], "ünï");
}

#[tokio::test]
async fn without_credentials_configured_signed_requests_still_say_their_region() {
    let vectors = vectors();
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, request(&vectors.requests[0])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(fixture.handler.calls.lock().unwrap()[0].0.region.as_deref(), Some("us-east-1"));
}

#[tokio::test]
async fn each_signature_fault_is_refused_with_aws_names() {
    let vectors = vectors();
    let now = signed_at(&vectors);
    let signed = &vectors.requests[2];
    let refused = |answer: &Answer| (answer.status.as_u16(), answer.header("x-amzn-errortype").to_owned());

    let fixture = fixture(config(KEY, now));
    let mut unsigned = request(signed);
    unsigned.headers_mut().remove("authorization");
    let answer = send(&fixture, unsigned).await;
    assert_eq!(refused(&answer), (403, "MissingAuthenticationTokenException".to_owned()));
    assert_eq!(answer.header("smithy-protocol"), "rpc-v2-cbor");

    let mut garbled = request(signed);
    garbled.headers_mut().insert("authorization", "AWS4-HMAC-SHA256 Credential=x".parse().unwrap());
    assert_eq!(refused(&send(&fixture, garbled).await), (400, "IncompleteSignatureException".to_owned()));

    let mut tampered = request(signed);
    *tampered.body_mut() = Full::new(Bytes::from(cbor_body(&json!({"MaxResults": 6}))));
    let answer = send(&fixture, tampered).await;
    assert_eq!(refused(&answer), (403, "InvalidSignatureException".to_owned()));
    assert!(
        answer.cbor()["Message"].as_str().unwrap().starts_with("The request signature we calculated does not match")
    );

    let stranger = super::fixture(config("AKIDSOMEONEELSE", now));
    assert_eq!(refused(&send(&stranger, request(signed)).await), (403, "UnrecognizedClientException".to_owned()));

    let late = super::fixture(config(KEY, now + 16 * 60));
    let answer = send(&late, request(signed)).await;
    assert_eq!(refused(&answer), (403, "InvalidSignatureException".to_owned()));
    assert!(answer.cbor()["Message"].as_str().unwrap().starts_with("Signature expired: 20261207T120000Z"));

    for fixture in [&fixture, &stranger, &late] {
        assert!(fixture.handler.calls.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn documents_need_no_signature() {
    let fixture = fixture(config(KEY, 0));
    let answer = send(&fixture, Request::get("/roots.pem").body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
}
