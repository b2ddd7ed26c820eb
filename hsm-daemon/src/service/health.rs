//! The infrastructure services every well-run gRPC server offers, beside the
//! HSM's own API: the standard health service (`grpc.health.v1.Health`) for
//! probes and load balancers, and server reflection (`grpc.reflection.v1`
//! and `v1alpha`) so that grpcurl-style tools can list and call the API.
//!
//! Both are outside CloudHSM's API and its permission table: they reveal
//! whether the HSM serves and the shape of the public protocol, never users,
//! keys or cluster state, so the gate lets them through without a session.
//!
//! Health follows the HSM's life: an HSM serves nothing until its store is
//! open and, when it clones, until the clone is done; once serving it
//! reports `SERVING`, and `NOT_SERVING` from the moment its store fails
//! (fail-stop) or it starts to shut down, so that readiness probes take it
//! out of rotation before its connections drain.

use std::sync::Arc;

use hsm_proto::v1::Rpc;
use tonic_health::{ServingStatus, server::HealthReporter};

use super::HsmState;

/// Path prefixes of the services the gate lets through without a session.
const OPEN_PREFIXES: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection.v1.", "/grpc.reflection.v1alpha."];

/// Whether `path` belongs to the health or reflection service.
pub(crate) fn is_open(path: &str) -> bool {
    OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// The names a health check may ask about: the whole server (`""`) and each
/// service of the API (from the RPC catalogue, so a new service is covered).
fn service_names() -> Vec<&'static str> {
    let mut names = vec![""];
    for rpc in Rpc::ALL {
        let service = rpc.path().trim_start_matches('/').split('/').next().unwrap_or_default();
        if !names.contains(&service) {
            names.push(service);
        }
    }
    names
}

/// Reports one status for every service name.
pub(crate) async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in service_names() {
        reporter.set_service_status(name, status).await;
    }
}

/// Keeps the health service true to the HSM: `SERVING` now, `NOT_SERVING`
/// once the store fails. Runs until aborted.
pub(crate) async fn follow(state: Arc<HsmState>, reporter: HealthReporter) {
    report(&reporter, ServingStatus::Serving).await;
    state.store_failed().await;
    tracing::warn!("the store failed: health reports NOT_SERVING");
    report(&reporter, ServingStatus::NotServing).await;
}

/// Server reflection over the `hsm.v1` API and the health service, in both
/// versions of the reflection protocol that tools use.
pub(crate) fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(hsm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_and_reflection_are_open() {
        assert!(is_open("/grpc.health.v1.Health/Check"));
        assert!(is_open("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!is_open("/grpc.health.v1.HealthX/Check"));
        assert!(!is_open("/hsm.testing.v1.FaultService/Reset"));
        for rpc in Rpc::ALL {
            assert!(!is_open(rpc.path()), "{rpc:?} must pass the gate");
        }
    }

    #[test]
    fn every_api_service_has_a_health_name() {
        let names = service_names();
        for service in ["", "hsm.v1.ClusterService", "hsm.v1.KeyService", "hsm.v1.CryptoService"] {
            assert!(names.contains(&service), "{service:?} has no health status: {names:?}");
        }
        assert!(!names.iter().any(|name| name.contains('/')), "{names:?}");
    }
}
