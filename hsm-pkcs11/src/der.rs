//! The few DER structures the library writes: CKA_EC_POINT's OCTET STRING,
//! and the key encodings `C_CreateObject` hands the HSM's import (SPKI,
//! PKCS#1, SEC1, PKCS#8), made from PKCS#11's attribute values.
//!
//! Each is a fixed shape of SEQUENCEs, INTEGERs and strings around the
//! caller's bytes; the HSM parses the result with the RustCrypto crates and
//! refuses, naming the encoding, anything that is not a valid key.

use base64::Engine as _;
use zeroize::Zeroizing;

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const SEQUENCE: u8 = 0x30;
/// `[0]`, constructed: SEC1's curve parameters.
const CONTEXT_0: u8 = 0xa0;

/// id-ecPublicKey (1.2.840.10045.2.1).
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-Ed25519 (1.3.101.112).
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// One tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 6));
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = len.to_be_bytes();
        let first = be.iter().position(|b| *b != 0).unwrap_or(be.len() - 1);
        out.push(0x80 | (be.len() - first) as u8);
        out.extend_from_slice(&be[first..]);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    tlv(SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from big-endian bytes.
fn unsigned(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let digits = &bytes[bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len())..];
    let mut content = Zeroizing::new(Vec::with_capacity(digits.len() + 1));
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(INTEGER, &content)
}

/// A DER OCTET STRING holding `bytes`: CKA_EC_POINT's encoding.
pub(crate) fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, bytes).to_vec()
}

/// The content of a DER OCTET STRING that is all of `der`, if it is one.
pub(crate) fn octet_string_content(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if tag != OCTET_STRING {
        return None;
    }
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        let (digits, rest) = (rest.get(..n)?, rest.get(n..)?);
        (digits.iter().fold(0usize, |acc, b| acc.saturating_mul(256) | usize::from(*b)), rest)
    };
    (rest.len() == len).then_some(rest)
}

/// A SubjectPublicKeyInfo: an EC point on the curve of `curve_oid`, or
/// (`None`) an Ed25519 key.
pub(crate) fn spki(curve_oid: Option<&[u8]>, key: &[u8]) -> Zeroizing<Vec<u8>> {
    let algorithm = match curve_oid {
        Some(oid) => sequence(&[EC_PUBLIC_KEY, oid]),
        None => sequence(&[ED25519]),
    };
    let bits = tlv(BIT_STRING, &[&[0u8][..], key].concat());
    sequence(&[&algorithm, &bits])
}

/// PKCS#1's RSAPublicKey (modulus, exponent) or RSAPrivateKey (version
/// and eight numbers): a SEQUENCE of INTEGERs.
pub(crate) fn rsa_key(numbers: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let integers: Vec<Zeroizing<Vec<u8>>> = numbers.iter().map(|n| unsigned(n)).collect();
    let parts: Vec<&[u8]> = integers.iter().map(|i| i.as_slice()).collect();
    sequence(&parts)
}

/// SEC1's ECPrivateKey with the named curve.
pub(crate) fn ec_private(curve_oid: &[u8], scalar: &[u8]) -> Zeroizing<Vec<u8>> {
    sequence(&[&unsigned(&[1]), &tlv(OCTET_STRING, scalar), &tlv(CONTEXT_0, curve_oid)])
}

/// PKCS#8 of an Ed25519 private key (RFC 8410): its 32-byte seed.
pub(crate) fn ed25519_private(seed: &[u8]) -> Zeroizing<Vec<u8>> {
    sequence(&[&unsigned(&[0]), &sequence(&[ED25519]), &tlv(OCTET_STRING, &tlv(OCTET_STRING, seed))])
}

/// `der` as PEM with `label`.
pub(crate) fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(&unsigned(&[0, 0, 1, 0, 1])[..], &[INTEGER, 3, 1, 0, 1]);
        assert_eq!(&unsigned(&[0x80])[..], &[INTEGER, 2, 0, 0x80]);
        assert_eq!(&unsigned(&[])[..], &[INTEGER, 1, 0]);
    }

    #[test]
    fn octet_strings_round_trip_in_both_length_forms() {
        for n in [0, 65, 127, 128, 300] {
            let bytes = vec![4; n];
            assert_eq!(octet_string_content(&octet_string(&bytes)), Some(&bytes[..]), "{n}");
        }
        let long = octet_string(&[4; 133]);
        assert_eq!(&long[..3], &[0x04, 0x81, 133]);
        // A raw uncompressed point is not an OCTET STRING of itself.
        let mut raw = vec![0x04; 65];
        raw[1] = 0x41;
        assert_eq!(octet_string_content(&raw), None);
    }

    #[test]
    fn an_ed25519_spki_is_rfc_8410s() {
        // RFC 8410, section 10.1: the example public key's SPKI.
        let key = hex::decode("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1").unwrap();
        let want =
            hex::decode("302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
                .unwrap();
        assert_eq!(&spki(None, &key)[..], &want[..]);
    }

    #[test]
    fn pem_wraps_at_64() {
        let text = pem("PUBLIC KEY", &[0; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END PUBLIC KEY-----"));
    }
}
