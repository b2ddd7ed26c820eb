//! The customer's chain of trust. `initialize-cluster` hands the cluster a
//! certificate over its CSR's key, signed by the customer's CA
//! (`SignedCert`), and that CA's self-signed certificate (`TrustAnchor`):
//! [`verify_signed_cluster_certificate`] makes the checks CloudHSM makes
//! before it accepts them. From then on every HSM serves a TLS chain that
//! ends in the signed certificate ([`issue_hsm_certificate_under_cluster`]),
//! so that clients holding only the customer's CA trust it.
//!
//! AWS's instructions sign the CSR with `openssl x509 -req`, which makes an
//! X.509 version 1 certificate with no extensions; both functions accept
//! version 1 and version 3 alike.

use std::{fmt, time::SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _};
use rustls::pki_types::CertificateDer;
use x509_parser::{
    certification_request::X509CertificationRequest,
    prelude::{ASN1Time, FromDer as _, X509Certificate, X509Name},
};
use zeroize::Zeroizing;

use super::{CertifiedKey, PkiError, name, pem};

/// Which input of `initialize-cluster` an error is about, by its API name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertInput {
    /// The cluster's own CSR (stored, not given by the caller).
    ClusterCsr,
    SignedCert,
    TrustAnchor,
}

impl fmt::Display for CertInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertInput::ClusterCsr => "ClusterCsr",
            CertInput::SignedCert => "SignedCert",
            CertInput::TrustAnchor => "TrustAnchor",
        })
    }
}

/// Why a signed cluster certificate or its trust anchor is refused:
/// the input, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input}: {reason}")]
pub struct CertError {
    pub input: CertInput,
    pub reason: String,
}

impl CertError {
    fn new(input: CertInput, reason: impl Into<String>) -> Self {
        CertError { input, reason: reason.into() }
    }
}

/// A signed cluster certificate that passed every check, and its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCluster {
    /// `SignedCert` as given (one PEM certificate): `ClusterCertificate`
    /// in `describe-clusters` from now on.
    pub cluster_certificate_pem: String,
    /// `TrustAnchor` as given: what clients put in their CA file.
    pub trust_anchor_pem: String,
    /// The signed certificate's subject and its issuer (the anchor), in
    /// RFC 4514 form, for messages and logs.
    pub subject: String,
    pub issuer: String,
    /// When the signed certificate expires (seconds since the Unix epoch):
    /// the HSMs' TLS certificates end then too.
    pub not_after_unix: i64,
}

/// CloudHSM's checks of `initialize-cluster`'s certificates against the
/// cluster's CSR, at `now`: each input is one PEM certificate; the trust
/// anchor is self-signed (signature verified) and a CA; the signed
/// certificate is over the CSR's public key and its signature verifies
/// with the anchor's key; both are valid at `now`.
pub fn verify_signed_cluster_certificate(
    csr_pem: &str,
    signed_cert_pem: &str,
    trust_anchor_pem: &str,
    now: SystemTime,
) -> Result<SignedCluster, CertError> {
    use CertInput::{ClusterCsr, SignedCert, TrustAnchor};
    let csr_der = pem::one(csr_pem, "CERTIFICATE REQUEST").map_err(|r| CertError::new(ClusterCsr, r))?;
    let (_, csr) = X509CertificationRequest::from_der(&csr_der)
        .map_err(|e| CertError::new(ClusterCsr, format!("not a PKCS#10 request ({e})")))?;
    let signed_der = pem::one(signed_cert_pem, "CERTIFICATE").map_err(|r| CertError::new(SignedCert, r))?;
    let signed = certificate(&signed_der, SignedCert)?;
    let anchor_der = pem::one(trust_anchor_pem, "CERTIFICATE").map_err(|r| CertError::new(TrustAnchor, r))?;
    let anchor = certificate(&anchor_der, TrustAnchor)?;
    let now = at(now)?;

    if anchor.subject().as_raw() != anchor.issuer().as_raw() {
        return Err(CertError::new(
            TrustAnchor,
            format!(
                "not self-signed: issued by {} to {}; give the root CA's own certificate",
                anchor.issuer(),
                anchor.subject()
            ),
        ));
    }
    if anchor.verify_signature(None).is_err() {
        return Err(CertError::new(TrustAnchor, "not self-signed: its signature does not verify with its own key"));
    }
    if let Ok(Some(constraints)) = anchor.basic_constraints()
        && !constraints.value.ca
    {
        return Err(CertError::new(TrustAnchor, "not a CA certificate (basicConstraints CA:FALSE)"));
    }
    within_validity(&anchor, now, TrustAnchor)?;

    if signed.public_key().raw != csr.certification_request_info.subject_pki.raw {
        return Err(CertError::new(SignedCert, "its public key is not the cluster CSR's; sign the cluster's CSR"));
    }
    if signed.issuer().as_raw() != anchor.subject().as_raw() {
        return Err(CertError::new(
            SignedCert,
            format!("not signed by TrustAnchor: issued by {}, not {}", signed.issuer(), anchor.subject()),
        ));
    }
    if signed.verify_signature(Some(anchor.public_key())).is_err() {
        return Err(CertError::new(
            SignedCert,
            "not signed by TrustAnchor: its signature does not verify with TrustAnchor's key",
        ));
    }
    within_validity(&signed, now, SignedCert)?;
    usable_as_issuer(signed.subject()).map_err(|r| CertError::new(SignedCert, r))?;

    Ok(SignedCluster {
        cluster_certificate_pem: signed_cert_pem.to_owned(),
        trust_anchor_pem: trust_anchor_pem.to_owned(),
        subject: signed.subject().to_string(),
        issuer: signed.issuer().to_string(),
        not_after_unix: signed.validity().not_after.timestamp(),
    })
}

/// HSM `hsm_id`'s TLS certificate for `names` (DNS names or IP addresses)
/// once the cluster is claimed: a new key, and a version 3 leaf issued by
/// the cluster key (`cluster_key_pem`, PKCS#8 PEM) for server and client
/// authentication (an HSM presents it to its peers too), valid while the
/// cluster certificate is. Its `cert_pem` is the chain: the leaf, then the
/// customer-signed cluster certificate, which clients check against the
/// customer's CA.
pub fn issue_hsm_certificate_under_cluster(
    cluster_key_pem: &str,
    signed_cluster_cert_pem: &str,
    hsm_id: &str,
    names: &[String],
) -> Result<CertifiedKey, PkiError> {
    let what = "the cluster certificate";
    let cluster_key = KeyPair::from_pem(cluster_key_pem)
        .map_err(|e| PkiError::invalid("the cluster key", format!("not a PEM private key ({e})")))?;
    let der = pem::one(signed_cluster_cert_pem, "CERTIFICATE").map_err(|r| PkiError::invalid(what, r))?;
    let (_, cluster) = X509Certificate::from_der(&der)
        .map_err(|e| PkiError::invalid(what, format!("not an X.509 certificate ({e})")))?;
    if cluster.public_key().raw != cluster_key.subject_public_key_info().as_slice() {
        return Err(PkiError::invalid(what, "not over the cluster key"));
    }
    usable_as_issuer(cluster.subject()).map_err(|r| PkiError::invalid(what, r))?;

    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(hsm_id);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = cluster.validity().not_before.to_datetime();
    params.not_after = cluster.validity().not_after.to_datetime();
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), &cluster_key)?;
    let key = KeyPair::generate()?;
    let leaf = params.signed_by(&key, &issuer)?;

    // Clients match the leaf's issuer to the cluster certificate's subject
    // byte for byte; rcgen re-encodes the name, so check that it came out
    // the same.
    let (_, parsed) = X509Certificate::from_der(leaf.der())
        .map_err(|e| PkiError::invalid("the issued certificate", format!("does not parse ({e})")))?;
    if parsed.issuer().as_raw() != cluster.subject().as_raw() {
        return Err(PkiError::invalid(what, "its subject name cannot be reproduced as an issuer name"));
    }
    let chain = format!("{}{}", leaf.pem(), pem_block("CERTIFICATE", &der));
    Ok(CertifiedKey { cert_pem: chain, key_pem: Zeroizing::new(key.serialize_pem()) })
}

fn certificate(der: &[u8], input: CertInput) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::new(input, format!("not an X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(CertError::new(input, "trailing bytes after the certificate"));
    }
    Ok(cert)
}

fn at(now: SystemTime) -> Result<ASN1Time, CertError> {
    let secs = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    ASN1Time::from_timestamp(secs)
        .map_err(|e| CertError::new(CertInput::ClusterCsr, format!("the current time cannot be represented ({e})")))
}

fn within_validity(cert: &X509Certificate<'_>, now: ASN1Time, input: CertInput) -> Result<(), CertError> {
    let validity = cert.validity();
    if now < validity.not_before {
        return Err(CertError::new(input, format!("not valid yet: valid from {}", validity.not_before)));
    }
    if now > validity.not_after {
        return Err(CertError::new(input, format!("expired on {}", validity.not_after)));
    }
    Ok(())
}

/// Whether a name can issue the HSMs' certificates: one attribute per
/// relative name, none empty (what rcgen re-encodes faithfully).
fn usable_as_issuer(subject: &X509Name<'_>) -> Result<(), String> {
    if subject.iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(format!(
            "its subject ({subject}) has an empty or multi-valued relative name, which cannot issue certificates here"
        ));
    }
    Ok(())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
