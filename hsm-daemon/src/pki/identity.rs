//! An uninitialized cluster's identity, as CloudHSM shows it in
//! `describe-clusters`: the cluster's key pair and its CSR, made by the
//! cluster's first HSM, and the certificates by which a customer checks that
//! the key was made inside a genuine HSM before signing the CSR:
//!
//! - `HsmCertificate`: the cluster key's certificate, issued by the HSM's
//!   hardware key;
//! - `AwsHardwareCertificate`: the hardware key's certificate, issued by the
//!   AWS CloudHSM root;
//! - `ManufacturerHardwareCertificate`: the same hardware key's certificate,
//!   issued by the manufacturer's root.
//!
//! The two roots here are the emulator's own ([`EmulatorRoots`]), named so
//! that nobody takes them for AWS's: the chain proves only that this
//! emulator made the key. Real CloudHSM keys are RSA-2048; these are ECDSA
//! P-256, which the same openssl commands check.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData as _,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use zeroize::Zeroizing;

use super::{CertifiedKey, PkiError, pem};

/// The common name of the emulator's stand-in for the AWS CloudHSM root.
pub const AWS_ROOT_NAME: &str = "hsm-emulator AWS CloudHSM Root (emulated, not AWS)";
/// The common name of the emulator's stand-in for the HSM manufacturer's root.
pub const MANUFACTURER_ROOT_NAME: &str = "hsm-emulator HSM Manufacturer Root (emulated)";

/// The two self-signed roots that issue every emulated HSM's hardware
/// certificates. One pair per installation (the control plane persists
/// them), as AWS has one root for all clusters.
#[derive(Debug, Clone)]
pub struct EmulatorRoots {
    /// Stands for `AWS_CloudHSM_Root-G1.crt`, which customers download.
    pub aws: CertifiedKey,
    /// Stands for the manufacturer's root (`liquid_security_certificate.crt`).
    pub manufacturer: CertifiedKey,
}

impl EmulatorRoots {
    /// Two new roots, each with its own P-256 key.
    pub fn generate() -> Result<EmulatorRoots, PkiError> {
        Ok(EmulatorRoots { aws: root(AWS_ROOT_NAME)?, manufacturer: root(MANUFACTURER_ROOT_NAME)? })
    }

    /// Roots persisted earlier (the `cert_pem`/`key_pem` of each), checked:
    /// each certificate is a CA certificate over its key.
    pub fn from_pem(aws: CertifiedKey, manufacturer: CertifiedKey) -> Result<EmulatorRoots, PkiError> {
        for (what, root) in [("the AWS root", &aws), ("the manufacturer root", &manufacturer)] {
            let key = KeyPair::from_pem(&root.key_pem)
                .map_err(|e| PkiError::invalid(format!("{what}'s key"), format!("not a PEM private key ({e})")))?;
            let der = pem::one(&root.cert_pem, "CERTIFICATE").map_err(|r| PkiError::invalid(what, r))?;
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| PkiError::invalid(what, format!("not an X.509 certificate ({e})")))?;
            if cert.public_key().raw != key.subject_public_key_info().as_slice() {
                return Err(PkiError::invalid(what, "its certificate is not over its key"));
            }
        }
        Ok(EmulatorRoots { aws, manufacturer })
    }

    /// The issuer of a hardware certificate: `root`'s certificate and key.
    fn issuer(root: &CertifiedKey) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&root.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&root.cert_pem, key)?)
    }
}

/// `describe-clusters`' `Certificates` of an uninitialized cluster, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCertificates {
    pub cluster_csr: String,
    pub hsm_certificate: String,
    pub aws_hardware_certificate: String,
    pub manufacturer_hardware_certificate: String,
}

/// A cluster's key pair and the proof that an HSM made it. The private keys
/// are secret: the caller persists them owner-only.
#[derive(Clone)]
pub struct ClusterIdentity {
    /// The cluster key (PKCS#8 PEM): the CSR is over it, and once the
    /// customer has signed it, it issues every HSM's TLS certificate
    /// ([`super::issue_hsm_certificate_under_cluster`]).
    pub cluster_key_pem: Zeroizing<String>,
    /// The first HSM's hardware key (PKCS#8 PEM), which issued
    /// `HsmCertificate`. Kept so that the certificates can be reissued
    /// alike; nothing else uses it.
    pub hardware_key_pem: Zeroizing<String>,
    pub certificates: ClusterCertificates,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("certificates", &self.certificates)
            .field("cluster_key_pem", &"<redacted>")
            .field("hardware_key_pem", &"<redacted>")
            .finish()
    }
}

impl ClusterIdentity {
    /// A new cluster key made in HSM `hsm_id` of `cluster_id`, its CSR, and
    /// the certificates that tie it to that HSM's hardware key and that key
    /// to both `roots`.
    pub fn generate(cluster_id: &str, hsm_id: &str, roots: &EmulatorRoots) -> Result<ClusterIdentity, PkiError> {
        let cluster_key = KeyPair::generate()?;
        let hardware_key = KeyPair::generate()?;

        let cluster_params = cluster_subject(cluster_id, hsm_id)?;
        let cluster_csr = cluster_params.serialize_request(&cluster_key)?.pem()?;

        let hardware_params = hardware_params(cluster_id, hsm_id)?;
        let aws_hardware_certificate =
            hardware_params.signed_by(&hardware_key, &EmulatorRoots::issuer(&roots.aws)?)?.pem();
        let manufacturer_hardware_certificate =
            hardware_params.signed_by(&hardware_key, &EmulatorRoots::issuer(&roots.manufacturer)?)?.pem();
        let hardware = Issuer::from_params(&hardware_params, &hardware_key);
        let hsm_certificate = cluster_params.signed_by(&cluster_key, &hardware)?.pem();

        Ok(ClusterIdentity {
            cluster_key_pem: Zeroizing::new(cluster_key.serialize_pem()),
            hardware_key_pem: Zeroizing::new(hardware_key.serialize_pem()),
            certificates: ClusterCertificates {
                cluster_csr,
                hsm_certificate,
                aws_hardware_certificate,
                manufacturer_hardware_certificate,
            },
        })
    }

    /// An identity persisted earlier, checked: both keys parse, the CSR and
    /// `HsmCertificate` are over the cluster key, and both hardware
    /// certificates over the hardware key.
    pub fn from_pem(
        cluster_key_pem: Zeroizing<String>,
        hardware_key_pem: Zeroizing<String>,
        certificates: ClusterCertificates,
    ) -> Result<ClusterIdentity, PkiError> {
        let key = |what: &str, pem: &str| {
            KeyPair::from_pem(pem)
                .map(|k| k.subject_public_key_info())
                .map_err(|e| PkiError::invalid(what, format!("not a PEM private key ({e})")))
        };
        let cluster = key("the cluster key", &cluster_key_pem)?;
        let hardware = key("the hardware key", &hardware_key_pem)?;
        let csr_der = pem::one(&certificates.cluster_csr, "CERTIFICATE REQUEST")
            .map_err(|r| PkiError::invalid("ClusterCsr", r))?;
        let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&csr_der)
            .map_err(|e| PkiError::invalid("ClusterCsr", format!("not a PKCS#10 request ({e})")))?;
        if csr.certification_request_info.subject_pki.raw != cluster.as_slice() {
            return Err(PkiError::invalid("ClusterCsr", "not over the cluster key"));
        }
        for (what, pem, spki) in [
            ("HsmCertificate", &certificates.hsm_certificate, &cluster),
            ("AwsHardwareCertificate", &certificates.aws_hardware_certificate, &hardware),
            ("ManufacturerHardwareCertificate", &certificates.manufacturer_hardware_certificate, &hardware),
        ] {
            let der = pem::one(pem, "CERTIFICATE").map_err(|r| PkiError::invalid(what, r))?;
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| PkiError::invalid(what, format!("not an X.509 certificate ({e})")))?;
            if cert.public_key().raw != spki.as_slice() {
                return Err(PkiError::invalid(what, "not over the key it certifies"));
            }
        }
        Ok(ClusterIdentity { cluster_key_pem, hardware_key_pem, certificates })
    }
}

fn root(common_name: &str) -> Result<CertifiedKey, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "hsm-emulator");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
}

/// The cluster certificate's subject, in the style of CloudHSM's
/// (`CN=HSM:<serial>:PARTN:<n>, for FIPS mode` under the vendor's
/// organisation): the HSM and the cluster it made the key for.
fn cluster_subject(cluster_id: &str, hsm_id: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "hsm-emulator (emulated CloudHSM)");
    dn.push(DnType::OrganizationalUnitName, cluster_id);
    dn.push(DnType::CommonName, format!("HSM:{hsm_id}:PARTN:{cluster_id}"));
    params.distinguished_name = dn;
    Ok(params)
}

/// The hardware key's certificate: a CA for one level, as it issues the
/// HSM certificate (openssl refuses an issuer that is not a CA).
fn hardware_params(cluster_id: &str, hsm_id: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "hsm-emulator (emulated CloudHSM)");
    dn.push(DnType::OrganizationalUnitName, cluster_id);
    dn.push(DnType::CommonName, format!("HSM hardware {hsm_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}
