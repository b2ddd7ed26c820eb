//! [`FanOut`]: what one operation did on each HSM, and how complete it was.

use super::retry;
use crate::{ClientError, SyncStatus};

/// One HSM's part of a fanned-out operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmResult<T> {
    /// The HSM's address, as configured.
    pub endpoint: String,
    pub outcome: Result<T, ClientError>,
}

/// The per-HSM results of an operation sent to every HSM of the cluster, in
/// the order of the configured endpoints. HSMs the session could not log in
/// to are included as failures, so a result always covers the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOut<T> {
    pub hsms: Vec<HsmResult<T>>,
}

/// How much of the cluster an operation reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Every HSM.
    Full,
    /// Some HSMs but not all: run it again to repair the rest.
    Partial,
    /// None.
    Failed,
}

impl<T> FanOut<T> {
    pub fn completion(&self) -> Completion {
        match self.succeeded().count() {
            0 => Completion::Failed,
            n if n == self.hsms.len() => Completion::Full,
            _ => Completion::Partial,
        }
    }

    /// The HSMs where it worked, with what each answered.
    pub fn succeeded(&self) -> impl Iterator<Item = (&str, &T)> {
        self.hsms.iter().filter_map(|h| h.outcome.as_ref().ok().map(|v| (h.endpoint.as_str(), v)))
    }

    /// The HSMs where it did not, and why.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &ClientError)> {
        self.hsms.iter().filter_map(|h| h.outcome.as_ref().err().map(|e| (h.endpoint.as_str(), e)))
    }

    /// The first HSM's answer, in endpoint order, among those that worked.
    pub fn first(&self) -> Option<&T> {
        self.succeeded().next().map(|(_, v)| v)
    }

    /// `Err` when no HSM succeeded: the operation failed as a whole, and the
    /// error says how (one refusal shared by every HSM comes back unchanged).
    pub fn into_result(self) -> Result<Self, ClientError> {
        if self.completion() == Completion::Failed {
            let failures = self.hsms.into_iter().filter_map(|h| h.outcome.err().map(|e| (h.endpoint, e))).collect();
            return Err(combine(failures));
        }
        Ok(self)
    }
}

impl FanOut<SyncStatus> {
    /// Every HSM answered and all gave the same digest.
    pub fn in_sync(&self) -> bool {
        let mut digests = self.hsms.iter().map(|h| h.outcome.as_ref().map(|s| &s.digest));
        match digests.next() {
            Some(Ok(first)) => digests.all(|d| d == Ok(first)),
            _ => false,
        }
    }
}

/// One error for failures on several HSMs. The same refusal everywhere is
/// returned as it is (so a one-HSM cluster reports exactly what the HSM
/// said); otherwise the first answer from an HSM that was reached leads, and
/// the message names where each failure happened.
pub(crate) fn combine(failures: Vec<(String, ClientError)>) -> ClientError {
    let Some((_, first)) = failures.first() else {
        return retry::nowhere_to_ask();
    };
    if failures.iter().all(|(_, e)| e == first) {
        return first.clone();
    }
    let lead = failures.iter().position(|(_, e)| !retry::is_retryable(e)).unwrap_or(0);
    let others: Vec<String> = failures
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, (endpoint, e))| format!("{endpoint}: {e}"))
        .collect();
    let (endpoint, error) = &failures[lead];
    let suffix = format!(" (on {endpoint}; {})", others.join("; "));
    error.clone().map_message(|m| m + &suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(outcomes: Vec<Result<u8, ClientError>>) -> FanOut<u8> {
        let hsms = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| HsmResult { endpoint: format!("h{i}:1"), outcome })
            .collect();
        FanOut { hsms }
    }

    #[test]
    fn completion_tells_full_partial_and_failed_apart() {
        let down = || Err(ClientError::Unavailable("down".into()));
        assert_eq!(fan(vec![Ok(1), Ok(2)]).completion(), Completion::Full);
        assert_eq!(fan(vec![Ok(1), down()]).completion(), Completion::Partial);
        assert_eq!(fan(vec![down(), down()]).completion(), Completion::Failed);
        assert_eq!(fan(vec![down(), Ok(2)]).first(), Some(&2));
        assert!(fan(vec![down(), down()]).into_result().is_err());
        assert!(fan(vec![down(), Ok(1)]).into_result().is_ok());
    }

    #[test]
    fn one_refusal_everywhere_is_reported_unchanged_and_mixed_ones_name_their_hsms() {
        let denied = ClientError::PermissionDenied("user create is not permitted for role crypto-user (CU)".into());
        let same = combine(vec![("a:1".into(), denied.clone()), ("b:1".into(), denied.clone())]);
        assert_eq!(same, denied);
        let mixed = combine(vec![
            ("a:1".into(), ClientError::Unavailable("connection refused".into())),
            ("b:1".into(), denied.clone()),
        ]);
        let ClientError::PermissionDenied(message) = mixed else { panic!("the HSM's own answer leads: {mixed:?}") };
        assert!(message.starts_with("user create is not permitted"), "{message}");
        assert!(message.contains("on b:1") && message.contains("a:1: connection refused"), "{message}");
    }

    #[test]
    fn hsms_are_in_sync_only_when_all_answer_with_one_digest() {
        let status = |d: u8| SyncStatus { hsm_id: "hsm-x".into(), digest: vec![d], users: 1, keys: 0 };
        let all = |outcomes: Vec<Result<SyncStatus, ClientError>>| FanOut {
            hsms: outcomes.into_iter().map(|outcome| HsmResult { endpoint: "a:1".into(), outcome }).collect(),
        };
        assert!(all(vec![Ok(status(1)), Ok(status(1))]).in_sync());
        assert!(!all(vec![Ok(status(1)), Ok(status(2))]).in_sync());
        assert!(!all(vec![Ok(status(1)), Err(ClientError::Unavailable("down".into()))]).in_sync());
    }
}
