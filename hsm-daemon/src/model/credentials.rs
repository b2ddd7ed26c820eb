//! Usernames, passwords and password hashes, parsed once at the boundary.
//!
//! Passwords live in [`Password`], which zeroizes its buffer on drop and never
//! prints itself. They are stored only as Argon2id PHC strings with a random
//! salt; the cost is configurable ([`KdfParams`]) so that test suites can make
//! it cheap, and each hash records its own parameters, so hashes made under an
//! older cost still verify.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version, password_hash::SaltString};
use rand::CryptoRng;
use zeroize::Zeroizing;

use crate::model::ModelError;

/// A username: 1 to 31 ASCII letters, digits or underscores, case-insensitive
/// and kept in lower case. Shared, not copied: every key names its owner, and
/// a million keys of one owner hold one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(std::sync::Arc<str>);

impl Username {
    pub const MAX_LEN: usize = 31;

    /// Parses a username, naming `field` in the error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        let invalid = |rule: String| ModelError::InvalidArgument { field, rule };
        if raw.is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(invalid(format!("must be at most {} characters", Self::MAX_LEN)));
        }
        if let Some(bad) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            return Err(invalid(format!("may hold only letters, digits and '_' (found {bad:?})")));
        }
        Ok(Username(raw.to_ascii_lowercase().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client's name for one user creation, sent with every attempt of it.
/// A repeated attempt that carries the token the user was created with is
/// that same creation finishing (its first answer was lost), and changes
/// nothing; any other create of an existing user is refused. So a retry can
/// complete the create it started and never overwrite someone's credentials.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CreateToken([u8; CreateToken::LEN]);

impl CreateToken {
    pub const LEN: usize = 16;

    /// An empty field is no token (a create that is not retried).
    pub fn parse(field: &'static str, raw: &[u8]) -> Result<Option<Self>, ModelError> {
        if raw.is_empty() {
            return Ok(None);
        }
        let bytes = <[u8; Self::LEN]>::try_from(raw).map_err(|_| ModelError::InvalidArgument {
            field,
            rule: format!("must be empty or {} bytes, not {}", Self::LEN, raw.len()),
        })?;
        Ok(Some(CreateToken(bytes)))
    }

    /// Compared in constant time: the token is the only proof that an
    /// attempt belongs to the creation.
    pub fn matches(&self, other: &CreateToken) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl fmt::Debug for CreateToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CreateToken(..)")
    }
}

/// A password in clear, held only as long as it takes to hash or verify it.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub const MIN_LEN: usize = 7;
    pub const MAX_LEN: usize = 32;

    /// Parses a password: 7 to 32 characters, no control characters. The
    /// error names `field` and the rule, never the password.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        let invalid = |rule: &str| ModelError::InvalidArgument { field, rule: rule.to_owned() };
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(invalid("must be 7 to 32 characters long"));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Password(Zeroizing::new(raw.to_owned())))
    }

    /// The password a new cluster's precrypto officer starts with, as CloudHSM
    /// documents it.
    pub fn default_preco() -> Self {
        Password(Zeroizing::new("password".to_owned()))
    }

    /// A random password of `len` characters for cluster secrets such as the
    /// appliance user's.
    pub fn random(rng: &mut impl CryptoRng, len: usize) -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let s = (0..len).map(|_| ALPHABET[rng.next_u32() as usize % ALPHABET.len()] as char).collect();
        Password(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hashes the password with Argon2id under `params` and a fresh salt.
    /// Costly by design: call it off the async workers.
    pub fn hash(&self, params: &KdfParams, rng: &mut impl CryptoRng) -> Result<PasswordHash, ModelError> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| ModelError::Internal(format!("salt: {e}")))?;
        let phc = argon2::PasswordHasher::hash_password(&params.argon2(), self.0.as_bytes(), &salt)
            .map_err(|e| ModelError::Internal(format!("password hashing: {e}")))?;
        Ok(PasswordHash(phc.to_string()))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A stored password: an Argon2 PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Checks `password` against the hash in constant time (argon2 compares
    /// the outputs with `subtle`). Costly by design.
    pub fn verify(&self, password: &Password) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(&self.0) else {
            return false;
        };
        argon2::PasswordVerifier::verify_password(&Argon2::default(), password.0.as_bytes(), &parsed).is_ok()
    }

    /// Takes a PHC string read back from storage.
    pub fn from_phc(phc: String) -> Result<Self, ModelError> {
        argon2::PasswordHash::new(&phc).map_err(|e| ModelError::InvalidArgument {
            field: "password_hash",
            rule: format!("must be an Argon2 PHC string ({e})"),
        })?;
        Ok(PasswordHash(phc))
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// The Argon2id cost of new password hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id floor: 19 MiB, 2 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 19_456, iterations: 2, parallelism: 1 };

    /// The cheapest cost Argon2 allows, for test suites only.
    pub const TESTING: KdfParams = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };

    /// Checks a cost against Argon2's limits.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, ModelError> {
        Params::new(memory_kib, iterations, parallelism, None).map_err(|e| ModelError::InvalidArgument {
            field: "kdf",
            rule: format!("memory {memory_kib} KiB, {iterations} iterations, {parallelism} lanes: {e}"),
        })?;
        Ok(KdfParams { memory_kib, iterations, parallelism })
    }

    fn argon2(&self) -> Argon2<'static> {
        // The parameters were checked in `new` (or are the constants above,
        // which the tests check), so `Params::new` cannot fail here; fall back
        // to Argon2's defaults rather than panic if that ever changes.
        let params =
            Params::new(self.memory_kib, self.iterations, self.parallelism, None).unwrap_or_else(|_| Params::default());
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn usernames_follow_cloudhsm_rules() {
        assert_eq!(Username::parse("username", "Alice_01").unwrap().as_str(), "alice_01");
        assert_eq!(Username::parse("username", &"a".repeat(31)).unwrap().as_str().len(), 31);
        for bad in ["", "a-b", "al ice", "ü", &"a".repeat(32)] {
            let err = Username::parse("username", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid username: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn passwords_follow_the_length_rule_and_never_print() {
        assert!(Password::parse("password", "1234567").is_ok());
        assert!(Password::parse("password", &"x".repeat(32)).is_ok());
        for bad in ["", "123456", &"x".repeat(33), "abc\ndefgh"] {
            let err = Password::parse("password", bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid password: "), "{err}");
            assert!(bad.is_empty() || !err.to_string().contains(bad));
        }
        let p = Password::parse("password", "sekrit-value").unwrap();
        assert!(!format!("{p:?}").contains("sekrit"));
    }

    #[test]
    fn hashes_verify_only_the_right_password_and_are_salted() {
        let mut rng = StdRng::seed_from_u64(7);
        let p = Password::parse("password", "correct horse").unwrap();
        let h1 = p.hash(&KdfParams::TESTING, &mut rng).unwrap();
        let h2 = p.hash(&KdfParams::TESTING, &mut rng).unwrap();
        assert_ne!(h1, h2, "fresh salt per hash");
        assert!(h1.as_phc().starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{}", h1.as_phc());
        assert!(h1.verify(&p));
        assert!(!h1.verify(&Password::parse("password", "wrong horse").unwrap()));
        assert!(!format!("{h1:?}").contains("argon2"));
    }

    #[test]
    fn kdf_constants_are_valid_and_bad_costs_are_refused() {
        for k in [KdfParams::DEFAULT, KdfParams::TESTING] {
            assert_eq!(KdfParams::new(k.memory_kib, k.iterations, k.parallelism).unwrap(), k);
        }
        assert!(KdfParams::new(1, 1, 1).unwrap_err().to_string().starts_with("invalid kdf"));
        assert!(KdfParams::new(64, 0, 1).is_err());
    }
}
