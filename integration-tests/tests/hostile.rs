//! Broken and hostile clients: each gets a clear error or is cut off, and
//! the HSM goes on serving everyone else. Oversized requests, too many
//! attributes or filters, over-long strings, invalid UTF-8, tokens that are
//! garbage, replayed or from another HSM, connections that never speak or
//! go silent, floods of connections and of sessions.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{sync::Arc, time::Duration};

use hsm_client::{
    ClientConfig, ClientError, HsmClient, KeyOptions, ListKeys, Role, SetKeyAttribute, keys::HashAlgorithm,
};
use hsm_daemon::config::ConnectionLimits;
use hsm_proto::v1 as pb;
use integration_tests::{ADMIN_PASSWORD, DevProcess, Options, TestHsm};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tonic::Code;

fn limits(change: impl FnOnce(&mut ConnectionLimits)) -> Options {
    let mut connections = ConnectionLimits::default();
    change(&mut connections);
    Options { connections, ..Options::default() }
}

/// A TLS connector that trusts the cluster CA `ca_pem` and presents no
/// client certificate.
fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `endpoint` through its handshake, then idle.
async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    endpoint: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(endpoint).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// Whether the HSM closes `stream` within a generous bound (its own
/// timeouts are far shorter); what the read returns does not matter, only
/// that it ends.
async fn closed_by_the_hsm(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_request_is_refused_and_the_hsm_serves_on() {
    let hsm = TestHsm::start(Options::default()).await;
    let alice = hsm.crypto_user("alice", "alice-pass").await;
    let huge = vec![0x41u8; 64 << 20];
    let refused = alice.digest(HashAlgorithm::Sha256, &huge).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::ResourceExhausted(m) if m.contains("too large") && m.contains("4194304")),
        "{refused:?}"
    );
    drop(huge);
    // The same connection, and a new one, are served.
    alice.digest(HashAlgorithm::Sha256, b"hello").await.unwrap();
    let other = HsmClient::connect(&hsm.config).await.unwrap();
    other.cluster_info().await.unwrap();
}

/// A login whose username is raw bytes, not text.
#[derive(Clone, PartialEq, prost::Message)]
struct RawLogin {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
    #[prost(int32, tag = "2")]
    role: i32,
    #[prost(bytes = "vec", tag = "3")]
    password: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_and_garbage_bodies_are_invalid_arguments() {
    let hsm = TestHsm::start(Options::default()).await;
    let login = |username: Vec<u8>| {
        let channel = hsm.client.channel();
        async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            let path = tonic::codegen::http::uri::PathAndQuery::from_static("/hsm.v1.SessionService/Login");
            let codec = tonic_prost::ProstCodec::<RawLogin, pb::LoginResponse>::default();
            let request = RawLogin { username, role: pb::Role::Admin.into(), password: ADMIN_PASSWORD.into() };
            grpc.unary(tonic::Request::new(request), path, codec).await
        }
    };
    let status = login(vec![b'a', 0xff, 0xfe, b'b']).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not a valid message"), "{}", status.message());
    // The same shape with text logs in: the refusal was the bytes.
    login(b"admin".to_vec()).await.unwrap();

    // A body that is not a LoginRequest: field 1 as a number, not text.
    let mut grpc = tonic::client::Grpc::new(hsm.client.channel());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/hsm.v1.SessionService/Login");
    let codec = tonic_prost::ProstCodec::<WrongWire, pb::LoginResponse>::default();
    let status = grpc.unary(tonic::Request::new(WrongWire { username: 7 }), path, codec).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    hsm.client.cluster_info().await.unwrap();
}

/// Field 1 of a LoginRequest with the wrong wire type.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWire {
    #[prost(uint64, tag = "1")]
    username: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_attributes_or_filters_and_long_strings_are_refused_by_field() {
    let hsm = TestHsm::start(Options::default()).await;
    let alice = hsm.crypto_user("alice", "alice-pass").await;
    let aes = hsm_client::keys::SymmetricKeyType::Aes;
    let many = KeyOptions {
        attributes: (0..65).map(|_| ("encrypt".to_owned(), "true".to_owned())).collect(),
        ..KeyOptions::default()
    };
    let refused = alice.generate_symmetric_key(aes, 32, &many).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("at most 64")), "{refused:?}");
    let long_label = KeyOptions { attributes: vec![("label".into(), "x".repeat(100_000))], ..KeyOptions::default() };
    let refused = alice.generate_symmetric_key(aes, 32, &long_label).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("at most 127")), "{refused:?}");
    let long_id = KeyOptions { attributes: vec![("id".into(), "ab".repeat(100_000))], ..KeyOptions::default() };
    let refused = alice.generate_symmetric_key(aes, 32, &long_id).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("at most 1024")), "{refused:?}");

    let key = alice.generate_symmetric_key(aes, 32, &KeyOptions::default()).await.unwrap();
    let refused =
        alice.set_key_attribute(SetKeyAttribute::new(&key.reference, "label", &"y".repeat(10_000))).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("at most 127")), "{refused:?}");
    let filters: Vec<(String, String)> = (0..65).map(|_| ("attr.label".to_owned(), "a".to_owned())).collect();
    let refused = alice.list_keys(ListKeys::default().filters(&filters)).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("at most 64")), "{refused:?}");
    let long_filter = [("attr.label".to_owned(), "z".repeat(1_000_000))];
    let refused = alice.list_keys(ListKeys::default().filters(&long_filter)).await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("filter")), "{refused:?}");
    let refused = hsm.client.login(&"u".repeat(1_000_000), Role::CryptoUser, "whatever1").await.unwrap_err();
    assert!(matches!(&refused, ClientError::InvalidArgument(m) if m.contains("username")), "{refused:?}");
    // Nothing was made, and alice is served.
    assert_eq!(alice.list_keys(ListKeys::default()).await.unwrap().keys.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_another_hsm_or_replayed_are_unauthenticated() {
    let one = TestHsm::start(Options::default()).await;
    let two = TestHsm::start(Options::default()).await;
    let admin = one.admin().await;
    // The same token sent to another HSM.
    let elsewhere = admin.request(pb::ListUsersRequest {}).unwrap();
    let status =
        pb::user_service_client::UserServiceClient::new(two.client.channel()).list_users(elsewhere).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("unknown, logged out or expired"), "{}", status.message());
    // Replayed after logout, on its own HSM.
    let replay = admin.request(pb::ListUsersRequest {}).unwrap();
    admin.logout().await.unwrap();
    let status =
        pb::user_service_client::UserServiceClient::new(one.client.channel()).list_users(replay).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Random garbage of every length the header takes.
    for garbage in ["Bearer x", &format!("Bearer {}", "f".repeat(8_000)), "Bearer ..", "Bearer 0.0.0"] {
        let mut request = tonic::Request::new(pb::ListUsersRequest {});
        request.metadata_mut().insert("authorization", garbage.parse().unwrap());
        let status = pb::user_service_client::UserServiceClient::new(one.client.channel())
            .list_users(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{garbage:.40}");
    }
    one.admin().await.list_users().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_handshake_is_cut_off() {
    let hsm = TestHsm::start(limits(|l| l.handshake_timeout = Duration::from_millis(200))).await;
    let mut silent = TcpStream::connect(&hsm.address).await.unwrap();
    // Half a ClientHello, then nothing.
    silent.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    assert!(closed_by_the_hsm(&mut silent).await, "the HSM kept a silent connection open");
    hsm.client.cluster_info().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let hsm = TestHsm::start(limits(|l| l.idle_timeout = Duration::from_secs(1))).await;
    // Through the TLS handshake, then silent.
    let mut idle = tls_connect(&tls_connector(&hsm.ca.cert_pem), &hsm.address).await.unwrap();
    assert!(closed_by_the_hsm(&mut idle).await, "the HSM kept an idle connection open");
    // A client that comes back after being idle reconnects and is served.
    let client = HsmClient::connect(&hsm.config).await.unwrap();
    client.cluster_info().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_new_connections_are_closed_until_slots_free() {
    // The harness's own client holds one of the four slots.
    let hsm = TestHsm::start(limits(|l| l.max_connections = 4)).await;
    let mut flood = Vec::new();
    for _ in 0..3 {
        flood.push(TcpStream::connect(&hsm.address).await.unwrap());
    }
    let config = hsm.config.clone().with_connect_timeout(Duration::from_secs(5));
    let served_anyway = match HsmClient::connect(&config).await {
        Ok(client) => client.cluster_info().await.is_ok(),
        Err(_) => false,
    };
    assert!(!served_anyway, "a connection past the limit was served");
    // Connections already open are served meanwhile.
    hsm.client.cluster_info().await.unwrap();
    drop(flood);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(client) = HsmClient::connect(&config).await
            && client.cluster_info().await.is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "freed slots are used again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_session_limit_logins_are_resource_exhausted() {
    let hsm = TestHsm::start(Options { max_sessions: 3, ..Options::default() }).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(hsm.admin().await);
    }
    let refused = hsm.client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::ResourceExhausted(m) if m.contains("maximum of 3 open sessions")),
        "{refused:?}"
    );
    // The sessions already open work; one logout makes room.
    open[0].list_users().await.unwrap();
    open.pop().unwrap().logout().await.unwrap();
    hsm.admin().await;
}

/// Resident memory of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The acceptance flood, against `hsm-daemon dev` as a process:
/// 10,000 idle TLS connections, then a burst of 5,000 logins; a normal
/// client is served throughout and memory comes back near where it
/// started. It needs ~10,000 file descriptors on each side (the daemon
/// raises its own limit; this process does here) and takes about 40 s in a
/// debug build; `--nocapture` prints the daemon's memory at each step.
#[test]
fn ten_thousand_idle_connections_and_five_thousand_logins() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raising the open-file limit");
    let dev = DevProcess::start(&["--admin-password", "admin-pass", "--max-sessions", "8192"]);
    let pid = dev.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ca = std::fs::read_to_string(&dev.ca_cert).unwrap();
    let config = ClientConfig::new(vec![dev.endpoint.clone()], ca.clone()).unwrap();
    runtime.block_on(async {
        let normal = HsmClient::connect(&config).await.unwrap();
        normal.cluster_info().await.unwrap();
        let before = rss_kib(pid);
        println!("RSS before: {before} KiB");

        let connector = tls_connector(&ca);
        let mut idle = Vec::new();
        for chunk in 0..100 {
            let batch = (0..100).map(|_| tls_connect(&connector, &dev.endpoint));
            for conn in futures_util::future::join_all(batch).await {
                idle.push(conn.unwrap_or_else(|e| panic!("connection in batch {chunk}: {e}")));
            }
        }
        normal.cluster_info().await.unwrap();
        let fresh = HsmClient::connect(&config).await.unwrap();
        fresh.cluster_info().await.unwrap();
        let with_idle = rss_kib(pid);
        println!("RSS with {} idle TLS connections: {with_idle} KiB", idle.len());
        drop(idle);

        let logins = (0..5_000).map(|_| normal.login("admin", Role::Admin, "admin-pass"));
        let sessions: Vec<_> = futures_util::future::join_all(logins).await;
        let ok = sessions.iter().filter(|s| s.is_ok()).count();
        println!("logins: {ok} of 5000 succeeded");
        if let Some(Err(e)) = sessions.iter().find(|s| s.is_err()) {
            println!("first failure: {e}");
        }
        assert_eq!(ok, 5_000);
        normal.cluster_info().await.unwrap();
        let with_sessions = rss_kib(pid);
        println!("RSS with {ok} sessions: {with_sessions} KiB");
        for session in sessions.into_iter().flatten() {
            session.logout().await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
        println!("RSS after: {after} KiB (before: {before} KiB); the daemon holds {fds} file descriptors");
        let admin = normal.login("admin", Role::Admin, "admin-pass").await.unwrap();
        admin.list_users().await.unwrap();
        assert!(after < before + 64 * 1024, "memory did not come back: {before} KiB -> {after} KiB");
    });
}
