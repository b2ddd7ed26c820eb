//! Reading exactly one PEM block of an expected kind: what CloudHSM's
//! certificate fields hold (one certificate, one CSR), so that a bundle or
//! a stray key is refused by name rather than half used.

use x509_parser::pem::Pem;

/// The DER inside the one `label` block of `text` (`CERTIFICATE`,
/// `CERTIFICATE REQUEST`); the reason it is not that, in words.
pub(super) fn one(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let mut blocks = Vec::new();
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        match block {
            Ok(pem) => blocks.push(pem),
            Err(e) => return Err(format!("not valid PEM ({e})")),
        }
    }
    match blocks.len() {
        0 => Err(format!("not PEM: expected one -----BEGIN {label}----- block")),
        1 => {
            let pem = blocks.remove(0);
            if pem.label == label { Ok(pem.contents) } else { Err(format!("holds a PEM {}, not a {label}", pem.label)) }
        }
        n => Err(format!("holds {n} PEM blocks; give exactly one {label}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_of_the_kind_or_a_reason() {
        let ca = crate::pki::generate_ca("cluster-pem").unwrap();
        assert!(one(&ca.cert_pem, "CERTIFICATE").is_ok());
        let two = format!("{}{}", ca.cert_pem, ca.cert_pem);
        assert_eq!(one(&two, "CERTIFICATE").unwrap_err(), "holds 2 PEM blocks; give exactly one CERTIFICATE");
        assert_eq!(one(&ca.key_pem, "CERTIFICATE").unwrap_err(), "holds a PEM PRIVATE KEY, not a CERTIFICATE");
        assert!(one("hello", "CERTIFICATE").unwrap_err().starts_with("not PEM"));
        assert!(one("", "CERTIFICATE REQUEST").unwrap_err().starts_with("not PEM"));
    }
}
