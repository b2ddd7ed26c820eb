//! The command line and the JSON document, run as a user runs them. No
//! test here asserts anything about time: rates and latencies are only
//! checked for shape.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hsm-bench")).args(args).output().expect("run hsm-bench")
}

#[test]
fn an_unknown_op_names_the_flag_and_the_valid_ops() {
    let out = bench(&["--op", "noop,rsa-sign"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--op") && err.contains("unknown operation 'rsa-sign'"), "{err}");
    for op in ["echo", "noop", "cluster-info", "ecdsa-p256-sign", "keygen-ec-cluster", "sessions", "all"] {
        assert!(err.contains(op), "{op} missing from: {err}");
    }
}

#[test]
fn a_target_without_a_crypto_user_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("client.env");
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        .unwrap();
    std::fs::write(&env, "HSM_ENDPOINTS=127.0.0.1:1\nHSM_CA_CERT=ca.pem\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-bench"))
        .args(["--op", "noop", "--target"])
        .arg(&env)
        .env_remove("HSM_BENCH_USER")
        .env_remove("HSM_BENCH_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--user") && err.contains("--password"), "{err}");
}

#[test]
fn json_has_the_run_and_one_result_per_op_with_rates_and_percentiles() {
    let out = bench(&[
        "--op",
        "echo,noop,sha256-4k",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--concurrency",
        "2",
        "--kdf",
        "testing",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["mode"], "in-process");
    assert!(doc["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(doc["kdf"].as_str().unwrap().starts_with("testing"));
    assert_eq!((doc["concurrency"].as_u64(), doc["duration_s"].as_f64()), (Some(2), Some(0.3)));
    let results = doc["results"].as_array().unwrap();
    let ops: Vec<&str> = results.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["echo", "noop", "sha256-4k"]);
    for r in results {
        for field in ["ops_per_sec", "p50_us", "p99_us", "p999_us"] {
            assert!(r[field].is_number(), "{field} in {r}");
        }
        assert_eq!((r["concurrency"].as_u64(), r["errors"].as_u64()), (Some(2), Some(0)), "{r}");
        assert!(r.get("vs_noop").is_some() && r.get("vs_echo").is_some(), "{r}");
    }
    let digest = &results[2];
    assert_eq!(digest["payload_bytes"], 4096);
    assert!(digest["in_process_ops_per_sec"].is_number(), "the digest has an in-process primitive: {digest}");
    assert!(results[0]["in_process_ops_per_sec"].is_null(), "echo has none");
}
