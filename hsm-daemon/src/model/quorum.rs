//! Quorum authentication (M of N) and the token-sign strategy behind it and
//! behind MFA: registered RSA keys, quorum values, and the HSM's table of
//! tokens that approvers sign offline.
//!
//! A token is the SHA-256 of a preimage the HSM keeps (`approval_data`: a
//! format byte, the service, this HSM's id, the requester and 32 random
//! bytes). Approvers sign the token as a SHA-256 digest with RSA PKCS#1 v1.5
//! (`openssl pkeyutl -sign -pkeyopt digest:sha256 -in token.bin`), so the
//! HSM checks each signature over the preimage with ring's
//! `RSA_PKCS1_2048_8192_SHA256`. Tokens live [`TOKEN_LIFETIME`], at most
//! [`MAX_TOKENS`] per HSM, are bound to the user who asked for them, and are
//! removed when a call uses them, so an approval cannot be replayed.
//! Signature checks are RSA operations: [`PendingApproval::verify`] runs
//! outside the model's lock, and [`Hsm::spend_approval`](super::Hsm) then
//! re-checks that the token is still there before the gated change.

use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::CryptoRng;

use crate::model::{ModelError, Username};

/// How long a token can be used after it was issued.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Tokens an HSM holds at most (CloudHSM's published limit).
pub const MAX_TOKENS: usize = 1_024;
/// The largest quorum value (CloudHSM: M is 2 to 8; 1 turns quorum off).
pub const MAX_QUORUM: u8 = 8;

/// What a token is for: a quorum service (CloudHSM CLI's `--service`
/// names), or proving possession of a key being registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuorumService {
    /// `user create|delete|change-password|change-mfa` (admins).
    User,
    /// `quorum token-sign set-quorum-value` (admins).
    Quorum,
    /// Cluster-wide settings such as mTLS (admins).
    Cluster,
    /// Key management of a key with a manage quorum value (crypto users).
    KeyManagement,
    /// Key usage of a key with a use quorum value (crypto users).
    KeyUsage,
    /// Registering one's own quorum key (`user change-quorum token-sign
    /// register`): the signed token proves the private key is held.
    Registration,
}

impl QuorumService {
    /// The services with an HSM-wide quorum value, in listing order.
    pub const WITH_VALUES: [QuorumService; 3] = [QuorumService::User, QuorumService::Quorum, QuorumService::Cluster];

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        Ok(match raw {
            "user" => QuorumService::User,
            "quorum" => QuorumService::Quorum,
            "cluster" => QuorumService::Cluster,
            "key-management" => QuorumService::KeyManagement,
            "key-usage" => QuorumService::KeyUsage,
            "registration" => QuorumService::Registration,
            _ => {
                return Err(ModelError::InvalidArgument {
                    field,
                    rule: "must be user, quorum, cluster, key-management, key-usage or registration".into(),
                });
            }
        })
    }

    /// Whether admins (rather than crypto users) use it.
    pub fn is_admin_service(self) -> bool {
        matches!(self, QuorumService::User | QuorumService::Quorum | QuorumService::Cluster)
    }

    fn code(self) -> u8 {
        match self {
            QuorumService::User => 1,
            QuorumService::Quorum => 2,
            QuorumService::Cluster => 3,
            QuorumService::KeyManagement => 4,
            QuorumService::KeyUsage => 5,
            QuorumService::Registration => 6,
        }
    }
}

impl fmt::Display for QuorumService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuorumService::User => "user",
            QuorumService::Quorum => "quorum",
            QuorumService::Cluster => "cluster",
            QuorumService::KeyManagement => "key-management",
            QuorumService::KeyUsage => "key-usage",
            QuorumService::Registration => "registration",
        })
    }
}

/// A quorum value M: 1 (no approval needed) to [`MAX_QUORUM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuorumValue(u8);

impl QuorumValue {
    pub const OFF: QuorumValue = QuorumValue(1);

    pub fn parse(field: &'static str, raw: u32) -> Result<Self, ModelError> {
        match u8::try_from(raw) {
            Ok(v @ 1..=MAX_QUORUM) => Ok(QuorumValue(v)),
            _ => Err(ModelError::InvalidArgument {
                field,
                rule: format!("must be 1 to {MAX_QUORUM} (1 turns quorum off)"),
            }),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// The HSM-wide quorum values (the `user`, `quorum` and `cluster` services).
/// The same on every HSM of a cluster: the client writes them to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumValues {
    pub user: QuorumValue,
    pub quorum: QuorumValue,
    pub cluster: QuorumValue,
}

impl Default for QuorumValues {
    fn default() -> Self {
        QuorumValues { user: QuorumValue::OFF, quorum: QuorumValue::OFF, cluster: QuorumValue::OFF }
    }
}

impl QuorumValues {
    /// The value of an admin service; `None` for services whose values are
    /// per key (or that have none).
    pub fn of(&self, service: QuorumService) -> Option<QuorumValue> {
        match service {
            QuorumService::User => Some(self.user),
            QuorumService::Quorum => Some(self.quorum),
            QuorumService::Cluster => Some(self.cluster),
            QuorumService::KeyManagement | QuorumService::KeyUsage | QuorumService::Registration => None,
        }
    }

    pub(super) fn set(&mut self, service: QuorumService, value: QuorumValue) -> Result<(), ModelError> {
        let slot = match service {
            QuorumService::User => &mut self.user,
            QuorumService::Quorum => &mut self.quorum,
            QuorumService::Cluster => &mut self.cluster,
            other => {
                return Err(ModelError::InvalidArgument {
                    field: "service",
                    rule: format!("{other} has no HSM-wide quorum value; use user, quorum or cluster"),
                });
            }
        };
        *slot = value;
        Ok(())
    }
}

/// A registered RSA public key (quorum approver or MFA), parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct ApproverKey(Arc<ParsedKey>);

#[derive(PartialEq, Eq)]
struct ParsedKey {
    /// SubjectPublicKeyInfo DER: what the store and masked objects keep.
    spki: Vec<u8>,
    /// PKCS#1 `RSAPublicKey` DER: what ring verifies against.
    pkcs1: Vec<u8>,
}

impl ApproverKey {
    /// Parses an RSA public key (SubjectPublicKeyInfo DER) of 2048 to 4096 bits.
    pub fn from_spki(field: &'static str, der: &[u8]) -> Result<Self, ModelError> {
        use rsa::{pkcs1::EncodeRsaPublicKey as _, pkcs8::DecodePublicKey as _, traits::PublicKeyParts as _};
        let invalid = |rule: String| ModelError::InvalidArgument { field, rule };
        let key = rsa::PublicKey::from_public_key_der(der)
            .map_err(|e| invalid(format!("must be an RSA public key (SubjectPublicKeyInfo DER): {e}")))?;
        let bits = key.n().bit_width();
        if !(2048..=4096).contains(&bits) {
            return Err(invalid(format!("an RSA key of {bits} bits; registered keys are 2048 to 4096 bits")));
        }
        let pkcs1 = key.to_pkcs1_der().map_err(|e| invalid(format!("RSA public key: {e}")))?.into_vec();
        Ok(ApproverKey(Arc::new(ParsedKey { spki: der.to_vec(), pkcs1 })))
    }

    pub fn spki(&self) -> &[u8] {
        &self.0.spki
    }

    /// Whether `signature` is this key's RSA PKCS#1 v1.5 SHA-256 signature
    /// of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &self.0.pkcs1)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApproverKey(RSA)")
    }
}

/// A token as clients see it: the SHA-256 of its preimage.
pub type TokenId = [u8; 32];

/// What a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Approvals for a quorum service.
    Quorum(QuorumService),
    /// The second factor of a login by this user.
    MfaLogin,
    /// Registering an MFA key for this user.
    MfaRegistration,
}

/// A token the HSM issued and has not yet seen used.
#[derive(Debug, Clone)]
struct Issued {
    purpose: Purpose,
    /// Who asked for it (for MFA purposes: whose login or key it is).
    username: Username,
    /// What approvers sign the SHA-256 of.
    preimage: Vec<u8>,
    issued: Instant,
}

/// A freshly issued token, as the requester receives it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The SHA-256 of `approval_data`: what approvers sign.
    pub token: TokenId,
    pub approval_data: Vec<u8>,
    pub expires_in: Duration,
}

/// A token as `quorum token-sign list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub username: Username,
    pub service: QuorumService,
    pub approvals_required: u8,
    pub expires_in: Duration,
}

/// The HSM's tokens, in memory only: they live ten minutes, and a restart
/// (like a logout on CloudHSM) leaves the user to generate a new one.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    by_id: BTreeMap<TokenId, Issued>,
}

impl Tokens {
    /// Issues a token. A user holds one token per admin service and per MFA
    /// purpose (a new one replaces the old), any number for key services.
    pub(super) fn issue(
        &mut self,
        purpose: Purpose,
        username: &Username,
        hsm_id: &str,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<IssuedToken, ModelError> {
        self.expire(now);
        let one_per_user = !matches!(purpose, Purpose::Quorum(QuorumService::KeyManagement | QuorumService::KeyUsage));
        if one_per_user {
            self.by_id.retain(|_, t| !(t.purpose == purpose && &t.username == username));
        }
        if self.by_id.len() >= MAX_TOKENS {
            return Err(ModelError::TooManyQuorumTokens { max: MAX_TOKENS });
        }
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let mut preimage = b"hsm-emulator token v1".to_vec();
        let purpose_code = match &purpose {
            Purpose::Quorum(service) => service.code(),
            Purpose::MfaLogin => 0x10,
            Purpose::MfaRegistration => 0x11,
        };
        preimage.push(purpose_code);
        for part in [hsm_id.as_bytes(), username.as_str().as_bytes()] {
            preimage.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
            preimage.extend_from_slice(part);
        }
        preimage.extend_from_slice(&nonce);
        let token = sha256(&preimage);
        self.by_id
            .insert(token, Issued { purpose, username: username.clone(), preimage: preimage.clone(), issued: now });
        Ok(IssuedToken { token, approval_data: preimage, expires_in: TOKEN_LIFETIME })
    }

    /// The live token `id` issued to `username` for `purpose`, as the
    /// preimage its signatures cover.
    pub(super) fn find(
        &mut self,
        id: &TokenId,
        purpose: &Purpose,
        username: &Username,
        now: Instant,
    ) -> Result<Vec<u8>, ModelError> {
        self.expire(now);
        let issued = self.by_id.get(id).ok_or(ModelError::QuorumTokenUnknown)?;
        if &issued.purpose != purpose {
            let what = |p: &Purpose| match p {
                Purpose::Quorum(s) => format!("the {s} service"),
                Purpose::MfaLogin => "an MFA login".into(),
                Purpose::MfaRegistration => "an MFA registration".into(),
            };
            return Err(ModelError::QuorumTokenMismatch {
                rule: format!("the token is for {}, not {}", what(&issued.purpose), what(purpose)),
            });
        }
        if &issued.username != username {
            return Err(ModelError::QuorumTokenMismatch {
                rule: format!("the token was issued to '{}', not to '{username}'", issued.username),
            });
        }
        Ok(issued.preimage.clone())
    }

    /// Whether `id` is a live token.
    pub(super) fn is_live(&mut self, id: &TokenId, now: Instant) -> bool {
        self.expire(now);
        self.by_id.contains_key(id)
    }

    pub(super) fn remove(&mut self, id: &TokenId) -> bool {
        self.by_id.remove(id).is_some()
    }

    /// Quorum tokens (not MFA challenges), oldest first.
    pub(super) fn list(&mut self, now: Instant, required: impl Fn(QuorumService) -> u8) -> Vec<TokenView> {
        self.expire(now);
        let mut views: Vec<(Instant, TokenView)> = self
            .by_id
            .values()
            .filter_map(|t| match t.purpose {
                Purpose::Quorum(service) => Some((
                    t.issued,
                    TokenView {
                        username: t.username.clone(),
                        service,
                        approvals_required: required(service),
                        expires_in: TOKEN_LIFETIME.saturating_sub(now.saturating_duration_since(t.issued)),
                    },
                )),
                Purpose::MfaLogin | Purpose::MfaRegistration => None,
            })
            .collect();
        views.sort_by_key(|(issued, _)| *issued);
        views.into_iter().map(|(_, v)| v).collect()
    }

    /// Removes quorum tokens: `username`'s, or everyone's when `None`.
    pub(super) fn delete(&mut self, username: Option<&Username>) -> usize {
        let before = self.by_id.len();
        self.by_id.retain(|_, t| {
            matches!(t.purpose, Purpose::MfaLogin | Purpose::MfaRegistration)
                || username.is_some_and(|u| &t.username != u)
        });
        before - self.by_id.len()
    }

    fn expire(&mut self, now: Instant) {
        self.by_id.retain(|_, t| now.saturating_duration_since(t.issued) < TOKEN_LIFETIME);
    }
}

/// A quorum approval as presented with a gated call: the token and each
/// approver's signature of it.
#[derive(Debug, Clone)]
pub struct Approval {
    pub token: TokenId,
    pub signatures: Vec<(Username, Vec<u8>)>,
}

/// An approval whose token and approvers the model found; its signatures
/// are checked next, outside the model's lock.
#[derive(Debug)]
pub struct PendingApproval {
    pub(super) token: TokenId,
    pub(super) service: QuorumService,
    pub(super) preimage: Vec<u8>,
    pub(super) required: u8,
    /// Each distinct approver's registered key and signature.
    pub(super) signers: Vec<(Username, ApproverKey, Vec<u8>)>,
}

/// An approval with at least the required number of distinct registered
/// approvers' valid signatures.
#[derive(Debug)]
pub struct VerifiedApproval {
    pub(super) token: TokenId,
    pub(super) service: QuorumService,
    pub(super) approvers: u8,
}

impl PendingApproval {
    /// Checks every signature: one that does not verify refuses the
    /// approval (it names the approver, never the signature).
    pub fn verify(self) -> Result<VerifiedApproval, ModelError> {
        for (username, key, signature) in &self.signers {
            if !key.verifies(&self.preimage, signature) {
                return Err(ModelError::QuorumSignature {
                    rule: format!("the signature by '{username}' does not verify with their registered quorum key"),
                });
            }
        }
        let approvers = u8::try_from(self.signers.len()).unwrap_or(u8::MAX);
        if approvers < self.required {
            return Err(ModelError::QuorumNotMet { approvers, required: self.required });
        }
        Ok(VerifiedApproval { token: self.token, service: self.service, approvers })
    }
}

pub(super) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn user(name: &str) -> Username {
        Username::parse("username", name).unwrap()
    }

    #[test]
    fn services_and_values_parse_with_the_field_and_rule() {
        assert_eq!(QuorumService::parse("service", "key-usage").unwrap(), QuorumService::KeyUsage);
        assert!(QuorumService::parse("service", "users").unwrap_err().to_string().starts_with("invalid service: "));
        assert_eq!(QuorumValue::parse("value", 8).unwrap().get(), 8);
        for bad in [0, 9, 300] {
            assert_eq!(
                QuorumValue::parse("value", bad).unwrap_err().to_string(),
                "invalid value: must be 1 to 8 (1 turns quorum off)"
            );
        }
    }

    #[test]
    fn tokens_expire_are_bound_to_their_user_and_purpose_and_are_bounded() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut tokens = Tokens::default();
        let t0 = Instant::now();
        let (alice, bob) = (user("alice"), user("bob"));
        let purpose = Purpose::Quorum(QuorumService::User);
        let issued = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
        assert_eq!(issued.token, sha256(&issued.approval_data));
        assert!(tokens.find(&issued.token, &purpose, &alice, t0).is_ok());
        assert!(matches!(tokens.find(&issued.token, &purpose, &bob, t0), Err(ModelError::QuorumTokenMismatch { .. })));
        assert!(matches!(
            tokens.find(&issued.token, &Purpose::Quorum(QuorumService::Quorum), &alice, t0),
            Err(ModelError::QuorumTokenMismatch { .. })
        ));
        let late = t0 + TOKEN_LIFETIME;
        assert_eq!(tokens.find(&issued.token, &purpose, &alice, late), Err(ModelError::QuorumTokenUnknown));

        // One admin-service token per user; key-service tokens add up to the cap.
        let a = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
        let b = tokens.issue(purpose.clone(), &alice, "hsm-a", t0, &mut rng).unwrap();
        assert_eq!(tokens.find(&a.token, &purpose, &alice, t0), Err(ModelError::QuorumTokenUnknown));
        assert!(tokens.find(&b.token, &purpose, &alice, t0).is_ok());
        let usage = Purpose::Quorum(QuorumService::KeyUsage);
        for _ in 1..MAX_TOKENS {
            tokens.issue(usage.clone(), &bob, "hsm-a", t0, &mut rng).unwrap();
        }
        assert_eq!(
            tokens.issue(usage.clone(), &bob, "hsm-a", t0, &mut rng).unwrap_err(),
            ModelError::TooManyQuorumTokens { max: MAX_TOKENS }
        );
        // Expired ones make room.
        assert!(tokens.issue(usage, &bob, "hsm-a", late, &mut rng).is_ok());
        assert_eq!(tokens.list(late, |_| 2).len(), 1);
    }
}
