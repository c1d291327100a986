//! Per-tool rate limits: `tools.rate_limits` calls per sliding minute, `default` for the rest.
//!
//! A call at time `t` counts against the window `(t - 60 s, t]`, so the limit is exact at the
//! boundary: a call made exactly 60 s after another no longer sees it. The clock is monotonic and
//! injectable, so tests move time instead of sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The window every limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A monotonic clock.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The limiter: calls per window, per tool.
pub struct RateLimiter {
    limits: BTreeMap<String, u32>,
    default: Option<u32>,
    calls: Mutex<HashMap<String, VecDeque<Duration>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .finish()
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    /// The limit that applied.
    pub limit: u32,
    /// The policy key it came from.
    pub rule: String,
    /// When a call will be accepted again.
    pub retry_after: Duration,
}

impl RateLimiter {
    /// A limiter for `tools.rate_limits`.
    pub fn new(limits: &BTreeMap<String, u32>, clock: Arc<dyn Clock>) -> Self {
        let mut limits = limits.clone();
        let default = limits.remove("default");
        RateLimiter {
            limits,
            default,
            calls: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Counts a call of `tool` if it is within its limit.
    ///
    /// # Errors
    /// [`RateLimited`] with the time until the oldest counted call leaves the window.
    pub fn admit(&self, tool: &str) -> Result<(), RateLimited> {
        let (limit, rule) = match self.limits.get(tool) {
            Some(limit) => (*limit, format!("tools.rate_limits.{tool}")),
            None => match self.default {
                Some(limit) => (limit, "tools.rate_limits.default".to_owned()),
                None => return Ok(()),
            },
        };
        let now = self.clock.now();
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let window = calls.entry(tool.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() < limit as usize {
            window.push_back(now);
            return Ok(());
        }
        let oldest = window.front().copied().unwrap_or(now);
        Err(RateLimited {
            limit,
            rule,
            retry_after: (oldest + WINDOW).saturating_sub(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct FakeClock(AtomicU64);

    impl FakeClock {
        fn set(&self, ms: u64) {
            self.0.store(ms, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            Duration::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    fn limiter(clock: &Arc<FakeClock>) -> RateLimiter {
        let limits = BTreeMap::from([("default".to_owned(), 3), ("slow".to_owned(), 1)]);
        RateLimiter::new(&limits, Arc::clone(clock) as Arc<dyn Clock>)
    }

    #[test]
    fn exact_at_the_boundary() {
        let clock = Arc::new(FakeClock::default());
        let limiter = limiter(&clock);
        for t in [0, 10_000, 20_000] {
            clock.set(t);
            assert_eq!(limiter.admit("a"), Ok(()));
        }
        clock.set(59_999);
        let refused = limiter.admit("a").unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(1));
        assert_eq!(refused.rule, "tools.rate_limits.default");
        clock.set(60_000);
        assert_eq!(
            limiter.admit("a"),
            Ok(()),
            "the call at 0 has left the window"
        );
        assert!(limiter.admit("a").is_err(), "10 s and 20 s are still in it");
    }

    #[test]
    fn tools_are_independent_and_refusals_do_not_count() {
        let clock = Arc::new(FakeClock::default());
        let limiter = limiter(&clock);
        assert_eq!(limiter.admit("slow"), Ok(()));
        for _ in 0..5 {
            assert_eq!(
                limiter.admit("slow").unwrap_err().rule,
                "tools.rate_limits.slow"
            );
        }
        assert_eq!(
            limiter.admit("other"),
            Ok(()),
            "another tool has its own window"
        );
        clock.set(60_000);
        assert_eq!(
            limiter.admit("slow"),
            Ok(()),
            "refused calls were not counted"
        );
    }

    #[test]
    fn no_limit_without_an_entry_or_default() {
        let clock = Arc::new(FakeClock::default());
        let limiter = RateLimiter::new(&BTreeMap::new(), clock as Arc<dyn Clock>);
        for _ in 0..1000 {
            assert_eq!(limiter.admit("x"), Ok(()));
        }
    }
}
