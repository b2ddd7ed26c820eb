//! The certificates of the control plane on disk: the emulator's roots
//! (what AWS publishes as the CloudHSM root and the manufacturer's root),
//! and each cluster's identity: the key pair its CSR is over, made with its
//! first HSM, and the certificates `describe-clusters` shows. Once
//! initialized, the cluster's files hold the customer's chain
//! ([`LocalCluster::adopt_customer_chain`]).
//!
//! Layout: `DIR/roots/{aws,manufacturer}.{pem,key}`, and in a cluster's
//! directory `identity/{cluster,hardware}.key` (owner-only) and
//! `identity/{ClusterCsr,HsmCertificate,AwsHardwareCertificate,
//! ManufacturerHardwareCertificate}.pem`.

use std::{
    fs,
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use zeroize::Zeroizing;

use super::internal;
use crate::{
    cluster::{Durability, LocalCluster, material::write_file},
    control::{
        api::ApiError,
        state::{Certificates, Millis},
    },
    pki::{CertifiedKey, ClusterCertificates, ClusterIdentity, EmulatorRoots, verify_signed_cluster_certificate},
};

/// The names of a cluster's certificate files, as the API names them.
const CERTIFICATES: [&str; 4] =
    ["ClusterCsr", "HsmCertificate", "AwsHardwareCertificate", "ManufacturerHardwareCertificate"];
/// The files the customer's chain is kept in once a cluster has adopted
/// it (the cluster material's).
const CLUSTER_KEY: &str = "cluster-certificate.key";
const CLUSTER_CERTIFICATE: &str = "cluster-certificate.pem";
const CUSTOMER_CA: &str = "customer-ca.pem";

/// Writes a file whole and synced, owner-only when `secret`.
fn write(path: &Path, contents: &[u8], secret: bool) -> Result<(), ApiError> {
    write_file(path, contents, secret, Durability::Synced).map_err(internal("writing the cluster's identity"))
}

/// The emulator's roots in `dir`, made (and saved) the first time.
pub(super) fn roots(dir: &Path) -> Result<EmulatorRoots, ApiError> {
    let read = |name: &str| -> Result<Option<CertifiedKey>, ApiError> {
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        if !cert.exists() {
            return Ok(None);
        }
        Ok(Some(CertifiedKey { cert_pem: read_text(&cert)?, key_pem: Zeroizing::new(read_text(&key)?) }))
    };
    if let (Some(aws), Some(manufacturer)) = (read("aws")?, read("manufacturer")?) {
        return EmulatorRoots::from_pem(aws, manufacturer).map_err(internal("the emulator's roots"));
    }
    let roots = EmulatorRoots::generate().map_err(internal("making the emulator's roots"))?;
    fs::create_dir_all(dir).map_err(internal("creating the roots' directory"))?;
    for (name, root) in [("aws", &roots.aws), ("manufacturer", &roots.manufacturer)] {
        write(&dir.join(format!("{name}.key")), root.key_pem.as_bytes(), true)?;
        write(&dir.join(format!("{name}.pem")), root.cert_pem.as_bytes(), false)?;
    }
    Ok(roots)
}

/// Makes cluster `cluster`'s key pair and certificates, as its HSM `hsm`
/// does in CloudHSM, and saves them in the cluster's directory `dir`.
pub(super) fn new_cluster_identity(
    dir: &Path,
    roots: &EmulatorRoots,
    cluster: &str,
    hsm: &str,
) -> Result<Certificates, ApiError> {
    let identity = ClusterIdentity::generate(cluster, hsm, roots).map_err(internal("making the cluster's CSR"))?;
    let at = dir.join("identity");
    fs::create_dir_all(&at).map_err(internal("creating the identity directory"))?;
    write(&at.join("cluster.key"), identity.cluster_key_pem.as_bytes(), true)?;
    write(&at.join("hardware.key"), identity.hardware_key_pem.as_bytes(), true)?;
    let c = &identity.certificates;
    let texts = [&c.cluster_csr, &c.hsm_certificate, &c.aws_hardware_certificate, &c.manufacturer_hardware_certificate];
    for (name, text) in CERTIFICATES.iter().zip(texts) {
        write(&at.join(format!("{name}.pem")), text.as_bytes(), false)?;
    }
    Ok(shown(&identity.certificates, None))
}

/// `initialize-cluster`: checks that `signed` is the cluster's CSR signed
/// by `anchor` (the refusal names which input is wrong), then has the
/// cluster's HSMs serve under it.
pub(super) async fn initialize(
    dir: &Path,
    local: &mut LocalCluster,
    (csr, signed, anchor): (&str, &str, &str),
    now: Millis,
) -> Result<(), ApiError> {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(now).unwrap_or(0));
    verify_signed_cluster_certificate(csr, signed, anchor, at).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let key = Zeroizing::new(read_text(&dir.join("identity").join("cluster.key"))?);
    local.adopt_customer_chain(&key, signed, anchor).await.map_err(internal("serving under the cluster certificate"))
}

/// A cluster made from a backup of the initialized cluster in `source`
/// takes its identity: the same certificates, its HSMs serving under the
/// same customer chain. The certificates to show.
pub(super) async fn inherit(source: &Path, dir: &Path, local: &mut LocalCluster) -> Result<Certificates, ApiError> {
    let (from, to) = (source.join("identity"), dir.join("identity"));
    fs::create_dir_all(&to).map_err(internal("creating the identity directory"))?;
    for name in ["cluster.key", "hardware.key"] {
        let key = Zeroizing::new(read_text(&from.join(name))?);
        write(&to.join(name), key.as_bytes(), true)?;
    }
    for name in CERTIFICATES {
        let text = read_text(&from.join(format!("{name}.pem")))?;
        write(&to.join(format!("{name}.pem")), text.as_bytes(), false)?;
    }
    let key = Zeroizing::new(read_text(&source.join(CLUSTER_KEY))?);
    let certificate = read_text(&source.join(CLUSTER_CERTIFICATE))?;
    let anchor = read_text(&source.join(CUSTOMER_CA))?;
    local
        .adopt_customer_chain(&key, &certificate, &anchor)
        .await
        .map_err(internal("serving under the source's cluster certificate"))?;
    let certificates = ClusterCertificates {
        cluster_csr: read_text(&to.join("ClusterCsr.pem"))?,
        hsm_certificate: read_text(&to.join("HsmCertificate.pem"))?,
        aws_hardware_certificate: read_text(&to.join("AwsHardwareCertificate.pem"))?,
        manufacturer_hardware_certificate: read_text(&to.join("ManufacturerHardwareCertificate.pem"))?,
    };
    Ok(shown(&certificates, Some(certificate)))
}

fn shown(c: &ClusterCertificates, cluster_certificate: Option<String>) -> Certificates {
    Certificates {
        cluster_csr: Some(c.cluster_csr.clone()),
        hsm_certificate: Some(c.hsm_certificate.clone()),
        aws_hardware_certificate: Some(c.aws_hardware_certificate.clone()),
        manufacturer_hardware_certificate: Some(c.manufacturer_hardware_certificate.clone()),
        cluster_certificate,
    }
}

fn read_text(path: &Path) -> Result<String, ApiError> {
    fs::read_to_string(path).map_err(|e| ApiError::InternalFailure(format!("reading {}: {e}", path.display())))
}
