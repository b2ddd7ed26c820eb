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

    /// Seconds since the Unix epoch (SigV4's 15-minute window).
    fn unix_seconds(&self) -> i64 {
        self.now().div_euclid(1000)
    }
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

/// A clock that says what it is told (tests, replayed SigV4 vectors).
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(unix_seconds: i64) -> Self {
        FixedClock(AtomicI64::new(unix_seconds.saturating_mul(1000)))
    }

    pub fn set(&self, unix_seconds: i64) {
        self.0.store(unix_seconds.saturating_mul(1000), Ordering::Relaxed);
    }
}

impl WallClock for FixedClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_say_the_time_they_should() {
        let clock = FixedClock::new(10);
        assert_eq!(clock.unix_seconds(), 10);
        clock.set(20);
        assert_eq!(clock.unix_seconds(), 20);
        let system = ShiftedClock::default();
        let before = system.unix_seconds();
        assert!(before > 1_700_000_000);
        system.advance(std::time::Duration::from_secs(8 * 24 * 3600));
        assert!(system.unix_seconds() >= before + 8 * 24 * 3600);
    }
}
