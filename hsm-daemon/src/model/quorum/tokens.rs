//! The HSM's table of tokens: issued for a purpose to one user, live ten
//! minutes, at most [`MAX_TOKENS`] per HSM, removed when used; and the
//! preimage format they are the SHA-256 of.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rand::CryptoRng;

use super::{MAX_TOKENS, QuorumService, TOKEN_LIFETIME};
use crate::model::{ModelError, Username};

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
pub(in crate::model) enum Purpose {
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
pub(in crate::model) struct Tokens {
    by_id: BTreeMap<TokenId, Issued>,
}

impl Tokens {
    /// Issues a token. A user holds one token per admin service and per MFA
    /// purpose (a new one replaces the old), any number for key services.
    pub(in crate::model) fn issue(
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
    pub(in crate::model) fn find(
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
    pub(in crate::model) fn find_among(
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
    pub(in crate::model) fn is_live(&mut self, id: &TokenId, now: Instant) -> bool {
        self.expire(now);
        self.by_id.contains_key(id)
    }

    pub(in crate::model) fn remove(&mut self, id: &TokenId) -> bool {
        self.by_id.remove(id).is_some()
    }

    /// Quorum tokens (not MFA challenges), oldest first.
    pub(in crate::model) fn list(&mut self, now: Instant, required: impl Fn(QuorumService) -> u8) -> Vec<TokenView> {
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
    pub(in crate::model) fn delete_one(&mut self, id: &TokenId, username: &Username) -> bool {
        let theirs =
            self.by_id.get(id).is_some_and(|t| matches!(t.purpose, Purpose::Quorum(_)) && &t.username == username);
        theirs && self.remove(id)
    }

    /// Removes quorum tokens: `username`'s, or everyone's when `None`.
    pub(in crate::model) fn delete(&mut self, username: Option<&Username>) -> usize {
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

/// Cuts `data`, preimages joined end to end, back into them.
pub(in crate::model) fn preimages<'a>(field: &'static str, data: &'a [u8]) -> Result<Vec<&'a [u8]>, ModelError> {
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

pub(in crate::model) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}
