//! Which failures are worth trying on another HSM, and the loop that does.
//! The lowest module of the cluster layer: `fanout` and `session` use it,
//! and it uses neither.

use std::future::Future;

use tonic::Code;

use crate::{ClientError, RetryPolicy};

/// The HSM could not take the call (down, unreachable, busy, or the
/// connection broke), as opposed to answering it with a refusal: permission,
/// not found and invalid input would be the same on every HSM, so they are
/// returned at once.
pub(crate) fn is_retryable(err: &ClientError) -> bool {
    match err {
        ClientError::Unavailable(_) | ClientError::ResourceExhausted(_) => true,
        // tonic reports a connection that broke mid-call as Unknown.
        ClientError::Other { code, .. } => *code == Code::Unknown,
        _ => false,
    }
}

/// The failure of a call that had no HSM to go to: the session is logged in
/// nowhere.
pub(crate) fn nowhere_to_ask() -> ClientError {
    ClientError::Unavailable("no HSM to ask: the session holds no logged-in HSM".into())
}

/// Runs `op` on `candidates[start]`, and on a retryable failure on the next
/// candidate (wrapping around), up to `policy.attempts` tries with
/// exponential backoff between them. Returns which candidate answered.
pub(crate) async fn run<T, F, Fut>(
    policy: RetryPolicy,
    candidates: &[usize],
    start: usize,
    mut op: F,
) -> Result<(usize, T), ClientError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    if candidates.is_empty() {
        return Err(nowhere_to_ask());
    }
    let mut tried = 0;
    loop {
        let at = candidates[(start + tried as usize) % candidates.len()];
        tried += 1;
        match op(at).await {
            Ok(value) => return Ok((at, value)),
            Err(e) if is_retryable(&e) && tried < policy.attempts => {
                tokio::time::sleep(policy.backoff(tried)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `op` on one HSM, and again there on a retryable failure, up to
/// `policy.attempts` tries: for writes that must reach every HSM, where
/// another HSM is no substitute.
pub(crate) async fn run_here<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    run(policy, &[0], 0, move |_| op()).await.map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, time::Duration};

    use super::*;

    const NO_WAIT: RetryPolicy = RetryPolicy { attempts: 3, first_backoff: Duration::ZERO };

    #[test]
    fn only_an_hsm_that_could_not_answer_is_worth_retrying() {
        assert!(is_retryable(&ClientError::Unavailable("tcp connect error".into())));
        assert!(is_retryable(&ClientError::ResourceExhausted("busy".into())));
        assert!(is_retryable(&ClientError::Other { code: Code::Unknown, message: "connection reset".into() }));
        for answered in [
            ClientError::PermissionDenied("no".into()),
            ClientError::NotFound("no key".into()),
            ClientError::InvalidArgument("bad".into()),
            ClientError::Unauthenticated("expired".into()),
            ClientError::FailedPrecondition("locked".into()),
            ClientError::Other { code: Code::Internal, message: "bug".into() },
        ] {
            assert!(!is_retryable(&answered), "{answered:?}");
        }
    }

    #[tokio::test]
    async fn retries_move_to_the_next_hsm_and_stop_after_three_tries() {
        let tried = RefCell::new(Vec::new());
        let down = async |at: usize| {
            tried.borrow_mut().push(at);
            Err::<(), _>(ClientError::Unavailable(format!("hsm {at} down")))
        };
        let err = run(NO_WAIT, &[4, 7], 1, down).await.unwrap_err();
        assert_eq!(err, ClientError::Unavailable("hsm 7 down".into()), "the last failure is returned");
        assert_eq!(*tried.borrow(), [7, 4, 7]);

        tried.borrow_mut().clear();
        let second_works = async |at: usize| {
            tried.borrow_mut().push(at);
            if at == 0 { Err(ClientError::Unavailable("down".into())) } else { Ok(at * 10) }
        };
        assert_eq!(run(NO_WAIT, &[0, 1, 2], 0, second_works).await.unwrap(), (1, 10));
        assert_eq!(*tried.borrow(), [0, 1]);
    }

    #[tokio::test]
    async fn a_refusal_is_returned_without_trying_elsewhere() {
        let tried = RefCell::new(0);
        let refuse = async |_| {
            *tried.borrow_mut() += 1;
            Err::<(), _>(ClientError::NotFound("no such key".into()))
        };
        assert_eq!(run(NO_WAIT, &[0, 1, 2], 0, refuse).await.unwrap_err(), ClientError::NotFound("no such key".into()));
        assert_eq!(*tried.borrow(), 1);
    }
}
