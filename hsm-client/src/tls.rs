//! How the client decides to trust an HSM's certificate.
//!
//! An HSM's chain is trusted when it verifies as usual against a
//! certificate of the CA file (rustls's webpki verifier), or when it is
//! CloudHSM's chain: a leaf issued by the cluster certificate, which is
//! itself signed by a certificate of the CA file. The customer makes that
//! cluster certificate with `openssl x509 -req`, as AWS's guide says,
//! which gives an X.509 version 1 certificate; webpki refuses version 1 in
//! a chain, so the second form is checked in two steps:
//!
//! 1. the cluster certificate (version 1 or 3): its signature verifies
//!    with the key of a CA-file certificate whose subject is its issuer,
//!    and it is valid now (x509-parser over ring);
//! 2. the leaf: webpki, with the cluster certificate as its only trust
//!    anchor, so that the leaf's name, validity, usage and signature are
//!    checked exactly as in the usual case.

use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _},
};
use x509_parser::prelude::{ASN1Time, FromDer as _, X509Certificate};

/// Verifies HSMs' certificates against a CA file, accepting CloudHSM's
/// chain through a customer-signed cluster certificate too.
#[derive(Debug)]
pub(crate) struct HsmCertVerifier {
    /// The usual path: a chain to a CA-file certificate.
    direct: Arc<WebPkiServerVerifier>,
    /// The CA file's certificates, which may sign a cluster certificate.
    roots: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl HsmCertVerifier {
    /// A verifier for the certificates in `ca_pem` (one or more PEM
    /// certificates); the reason in words when none can serve as a root.
    pub(crate) fn new(ca_pem: &str, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("CA certificate: not valid PEM ({e})"))?;
        let mut store = RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(roots.iter().cloned());
        if added == 0 {
            return Err("CA certificate: holds no certificate that can serve as a root".into());
        }
        let direct = WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
            .build()
            .map_err(|e| format!("CA certificate: {e}"))?;
        Ok(HsmCertVerifier { direct, roots, provider })
    }
}

/// Step 1 of CloudHSM's chain: whether `cluster` (X.509 version 1 or 3) is
/// signed by one of `roots` (a CA file's certificates) and valid at `now`.
/// Step 2 is the caller's: the leaf, verified by webpki with `cluster` as
/// its only trust anchor (`RootCertStore::add` takes version 1). The HSMs
/// use it for their peers' client certificates too.
pub fn cluster_certificate_trusted(
    cluster: &CertificateDer<'_>,
    roots: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad = |reason: &str| rustls::Error::General(format!("the cluster certificate {reason}"));
    let (_, cert) = X509Certificate::from_der(cluster).map_err(|_| bad("does not parse"))?;
    let now = i64::try_from(now.as_secs()).ok().and_then(|s| ASN1Time::from_timestamp(s).ok());
    if !now.is_some_and(|now| cert.validity().is_valid_at(now)) {
        return Err(bad("is expired or not yet valid"));
    }
    let signed_by_a_root = roots.iter().any(|root| {
        X509Certificate::from_der(root).is_ok_and(|(_, root)| {
            root.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(Some(root.public_key())).is_ok()
        })
    });
    if signed_by_a_root { Ok(()) } else { Err(bad("is not signed by a certificate of the CA file")) }
}

impl ServerCertVerifier for HsmCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let direct = self.direct.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        let (Err(direct_error), Some(cluster)) = (&direct, intermediates.first()) else {
            return direct;
        };
        // CloudHSM's chain, when the usual path fails. A cluster
        // certificate the CA file did not sign means it is not such a
        // chain: the usual error says more.
        if cluster_certificate_trusted(cluster, &self.roots, now).is_err() {
            return Err(direct_error.clone());
        }
        let mut anchor = RootCertStore::empty();
        anchor.add(cluster.clone().into_owned()).map_err(|_| direct_error.clone())?;
        let under_cluster = WebPkiServerVerifier::builder_with_provider(Arc::new(anchor), Arc::clone(&self.provider))
            .build()
            .map_err(|e| rustls::Error::General(format!("the HSM's cluster certificate: {e}")))?;
        under_cluster.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.direct.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.direct.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.direct.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command};

    use super::*;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    fn der(dir: &Path, name: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(dir.join(name)).unwrap()
    }

    /// A P-256 key and CSR `name.key`, `name.csr`.
    fn request(dir: &Path, name: &str) {
        let (key, csr, subject) = (format!("{name}.key"), format!("{name}.csr"), format!("/CN={name}"));
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
    }

    /// `name.crt` over `name.csr`, issued by `ca` (its `.crt` and `.key`),
    /// version 1 unless `ext` names an extensions file.
    fn issue(dir: &Path, name: &str, ca: &str, ext: Option<&str>) {
        let (csr, crt, ca_crt, ca_key) =
            (format!("{name}.csr"), format!("{name}.crt"), format!("{ca}.crt"), format!("{ca}.key"));
        let mut args = vec![
            "x509",
            "-req",
            "-days",
            "30",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
        ];
        if let Some(ext) = ext {
            args.extend(["-extfile", ext]);
        }
        openssl(dir, &args);
    }

    fn root(dir: &Path, name: &str) {
        let (key, crt, subject) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={name}"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-days",
                "30",
                "-subj",
                &subject,
            ],
        );
    }

    fn verifier(dir: &Path, ca: &str) -> HsmCertVerifier {
        let pem = std::fs::read_to_string(dir.join(format!("{ca}.crt"))).unwrap();
        HsmCertVerifier::new(&pem, Arc::new(rustls::crypto::ring::default_provider())).unwrap()
    }

    fn check(v: &HsmCertVerifier, chain: &[CertificateDer<'static>], name: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn cloudhsm_chains_through_a_version_1_cluster_certificate_and_ordinary_chains_verify() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("leaf.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
            .unwrap();
        std::fs::write(d.join("ca.ext"), "basicConstraints=critical,CA:TRUE\n").unwrap();
        root(d, "customerCA");
        root(d, "otherCA");
        // The cluster certificate as AWS's guide has the customer make it
        // (version 1), and an HSM leaf under it.
        request(d, "cluster");
        issue(d, "cluster", "customerCA", None);
        request(d, "leaf");
        issue(d, "leaf", "cluster", Some("leaf.ext"));
        // The same cluster key, signed by another CA.
        std::fs::copy(d.join("cluster.csr"), d.join("rogue.csr")).unwrap();
        issue(d, "rogue", "otherCA", None);
        // A leaf the cluster key did not issue.
        request(d, "stray");
        issue(d, "stray", "otherCA", Some("leaf.ext"));
        // An ordinary chain: a version 3 intermediate CA.
        request(d, "intermediate");
        issue(d, "intermediate", "customerCA", Some("ca.ext"));
        request(d, "plain");
        issue(d, "plain", "intermediate", Some("leaf.ext"));

        let customer = verifier(d, "customerCA");
        let chain = [der(d, "leaf.crt"), der(d, "cluster.crt")];
        check(&customer, &chain, "localhost").unwrap();
        check(&customer, &chain, "127.0.0.1").unwrap();
        // webpki alone refuses it: what this verifier is for.
        assert!(
            customer
                .direct
                .verify_server_cert(
                    &chain[0],
                    &chain[1..],
                    &ServerName::try_from("localhost").unwrap(),
                    &[],
                    UnixTime::now()
                )
                .is_err()
        );

        let e = check(&verifier(d, "otherCA"), &chain, "localhost").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "another CA: {e}");
        let e = check(&customer, &[der(d, "leaf.crt"), der(d, "rogue.crt")], "localhost").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(_)), "a cluster certificate of another CA: {e}");
        let e = check(&customer, &chain, "hsm.example").unwrap_err();
        assert!(e.to_string().contains("not valid for name \"hsm.example\""), "{e}");
        let e = check(&customer, &[der(d, "stray.crt"), der(d, "cluster.crt")], "localhost").unwrap_err();
        assert_eq!(e, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer), "{e}");
        let e = check(&customer, &[der(d, "leaf.crt")], "localhost").unwrap_err();
        assert_eq!(e, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer), "{e}");

        check(&customer, &[der(d, "plain.crt"), der(d, "intermediate.crt")], "localhost").unwrap();
        let e = check(&verifier(d, "otherCA"), &[der(d, "plain.crt"), der(d, "intermediate.crt")], "localhost");
        assert!(e.is_err());
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_a_settings_error() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let e = HsmCertVerifier::new("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", provider).unwrap_err();
        assert!(e.starts_with("CA certificate: "), "{e}");
    }
}
