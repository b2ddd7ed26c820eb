//! The CloudHSM v2 API as AWS's Rust SDK (`aws-sdk-cloudhsmv2`) drives it:
//! a provisioning program's calls against real clusters and HSMs, the
//! documented errors arriving as the SDK's typed variants, and what went on
//! the wire.
//!
//! # Layout
//!
//! - `client`: the SDK's client on the plane's plain-HTTP endpoint (hyper 1,
//!   no TLS stack), with dummy credentials and an interceptor that records
//!   each request's content type.
//! - the test: create, paginate, fail, tag, delete.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aws_sdk_cloudhsmv2::{
    Client,
    config::{
        BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
        interceptors::BeforeTransmitInterceptorContextRef,
    },
    error::BoxError,
    operation::{create_hsm::CreateHsmError, delete_cluster::DeleteClusterError},
    types::Tag,
};
use hsm_daemon::testing::TestControlPlane;

/// The subnets of the test's clusters: one per zone, `us-east-1a` and `b`.
const SUBNETS: [&str; 2] = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"];

/// Records the `Content-Type` of every request the client sends: the wire
/// protocol the SDK picked.
#[derive(Debug, Default, Clone)]
struct ContentTypes(Arc<Mutex<Vec<String>>>);

impl Intercept for ContentTypes {
    fn name(&self) -> &'static str {
        "ContentTypes"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let kind = context.request().headers().get("content-type").unwrap_or("none").to_owned();
        self.0.lock().map_err(|_| "content types lock poisoned")?.push(kind);
        Ok(())
    }
}

/// The SDK's client for `endpoint`, as a program on a developer's machine
/// builds it, without `aws-config` (no profile files, no IMDS).
fn client(endpoint: &str, seen: &ContentTypes) -> Client {
    let config = aws_sdk_cloudhsmv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .interceptor(seen.clone())
        .build();
    Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_provisions_a_cluster() {
    let server = TestControlPlane::start().await;
    let seen = ContentTypes::default();
    let hsm = client(&server.endpoint_url(), &seen);

    let before = SystemTime::now() - Duration::from_secs(300);
    let created = hsm
        .create_cluster()
        .hsm_type("hsm2m.medium")
        .set_subnet_ids(Some(SUBNETS.map(String::from).to_vec()))
        .tag_list(Tag::builder().key("team").value("crypto").build().expect("tag"))
        .send()
        .await
        .expect("create-cluster");
    let cluster = created.cluster().expect("the new cluster");
    let cluster_id = cluster.cluster_id().expect("its id").to_owned();
    let created_at = SystemTime::try_from(*cluster.create_timestamp().expect("a create timestamp")).expect("a time");
    assert!(created_at >= before, "create timestamp {created_at:?} is not recent");
    let other =
        hsm.create_cluster().hsm_type("hsm2m.medium").subnet_ids(SUBNETS[0]).send().await.expect("a second cluster");
    let other_id = other.cluster().and_then(|c| c.cluster_id()).expect("its id").to_owned();

    // The documented errors, as the SDK's typed variants.
    let missing = hsm
        .create_hsm()
        .cluster_id("cluster-aaaaaaaaaaa")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect_err("an HSM in a missing cluster");
    assert!(
        matches!(missing.as_service_error(), Some(CreateHsmError::CloudHsmResourceNotFoundException(_))),
        "{missing:?}"
    );
    let zone = hsm
        .create_hsm()
        .cluster_id(&cluster_id)
        .availability_zone("us-east-1c")
        .send()
        .await
        .expect_err("an HSM in a zone without a subnet");
    match zone.as_service_error() {
        Some(CreateHsmError::CloudHsmInvalidRequestException(e)) => {
            assert!(e.message().is_some_and(|m| !m.is_empty()), "no message: {e:?}")
        }
        _ => panic!("wanted CloudHsmInvalidRequestException: {zone:?}"),
    }

    let created_hsm =
        hsm.create_hsm().cluster_id(&cluster_id).availability_zone("us-east-1a").send().await.expect("create-hsm");
    let hsm_id = created_hsm.hsm().map(|h| h.hsm_id()).expect("the new HSM").to_owned();
    assert!(created_hsm.hsm().and_then(|h| h.eni_ip()).is_some_and(|ip| ip.starts_with("127.")));

    // Every cluster, one per page, through the SDK's paginator.
    let pages = hsm
        .describe_clusters()
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("describe-clusters pages");
    let listed: Vec<_> = pages.iter().flat_map(|p| p.clusters()).collect();
    assert!(pages.len() >= 2 && pages.iter().all(|p| p.clusters().len() <= 1), "{pages:?}");
    let ids: Vec<_> = listed.iter().filter_map(|c| c.cluster_id()).collect();
    assert!(ids.contains(&cluster_id.as_str()) && ids.contains(&other_id.as_str()), "{ids:?}");
    let mine = listed.iter().find(|c| c.cluster_id() == Some(&cluster_id)).expect("the cluster");
    let csr = mine.certificates().and_then(|c| c.cluster_csr()).expect("the cluster's CSR");
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{csr}");
    assert_eq!(mine.hsms().len(), 1);

    hsm.tag_resource()
        .resource_id(&cluster_id)
        .tag_list(Tag::builder().key("env").value("test").build().expect("tag"))
        .send()
        .await
        .expect("tag-resource");
    let tags = hsm.list_tags().resource_id(&cluster_id).send().await.expect("list-tags");
    let mut pairs: Vec<_> = tags.tag_list().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, [("env", "test"), ("team", "crypto")]);

    let busy = hsm.delete_cluster().cluster_id(&cluster_id).send().await.expect_err("a cluster with an HSM");
    assert!(
        matches!(busy.as_service_error(), Some(DeleteClusterError::CloudHsmInvalidRequestException(_))),
        "{busy:?}"
    );
    let deleted = hsm.delete_hsm().cluster_id(&cluster_id).hsm_id(&hsm_id).send().await.expect("delete-hsm");
    assert_eq!(deleted.hsm_id(), Some(hsm_id.as_str()));
    let gone = hsm.delete_cluster().cluster_id(&cluster_id).send().await.expect("delete-cluster");
    assert_eq!(gone.cluster().and_then(|c| c.state()).map(|s| s.as_str()), Some("DELETE_IN_PROGRESS"));

    // This SDK version speaks AWS JSON 1.1 (botocore's pick too); the server
    // also accepts RPC v2 CBOR.
    let kinds = seen.0.lock().expect("content types").clone();
    assert!(!kinds.is_empty() && kinds.iter().all(|k| k == "application/x-amz-json-1.1"), "{kinds:?}");
    server.stop().await;
}
