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
/// The same for methods whose credential is signed (a JWT, a client certificate): it
/// cannot be guessed, so a failure is mostly a misconfigured client retrying, which
/// is not locked out at once; a flood is slowed down all the same.
const FREE_FAILURES_SIGNED: u32 = 10;
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

pub struct LoginThrottle {
    keys: Mutex<HashMap<String, Failures>>,
    free_failures: u32,
    /// What the attempts are, for the refusal.
    what: &'static str,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            keys: Mutex::default(),
            free_failures: FREE_FAILURES,
            what: "login",
        }
    }
}

impl LoginThrottle {
    /// For a method whose credentials are signed rather than secrets a caller could guess.
    pub fn for_signed_credentials() -> Self {
        LoginThrottle {
            free_failures: FREE_FAILURES_SIGNED,
            ..Self::default()
        }
    }

    /// For unseal keys: as few free failures as a password, named as unseal attempts.
    pub fn for_unseal() -> Self {
        LoginThrottle {
            what: "unseal",
            ..Self::default()
        }
    }

    /// Refuses an attempt while `key` is locked.
    pub fn check(&self, key: &str) -> Result<()> {
        let now = Instant::now();
        match self.keys.lock().get(key) {
            // Rounded up: "retry in 0s" would invite a retry that is still refused.
            Some(f) if f.locked_until > now => Err(EngineError::TooManyAttempts {
                what: self.what,
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
        let delay = delay_after(f.count, self.free_failures);
        f.locked_until = now + delay;
        delay
    }

    pub fn succeeded(&self, key: &str) {
        self.keys.lock().remove(key);
    }
}

/// The lock after the `count`th failure in a row, the first `free` costing nothing.
fn delay_after(count: u32, free: u32) -> Duration {
    if count <= free {
        return Duration::ZERO;
    }
    let doublings = (count - free - 1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_after_the_free_failures() {
        let delays: Vec<u64> = (1..=12)
            .map(|n| delay_after(n, FREE_FAILURES).as_secs())
            .collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        let signed: Vec<u64> = (9..=14)
            .map(|n| delay_after(n, FREE_FAILURES_SIGNED).as_secs())
            .collect();
        assert_eq!(signed, [0, 0, 1, 2, 4, 8]);
    }

    /// `free` failures pass; the next locks the key for the first delay.
    fn locks_after(t: &LoginThrottle, free: u32) {
        for _ in 0..free {
            t.failed("k");
            t.check("k").unwrap();
        }
        t.failed("k");
        assert!(matches!(
            t.check("k"),
            Err(EngineError::TooManyAttempts { retry_after: 1, .. })
        ));
    }

    #[test]
    fn a_signed_credential_method_locks_after_its_own_allowance() {
        locks_after(
            &LoginThrottle::for_signed_credentials(),
            FREE_FAILURES_SIGNED,
        );
    }

    #[test]
    fn a_locked_key_is_refused_and_a_success_clears_it() {
        let t = LoginThrottle::default();
        locks_after(&t, FREE_FAILURES);
        t.check("other").unwrap();
        t.succeeded("k");
        t.check("k").unwrap();
    }
}
