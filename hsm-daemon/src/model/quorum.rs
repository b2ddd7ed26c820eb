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

/// How every preimage starts; after it come the purpose byte, the HSM id
/// and the username (each a length byte and the bytes) and a 32-byte nonce,
/// so a run of preimages can be cut back into its parts ([`preimages`]).
const PREIMAGE_TAG: &[u8] = b"hsm-emulator token v1";
/// The most preimages one `approval_data` may join (one per HSM).
const MAX_PREIMAGES: usize = 64;

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
        let mut preimage = PREIMAGE_TAG.to_vec();
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

    /// The first of `ids` that is a live token issued to `username` for
    /// `purpose`, with its preimage: how an HSM picks its own token out of
    /// a token file that holds one per HSM. When none is, the error of the
    /// first (unknown when there are none).
    pub(super) fn find_among(
        &mut self,
        ids: &[TokenId],
        purpose: &Purpose,
        username: &Username,
        now: Instant,
    ) -> Result<(TokenId, Vec<u8>), ModelError> {
        let mut first_error = None;
        for id in ids {
            match self.find(id, purpose, username, now) {
                Ok(preimage) => return Ok((*id, preimage)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(ModelError::QuorumTokenUnknown))
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

    /// Removes `username`'s quorum token `id`, if it is theirs.
    pub(super) fn delete_one(&mut self, id: &TokenId, username: &Username) -> bool {
        let theirs =
            self.by_id.get(id).is_some_and(|t| matches!(t.purpose, Purpose::Quorum(_)) && &t.username == username);
        theirs && self.remove(id)
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
    /// `None`: `token` is this HSM's own. `Some`: the CloudHSM CLI's one
    /// token for a cluster, the SHA-256 of every HSM's preimage joined;
    /// this HSM's token is among them, and the signatures cover the whole.
    pub approval_data: Option<Vec<u8>>,
}

impl Approval {
    /// The token ids the approval may stand for on this HSM, and the bytes
    /// its signatures cover if the token is found (`None`: the token's own
    /// preimage).
    pub(super) fn candidates(&self) -> Result<(Vec<TokenId>, Option<&[u8]>), ModelError> {
        match &self.approval_data {
            None => Ok((vec![self.token], None)),
            Some(data) => {
                if sha256(data) != self.token {
                    return Err(ModelError::InvalidArgument {
                        field: "approval.token",
                        rule: "must be the SHA-256 of approval.approval_data".into(),
                    });
                }
                let ids = preimages("approval.approval_data", data)?.into_iter().map(sha256).collect();
                Ok((ids, Some(data)))
            }
        }
    }
}

/// Cuts `data`, preimages joined end to end, back into them.
pub(super) fn preimages<'a>(field: &'static str, data: &'a [u8]) -> Result<Vec<&'a [u8]>, ModelError> {
    let invalid = |rule: &str| ModelError::InvalidArgument { field, rule: rule.into() };
    let mut parts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if parts.len() == MAX_PREIMAGES {
            return Err(invalid(&format!("joins at most {MAX_PREIMAGES} token preimages (one per HSM)")));
        }
        let not_preimages = || invalid("must be token preimages as the HSMs issued them, joined");
        let body = rest.strip_prefix(PREIMAGE_TAG).ok_or_else(not_preimages)?;
        // The purpose byte, then two length-prefixed parts, then the nonce.
        let mut at = 1;
        for _ in 0..2 {
            let len = usize::from(*body.get(at).ok_or_else(not_preimages)?);
            at += 1 + len;
        }
        let len = PREIMAGE_TAG.len() + at + 32;
        if rest.len() < len {
            return Err(not_preimages());
        }
        let (part, tail) = rest.split_at(len);
        parts.push(part);
        rest = tail;
    }
    if parts.is_empty() {
        return Err(invalid("must hold at least one token preimage"));
    }
    Ok(parts)
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

/// Fixed RSA keys for the tests of the model and the store.
#[cfg(test)]
pub(crate) mod fixtures {
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

    use super::ApproverKey;

    /// A fixed RSA key (PKCS#1 DER in hex; tests only): signs as `openssl pkeyutl -sign -pkeyopt
    /// digest:sha256` of a token does, i.e. over the token's preimage.
    pub(crate) struct Signer {
        pair: RsaKeyPair,
        spki: Vec<u8>,
    }

    impl Signer {
        pub(crate) fn new(parts: &[&str]) -> Self {
            use rsa::{pkcs1::DecodeRsaPrivateKey as _, pkcs8::EncodePublicKey as _};
            let der = hex::decode(parts.concat()).unwrap();
            let spki = rsa::PrivateKey::from_pkcs1_der(&der).unwrap().to_public_key().to_public_key_der().unwrap();
            Signer { pair: RsaKeyPair::from_der(&der).unwrap(), spki: spki.into_vec() }
        }

        pub(crate) fn key(&self) -> ApproverKey {
            ApproverKey::from_spki("public_key", &self.spki).unwrap()
        }

        pub(crate) fn sign(&self, preimage: &[u8]) -> Vec<u8> {
            let mut signature = vec![0; self.pair.public().modulus_len()];
            self.pair.sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), preimage, &mut signature).unwrap();
            signature
        }
    }

    pub(crate) const KEY_1: &[&str] = &[
        "308204a20201000282010100be87bf7c4b337c07c844a44a1b17b3f2c1a214b78bdb31b2601c7950524ece37eb7de0c1",
        "16f0cc29b3a65152d4296acb2063e6359a8431f23053d20bcd5297cd192adf58770e3eccb1c41139bcf5e123063fb6cd",
        "54cd34800df57b3f761421f1cde73d2ceae1acc87acf264fbc984774344f65148d1234d0e46e4bcffdc92eb829162f91",
        "38a36641737672ecf1bf511ec703d6421b7faf9dc405a6c9ac0e5a272e6a7aacb2a6efd9d30e7744d5082efab1cb4940",
        "fc195fb0a3de94cce3ca772978b1135627dd653be621271bc7ec94981394e69b81bdead7316b4a002b0d268dbd3db60c",
        "b9e5d4c5d7b5303b43f82faf2033506916d7897125565b9755c67211020301000102820100113d23b9dc42abede1a9e1",
        "9a2ee4b077137155cc86f9432ada2aaeb3476f32960eac3f575925afb89f8a39d61e5f77a12a02154489017daa106dff",
        "c03f9dec76e0831232e53ac3108439083ca02338713c7c814eb2108b0d2c60d1fb9b9f1609d47bcaa6336e4dd2d481c4",
        "fbf69abf4452adfda84eb1f4ae132d039658665e8a9fc7a311fcf145a0723986e32ca2725bfaf79766a9b3df88615783",
        "325585b430809a478d618d36abcaf0c12ff5c48b80c85bea163f36533810bf4fc3976fddd25289b7552fca1fcb8639e7",
        "c23d216677dbc2469ffc917ca8e45bff2fa213631cf2e540e01bcfae622192cd39843f8c9d38ce633e7f10942d9d521d",
        "a79a8be71d02818100e7a5ebb0c3e9ca5c8675ef461fa670a8741ebbba8b8e27ac05b6dc376deb8a203af5313bcf3bca",
        "a5881f812fbedee28e3b47626151482c057291ae141c8275ad76572e2de04bb8792f12f43bb21d1620790075b1b276ce",
        "091de630de627d5462d869619fd0ad43537aa85a60ac1ec6701021038498babc1949c9c38cbcce718702818100d28f45",
        "07a451a737b91fb92b82dcddf0932ee9c31b7f71af5d0f007c7b3cf92d1febcdc4052b189ca8736534fa9107ec550a68",
        "ac3c503d98927af92925ff349411d588783aef4e41994e27118d32e16fcefc5b0e7bd8fbbf40b65201a6d071424eb932",
        "cae95fbb58c73e5cfc37fd1038392ca5e0681b058458e07e7769b745a70281800d13fcfe79d1152fac17b46e8d12e481",
        "5e2cee045624ac70b5d1e114f00bc03c999786340e3b1df1c281a4d5813d2c25438b802e665c60bfddfc038bf720166c",
        "b8a5ab61c3ac02ba34c2292fc59a86c9468b9419782de4ebf6d82c22220559624b3d87d971fa96367c524ce7f04fbc7c",
        "4f2ccdfa0a7560713d0d3b111307c4b902818029aba4f3b03760aa8c7e94bce1b7284d3633b09ba65380823e1e7bf026",
        "cb985cafd690f05c3d7d2f73bef2a69b781c634f293231f3f5c55aee925bc122fdf0bfe50fa76473f56c3d5b43b643a8",
        "f80ad97fd33d8a0e4490fdf6a69e70293d534cd61b9ccbbf87eca1d33caa56581643217d5f32acc8ada057e2e6fae053",
        "11ac3d02818006d656c20f3729e909dbefa1ad4dbbb68d1cc747b64f079b7333b8538d3041a432d13250e9d56e8b7c25",
        "5126d9d53c21867ff083b2da55082b0746751f313725b465d3eb7ebff0409664bdceba7880c4bfe868920a8d80180935",
        "ba7e8775e3ba7857416b466cfc966f99fcbd415d17022ab0f5da22af2d629943071660b8a3c0",
    ];

    pub(crate) const KEY_2: &[&str] = &[
        "308204a30201000282010100a0c1689f4d37fe62017bd1864e85d5dcb7b9c67bcaa8230aba95caa271b26b033f14656e",
        "0e3e3efa5be98c5b102d54a7a918bc418934d3fecf7abc2f1026094db89b4718bc3344986bba8a961b6c2c684493ba55",
        "21811ddd0461df2bec3e865fdbe4434a4b6977199847e55bbed1aa583dbc50ce6b65752cacfc42a2f466665a8fdb8eb7",
        "a2e8c446ccd4f9ae8a508733883d3bc2948a0cc3ff66533096875d40b16f5c36c8062e3ab48be4ac7f5ddae351b1366b",
        "a6f08268446dcd7a7bf63b88d0926451052835ce06a0eab291d970823df78a48ce2c1e80f33b718148512613b2c84e64",
        "40cac59f0ce0ec02f8feccddecc5b7d915218c3701a44c68773c06010203010001028201001a522099b8b07ad7bc2b74",
        "4e7bcbe10cdf0e2d67f6721a2eb70730a2f15fc7b2c3e0c88cc10b430f85fe12eb9415fffee5aa75a47b5d297ad6a8df",
        "680b4a570aa137d767bee4dc0de2d1abc05124208f3fef3a3a971e476ff938372cbf652b6645a035be53e3a44b0e0a73",
        "8cd68d08c9a2ee130301459eee5e327d8ca5dca054603bcf137f675c911cb5f0e475a66f6ea3191690be929ac62b56bb",
        "f8b1f5912324a5ea8e66970c11f54749bc6ff65c12df423881bbc7aa73223801e7f77c8d4029d4eab5e52a6635d8ccb4",
        "b14939043b2861d0af78954c0d14c14fa5448b02d7b9786a5cd25e1674b5b206d65e5cabaebda30bd0600bad29baea93",
        "400796b0f902818100cc23cc39ebe27f8f822b2332377ef5c481301b6d86d6517ba88ec221f1a6e5bd13484d61a9dc59",
        "11744a4c92127d9bee31b04f153bd40e4afb058392c95bf7c0d3244d777681db815cb3194dd638075ef7af4d697d6edd",
        "9d27749cdc07389e0c164456317b9f805924511fb08afd30b9d52543ce891fb7cbed8c2b175cf375ed02818100c9981e",
        "1e8f94754d4682d11ec1230ffb8ece32eed57c72338b825a66e7d05f72f876732e2c62310902f60cc5895aba63a8d8ac",
        "8df0739c48679867ded03b9b059f86ac51e2557dda50db542ac618bbd5b02944fd2784feb36b0cd4832e811fcab863ab",
        "baf117a3eb6705f3457b7f223881a74404baa594af983553d1ef808de502818041970aea5d591405471c971d6e69538c",
        "04ba3145daba07ca449941d4e830e8c5fc6911bbdc78d9015bacf7b7434baa8b38d9de3f034f1a1c8b54f536778e1e27",
        "8d6faf983fb26f95bbf42ba02fc126d5239de6b08b45d0dccaad942cba013dfec234c8c0f36887339d1097af00a9633b",
        "82398bf4d3682684d659600b0ca988ed0281802b0710c6ad169ec2d39df04c84249bb0b1964940b8c84b07bd6b21287d",
        "a9f7f56e1aba12ccde5860f804d44d05381c38513d8df6edaf7f57e4e49ea6ec030cdf7261283e81f4855c278de8b508",
        "7b16fc51113dec5a970455ff2f49dc85fc81709f5286c0ebdc83dc26ad1a73661c888d4eff088189e4f58b550d6cca8e",
        "37fe1102818100a709b0ca807d4b4949a74fb051ca6fb9797b5dc2c26f85fe087d4398f3638bb8f1d5b468edc9ca4f2d",
        "a996db37f5d4bdbb9d40ad9dac64e422942d8be5d1875fc03a29e0ad9bc23d4e314cc739e90e8b833b7d20612590fda8",
        "772b6144994914762a53731d16f7f7760afec7fef53badafd91279204c0b08d4529af89ff1ffc4",
    ];
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
