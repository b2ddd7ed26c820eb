//! The load loop: `concurrency` tasks, each making one call after another,
//! their latencies in a histogram per task, merged at the end.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::ops::Workload;

/// How long and how hard to drive one operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
}

/// What one operation's measured window saw.
#[derive(Debug)]
pub(crate) struct Measured {
    /// Latencies in microseconds of the calls that finished in the window.
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) window: Duration,
    /// Failed calls, warm-up included.
    pub(crate) errors: u64,
    /// The first failure's message, to show why.
    pub(crate) first_error: Option<String>,
}

impl Measured {
    pub(crate) fn new(window: Duration) -> Measured {
        Measured { latency_us: histogram(), window, errors: 0, first_error: None }
    }

    pub(crate) fn calls(&self) -> u64 {
        self.latency_us.len()
    }

    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.calls() as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }

    /// Records one call's outcome.
    pub(crate) fn record(&mut self, outcome: Result<Duration, String>) {
        match outcome {
            Ok(took) => self.latency_us.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1)),
            Err(e) => self.fail(e),
        }
    }

    pub(crate) fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    pub(crate) fn merge(&mut self, other: Measured) {
        // Both histograms have the same bounds, so adding cannot fail;
        // count it as an error if it ever does rather than lose it silently.
        if let Err(e) = self.latency_us.add(&other.latency_us) {
            self.fail(format!("merging latencies: {e}"));
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Microseconds from 1 to an hour at 3 significant digits.
fn histogram() -> Histogram<u64> {
    // Invariant: the bounds are constants that hdrhistogram accepts (low >= 1,
    // high >= 2 * low, 3 significant figures <= 5).
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Drives `work` with `load.concurrency` tasks: calls are made back to back
/// from the start; those that finish after the warm-up and before the end
/// are counted (completions, so that the rate is right even for calls that
/// take longer than the warm-up).
pub(crate) async fn drive(work: Arc<Workload>, load: Load) -> Measured {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|task| {
            let work = Arc::clone(&work);
            tokio::spawn(async move {
                let mut seen = Measured::new(load.duration);
                while Instant::now() < end {
                    let outcome = work.call(task).await;
                    let done = Instant::now();
                    if outcome.is_err() || (done >= measure_from && done < end) {
                        seen.record(outcome);
                    }
                }
                seen
            })
        })
        .collect();
    let mut all = Measured::new(load.duration);
    for task in tasks {
        match task.await {
            Ok(seen) => all.merge(seen),
            Err(e) => all.fail(format!("load task failed: {e}")),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_successes_in_the_window_and_errors_apart() {
        let mut m = Measured::new(Duration::from_secs(2));
        for us in [100, 200, 300, 400] {
            m.record(Ok(Duration::from_micros(us)));
        }
        m.record(Err("refused".into()));
        m.record(Err("refused again".into()));
        assert_eq!(m.calls(), 4);
        assert_eq!(m.ops_per_sec(), 2.0);
        assert_eq!((m.errors, m.first_error.as_deref()), (2, Some("refused")));
        let mut other = Measured::new(Duration::from_secs(2));
        other.record(Ok(Duration::ZERO));
        m.merge(other);
        assert_eq!(m.calls(), 5);
        assert_eq!(m.latency_us.min(), 1, "a call under a microsecond counts as one");
    }
}
