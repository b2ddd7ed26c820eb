use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use super::*;

fn cbor(value: &Cbor) -> Vec<u8> {
    encode(value)
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

#[test]
fn botocore_request_bodies_decode() {
    // DescribeClusters(Filters={'states': ['ACTIVE']}, MaxResults=5) as
    // botocore 1.44.18 serializes it.
    let body = hex::decode("a26746696c74657273a16673746174657381664143544956456a4d6178526573756c747305").unwrap();
    assert_eq!(decode(&body), Ok(json!({"Filters": {"states": ["ACTIVE"]}, "MaxResults": 5})));
    assert_eq!(decode(b""), Ok(json!({})));
}

#[test]
fn input_timestamps_become_epoch_seconds() {
    let body = cbor(&Cbor::Map(vec![
        (text("Whole"), Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000.into())))),
        (text("Fraction"), Cbor::Tag(1, Box::new(Cbor::Float(1_700_000_000.5)))),
    ]));
    assert_eq!(decode(&body), Ok(json!({"Whole": 1_700_000_000, "Fraction": 1_700_000_000.5})));
}

#[test]
fn indefinite_lengths_decode() {
    // {_ "MaxResults": 5, "Filters": {_ "states": [_ "ACTIVE"]}}
    let mut body = vec![0xbf];
    body.extend(cbor(&text("MaxResults")));
    body.push(0x05);
    body.extend(cbor(&text("Filters")));
    body.push(0xbf);
    body.extend(cbor(&text("states")));
    body.push(0x9f);
    body.extend(cbor(&text("ACTIVE")));
    body.extend([0xff, 0xff, 0xff]);
    assert_eq!(decode(&body), Ok(json!({"MaxResults": 5, "Filters": {"states": ["ACTIVE"]}})));
}

#[test]
fn output_timestamps_are_tag_one_and_nulls_are_left_out() {
    let output = json!({
        "Clusters": [{
            "ClusterId": "cluster-igklspoyj5v",
            "CreateTimestamp": 1_700_000_000,
            "HsmTypeRollbackExpiration": 1_700_000_000.25,
            "StateMessage": null,
            "Hsms": [],
        }],
    });
    let bytes = encode_output(Operation::DescribeClusters, &output);
    let decoded: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
    let Cbor::Map(top) = decoded else { panic!("not a map") };
    let Cbor::Array(clusters) = &top[0].1 else { panic!("not a list") };
    let Cbor::Map(cluster) = &clusters[0] else { panic!("not a map") };
    let get = |name: &str| cluster.iter().find(|(key, _)| key == &text(name)).map(|(_, value)| value.clone());
    assert_eq!(get("CreateTimestamp"), Some(Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000.into())))));
    assert_eq!(get("HsmTypeRollbackExpiration"), Some(Cbor::Tag(1, Box::new(Cbor::Float(1_700_000_000.25)))));
    assert_eq!(get("StateMessage"), None);
    assert_eq!(get("ClusterId"), Some(text("cluster-igklspoyj5v")));
    // And back: what a client decodes is what the handler said.
    assert_eq!(
        decode(&bytes),
        Ok(json!({
            "Clusters": [{
                "ClusterId": "cluster-igklspoyj5v",
                "CreateTimestamp": 1_700_000_000,
                "HsmTypeRollbackExpiration": 1_700_000_000.25,
                "Hsms": [],
            }],
        }))
    );
}

#[test]
fn errors_name_the_shape_in_its_namespace() {
    let bytes = encode_error(&ApiError::InvalidRequest("bad".to_owned()));
    let decoded: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
    assert_eq!(
        decoded,
        Cbor::Map(vec![
            (text("__type"), text("com.amazonaws.cloudhsmv2#CloudHsmInvalidRequestException")),
            (text("Message"), text("bad")),
        ])
    );
}

#[test]
fn the_path_names_the_operation() {
    assert_eq!(operation("/service/BaldrApiService/operation/ListTags"), Ok(Operation::ListTags));
    for path in [
        "/service/BaldrApiService/operation/Nope",
        "/service/Other/operation/ListTags",
        "/service/BaldrApiService/ListTags",
        "/service/BaldrApiService/operation/ListTags/more",
        "/service/",
    ] {
        let error = operation(path).unwrap_err();
        assert_eq!((error.code(), error.status()), ("UnknownOperationException", StatusCode::NOT_FOUND), "{path}");
    }
}

#[test]
fn headers_are_checked() {
    let headers = |pairs: &[(&str, &str)]| -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap())).collect()
    };
    let good =
        [("smithy-protocol", "rpc-v2-cbor"), ("content-type", "application/cbor"), ("accept", "application/cbor")];
    assert_eq!(check_headers(&headers(&good), false), Ok(()));
    // An empty body needs no content type.
    assert_eq!(check_headers(&headers(&good[..1]), true), Ok(()));
    let code = |pairs: &[(&str, &str)], empty| check_headers(&headers(pairs), empty).unwrap_err().code();
    assert_eq!(code(&good[1..], false), "SerializationException");
    assert_eq!(code(&[("smithy-protocol", "rpc-v2-json"), good[1]], false), "SerializationException");
    assert_eq!(code(&good[..1], false), "UnsupportedMediaTypeException");
    assert_eq!(code(&[good[0], ("content-type", "application/json")], false), "UnsupportedMediaTypeException");
    assert_eq!(code(&[good[0], good[1], ("accept", "application/json")], false), "NotAcceptableException");
    assert_eq!(check_headers(&headers(&[good[0], good[1], ("accept", "*/*")]), false), Ok(()));
}

#[test]
fn malformed_bodies_are_serialization_errors() {
    for (bad, why) in [
        (&b"\xa1"[..], "truncated map"),
        (b"\x82\x01", "truncated array"),
        (b"\x05", "not a map"),
        (b"\xa0\x00", "trailing bytes"),
        (b"\xa1\x01\x02", "integer key"),
        (b"\xa1\x61a\xd8\x20\x61x", "unsupported tag (32, a URI)"),
        (b"\xa1\x61a\xc1\x61x", "timestamp that is text"),
        (b"\xa1\x61a\xf9\x7e\x00", "NaN"),
        (b"\xa1\x61a\x3b\xff\xff\xff\xff\xff\xff\xff\xff", "integer below -2^64"),
        (b"\x7f\x61a", "unterminated indefinite text"),
        (b"\xff", "lone break"),
        // Lengths far beyond the body: refused, not allocated.
        (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "huge array"),
        (b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff", "huge map"),
        (b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", "huge bytes"),
        (b"\x7b\xff\xff\xff\xff\xff\xff\xff\xff", "huge text"),
        (b"\xa1\x61a\x7b\x00\x00\x00\x00\x7f\xff\xff\xff", "long text"),
    ] {
        assert_eq!(decode(bad).map_err(|e| e.code()), Err("SerializationException"), "{why}");
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = vec![0x81; 100_000];
    assert_eq!(decode(&deep).map_err(|e| e.code()), Err("SerializationException"));
}

#[test]
fn random_and_truncated_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(23);
    for _ in 0..20_000 {
        let length = rng.random_range(0..64);
        let bytes: Vec<u8> = (0..length).map(|_| rng.random()).collect();
        let _ = decode(&bytes);
    }
    let body = hex::decode("a26746696c74657273a16673746174657381664143544956456a4d6178526573756c747305").unwrap();
    for end in 1..body.len() {
        assert_eq!(decode(&body[..end]).map_err(|e| e.code()), Err("SerializationException"), "{end}");
    }
}
