//! The certificates of a cluster: the emulator's own cluster CA and what it
//! issues (one server certificate per HSM, mTLS client certificates), and
//! CloudHSM's chain of trust, by which a customer claims a cluster and from
//! then on trusts its HSMs through a CA of their own.
//!
//! Keys are ECDSA P-256 made with ring (through rcgen). Private keys are held
//! in `Zeroizing` buffers and written to disk by the caller with owner-only
//! permissions. Nothing here reads a file or a clock: the caller passes
//! PEM text and the time.
//!
//! # Layout
//! - This file: [`CertifiedKey`], [`PkiError`], the cluster CA
//!   ([`generate_ca`]) and what it issues ([`issue_server`],
//!   [`issue_client`]).
//! - `identity`: [`EmulatorRoots`] (stand-ins for the AWS CloudHSM and HSM
//!   manufacturer roots) and [`ClusterIdentity`], an uninitialized cluster's
//!   key pair, CSR and the certificates that prove it was made in an HSM
//!   (`describe-clusters`' `Certificates`).
//! - `customer`: the customer's side: [`verify_signed_cluster_certificate`]
//!   (`initialize-cluster`'s checks, [`CertError`]) and
//!   [`issue_hsm_certificate_under_cluster`], the TLS chain an HSM serves
//!   once the cluster is claimed.
//! - `pem`: reading exactly one PEM block of a kind, for the above.
//! - `tests`: the chain of trust checked with openssl, as AWS's
//!   instructions have the customer do.

mod customer;
mod identity;
mod pem;

pub use self::{
    customer::{
        CertError, CertInput, SignedCluster, issue_hsm_certificate_under_cluster, verify_signed_cluster_certificate,
    },
    identity::{AWS_ROOT_NAME, ClusterCertificates, ClusterIdentity, EmulatorRoots, MANUFACTURER_ROOT_NAME},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use zeroize::Zeroizing;

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// Errors from certificate generation or from parsing a stored CA.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Stored or given material that cannot serve: `what` names it (a
    /// file's role, a field), `reason` says why.
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl PkiError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        PkiError::Invalid { what: what.into(), reason: reason.into() }
    }
}

/// Makes a self-signed CA for a cluster (`customerCA.crt` in CloudHSM terms).
pub fn generate_ca(cluster_id: &str) -> Result<CertifiedKey, PkiError> {
    let key = KeyPair::generate()?;
    let params = ca_params(cluster_id)?;
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
}

/// Issues an HSM's certificate for `names` (DNS names or IP addresses),
/// signed by `ca`: its server certificate, and its client certificate
/// towards its peers.
pub fn issue_server(ca: &CertifiedKey, hsm_id: &str, names: &[String]) -> Result<CertifiedKey, PkiError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(hsm_id);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    // Client authentication too: an HSM presents this certificate to its
    // peers when it syncs and clones, which they admit under mTLS
    // enforcement.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, params)
}

/// Issues a client certificate for mutual TLS, signed by `ca`.
pub fn issue_client(ca: &CertifiedKey, common_name: &str) -> Result<CertifiedKey, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, params)
}

/// The names (DNS names and IP addresses) the first certificate of
/// `cert_pem` is for, in order: what a reissued certificate must carry
/// again.
pub fn certificate_names(cert_pem: &str) -> Result<Vec<String>, PkiError> {
    use x509_parser::{extensions::GeneralName, pem::Pem, prelude::FromDer as _};
    let what = "the HSM's certificate";
    let first = Pem::iter_from_buffer(cert_pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::invalid(what, "holds no PEM certificate"))?
        .map_err(|e| PkiError::invalid(what, format!("not valid PEM ({e})")))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&first.contents)
        .map_err(|e| PkiError::invalid(what, format!("not an X.509 certificate ({e})")))?;
    let Ok(Some(names)) = cert.subject_alternative_name() else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    for name in &names.value.general_names {
        match name {
            GeneralName::DNSName(dns) => found.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                    16 => <[u8; 16]>::try_from(*bytes).map(std::net::IpAddr::from).ok(),
                    _ => None,
                };
                if let Some(ip) = ip {
                    found.push(ip.to_string());
                }
            }
            // Names an HSM's certificate never carries.
            _ => {}
        }
    }
    Ok(found)
}

fn issue(ca: &CertifiedKey, params: CertificateParams) -> Result<CertifiedKey, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: Zeroizing::new(key.serialize_pem()) })
}

fn ca_params(cluster_id: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(&format!("{cluster_id} customer CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "CloudHSM emulator");
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
