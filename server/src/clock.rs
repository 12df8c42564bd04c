//! Where the server reads the time: a [`Clock`] is handed to whatever needs "now", so tests can
//! fix it. [`SystemClock`] is the only clock in production.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch (0 before it).
    fn unix_ms(&self) -> u64 {
        unix_ms(self.now())
    }

    /// Seconds since the Unix epoch (0 before it).
    fn unix_secs(&self) -> u64 {
        since_epoch(self.now()).as_secs()
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system clock as a shared handle.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Milliseconds since the Unix epoch of `t` (0 before it, `u64::MAX` past representable).
pub fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(since_epoch(t).as_millis()).unwrap_or(u64::MAX)
}

/// A clock that moves only when told to (tests).
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    ms: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl ManualClock {
    /// Start at `ms` milliseconds after the epoch.
    pub fn at_ms(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: std::sync::atomic::AtomicU64::new(ms),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ms.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ms.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::at_ms(1_700_000_000_123);
        assert_eq!(c.unix_ms(), 1_700_000_000_123);
        assert_eq!(c.unix_secs(), 1_700_000_000);
        c.advance(Duration::from_millis(900));
        assert_eq!(c.unix_ms(), 1_700_000_001_023);
        assert_eq!(c.unix_secs(), 1_700_000_001);
    }

    #[test]
    fn times_before_the_epoch_read_as_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
