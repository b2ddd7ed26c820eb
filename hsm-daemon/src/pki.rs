//! The cluster's certificate authority and the certificates it issues: one
//! server certificate per HSM and, for mTLS, client certificates.
//!
//! Keys are ECDSA P-256 made with ring (through rcgen). Private keys are held
//! in `Zeroizing` buffers and written to disk by the caller with owner-only
//! permissions.

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
