//! The curves the HSM offers: CloudHSM's names, the DER OIDs PKCS#11's
//! `CKA_EC_PARAMS` carries, and Ed25519's two spellings.

/// CKA_EC_PARAMS of Ed25519: the OID 1.3.101.112, or the printable string
/// `edwards25519` that PKCS#11 v3 also allows.
pub(super) const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

pub(super) const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// A curve the HSM offers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Curve {
    /// CloudHSM's name.
    pub(super) name: &'static str,
    /// The named curve's OID, DER-encoded: CKA_EC_PARAMS.
    pub(super) oid_der: &'static [u8],
    pub(super) field_bytes: usize,
}

pub(super) const CURVES: [Curve; 5] = [
    Curve { name: "secp224r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21], field_bytes: 28 },
    Curve {
        name: "secp256r1",
        oid_der: &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        field_bytes: 32,
    },
    Curve { name: "secp384r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], field_bytes: 48 },
    Curve { name: "secp521r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23], field_bytes: 66 },
    Curve { name: "secp256k1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a], field_bytes: 32 },
];

pub(super) fn curve(name: &str) -> Option<Curve> {
    CURVES.into_iter().find(|c| c.name == name)
}

pub(super) fn curve_of_oid(der: &[u8]) -> Option<Curve> {
    CURVES.into_iter().find(|c| c.oid_der == der)
}
