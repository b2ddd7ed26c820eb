//! What operators rely on, against real HSMs over TLS: the gRPC health
//! service (open without a session, for every API service, NOT_SERVING for
//! an unknown one), server reflection listing the API, `hsm-daemon health`
//! as a container probe, JSON logs, and SIGTERM draining calls in flight
//! and exiting in bounded time even when a call hangs.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{process::Output, time::Duration};

use hsm_client::{FaultSpec, HsmClient};
use integration_tests::{
    TestHsm,
    process::{ClusterDir, Daemon},
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test]
async fn health_is_open_and_covers_every_api_service() {
    let hsm = TestHsm::start(Default::default()).await;
    // No login: probes have no session.
    assert!(hsm.client.health("").await.unwrap());
    for service in ["hsm.v1.ClusterService", "hsm.v1.SessionService", "hsm.v1.KeyService", "hsm.v1.CryptoService"] {
        assert!(hsm.client.health(service).await.unwrap(), "{service}");
    }
    let unknown = hsm.client.health("hsm.v1.NoSuchService").await.unwrap_err();
    assert!(matches!(unknown, hsm_client::ClientError::NotFound(_)), "{unknown:?}");
    // The gate still guards the API itself.
    let refused = hsm.client.anonymous().list_users().await.unwrap_err();
    assert!(matches!(refused, hsm_client::ClientError::Unauthenticated(_)), "{refused}");
    hsm.shutdown().await;
}

#[tokio::test]
async fn reflection_lists_the_api_without_a_session() {
    let hsm = TestHsm::start(Default::default()).await;
    let mut client = ServerReflectionClient::new(hsm.client.channel());
    let request = |message| ServerReflectionRequest { host: String::new(), message_request: Some(message) };
    let mut replies = client
        .server_reflection_info(futures_util::stream::iter([
            request(MessageRequest::ListServices(String::new())),
            request(MessageRequest::FileContainingSymbol("hsm.v1.CryptoService".into())),
        ]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["hsm.v1.KeyService", "hsm.v1.CryptoService", "hsm.v1.UserService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors")
    };
    assert!(!files.file_descriptor_proto.is_empty());
    hsm.shutdown().await;
}

/// `hsm-daemon health <args>` as a probe runs it.
fn probe(cluster: &ClusterDir, args: &[&str]) -> Output {
    cluster.command().arg("health").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_health_probe_follows_the_daemon() {
    let cluster = ClusterDir::init(1);
    let config = cluster.config();
    let config = config.to_str().unwrap();
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0"], &[]);

    // By endpoint and CA, as a client elsewhere would ask.
    let ok = probe(&cluster, &["--endpoint", &daemon.address, "--ca-cert", daemon.ca.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout).trim(), "SERVING");
    let service = probe(
        &cluster,
        &["--endpoint", &daemon.address, "--ca-cert", daemon.ca.to_str().unwrap(), "--service", "hsm.v1.KeyService"],
    );
    assert!(service.status.success(), "{}", text(&service.stderr));

    let address = daemon.address.clone();
    daemon.terminate();

    // From the config file alone, as a container's health check does (the
    // port init chose; the probe connects to it on the loopback address).
    let configured = cluster.start_with(&[], &[]);
    let by_config = probe(&cluster, &["--config", config]);
    assert!(by_config.status.success(), "{}", text(&by_config.stderr));
    configured.terminate();

    // A stopped HSM: exit 1, saying why.
    let down = probe(&cluster, &["--endpoint", &address, "--ca-cert", cluster.client_env("HSM_CA_CERT").as_str()]);
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down.stderr).contains(&address), "{}", text(&down.stderr));

    // Bad flags name what is missing.
    let nothing = probe(&cluster, &[]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(text(&nothing.stderr).contains("--endpoint"), "{}", text(&nothing.stderr));
}

#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let cluster = ClusterDir::init(1);
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0", "--log-format", "json"], &[("HSM_LOG", "debug")]);
    // A call, which the gate logs at debug.
    daemon.client().await.cluster_info().await.unwrap();
    let stderr = tokio::task::spawn_blocking(move || daemon.terminate()).await.unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("level").is_some() && value.get("timestamp").is_some(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"DEBUG\"")), "HSM_LOG=debug gave no debug lines");
    assert!(lines.iter().any(|l| l.contains("draining calls in flight")), "{stderr}");

    // Human lines, to a file: no colour codes.
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0"], &[]);
    let human = tokio::task::spawn_blocking(move || daemon.terminate()).await.unwrap();
    assert!(human.contains(" INFO ") && !human.contains('\u{1b}'), "{human}");

    let refused = cluster.command().args(["run", "--log-format", "xml"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--log-format"), "{}", text(&refused.stderr));
}

/// Starts an HSM with fault injection, and a client that holds one
/// `GetClusterInfo` call in flight (delayed by `delay`) once this returns.
async fn call_in_flight(
    cluster: &ClusterDir,
    delay: Duration,
    env: &[(&str, &str)],
) -> (Daemon, tokio::task::JoinHandle<Result<hsm_client::ClusterInfo, hsm_client::ClientError>>) {
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0", "--faults"], env);
    let client: HsmClient = daemon.client().await;
    client.set_fault(&FaultSpec::delay("GetClusterInfo", delay)).await.unwrap();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.cluster_info().await }
    });
    // The rule counts the call when it starts to wait: then it is in flight.
    while client.faults().await.unwrap().rules[0].hits == 0 {
        tokio::task::yield_now().await;
    }
    (daemon, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_flight_finish() {
    let cluster = ClusterDir::init(1);
    let (daemon, call) = call_in_flight(&cluster, Duration::from_millis(500), &[]).await;
    tokio::task::spawn_blocking(move || daemon.terminate()).await.unwrap();
    let info = call.await.unwrap().unwrap();
    assert!(!info.hsms.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_daemon_even_when_a_call_hangs() {
    let cluster = ClusterDir::init(1);
    // A call that would take ten minutes, and a drain timeout of a tenth of a
    // second: the daemon must exit cleanly (terminate() fails the test if it
    // does not), cutting the call off.
    let (daemon, call) = call_in_flight(&cluster, Duration::from_secs(600), &[("HSM_DRAIN_TIMEOUT_MS", "100")]).await;
    tokio::task::spawn_blocking(move || daemon.terminate()).await.unwrap();
    let cut = call.await.unwrap().unwrap_err();
    assert!(matches!(cut, hsm_client::ClientError::Unavailable(_) | hsm_client::ClientError::Other { .. }), "{cut:?}");
}

#[test]
fn a_bad_drain_timeout_is_refused_by_name() {
    let cluster = ClusterDir::init(1);
    let refusal = cluster.refused(&["--listen", "127.0.0.1:0"], &[("HSM_DRAIN_TIMEOUT_MS", "9999999")]);
    assert!(refusal.stderr.contains("drain_timeout_ms must be 0 to 600000"), "{}", refusal.stderr);
}
