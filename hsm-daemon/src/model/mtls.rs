//! Client mTLS policy: the trust anchors admins register and the enforcement
//! level (CloudHSM CLI `cluster mtls ...`).
//!
//! The model keeps the policy as data (certificates as DER, a level) and its
//! rules: at most [`MAX_TRUST_ANCHORS`] anchors, each a CA certificate with a
//! key type CloudHSM accepts; the level is set only over a connection whose
//! client certificate chains to a registered anchor (the service layer
//! verifies the chain and says so), by whom the permission table says
//! ([`Action::SetMtlsEnforcement`]); the last anchor cannot go while
//! enforcement is on. The TLS listener reads the policy and verifies
//! handshakes against it (`service::trust`). The HSM's mTLS operations are
//! at the end of this file.

use std::{fmt, sync::Arc};

use base64::Engine as _;
use x509_parser::{oid_registry, prelude::FromDer as _, public_key::PublicKey};

use crate::model::{Action, Caller, Hsm, ModelError};

/// Trust anchors per cluster, as CloudHSM allows.
pub const MAX_TRUST_ANCHORS: usize = 2;

/// A PEM certificate larger than this is refused before it is parsed.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// Whether connections must present a client certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Enforcement {
    /// Client certificates are optional.
    #[default]
    None,
    /// Every connection must present a client certificate chained to a
    /// registered trust anchor (HSMs of the cluster excepted; see
    /// `service::trust`).
    Cluster,
}

impl Enforcement {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        match raw {
            "none" => Ok(Enforcement::None),
            "cluster" => Ok(Enforcement::Cluster),
            _ => Err(ModelError::InvalidArgument { field, rule: "must be none or cluster".into() }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::None => "none",
            Enforcement::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trust anchor's reference, shown as `0x01`: the slot it holds. Slots
/// are handed out lowest first, so HSMs given the same changes in the same
/// order agree on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnchorRef(u8);

impl AnchorRef {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        let digits = raw.strip_prefix("0x").unwrap_or(raw);
        match u8::from_str_radix(digits, 16) {
            Ok(n) if (1..=MAX_TRUST_ANCHORS).contains(&usize::from(n)) && digits.len() <= 8 => Ok(AnchorRef(n)),
            _ => Err(ModelError::InvalidArgument {
                field,
                rule: format!("must be a trust anchor reference, 0x01 to 0x{MAX_TRUST_ANCHORS:02x}"),
            }),
        }
    }

    /// The slot number (1-based), for the store.
    pub fn value(self) -> u8 {
        self.0
    }

    /// A reference from the store; `None` outside the slots.
    pub fn from_value(n: u8) -> Option<Self> {
        (1..=MAX_TRUST_ANCHORS).contains(&usize::from(n)).then_some(AnchorRef(n))
    }
}

impl fmt::Display for AnchorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

/// A CA certificate fit to be a trust anchor: parsed once, kept as DER.
#[derive(Clone, PartialEq, Eq)]
pub struct AnchorCert(Arc<[u8]>);

impl fmt::Debug for AnchorCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchorCert({} bytes)", self.0.len())
    }
}

impl AnchorCert {
    /// Parses one PEM certificate and checks that it can anchor client
    /// certificates: a CA certificate whose key is EC P-256, P-384 or P-521
    /// or RSA 2048, 3072 or 4096 (the key types CloudHSM accepts).
    pub fn from_pem(field: &'static str, pem: &str) -> Result<Self, ModelError> {
        let invalid = |rule: String| ModelError::InvalidArgument { field, rule };
        if pem.len() > MAX_PEM_BYTES {
            return Err(invalid(format!("a certificate must be at most {MAX_PEM_BYTES} bytes of PEM")));
        }
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|_| invalid("must be one PEM certificate (-----BEGIN CERTIFICATE-----)".into()))?;
        if block.label != "CERTIFICATE" {
            return Err(invalid(format!("must be a PEM CERTIFICATE, not {:?}", truncate(&block.label))));
        }
        Self::from_der(field, &block.contents)
    }

    /// As [`AnchorCert::from_pem`], from DER (the store, cloning).
    pub fn from_der(field: &'static str, der: &[u8]) -> Result<Self, ModelError> {
        let invalid = |rule: &str| ModelError::InvalidArgument { field, rule: rule.to_owned() };
        let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| invalid("the certificate does not parse as X.509"))?;
        if !rest.is_empty() {
            return Err(invalid("the certificate has trailing bytes"));
        }
        let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(invalid("a trust anchor must be a CA certificate (basic constraints CA:TRUE)"));
        }
        let spki = cert.public_key();
        let accepted = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => matches!(rsa.key_size(), 2048 | 3072 | 4096),
            Ok(PublicKey::EC(_)) => spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).is_some_and(|c| {
                c == oid_registry::OID_EC_P256
                    || c == oid_registry::OID_NIST_EC_P384
                    || c == oid_registry::OID_NIST_EC_P521
            }),
            _ => false,
        };
        if !accepted {
            return Err(invalid("the anchor's key must be EC P-256, P-384 or P-521, or RSA 2048, 3072 or 4096 bits"));
        }
        Ok(AnchorCert(der.into()))
    }

    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// The certificate as PEM, 64 characters a line.
    pub fn pem(&self) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(&self.0);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

/// A registered trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub reference: AnchorRef,
    pub cert: AnchorCert,
}

/// The HSM's mTLS policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mtls {
    /// Sorted by reference.
    anchors: Vec<TrustAnchor>,
    enforcement: Enforcement,
}

impl Mtls {
    /// A policy from its stored parts.
    pub fn restore(mut anchors: Vec<TrustAnchor>, enforcement: Enforcement) -> Self {
        anchors.sort_by_key(|a| a.reference);
        Mtls { anchors, enforcement }
    }

    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.anchors
    }

    pub fn enforcement(&self) -> Enforcement {
        self.enforcement
    }

    /// Adds `cert` in the lowest free slot. The same certificate twice is
    /// refused (AlreadyExists) with the reference it holds, so that a client
    /// repairing a partly applied registration can tell.
    pub(crate) fn register(&mut self, cert: AnchorCert) -> Result<TrustAnchor, ModelError> {
        if let Some(existing) = self.anchors.iter().find(|a| a.cert == cert) {
            return Err(ModelError::TrustAnchorExists { reference: existing.reference });
        }
        let free = (1..=MAX_TRUST_ANCHORS)
            .filter_map(|n| AnchorRef::from_value(u8::try_from(n).ok()?))
            .find(|r| self.anchors.iter().all(|a| a.reference != *r))
            .ok_or(ModelError::KeyQuota { what: "mTLS trust anchors", max: MAX_TRUST_ANCHORS })?;
        let anchor = TrustAnchor { reference: free, cert };
        self.anchors.push(anchor.clone());
        self.anchors.sort_by_key(|a| a.reference);
        Ok(anchor)
    }

    /// Removes an anchor; the last one stays while enforcement is on, or
    /// nobody could connect any more.
    pub(crate) fn deregister(&mut self, reference: AnchorRef) -> Result<TrustAnchor, ModelError> {
        let at = self
            .anchors
            .iter()
            .position(|a| a.reference == reference)
            .ok_or(ModelError::TrustAnchorNotFound { reference })?;
        if self.enforcement == Enforcement::Cluster && self.anchors.len() == 1 {
            return Err(ModelError::MtlsPolicy {
                rule: "the last trust anchor cannot be deregistered while mTLS enforcement is cluster; \
                       set the enforcement level to none first"
                    .into(),
            });
        }
        Ok(self.anchors.remove(at))
    }

    pub(crate) fn set_enforcement(&mut self, level: Enforcement) {
        self.enforcement = level;
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(40).collect()
}

impl Hsm {
    /// The client mTLS policy (trust anchors, enforcement level).
    pub fn mtls(&self) -> &Mtls {
        &self.mtls
    }

    /// Registers a client trust anchor (`cluster mtls register-trust-anchor`).
    pub fn register_trust_anchor(&mut self, cert: AnchorCert) -> Result<TrustAnchor, ModelError> {
        let anchor = self.mtls.register(cert)?;
        self.dirty_mtls = true;
        Ok(anchor)
    }

    /// `cluster mtls deregister-trust-anchor`.
    pub fn deregister_trust_anchor(&mut self, reference: AnchorRef) -> Result<TrustAnchor, ModelError> {
        let anchor = self.mtls.deregister(reference)?;
        self.dirty_mtls = true;
        Ok(anchor)
    }

    /// `cluster mtls set-enforcement`: [`Action::SetMtlsEnforcement`] (the
    /// user named `admin`), and only over a connection whose client
    /// certificate chains to a registered trust anchor (`over_anchored_mtls`,
    /// which the service layer verified), so that whoever turns enforcement
    /// on has shown that a client can still get in.
    pub fn set_mtls_enforcement(
        &mut self,
        caller: &Caller,
        level: Enforcement,
        over_anchored_mtls: bool,
    ) -> Result<(), ModelError> {
        if !caller.may(Action::SetMtlsEnforcement) {
            return Err(ModelError::ObjectPermission {
                rule: format!("only {} may set the mTLS enforcement level", Action::SetMtlsEnforcement.allowed()),
            });
        }
        if !over_anchored_mtls {
            return Err(ModelError::ObjectPermission {
                rule: "the mTLS enforcement level can be set only over a connection that presented a client \
                       certificate chained to a registered trust anchor (hsm-cli --client-cert-hsm-tls-file, \
                       --client-key-hsm-tls-file)"
                    .into(),
            });
        }
        if self.mtls.enforcement() != level {
            self.mtls.set_enforcement(level);
            self.dirty_mtls = true;
        }
        Ok(())
    }

    /// Takes a peer's mTLS policy whole (cloning a new HSM, as CloudHSM
    /// clones an HSM's policies): [`Action::ReplaceMtlsPolicy`].
    pub fn replace_mtls(&mut self, caller: &Caller, mtls: Mtls) -> Result<bool, ModelError> {
        if !caller.may(Action::ReplaceMtlsPolicy) {
            return Err(ModelError::ObjectPermission {
                rule: "an HSM's mTLS policy is copied whole only by the appliance user (cloning)".into(),
            });
        }
        if self.mtls == mtls {
            return Ok(false);
        }
        self.mtls = mtls;
        self.dirty_mtls = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str) -> AnchorCert {
        let ca = crate::pki::generate_ca(name).unwrap();
        AnchorCert::from_pem("path", &ca.cert_pem).unwrap()
    }

    #[test]
    fn a_ca_certificate_round_trips_through_pem() {
        let cert = ca("cluster-a");
        assert_eq!(AnchorCert::from_pem("path", &cert.pem()).unwrap(), cert);
    }

    #[test]
    fn leaf_certificates_and_garbage_are_refused_by_field() {
        let ca = crate::pki::generate_ca("cluster-a").unwrap();
        let leaf = crate::pki::issue_client(&ca, "someone").unwrap();
        let e = AnchorCert::from_pem("path", &leaf.cert_pem).unwrap_err().to_string();
        assert!(e.contains("path") && e.contains("CA certificate"), "{e}");
        let e = AnchorCert::from_pem("path", "hello").unwrap_err().to_string();
        assert!(e.contains("PEM"), "{e}");
        let huge = "A".repeat(MAX_PEM_BYTES + 1);
        assert!(AnchorCert::from_pem("path", &huge).unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn at_most_two_anchors_in_the_lowest_free_slots() {
        let mut mtls = Mtls::default();
        let (a, b, c) = (ca("cluster-a"), ca("cluster-b"), ca("cluster-c"));
        assert_eq!(mtls.register(a.clone()).unwrap().reference.to_string(), "0x01");
        assert!(matches!(mtls.register(a), Err(ModelError::TrustAnchorExists { .. })));
        assert_eq!(mtls.register(b).unwrap().reference.to_string(), "0x02");
        let third = mtls.register(c.clone()).unwrap_err();
        assert!(matches!(third, ModelError::KeyQuota { max: 2, .. }), "{third}");
        mtls.deregister(AnchorRef::parse("r", "0x01").unwrap()).unwrap();
        assert_eq!(mtls.register(c).unwrap().reference.to_string(), "0x01");
    }

    #[test]
    fn the_last_anchor_stays_while_enforcement_is_on() {
        let mut mtls = Mtls::default();
        let only = mtls.register(ca("cluster-a")).unwrap().reference;
        mtls.set_enforcement(Enforcement::Cluster);
        assert!(matches!(mtls.deregister(only), Err(ModelError::MtlsPolicy { .. })));
        mtls.set_enforcement(Enforcement::None);
        mtls.deregister(only).unwrap();
        assert!(matches!(mtls.deregister(only), Err(ModelError::TrustAnchorNotFound { .. })));
    }

    #[test]
    fn references_and_levels_parse_strictly() {
        assert_eq!(AnchorRef::parse("r", "0x02").unwrap().value(), 2);
        assert_eq!(AnchorRef::parse("r", "1").unwrap().value(), 1);
        for bad in ["0x03", "0x00", "", "zz", "0x0000000000000001"] {
            assert!(AnchorRef::parse("r", bad).is_err(), "{bad}");
        }
        assert_eq!(Enforcement::parse("level", "cluster").unwrap(), Enforcement::Cluster);
        assert!(Enforcement::parse("level", "Cluster").is_err());
    }
}
