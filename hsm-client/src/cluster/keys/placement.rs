//! Where keys are: which HSMs hold a key (asked of every HSM and cached),
//! the availability check, and sending an operation to an HSM that holds
//! the key.

use std::future::Future;

use super::Coverage;
use crate::{
    ClientError, ClusterSession, ListKeys, Session, cluster::session::lock, config::DISABLE_KEY_AVAILABILITY_CHECK_ENV,
};

/// Which HSMs hold a key, as last asked.
pub(super) struct Presence {
    pub(super) at: Vec<usize>,
    pub(super) session: bool,
}

impl ClusterSession {
    /// Which HSMs hold a key now (asked afresh).
    pub async fn key_coverage(&self, reference: &str) -> Coverage {
        lock(&self.holders).remove(reference);
        let presence = self.presence(reference).await;
        self.coverage(&presence.at, presence.session, Vec::new())
    }

    /// Runs `op` on an HSM that holds the key, round-robin with retries.
    pub(super) async fn with_key<'a, T, Fut>(
        &'a self,
        reference: &str,
        op: impl Fn(&'a Session) -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let candidates = self.usable(reference).await?;
        let result = self.on_one(&candidates, op).await;
        if let Err(ClientError::NotFound(_)) = result {
            // Deleted meanwhile, perhaps by another client: ask again next time.
            lock(&self.holders).remove(reference);
        }
        Ok(result?.1)
    }

    /// The HSMs to send an operation on key `reference` to: those that hold
    /// it, if it passes the availability check. A key no HSM admits to
    /// holding goes to any HSM, so that the HSM's own refusal (not found,
    /// bad reference) is what the caller sees.
    pub(super) async fn usable(&self, reference: &str) -> Result<Vec<usize>, ClientError> {
        Ok(self.or_anywhere(self.checked_presence(reference).await?.at))
    }

    /// Where the key is, refused if it is a token key on too few HSMs.
    pub(super) async fn checked_presence(&self, reference: &str) -> Result<Presence, ClientError> {
        let presence = self.presence(reference).await;
        if !presence.at.is_empty() && !presence.session {
            self.check_availability(reference, presence.at.len())?;
        }
        Ok(presence)
    }

    pub(super) fn or_anywhere(&self, at: Vec<usize>) -> Vec<usize> {
        if at.is_empty() { self.logged_in() } else { at }
    }

    /// Where a key is: a session key made here, or the cached holders of a
    /// token key if they pass the threshold, or else every HSM is asked.
    pub(super) async fn presence(&self, reference: &str) -> Presence {
        if let Some(at) = lock(&self.session_keys).get(reference) {
            return Presence { at: vec![*at], session: true };
        }
        if let Some(at) = lock(&self.holders).get(reference)
            && at.len() >= self.threshold()
        {
            return Presence { at: at.clone(), session: false };
        }
        let filter = [("key-reference".to_owned(), reference.to_owned())];
        let one = ListKeys::default().filters(&filter).max_items(1);
        let listed = self.on_each(&self.logged_in(), |s| async move { Ok(s.list_keys(one).await?.keys) }).await;
        let mut presence = Presence { at: Vec::new(), session: false };
        for (at, keys) in listed {
            if let Some(key) = keys.ok().and_then(|k| k.into_iter().next()) {
                presence.session |= key.session;
                presence.at.push(at);
            }
        }
        if presence.session {
            if let [at] = presence.at[..] {
                lock(&self.session_keys).insert(reference.to_owned(), at);
            }
        } else if !presence.at.is_empty() {
            lock(&self.holders).insert(reference.to_owned(), presence.at.clone());
        }
        presence
    }

    /// How many HSMs must hold a token key before it is used.
    fn threshold(&self) -> usize {
        availability_threshold(self.cluster.settings.key_availability_check, self.cluster_size())
    }

    pub(super) fn check_availability(&self, reference: &str, held_by: usize) -> Result<(), ClientError> {
        let needed = self.threshold();
        if held_by >= needed {
            return Ok(());
        }
        Err(ClientError::FailedPrecondition(format!(
            "key {reference} does not meet the availability requirements: it is on {held_by} of {} HSMs, and a key \
             must be on at least {needed} HSMs before it is used (turn this check off with \
             --disable-key-availability-check, {DISABLE_KEY_AVAILABILITY_CHECK_ENV}=1 or \
             ClientConfig::with_key_availability_check(false))",
            self.cluster_size()
        )))
    }

    pub(super) fn coverage(&self, holding: &[usize], session: bool, failures: Vec<(String, ClientError)>) -> Coverage {
        Coverage {
            holding: holding.iter().map(|at| self.endpoint(*at).to_owned()).collect(),
            cluster_size: self.cluster_size(),
            session,
            failures,
        }
    }
}

/// The number of HSMs a token key must be on: 2 with the check on in a
/// cluster of two or more HSMs, otherwise 1.
fn availability_threshold(check: bool, cluster_size: usize) -> usize {
    if check && cluster_size >= 2 { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_need_two_hsms_only_with_the_check_on_in_a_cluster_of_two_or_more() {
        assert_eq!(availability_threshold(true, 3), 2);
        assert_eq!(availability_threshold(true, 2), 2);
        assert_eq!(availability_threshold(true, 1), 1);
        assert_eq!(availability_threshold(false, 3), 1);
    }
}
