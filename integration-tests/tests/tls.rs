//! TLS: the HSM serves only TLS, with a certificate chained to the cluster
//! CA, and with mTLS refuses clients without a certificate from the client CA.

use hsm_client::{ClientConfig, ClientError, HsmClient};
use hsm_daemon::pki;
use integration_tests::{Options, TestHsm};

/// Connects and makes one call; either step may be where TLS refuses.
async fn try_call(config: &ClientConfig) -> Result<(), ClientError> {
    let client = HsmClient::connect(config).await?;
    client.cluster_info().await.map(drop)
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_is_refused() {
    let hsm = TestHsm::start(Options::default()).await;
    let other_ca = pki::generate_ca("cluster-other").unwrap();
    let config = ClientConfig::new(vec![hsm.address.clone()], other_ca.cert_pem).unwrap();
    let err = try_call(&config).await.unwrap_err();
    assert!(matches!(&err, ClientError::Unavailable(m) if m.contains("certificate")), "{err:?}");
    // The right CA works.
    try_call(&hsm.config).await.unwrap();
}

#[tokio::test]
async fn plaintext_clients_get_nothing_from_a_tls_hsm() {
    let hsm = TestHsm::start(Options::default()).await;
    let config = hsm.config.clone().insecure_plaintext();
    assert!(try_call(&config).await.is_err());
}

#[tokio::test]
async fn the_certificate_names_localhost_and_the_loopback_address() {
    let hsm = TestHsm::start(Options::default()).await;
    let port = hsm.address.rsplit_once(':').unwrap().1;
    let by_name = ClientConfig::new(vec![format!("localhost:{port}")], hsm.ca.cert_pem.clone()).unwrap();
    try_call(&by_name).await.unwrap();
    let wrong_name = hsm.config.clone().with_server_name("hsm.example.invalid".into());
    assert!(try_call(&wrong_name).await.is_err());
}

#[tokio::test]
async fn required_client_certificates_are_enforced() {
    let hsm = TestHsm::start(Options { mtls: true, require_client_cert: true, ..Options::default() }).await;
    // The harness's client presents a certificate from the client CA.
    hsm.client.cluster_info().await.unwrap();

    // No certificate: refused.
    assert!(try_call(&hsm.config).await.is_err());

    // A certificate from another CA: refused.
    let stranger_ca = pki::generate_ca("cluster-strangers").unwrap();
    let stranger = pki::issue_client(&stranger_ca, "stranger").unwrap();
    let config = hsm.config.clone().with_client_identity(stranger.cert_pem, stranger.key_pem.to_string());
    assert!(try_call(&config).await.is_err());

    // A certificate from the client CA: accepted.
    let client_ca = hsm.client_ca.as_ref().unwrap();
    let friend = pki::issue_client(client_ca, "friend").unwrap();
    let config = hsm.config.clone().with_client_identity(friend.cert_pem, friend.key_pem.to_string());
    try_call(&config).await.unwrap();
}

#[tokio::test]
async fn optional_client_certificates_still_admit_clients_without_one() {
    let hsm = TestHsm::start(Options { mtls: true, require_client_cert: false, ..Options::default() }).await;
    try_call(&hsm.config).await.unwrap();
}
