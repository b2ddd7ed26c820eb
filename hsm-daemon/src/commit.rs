//! Group commit: many writers share one durable write.
//!
//! An fsync costs about a millisecond here whatever it covers, so writing
//! each change with its own fsync caps an HSM at a few hundred changes a
//! second, and makes every writer queue behind the one syncing. Instead,
//! writers [`GroupCommit::submit`] their item in the order they want it
//! written and `.await` the [`Ticket`] they get back; one committer thread
//! takes everything queued, hands it to the commit function as one batch
//! (one transaction, one fsync) and then wakes every writer of that batch.
//! While it syncs, the next batch gathers. A writer is told success only once
//! the batch holding its item is durable.
//!
//! The committer is a thread of its own, not an async task, so that an fsync
//! never blocks tokio's workers, and so that the commit function (sealing and
//! encoding, in the store's case) runs beside them.
//!
//! Fail-stop: once a commit fails, that batch's writers and every later one
//! are told so, and the commit function is never called again; the owner
//! stops serving (memory may now hold what the disk does not).
//!
//! # Layout
//! - [`GroupCommit`]: the queue and its committer thread.
//! - [`Ticket`]: a writer's wait for its batch.
//! - [`CommitFailed`]: why a batch (and everything after it) was not written.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    thread::JoinHandle,
};

use tokio::sync::oneshot;

/// Why a writer's item is not durable: its batch, or an earlier one, failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CommitFailed(Arc<str>);

/// The queue of items waiting for the next commit, and a committer thread
/// that writes them.
pub(crate) struct GroupCommit<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    /// Joined on drop, so that whatever the commit function holds (the
    /// store's file lock) is released when the owner is gone.
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> std::fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// Wakes the committer when the queue stops being empty or closes.
    ready: Condvar,
}

struct Queue<T> {
    items: Vec<T>,
    /// One per item, and one per [`GroupCommit::flush`] that found work
    /// pending: each is told how the batch it joined ended.
    waiters: Vec<oneshot::Sender<Result<(), CommitFailed>>>,
    /// The committer is writing a batch (the queue holds the next one).
    committing: bool,
    /// Set by the first failed commit; nothing is committed after it.
    failed: Option<CommitFailed>,
    /// The owner is gone: commit what is queued and stop.
    closing: bool,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the committer thread `name`, which calls `commit` with every
    /// batch, in submission order. `commit` returns only once the batch is
    /// durable, or says why it is not.
    pub(crate) fn start(
        name: &str,
        commit: impl FnMut(Vec<T>) -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                waiters: Vec::new(),
                committing: false,
                failed: None,
                closing: false,
            }),
            ready: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(name.to_owned()).spawn(move || shared.run(commit))?
        };
        Ok(GroupCommit { shared, thread: Some(thread) })
    }

    /// Queues `item` behind everything submitted before it. Callers that need
    /// items written in the order of some other change submit while they hold
    /// the lock that orders those changes (it is held for microseconds here:
    /// never across the commit).
    pub(crate) fn submit(&self, item: T) -> Ticket {
        let mut queue = self.shared.lock();
        let ticket = self.shared.wait_in(&mut queue);
        if queue.failed.is_none() {
            queue.items.push(item);
        }
        ticket
    }

    /// Waits until everything submitted so far is durable; `None` when it
    /// already is (nothing queued, nothing being written), which costs no
    /// thread hop. For reads whose result leaves the HSM in a way a later
    /// loss would contradict (a key copied to another HSM).
    pub(crate) fn flush(&self) -> Option<Ticket> {
        let mut queue = self.shared.lock();
        let idle = queue.waiters.is_empty() && !queue.committing && queue.failed.is_none();
        (!idle).then(|| self.shared.wait_in(&mut queue))
    }
}

impl<T: Send + 'static> Drop for GroupCommit<T> {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the commit function has already been reported.
            let _ = thread.join();
        }
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // The queue is changed only by pushes and takes that cannot panic
        // half-way, so a poisoned lock still guards a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A waiter on the next batch, answered at once after a failure.
    fn wait_in(&self, queue: &mut Queue<T>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        if let Some(failed) = &queue.failed {
            let _ = tx.send(Err(failed.clone()));
        } else {
            // The committer sleeps only while no one waits.
            if queue.waiters.is_empty() {
                self.ready.notify_one();
            }
            queue.waiters.push(tx);
        }
        Ticket(rx)
    }

    /// The committer: one batch at a time until the owner is gone.
    fn run(&self, mut commit: impl FnMut(Vec<T>) -> Result<(), String>) {
        loop {
            let (items, waiters, failed) = {
                let mut queue = self.lock();
                queue.committing = false;
                while queue.waiters.is_empty() && !queue.closing {
                    queue = self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
                if queue.waiters.is_empty() {
                    return;
                }
                queue.committing = true;
                (std::mem::take(&mut queue.items), std::mem::take(&mut queue.waiters), queue.failed.clone())
            };
            // Items queued between a failure and its being recorded are
            // refused too: nothing is written after a failed commit.
            let outcome = match failed {
                Some(failed) => Err(failed),
                None if items.is_empty() => Ok(()),
                None => commit(items).map_err(|e| CommitFailed(e.into())),
            };
            if let Err(failed) = &outcome {
                self.lock().failed.get_or_insert_with(|| failed.clone());
            }
            for waiter in waiters {
                // A writer that stopped waiting (its call was cancelled) is
                // no one to tell.
                let _ = waiter.send(outcome.clone());
            }
        }
    }
}

/// A writer's wait for the commit of its item.
#[derive(Debug)]
pub(crate) struct Ticket(oneshot::Receiver<Result<(), CommitFailed>>);

impl Future for Ticket {
    type Output = Result<(), CommitFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|received| {
            // The committer answers every waiter it takes; it drops one
            // unanswered only if the commit function panicked.
            received.unwrap_or_else(|_| Err(CommitFailed("the committer stopped".into())))
        })
    }
}

impl Ticket {
    /// Waits outside any async runtime.
    #[cfg(test)]
    pub(crate) fn wait(self) -> Result<(), CommitFailed> {
        self.0.blocking_recv().unwrap_or_else(|_| Err(CommitFailed("the committer stopped".into())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A committer whose first commit waits until the test lets it go, so
    /// that what is submitted meanwhile forms the next batch; it reports
    /// each batch it is given and fails any batch holding `fail_on`.
    fn gated(fail_on: Option<u32>) -> (GroupCommit<u32>, mpsc::Sender<()>, mpsc::Receiver<Vec<u32>>) {
        let (release, gate) = mpsc::channel::<()>();
        let (report, batches) = mpsc::channel();
        let mut first = true;
        let commits = GroupCommit::start("test-commit", move |batch: Vec<u32>| {
            if std::mem::take(&mut first) {
                gate.recv().unwrap();
            }
            report.send(batch.clone()).unwrap();
            match fail_on {
                Some(bad) if batch.contains(&bad) => Err(format!("disk full at {bad}")),
                _ => Ok(()),
            }
        })
        .unwrap();
        (commits, release, batches)
    }

    /// Submits item 0, waits until the committer has taken it (so that the
    /// next items cannot join its batch), then submits items 1 to `n`.
    fn behind_the_first(commits: &GroupCommit<u32>, n: u32) -> (Ticket, Vec<Ticket>) {
        let first = commits.submit(0);
        while !commits.shared.lock().items.is_empty() {
            std::thread::yield_now();
        }
        (first, (1..=n).map(|i| commits.submit(i)).collect())
    }

    #[test]
    fn items_queued_during_a_commit_are_written_together_in_order() {
        let (commits, release, batches) = gated(None);
        let first = commits.submit(0);
        // The first commit holds the committer; these queue behind it.
        let rest: Vec<Ticket> = (1..=5).map(|i| commits.submit(i)).collect();
        release.send(()).unwrap();
        first.wait().unwrap();
        for ticket in rest {
            ticket.wait().unwrap();
        }
        // The first batch may have taken more than item 0 if the committer
        // was slow to start; every item is still written once, in order.
        let mut written = Vec::new();
        while written.len() < 6 {
            written.extend(batches.recv().unwrap());
        }
        assert_eq!(written, [0, 1, 2, 3, 4, 5]);
        drop(commits);
        assert!(batches.recv().is_err(), "no commit after the last item");
    }

    #[test]
    fn a_batch_of_several_items_is_one_commit() {
        let (commits, release, batches) = gated(None);
        let (first, rest) = behind_the_first(&commits, 4);
        release.send(()).unwrap();
        first.wait().unwrap();
        rest.into_iter().for_each(|t| t.wait().unwrap());
        assert_eq!(batches.recv().unwrap(), [0]);
        assert_eq!(batches.recv().unwrap(), [1, 2, 3, 4], "one commit for everything queued behind the first");
    }

    #[test]
    fn a_failed_commit_fails_every_waiter_of_its_batch_and_everything_after() {
        let (commits, release, batches) = gated(Some(2));
        let (first, batch) = behind_the_first(&commits, 3);
        release.send(()).unwrap();
        first.wait().unwrap();
        for ticket in batch {
            let failed = ticket.wait().unwrap_err();
            assert!(failed.to_string().contains("disk full at 2"), "{failed}");
        }
        assert_eq!(batches.recv().unwrap(), [0]);
        assert_eq!(batches.recv().unwrap(), [1, 2, 3]);
        let later = commits.submit(4).wait().unwrap_err();
        assert!(later.to_string().contains("disk full at 2"), "{later}");
        drop(commits);
        assert!(batches.recv().is_err(), "nothing is committed after a failure");
    }

    #[test]
    fn a_flush_waits_for_what_was_submitted_before_it_and_is_free_when_idle() {
        let (commits, release, batches) = gated(None);
        assert!(commits.flush().is_none(), "nothing submitted: nothing to wait for");
        let first = commits.submit(0);
        let flushed = commits.flush().expect("item 0 is not written yet");
        release.send(()).unwrap();
        flushed.wait().unwrap();
        first.wait().unwrap();
        assert_eq!(batches.recv().unwrap(), [0], "a flush adds nothing to the batch");
        // The committer may still be marking itself idle.
        if let Some(ticket) = commits.flush() {
            ticket.wait().unwrap();
        }
        assert!(batches.try_recv().is_err(), "a flush alone commits nothing");
    }

    #[test]
    fn dropping_the_queue_commits_what_is_queued_first() {
        let (commits, release, batches) = gated(None);
        let tickets: Vec<Ticket> = (0..3).map(|i| commits.submit(i)).collect();
        release.send(()).unwrap();
        drop(commits);
        for ticket in tickets {
            ticket.wait().unwrap();
        }
        let written: Vec<u32> = batches.iter().flatten().collect();
        assert_eq!(written, [0, 1, 2]);
    }
}
