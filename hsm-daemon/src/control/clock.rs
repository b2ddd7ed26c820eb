//! The control plane's wall clock: timestamps the API shows, and when
//! states settle, backups fall due and deleted backups go. Tests move a
//! [`ShiftedClock`] forward by days instead of waiting.

use std::{
    fmt,
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use super::state::Millis;

pub trait WallClock: fmt::Debug + Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's clock, moved forward by what [`ShiftedClock::advance`]
/// added (nothing, unless a test says).
#[derive(Debug, Default)]
pub struct ShiftedClock {
    shift: AtomicI64,
}

impl ShiftedClock {
    pub fn advance(&self, by: std::time::Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.shift.fetch_add(by, Ordering::Relaxed);
    }
}

impl WallClock for ShiftedClock {
    fn now(&self) -> Millis {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX).saturating_add(self.shift.load(Ordering::Relaxed))
    }
}
