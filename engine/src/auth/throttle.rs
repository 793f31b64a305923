//! Failed logins slow down the next ones, per key (a source address, or a user and a
//! source): after a few free failures each one locks the key for twice as long as the
//! last, up to a ceiling; an attempt while locked is refused without looking at the
//! credentials. A success clears the key. Kept in memory, bounded in entries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{EngineError, Result};

/// Failures that cost nothing: a user mistyping once or twice is not slowed down.
const FREE_FAILURES: u32 = 2;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(300);
/// A key with no failure for this long starts again from zero.
const FORGET_AFTER: Duration = Duration::from_secs(900);
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Instant,
    last: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    keys: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// Refuses an attempt while `key` is locked.
    pub fn check(&self, key: &str) -> Result<()> {
        let now = Instant::now();
        match self.keys.lock().get(key) {
            // Rounded up: "retry in 0s" would invite a retry that is still refused.
            Some(f) if f.locked_until > now => Err(EngineError::TooManyAttempts {
                retry_after: (f.locked_until - now).as_millis().div_ceil(1000) as u64,
            }),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns how long `key` is now locked for.
    pub fn failed(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut keys = self.keys.lock();
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if keys.len() >= MAX_KEYS {
                // The key failing longest ago goes: a flood of sources cannot grow the
                // map, and each keeps its own lock until pushed out.
                if let Some(oldest) = keys
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
                {
                    keys.remove(&oldest);
                }
            }
        }
        let f = keys.entry(key.to_string()).or_insert(Failures {
            count: 0,
            locked_until: now,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let delay = delay_after(f.count);
        f.locked_until = now + delay;
        delay
    }

    pub fn succeeded(&self, key: &str) {
        self.keys.lock().remove(key);
    }
}

/// The lock after the `count`th failure in a row.
fn delay_after(count: u32) -> Duration {
    if count <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (count - FREE_FAILURES - 1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_after_the_free_failures() {
        let delays: Vec<u64> = (1..=12).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }

    #[test]
    fn a_locked_key_is_refused_and_a_success_clears_it() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            t.failed("k");
            t.check("k").unwrap();
        }
        t.failed("k");
        assert!(matches!(
            t.check("k"),
            Err(EngineError::TooManyAttempts { retry_after: 1 })
        ));
        t.check("other").unwrap();
        t.succeeded("k");
        t.check("k").unwrap();
    }
}
