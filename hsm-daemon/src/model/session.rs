//! Sessions: bearer tokens, idle expiry, and the lookup that turns a token
//! into a caller.
//!
//! A token is `<session id>.<secret>`, both hex, 128 and 256 bits from the
//! caller-supplied CSPRNG. The table keeps only a SHA-256 digest of the
//! secret and compares digests in constant time, so neither a memory dump nor
//! the timing of a lookup gives a usable token away.

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, Instant},
};

use rand::CryptoRng;
use ring::digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::model::Username;

/// A session's public identifier (the first half of its token): safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A session token as handed to the client. Secret: zeroized on drop and
/// never printed.
pub struct SessionToken(Zeroizing<String>, SessionId);

impl SessionToken {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The session this token opens (its public half).
    pub fn id(&self) -> SessionId {
        self.1
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// Why a presented token does not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Malformed,
    UnknownOrExpired,
}

impl TokenRejection {
    pub fn reason(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "malformed",
            TokenRejection::UnknownOrExpired => "unknown, logged out or expired",
        }
    }
}

#[derive(Debug)]
struct Session {
    user: Username,
    /// A small number for the audit log, which must name sessions without
    /// any part of their token.
    number: u64,
    secret_digest: [u8; 32],
    last_used: Instant,
}

/// The open sessions of one HSM.
#[derive(Debug)]
pub struct Sessions {
    open: HashMap<SessionId, Session>,
    /// Sessions closed since the last `drain_ended`, so that what lives with
    /// a session (session keys) can go too.
    ended: Vec<SessionId>,
    /// Sessions opened so far: the last session's number.
    opened: u64,
    idle_timeout: Duration,
    max: usize,
}

impl Sessions {
    pub fn new(idle_timeout: Duration, max: usize) -> Self {
        Sessions { open: HashMap::new(), ended: Vec::new(), opened: 0, idle_timeout, max }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Opens a session for `user`; `None` when the table is full even after
    /// dropping expired sessions.
    pub fn open(
        &mut self,
        user: Username,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Option<(SessionId, SessionToken)> {
        if self.open.len() >= self.max {
            self.expire(now);
            if self.open.len() >= self.max {
                return None;
            }
        }
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        let id = SessionId(id);
        let token = SessionToken(Zeroizing::new(format!("{id}.{}", hex::encode(secret.as_ref()))), id);
        self.opened += 1;
        let number = self.opened;
        self.open.insert(id, Session { user, number, secret_digest: sha256(secret.as_ref()), last_used: now });
        Some((id, token))
    }

    /// Finds the live session a token names and marks it used.
    pub fn touch(&mut self, token: &str, now: Instant) -> Result<(SessionId, &Username), TokenRejection> {
        let (id, secret) = parse_token(token).ok_or(TokenRejection::Malformed)?;
        let idle_timeout = self.idle_timeout;
        let expired = match self.open.get(&id) {
            None => return Err(TokenRejection::UnknownOrExpired),
            Some(s) => now.saturating_duration_since(s.last_used) >= idle_timeout,
        };
        if expired {
            self.open.remove(&id);
            self.ended.push(id);
            return Err(TokenRejection::UnknownOrExpired);
        }
        let session = self.open.get_mut(&id).ok_or(TokenRejection::UnknownOrExpired)?;
        if !bool::from(session.secret_digest.ct_eq(&sha256(secret.as_ref()))) {
            return Err(TokenRejection::UnknownOrExpired);
        }
        session.last_used = now;
        Ok((id, &session.user))
    }

    /// The session's number (1, 2, ... in the order sessions were opened
    /// since the HSM started), while it is open.
    pub fn number(&self, id: SessionId) -> Option<u64> {
        self.open.get(&id).map(|s| s.number)
    }

    pub fn close(&mut self, id: SessionId) -> bool {
        let closed = self.open.remove(&id).is_some();
        if closed {
            self.ended.push(id);
        }
        closed
    }

    /// Closes every session of `user` (whose credentials were replaced).
    pub fn close_user(&mut self, user: &Username) {
        let ended = &mut self.ended;
        self.open.retain(|id, s| {
            let keep = &s.user != user;
            if !keep {
                ended.push(*id);
            }
            keep
        });
    }

    /// Closes every session (a reboot); returns how many were open.
    pub fn close_all(&mut self) -> usize {
        let closed = self.open.len();
        self.ended.extend(self.open.drain().map(|(id, _)| id));
        closed
    }

    /// The sessions closed (logged out or expired) since the last call.
    pub fn drain_ended(&mut self) -> Vec<SessionId> {
        std::mem::take(&mut self.ended)
    }

    /// Drops every session idle for the timeout or longer.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.open.len();
        let idle_timeout = self.idle_timeout;
        let ended = &mut self.ended;
        self.open.retain(|id, s| {
            let live = now.saturating_duration_since(s.last_used) < idle_timeout;
            if !live {
                ended.push(*id);
            }
            live
        });
        before - self.open.len()
    }

    /// Whether `user` has a live session at `now`.
    pub fn is_logged_in(&self, user: &Username, now: Instant) -> bool {
        self.open.values().any(|s| &s.user == user && now.saturating_duration_since(s.last_used) < self.idle_timeout)
    }
}

fn parse_token(token: &str) -> Option<(SessionId, Zeroizing<[u8; 32]>)> {
    let (id_hex, secret_hex) = token.split_once('.')?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(id_hex, &mut id).ok()?;
    let mut secret = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(secret_hex, secret.as_mut()).ok()?;
    Some((SessionId(id), secret))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn alice() -> Username {
        Username::parse("username", "alice").unwrap()
    }

    #[test]
    fn tokens_are_long_random_and_resolve_to_their_user() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut s = Sessions::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let (id1, t1) = s.open(alice(), now, &mut rng).unwrap();
        let (id2, t2) = s.open(alice(), now, &mut rng).unwrap();
        assert_eq!((s.number(id1), s.number(id2)), (Some(1), Some(2)), "numbered in order of opening");
        assert_eq!(t2.id(), id2);
        assert_eq!(t1.expose().len(), 32 + 1 + 64);
        assert_ne!(t1.expose(), t2.expose());
        let (id, user) = s.touch(t1.expose(), now).unwrap();
        assert_eq!((id, user.as_str()), (id1, "alice"));
        assert!(!format!("{t1:?}").contains(&t1.expose()[..8]));
    }

    #[test]
    fn forged_and_garbage_tokens_are_refused() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut s = Sessions::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let (_, t) = s.open(alice(), now, &mut rng).unwrap();
        let (id_hex, _) = t.expose().split_once('.').unwrap();
        let forged = format!("{id_hex}.{}", "00".repeat(32));
        assert_eq!(s.touch(&forged, now).unwrap_err(), TokenRejection::UnknownOrExpired);
        for garbage in ["", "abc", "zz.zz", &format!("{id_hex}."), "💥"] {
            assert_eq!(s.touch(garbage, now).unwrap_err(), TokenRejection::Malformed, "{garbage:?}");
        }
    }

    #[test]
    fn idle_sessions_expire_and_use_keeps_them_alive() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut s = Sessions::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let (_, busy) = s.open(alice(), t0, &mut rng).unwrap();
        let (_, idle) = s.open(alice(), t0, &mut rng).unwrap();
        assert!(s.touch(busy.expose(), t0 + Duration::from_secs(59)).is_ok());
        assert!(s.touch(busy.expose(), t0 + Duration::from_secs(100)).is_ok());
        assert_eq!(
            s.touch(idle.expose(), t0 + Duration::from_secs(100)).unwrap_err(),
            TokenRejection::UnknownOrExpired
        );
        assert!(s.is_logged_in(&alice(), t0 + Duration::from_secs(159)));
        assert!(!s.is_logged_in(&alice(), t0 + Duration::from_secs(160)));
        assert_eq!(s.expire(t0 + Duration::from_secs(160)), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut s = Sessions::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        assert!(s.open(alice(), t0, &mut rng).is_some());
        assert!(s.open(alice(), t0, &mut rng).is_some());
        assert!(s.open(alice(), t0, &mut rng).is_none());
        assert!(s.open(alice(), t0 + Duration::from_secs(60), &mut rng).is_some(), "expired ones make room");
    }
}
