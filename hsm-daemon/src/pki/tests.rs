//! The chain of trust, checked with openssl as AWS's instructions have the
//! customer do: verify the HSM's certificates against both roots, sign the
//! CSR with `openssl x509 -req`, and give the result to
//! `initialize-cluster`; then the HSMs' TLS chain verifies against the
//! customer's CA alone.

use std::{
    path::Path,
    process::Command,
    time::{Duration, SystemTime},
};

use super::{
    fixtures::{customer_ca, openssl, sign},
    *,
};

/// Whether `cert`'s signature verifies with `issuer`'s public key (ECDSA
/// with SHA-256), by openssl alone: the signed part and the signature cut
/// out with `asn1parse`, checked with `dgst -verify`.
fn signed_with(dir: &Path, cert: &str, issuer: &str) -> bool {
    write(dir, "issuer.pub", &openssl(dir, &["x509", "-in", issuer, "-pubkey", "-noout"]));
    // The outer SEQUENCE's header is 4 bytes (30 82 LL LL): the signed part
    // starts there.
    openssl(dir, &["asn1parse", "-in", cert, "-strparse", "4", "-noout", "-out", "tbs.der"]);
    let listing = openssl(dir, &["asn1parse", "-in", cert]);
    let signature = listing.lines().rfind(|l| l.contains("BIT STRING")).unwrap();
    let offset = signature.split(':').next().unwrap().trim();
    openssl(dir, &["asn1parse", "-in", cert, "-strparse", offset, "-noout", "-out", "sig.der"]);
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", "issuer.pub", "-signature", "sig.der", "tbs.der"])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn cluster(dir: &Path) -> ClusterIdentity {
    let roots = EmulatorRoots::generate().unwrap();
    let identity = ClusterIdentity::generate("cluster-abcdefghijk", "hsm-abcdefghijk", &roots).unwrap();
    let c = &identity.certificates;
    write(dir, "AWS_root.crt", &roots.aws.cert_pem);
    write(dir, "manufacturer_root.crt", &roots.manufacturer.cert_pem);
    write(dir, "ClusterCsr.csr", &c.cluster_csr);
    write(dir, "HsmCertificate.crt", &c.hsm_certificate);
    write(dir, "AwsHardwareCertificate.crt", &c.aws_hardware_certificate);
    write(dir, "ManufacturerHardwareCertificate.crt", &c.manufacturer_hardware_certificate);
    identity
}

#[test]
fn the_hsm_certificate_verifies_against_both_roots_and_is_over_the_csr_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let identity = cluster(d);
    for (root, hardware) in [
        ("AWS_root.crt", "AwsHardwareCertificate.crt"),
        ("manufacturer_root.crt", "ManufacturerHardwareCertificate.crt"),
    ] {
        write(d, "chain.crt", &format!("{}{}", read(d, root), read(d, hardware)));
        assert_eq!(openssl(d, &["verify", "-CAfile", "chain.crt", "HsmCertificate.crt"]), "HsmCertificate.crt: OK\n");
    }
    let from_cert = openssl(d, &["x509", "-in", "HsmCertificate.crt", "-pubkey", "-noout"]);
    let from_csr = openssl(d, &["req", "-in", "ClusterCsr.csr", "-pubkey", "-noout"]);
    assert_eq!(from_cert, from_csr);
    assert!(from_cert.contains("BEGIN PUBLIC KEY"));
    // The CSR's signature holds, and its subject names the cluster and HSM.
    let csr = openssl(d, &["req", "-in", "ClusterCsr.csr", "-verify", "-noout", "-subject"]);
    assert!(csr.contains("HSM:hsm-abcdefghijk:PARTN:cluster-abcdefghijk"), "{csr}");
    // Neither root passes for the other's chain.
    write(d, "mixed.crt", &format!("{}{}", read(d, "AWS_root.crt"), read(d, "ManufacturerHardwareCertificate.crt")));
    let mixed =
        Command::new("openssl").args(["verify", "-CAfile", "mixed.crt", "HsmCertificate.crt"]).current_dir(d).output();
    assert!(!mixed.unwrap().status.success());

    // Persisted and read back; a swapped key is refused by name.
    let again = ClusterIdentity::from_pem(
        identity.cluster_key_pem.clone(),
        identity.hardware_key_pem.clone(),
        identity.certificates.clone(),
    )
    .unwrap();
    assert_eq!(again.certificates, identity.certificates);
    let swapped = ClusterIdentity::from_pem(
        identity.hardware_key_pem.clone(),
        identity.cluster_key_pem.clone(),
        identity.certificates.clone(),
    );
    assert_eq!(swapped.unwrap_err().to_string(), "ClusterCsr: not over the cluster key");
}

#[test]
fn roots_are_the_emulators_and_read_back() {
    let roots = EmulatorRoots::generate().unwrap();
    let again = EmulatorRoots::from_pem(roots.aws.clone(), roots.manufacturer.clone()).unwrap();
    assert_eq!(again.aws.cert_pem, roots.aws.cert_pem);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root.crt", &roots.aws.cert_pem);
    let subject = openssl(dir.path(), &["x509", "-in", "root.crt", "-noout", "-subject"]);
    assert!(subject.contains("emulated, not AWS"), "{subject}");
    let crossed = EmulatorRoots::from_pem(
        CertifiedKey { cert_pem: roots.aws.cert_pem.clone(), key_pem: roots.manufacturer.key_pem.clone() },
        roots.manufacturer.clone(),
    );
    assert_eq!(crossed.unwrap_err().to_string(), "the AWS root: its certificate is not over its key");
}

#[test]
fn a_customer_signed_csr_is_accepted_and_its_hsm_chain_verifies_against_the_customer_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let identity = cluster(d);
    // RSA, as AWS's guide makes the customer's CA.
    openssl(d, &["genrsa", "-out", "customerCA.key", "2048"]);
    openssl(
        d,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "3652",
            "-key",
            "customerCA.key",
            "-out",
            "customerCA.crt",
            "-subj",
            "/CN=customer CA",
        ],
    );
    sign(d, "ClusterCsr.csr", "customerCA", "CustomerHsmCertificate.crt", "3652");
    let text = openssl(d, &["x509", "-in", "CustomerHsmCertificate.crt", "-noout", "-text"]);
    assert!(text.contains("Version: 1 (0x0)"), "openssl x509 -req makes a version 1 certificate: {text}");

    let signed = read(d, "CustomerHsmCertificate.crt");
    let anchor = read(d, "customerCA.crt");
    let accepted =
        verify_signed_cluster_certificate(&identity.certificates.cluster_csr, &signed, &anchor, SystemTime::now())
            .unwrap();
    assert_eq!(accepted.cluster_certificate_pem, signed);
    assert_eq!(accepted.issuer, "CN=customer CA");
    assert!(accepted.subject.contains("HSM:hsm-abcdefghijk"), "{}", accepted.subject);

    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let hsm = issue_hsm_certificate_under_cluster(&identity.cluster_key_pem, &signed, "hsm-1", &names).unwrap();
    let mut blocks = hsm.cert_pem.split_inclusive("-----END CERTIFICATE-----\n");
    let (leaf, second) = (blocks.next().unwrap(), blocks.next().unwrap());
    assert_eq!(blocks.next(), None);
    assert_eq!(second, signed, "the chain ends in the customer's certificate as given");
    write(d, "leaf.crt", leaf);
    // openssl takes a version 1 certificate for a CA only when it is
    // self-signed, so it cannot walk this chain; it checks the two steps
    // that hsm-client makes: the cluster certificate against the
    // customer's CA, the leaf's signature with the cluster certificate's key.
    let cluster_cert = openssl(d, &["verify", "-CAfile", "customerCA.crt", "CustomerHsmCertificate.crt"]);
    assert_eq!(cluster_cert, "CustomerHsmCertificate.crt: OK\n");
    assert!(signed_with(d, "leaf.crt", "CustomerHsmCertificate.crt"));
    assert!(!signed_with(d, "leaf.crt", "customerCA.crt"));
    let leaf_text = openssl(d, &["x509", "-in", "leaf.crt", "-noout", "-text"]);
    assert!(leaf_text.contains("Version: 3 (0x2)") && leaf_text.contains("DNS:localhost"), "{leaf_text}");
    // Another CA's certificate is not over the cluster key.
    customer_ca(d, "other", "30");
    let e = issue_hsm_certificate_under_cluster(&identity.cluster_key_pem, &read(d, "other.crt"), "hsm-1", &names);
    assert_eq!(e.unwrap_err().to_string(), "the cluster certificate: not over the cluster key");
}

#[test]
fn each_broken_rule_is_named_with_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let identity = cluster(d);
    let csr = identity.certificates.cluster_csr.clone();
    // Checked at a moment after every certificate below is made (openssl
    // dates them now, to the second; a loaded machine takes seconds to
    // make them all), and well within their validity.
    let now = SystemTime::now() + Duration::from_secs(600);
    customer_ca(d, "customerCA", "3650");
    sign(d, "ClusterCsr.csr", "customerCA", "signed.crt", "3652");
    let (signed, anchor) = (read(d, "signed.crt"), read(d, "customerCA.crt"));
    let check = |signed: &str, anchor: &str, now: SystemTime| {
        verify_signed_cluster_certificate(&csr, signed, anchor, now).unwrap_err().to_string()
    };

    // Another key's CSR, signed by the right CA.
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "x.key",
            "-out",
            "x.csr",
            "-subj",
            "/CN=x",
        ],
    );
    sign(d, "x.csr", "customerCA", "x.crt", "30");
    assert_eq!(
        check(&read(d, "x.crt"), &anchor, now),
        "SignedCert: its public key is not the cluster CSR's; sign the cluster's CSR"
    );
    // Another CA as the anchor.
    customer_ca(d, "stranger", "3650");
    assert!(
        check(&signed, &read(d, "stranger.crt"), now)
            .starts_with("SignedCert: not signed by TrustAnchor: issued by CN=customerCA")
    );
    // An impostor anchor: the right name, another key.
    customer_ca(d, "impostor", "3650");
    openssl(
        d,
        &["req", "-x509", "-key", "impostor.key", "-out", "impostor.crt", "-days", "30", "-subj", "/CN=customerCA"],
    );
    assert_eq!(
        check(&signed, &read(d, "impostor.crt"), now),
        "SignedCert: not signed by TrustAnchor: its signature does not verify with TrustAnchor's key"
    );
    // An intermediate CA is no trust anchor.
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "sub.key",
            "-out",
            "sub.csr",
            "-subj",
            "/CN=sub CA",
        ],
    );
    write(d, "ca.ext", "basicConstraints=critical,CA:TRUE\n");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            "customerCA.crt",
            "-CAkey",
            "customerCA.key",
            "-CAcreateserial",
            "-out",
            "sub.crt",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
        ],
    );
    assert!(
        check(&signed, &read(d, "sub.crt"), now)
            .starts_with("TrustAnchor: not self-signed: issued by CN=customerCA to CN=sub CA")
    );
    // A self-signed certificate that is not a CA.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-key",
            "customerCA.key",
            "-out",
            "leafy.crt",
            "-days",
            "30",
            "-subj",
            "/CN=customerCA",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    assert_eq!(
        check(&signed, &read(d, "leafy.crt"), now),
        "TrustAnchor: not a CA certificate (basicConstraints CA:FALSE)"
    );
    // Out of date: the anchor before it starts; a signed certificate after it ends.
    let before = now - Duration::from_secs(86_400);
    assert!(check(&signed, &anchor, before).starts_with("TrustAnchor: not valid yet: valid from"));
    sign(d, "ClusterCsr.csr", "customerCA", "short.crt", "1");
    let later = now + Duration::from_secs(3 * 86_400);
    assert!(check(&read(d, "short.crt"), &anchor, later).starts_with("SignedCert: expired on"));
    // Not one PEM certificate.
    assert!(check("garbage", &anchor, now).starts_with("SignedCert: not PEM"));
    assert_eq!(
        check(&format!("{signed}{anchor}"), &anchor, now),
        "SignedCert: holds 2 PEM blocks; give exactly one CERTIFICATE"
    );
    assert_eq!(
        check(&signed, &read(d, "customerCA.key"), now),
        "TrustAnchor: holds a PEM PRIVATE KEY, not a CERTIFICATE"
    );
    let mangled = anchor.replace(&anchor[100..140], &"A".repeat(40));
    assert!(check(&signed, &mangled, now).starts_with("TrustAnchor: "), "{}", check(&signed, &mangled, now));
    // And the right pair passes.
    verify_signed_cluster_certificate(&csr, &signed, &anchor, now).unwrap();
}
