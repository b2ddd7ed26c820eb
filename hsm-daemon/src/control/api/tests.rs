//! The server end to end with a fake handler: both protocols' round
//! trips, errors, protocol faults, SigV4, the body limit, documents, and
//! (over real sockets) graceful shutdown.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{
    server::{Shared, handle, shared_for_tests},
    *,
};

/// Answers from a script; remembers what it was asked.
#[derive(Debug, Default)]
struct FakeHandler {
    calls: Mutex<Vec<(RequestContext, Operation, Value)>>,
    /// The error every call returns, if set.
    error: Mutex<Option<ApiError>>,
    /// ListTags waits here, after notifying `started`, when set.
    gate: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl Handler for FakeHandler {
    fn call(
        &self,
        context: RequestContext,
        operation: Operation,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send + '_>> {
        self.calls.lock().unwrap().push((context, operation, input));
        let error = self.error.lock().unwrap().clone();
        Box::pin(async move {
            if let Some(error) = error {
                return Err(error);
            }
            if let (Operation::ListTags, Some((started, release))) = (operation, &self.gate) {
                started.notify_one();
                release.notified().await;
            }
            match operation {
                Operation::DescribeClusters => Ok(json!({
                    "Clusters": [{
                        "ClusterId": "cluster-igklspoyj5v",
                        "CreateTimestamp": 1_700_000_000,
                        "HsmTypeRollbackExpiration": 1_700_000_000.5,
                        "State": "ACTIVE",
                        "StateMessage": null,
                        "Hsms": [],
                    }],
                })),
                Operation::DeleteBackup => panic!("the fake handler panics on DeleteBackup"),
                _ => Ok(json!({})),
            }
        })
    }

    fn document(&self, path: &str) -> Option<Document> {
        (path == "/roots.pem").then(|| Document {
            content_type: "application/x-pem-file".to_owned(),
            body: b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        })
    }
}

struct Fixture {
    handler: Arc<FakeHandler>,
    shared: Shared,
}

fn fixture(config: ApiConfig) -> Fixture {
    let handler = Arc::new(FakeHandler::default());
    let shared = shared_for_tests(handler.clone(), config);
    Fixture { handler, shared }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn cbor(&self) -> Value {
        cbor_to_json(&self.body)
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|value| value.to_str().unwrap()).unwrap_or("")
    }
}

/// Decodes a CBOR body as a client would, tags kept visible as
/// `{"tag1": n}` so that tests can see them.
fn cbor_to_json(bytes: &[u8]) -> Value {
    fn convert(value: ciborium::Value) -> Value {
        match value {
            ciborium::Value::Tag(1, inner) => json!({"tag1": convert(*inner)}),
            ciborium::Value::Map(entries) => Value::Object(
                entries.into_iter().map(|(key, item)| (key.into_text().unwrap(), convert(item))).collect(),
            ),
            ciborium::Value::Array(items) => Value::Array(items.into_iter().map(convert).collect()),
            other => serde_json::to_value(other).unwrap(),
        }
    }
    convert(ciborium::from_reader(bytes).unwrap())
}

async fn send(fixture: &Fixture, request: Request<Full<Bytes>>) -> Answer {
    let response = handle(&fixture.shared, request).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    Answer { status: parts.status, headers: parts.headers, body }
}

fn json_request(operation: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("/")
        .header("x-amz-target", format!("BaldrApiService.{operation}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn cbor_request(operation: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("/service/BaldrApiService/operation/{operation}"))
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor")
        .header("accept", "application/cbor")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn cbor_body(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn json_round_trip_with_timestamps_as_epoch_seconds() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, json_request("DescribeClusters", r#"{"MaxResults": 5, "Unknown": 1}"#)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/x-amz-json-1.1");
    let request_id = answer.header("x-amzn-requestid");
    assert_eq!(request_id.len(), 36, "{request_id}");
    assert_eq!(request_id.matches('-').count(), 4, "{request_id}");
    assert_eq!(
        answer.json(),
        json!({"Clusters": [{
            "ClusterId": "cluster-igklspoyj5v",
            "CreateTimestamp": 1_700_000_000,
            "HsmTypeRollbackExpiration": 1_700_000_000.5,
            "State": "ACTIVE",
            "Hsms": [],
        }]})
    );
    // The handler saw the checked input, unknown members gone, no signer.
    let calls = fixture.handler.calls.lock().unwrap();
    assert_eq!(calls[0], (RequestContext::default(), Operation::DescribeClusters, json!({"MaxResults": 5})));
}

#[tokio::test]
async fn an_empty_json_body_is_an_empty_input() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, json_request("DescribeClusters", "")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(fixture.handler.calls.lock().unwrap()[0].2, json!({}));
}

#[tokio::test]
async fn cbor_round_trip_with_timestamps_as_tag_one() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, cbor_request("DescribeClusters", cbor_body(&json!({"MaxResults": 5})))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/cbor");
    assert_eq!(answer.header("smithy-protocol"), "rpc-v2-cbor");
    assert!(!answer.header("x-amzn-requestid").is_empty());
    assert_eq!(
        answer.cbor(),
        json!({"Clusters": [{
            "ClusterId": "cluster-igklspoyj5v",
            "CreateTimestamp": {"tag1": 1_700_000_000},
            "HsmTypeRollbackExpiration": {"tag1": 1_700_000_000.5},
            "State": "ACTIVE",
            "Hsms": [],
        }]})
    );
    // An empty body, with no content type, is an empty input.
    let empty = Request::post("/service/BaldrApiService/operation/DescribeBackups")
        .header("smithy-protocol", "rpc-v2-cbor")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&fixture, empty).await.status, StatusCode::OK);
    let calls = fixture.handler.calls.lock().unwrap();
    assert_eq!(calls[1], (RequestContext::default(), Operation::DescribeBackups, json!({})));
}

#[tokio::test]
async fn every_api_error_has_its_status_and_type_in_both_protocols() {
    let not_found = StatusCode::NOT_FOUND;
    let errors = [
        (ApiError::AccessDenied("m".into()), 400),
        (ApiError::InternalFailure("m".into()), 500),
        (ApiError::InvalidRequest("m".into()), 400),
        (ApiError::ResourceLimitExceeded("m".into()), 400),
        (ApiError::ResourceNotFound("m".into()), 400),
        (ApiError::Service("m".into()), 400),
        (ApiError::Tag("m".into()), 400),
        (ApiError::UnknownOperation { message: "m".into(), status: not_found }, 404),
        (ApiError::Serialization("m".into()), 400),
        (ApiError::UnsupportedMediaType("m".into()), 415),
        (ApiError::NotAcceptable("m".into()), 406),
        (ApiError::RequestEntityTooLarge("m".into()), 413),
        (ApiError::MethodNotAllowed("m".into()), 405),
        (ApiError::MissingAuthenticationToken("m".into()), 403),
        (ApiError::IncompleteSignature("m".into()), 400),
        (ApiError::UnrecognizedClient("m".into()), 403),
        (ApiError::InvalidSignature("m".into()), 403),
    ];
    let fixture = fixture(ApiConfig::default());
    for (error, status) in errors {
        let code = error.code();
        *fixture.handler.error.lock().unwrap() = Some(error);
        let answer = send(&fixture, json_request("ListTags", r#"{"ResourceId": "cluster-igklspoyj5v"}"#)).await;
        assert_eq!(answer.status.as_u16(), status, "{code}");
        assert_eq!(answer.header("x-amzn-errortype"), code);
        assert_eq!(answer.json(), json!({"__type": code, "Message": "m"}));
        let answer =
            send(&fixture, cbor_request("ListTags", cbor_body(&json!({"ResourceId": "cluster-igklspoyj5v"})))).await;
        assert_eq!(answer.status.as_u16(), status, "{code}");
        assert_eq!(answer.header("smithy-protocol"), "rpc-v2-cbor");
        assert_eq!(answer.cbor(), json!({"__type": format!("com.amazonaws.cloudhsmv2#{code}"), "Message": "m"}));
    }
}

#[tokio::test]
async fn invalid_input_never_reaches_the_handler() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, json_request("DeleteCluster", r#"{"ClusterId": "abc"}"#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["Message"],
        "1 validation error detected: Value 'abc' at 'clusterId' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"
    );
    assert_eq!(answer.json()["__type"], "CloudHsmInvalidRequestException");
    assert!(fixture.handler.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_failure() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, json_request("DeleteBackup", r#"{"BackupId": "backup-igklspoyj5v"}"#)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json()["__type"], "CloudHsmInternalFailureException");
}

#[tokio::test]
async fn protocol_faults_have_aws_names_and_statuses() {
    let fixture = fixture(ApiConfig::default());
    let check = |answer: Answer, status: u16, code: &str| {
        assert_eq!((answer.status.as_u16(), answer.header("x-amzn-errortype")), (status, code));
    };
    check(send(&fixture, json_request("Nope", "{}")).await, 400, "UnknownOperationException");
    let no_target = Request::post("/")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    check(send(&fixture, no_target).await, 400, "UnknownOperationException");
    check(send(&fixture, cbor_request("Nope", vec![0xa0])).await, 404, "UnknownOperationException");
    let mut wrong_type = json_request("DescribeClusters", "{}");
    wrong_type.headers_mut().insert("content-type", "application/json".parse().unwrap());
    check(send(&fixture, wrong_type).await, 415, "UnsupportedMediaTypeException");
    let mut no_protocol = cbor_request("DescribeClusters", vec![0xa0]);
    no_protocol.headers_mut().remove("smithy-protocol");
    check(send(&fixture, no_protocol).await, 400, "SerializationException");
    check(send(&fixture, json_request("DescribeClusters", "{nope")).await, 400, "SerializationException");
    check(send(&fixture, cbor_request("DescribeClusters", vec![0xa1, 0x61])).await, 400, "SerializationException");
    let put = Request::put("/").body(Full::new(Bytes::new())).unwrap();
    let answer = send(&fixture, put).await;
    assert_eq!(answer.header("allow"), "GET, POST");
    check(answer, 405, "MethodNotAllowedException");
    assert!(fixture.handler.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_whether_declared_or_not() {
    let fixture = fixture(ApiConfig { max_body: 64, ..ApiConfig::default() });
    let big = format!(r#"{{"NextToken": "{}"}}"#, "x".repeat(60));
    // No Content-Length: caught while reading.
    let answer = send(&fixture, json_request("DescribeClusters", &big)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["__type"], "RequestEntityTooLargeException");
    // Declared: refused before reading.
    let mut declared = json_request("DescribeClusters", &big);
    declared.headers_mut().insert("content-length", big.len().to_string().parse().unwrap());
    assert_eq!(send(&fixture, declared).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // At the limit: fine.
    let fits = format!(r#"{{"NextToken": "{}"}}"#, "x".repeat(64 - 17));
    assert_eq!(fits.len(), 64);
    assert_eq!(send(&fixture, json_request("DescribeClusters", &fits)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn documents_are_served_on_get_and_others_are_not_found() {
    let fixture = fixture(ApiConfig::default());
    let answer = send(&fixture, Request::get("/roots.pem").body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/x-pem-file");
    assert!(answer.body.starts_with(b"-----BEGIN CERTIFICATE-----"));
    let answer = send(&fixture, Request::get("/other").body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[path = "tests_sigv4.rs"]
mod sigv4_end_to_end;

#[path = "tests_shutdown.rs"]
mod shutdown;
