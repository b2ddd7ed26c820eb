//! [`KeyMaterial`]: generation, PEM/DER import and export, attributes and
//! check values.
//!
//! A key is parsed once, when it is made or imported, into every form the
//! mechanisms use (ring's key pairs beside the RustCrypto keys, and the DER
//! encodings that attributes and check values read), so that repeated
//! operations parse nothing. ed25519-dalek's forms of an Ed25519 key, which
//! only Ed25519ph uses, are made on its first use and then kept.
//!
//! # Layout
//! - `forms`: the parsed forms of RSA and Ed25519 keys (EC keys' are in
//!   `ec.rs`), each made once with its encodings.
//! - `generate`: generating keys, and the rules generation and import
//!   share (sizes, exponents, triple DES parts).
//! - `encoding`: import from PEM, DER and raw bytes; export for wrapping
//!   and as PEM; the stored encoding and its inverse.
//! - `attributes`: what the HSM shows of a key (lengths, modulus, point,
//!   check value).
//!
//! Here: [`Key`], the parsed forms of one key, parsed lazily for stored
//! material, and the accessors the mechanisms use.

mod attributes;
mod encoding;
mod forms;
mod generate;

use pkcs8::ObjectIdentifier;

use super::ec::{self, EcPrivate, EcPublic};
use super::{CryptoError, KeyClass, KeyKind, KeyMaterial, SecretBytes};

pub(super) use self::forms::{Ed25519Private, Ed25519Public, RsaPrivate, RsaPublic};

/// id-Ed25519 (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// RSA moduli the HSM generates and accepts, in bits.
const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;

/// Triple DES keys: three 8-byte DES keys (keying option 1 of SP 800-67).
pub(super) const DES3_KEY_LEN: usize = 24;

/// The parsed forms of one key.
pub(super) enum Key {
    Aes(SecretBytes),
    GenericSecret(SecretBytes),
    Des3(SecretBytes),
    RsaPrivate(Box<RsaPrivate>),
    RsaPublic(Box<RsaPublic>),
    EcPrivate(Box<EcPrivate>),
    EcPublic(Box<EcPublic>),
    Ed25519Private(Box<Ed25519Private>),
    Ed25519Public(Box<Ed25519Public>),
}

/// A stored encoding that does not parse: it was authenticated when it was
/// unsealed, so the store was written by a build that encoded it wrongly.
fn unparsable() -> CryptoError {
    invalid_key("the stored key material does not parse")
}

fn invalid_key(what: impl std::fmt::Display) -> CryptoError {
    CryptoError::InvalidKey(what.to_string())
}

impl Key {
    fn kind(&self) -> KeyKind {
        match self {
            Key::Aes(_) => KeyKind::Aes,
            Key::GenericSecret(_) => KeyKind::GenericSecret,
            Key::Des3(_) => KeyKind::Des3,
            Key::RsaPrivate(_) | Key::RsaPublic(_) => KeyKind::Rsa,
            Key::EcPrivate(k) => KeyKind::Ec(k.curve()),
            Key::EcPublic(k) => KeyKind::Ec(k.curve()),
            Key::Ed25519Private(_) | Key::Ed25519Public(_) => KeyKind::Ed25519,
        }
    }

    fn class(&self) -> KeyClass {
        match self {
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => KeyClass::Secret,
            Key::RsaPrivate(_) | Key::EcPrivate(_) | Key::Ed25519Private(_) => KeyClass::Private,
            Key::RsaPublic(_) | Key::EcPublic(_) | Key::Ed25519Public(_) => KeyClass::Public,
        }
    }

    /// The bytes of a secret key.
    fn secret(&self) -> Option<&[u8]> {
        match self {
            Key::Aes(bytes) | Key::GenericSecret(bytes) | Key::Des3(bytes) => Some(bytes),
            Key::RsaPrivate(_)
            | Key::RsaPublic(_)
            | Key::EcPrivate(_)
            | Key::EcPublic(_)
            | Key::Ed25519Private(_)
            | Key::Ed25519Public(_) => None,
        }
    }

    /// An RSA key's private form (if it is private) and public form.
    fn rsa(&self) -> Option<(Option<&RsaPrivate>, &RsaPublic)> {
        match self {
            Key::RsaPrivate(k) => Some((Some(k), &k.public)),
            Key::RsaPublic(k) => Some((None, k)),
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => None,
            Key::EcPrivate(_) | Key::EcPublic(_) | Key::Ed25519Private(_) | Key::Ed25519Public(_) => None,
        }
    }

    /// An EC key's private form (if it is private) and public form.
    fn ec(&self) -> Option<(Option<&EcPrivate>, &EcPublic)> {
        match self {
            Key::EcPrivate(k) => Some((Some(k), &k.public)),
            Key::EcPublic(k) => Some((None, k)),
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => None,
            Key::RsaPrivate(_) | Key::RsaPublic(_) | Key::Ed25519Private(_) | Key::Ed25519Public(_) => None,
        }
    }

    /// An Ed25519 key's private form (if it is private) and public form.
    fn ed25519(&self) -> Option<(Option<&Ed25519Private>, &Ed25519Public)> {
        match self {
            Key::Ed25519Private(k) => Some((Some(k), &k.public)),
            Key::Ed25519Public(k) => Some((None, k)),
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => None,
            Key::RsaPrivate(_) | Key::RsaPublic(_) | Key::EcPrivate(_) | Key::EcPublic(_) => None,
        }
    }
}

impl From<Key> for KeyMaterial {
    fn from(inner: Key) -> Self {
        KeyMaterial {
            kind: inner.kind(),
            class: inner.class(),
            encoded: None,
            parsed: std::sync::OnceLock::from(Some(inner)),
        }
    }
}

impl KeyMaterial {
    /// Material from the store: `bytes` (what [`Self::to_wrappable`] gave,
    /// authenticated when it was unsealed) of a key of `kind` and `class`,
    /// parsed on first use rather than now (see [`KeyMaterial`]).
    pub fn stored(kind: KeyKind, class: KeyClass, bytes: SecretBytes) -> Self {
        KeyMaterial { kind, class, encoded: Some(bytes), parsed: std::sync::OnceLock::new() }
    }

    /// The parsed forms, parsing a stored encoding the first time.
    fn inner(&self) -> Option<&Key> {
        self.parsed
            .get_or_init(|| {
                let encoded = self.encoded.as_deref()?;
                Self::from_wrappable(self.kind, self.class, encoded).ok()?.parsed.into_inner().flatten()
            })
            .as_ref()
    }

    /// Whether the parsed forms exist yet (tests of lazy parsing).
    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// AES, triple DES or generic-secret bytes.
    pub(super) fn secret_bytes(&self) -> Option<&[u8]> {
        self.inner()?.secret()
    }

    /// AES key bytes.
    pub(super) fn aes_bytes(&self) -> Option<&[u8]> {
        self.secret_bytes().filter(|_| self.kind == KeyKind::Aes)
    }

    /// Triple DES key bytes.
    pub(super) fn des3_bytes(&self) -> Option<&[u8]> {
        self.secret_bytes().filter(|_| self.kind == KeyKind::Des3)
    }

    pub(super) fn rsa_private(&self) -> Option<&RsaPrivate> {
        self.inner()?.rsa()?.0
    }

    /// An RSA public key, or a private key's public half.
    pub(super) fn rsa_public(&self) -> Option<&RsaPublic> {
        Some(self.inner()?.rsa()?.1)
    }

    pub(super) fn ec_private(&self) -> Option<&EcPrivate> {
        self.inner()?.ec()?.0
    }

    /// An EC public key, or a private key's public half.
    pub(super) fn ec_public(&self) -> Option<&EcPublic> {
        Some(self.inner()?.ec()?.1)
    }

    pub(super) fn ed25519_private(&self) -> Option<&Ed25519Private> {
        self.inner()?.ed25519()?.0
    }

    /// An Ed25519 public key, or a private key's public half.
    pub(super) fn ed25519_public(&self) -> Option<&Ed25519Public> {
        Some(self.inner()?.ed25519()?.1)
    }

    /// SPKI DER of an asymmetric key (a private key's public half).
    fn spki_der(&self) -> Option<&[u8]> {
        match self.inner()? {
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => None,
            Key::RsaPrivate(k) => Some(&k.public.spki_der),
            Key::RsaPublic(k) => Some(&k.spki_der),
            Key::EcPrivate(k) => Some(&k.public.spki_der),
            Key::EcPublic(k) => Some(&k.spki_der),
            Key::Ed25519Private(k) => Some(&k.public.spki_der),
            Key::Ed25519Public(k) => Some(&k.spki_der),
        }
    }

    /// "AES", "RSA private", "EC P-256 public"...: for error messages.
    pub(super) fn describe(&self) -> String {
        match self.class() {
            KeyClass::Secret => kind_name(self.kind()).to_owned(),
            KeyClass::Private => format!("{} private", kind_name(self.kind())),
            KeyClass::Public => format!("{} public", kind_name(self.kind())),
        }
    }
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Aes => "AES",
        KeyKind::GenericSecret => "generic secret",
        KeyKind::Des3 => "triple DES",
        KeyKind::Rsa => "RSA",
        KeyKind::Ec(curve) => ec::curve_name(curve),
        KeyKind::Ed25519 => "Ed25519",
    }
}
