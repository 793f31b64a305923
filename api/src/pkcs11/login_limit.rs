//! Failed logins counted per peer, so a PIN (an appliance token, or the name of a PIN
//! entry, which may be short) cannot be guessed at the speed of the socket.
//!
//! A sliding window: a peer that has failed [`MAX_FAILURES`] times within [`WINDOW`] gets
//! `CKR_PIN_INCORRECT` for its next `C_Login` without the engine being asked, until the
//! oldest of those failures is older than the window. A successful login does not forget
//! them: otherwise a peer holding one valid PIN could guess others between its own
//! logins. Logins in flight count as failures until they are answered, so a peer
//! cannot pass the bound by sending many logins at once over its pooled connections.
//!
//! Every call after a login carries the PIN too, so any call could test one: a call with
//! a PIN answered "wrong PIN" or "not logged in" counts as a failure as well, and while a
//! peer is locked out its calls carrying a PIN are refused with `CKR_USER_NOT_LOGGED_IN`
//! (only logins are reserved in flight: an application's own threads send many calls
//! with the right PIN at once). A peer is a principal (a uid, or a client certificate),
//! so the lock-out falls on whoever guesses.
//!
//! A peer that keeps reaching the bound is locked out for longer each time: the second
//! lock-out lasts twice [`WINDOW`], the third four times, up to [`MAX_LOCK`], so the
//! guessing rate falls exponentially rather than settling at five a minute. Lock-outs
//! are forgotten once a peer has had none for [`FORGET_LOCKOUTS`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a peer may have within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The longest lock-out, however often a peer reached the bound.
pub const MAX_LOCK: Duration = Duration::from_secs(3600);
/// A peer whose last lock-out ended this long ago starts again from the first.
pub const FORGET_LOCKOUTS: Duration = Duration::from_secs(900);
/// Above this many peers, the ones with nothing left to remember are dropped.
const TIDY_ABOVE: usize = 1024;

/// Whom failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Uid(u32),
    /// The SHA-256 of the client certificate a TCP peer presented.
    Certificate([u8; 32]),
}

#[derive(Default)]
struct Record {
    failures: VecDeque<Instant>,
    /// Logins sent to the engine and not answered yet.
    pending: usize,
    /// How many times in a row the peer reached the bound.
    lockouts: u32,
    /// The end of the current lock-out past the first (the first ends with the window).
    locked_until: Option<Instant>,
    /// When the last lock-out began.
    last_lockout: Option<Instant>,
}

impl Record {
    /// The failure just recorded reached the bound: a lock-out, each after the first
    /// twice as long as the one before.
    fn lock_out(&mut self, now: Instant) {
        self.lockouts = self.lockouts.saturating_add(1);
        self.last_lockout = Some(now);
        if self.lockouts > 1 {
            let doublings = (self.lockouts - 1).min(16);
            self.locked_until = Some(now + (WINDOW * 2u32.pow(doublings)).min(MAX_LOCK));
        }
    }

    /// How long the peer must still wait for its current lock-out past the first.
    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn forget_before(&mut self, now: Instant) {
        let lock_end = self.locked_until.or(self.last_lockout);
        if lock_end.is_some_and(|end| now.saturating_duration_since(end) >= FORGET_LOCKOUTS) {
            self.lockouts = 0;
            self.locked_until = None;
            self.last_lockout = None;
        }
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.failures.pop_front();
        }
    }

    /// When the oldest failure in the window leaves it.
    fn retry_after(&self, now: Instant) -> Duration {
        self.failures
            .front()
            .map(|t| (*t + WINDOW).saturating_duration_since(now))
            .unwrap_or(WINDOW)
    }

    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.pending == 0 && self.lockouts == 0
    }
}

/// A login on its way to the engine; if it never comes back (its task ended), it counts
/// for nothing.
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    key: PeerKey,
    open: bool,
}

impl LoginAttempt<'_> {
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        self.open = false;
        self.limiter.finish_login(&self.key, outcome, now);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.open {
            self.limiter
                .finish_login(&self.key, Outcome::Other, Instant::now());
        }
    }
}

#[derive(Default)]
pub struct LoginLimiter {
    peers: Mutex<HashMap<PeerKey, Record>>,
}

/// How an authenticated call ended, for the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
    /// Neither (the call failed for another reason): nothing learnt about the PIN.
    Other,
}

impl LoginLimiter {
    /// A login may go to the engine: reserves it (until the attempt is finished or
    /// dropped), or says how long the peer must wait.
    pub fn begin_login(&self, key: &PeerKey, now: Instant) -> Result<LoginAttempt<'_>, Duration> {
        let mut peers = self.lock();
        let record = peers.entry(key.clone()).or_default();
        record.forget_before(now);
        if let Some(wait) = record.locked_for(now) {
            return Err(wait);
        }
        if record.failures.len() + record.pending >= MAX_FAILURES {
            let wait = record.retry_after(now);
            if record.is_empty() {
                peers.remove(key);
            }
            return Err(wait);
        }
        record.pending += 1;
        Ok(LoginAttempt {
            limiter: self,
            key: key.clone(),
            open: true,
        })
    }

    fn finish_login(&self, key: &PeerKey, outcome: Outcome, now: Instant) {
        let mut peers = self.lock();
        if let Some(record) = peers.get_mut(key) {
            record.pending = record.pending.saturating_sub(1);
        }
        Self::note(&mut peers, key, outcome, now);
    }

    /// A call carrying a PIN (not a login) may go to the engine, or the peer must wait.
    pub fn check(&self, key: &PeerKey, now: Instant) -> Result<(), Duration> {
        let mut peers = self.lock();
        let Some(record) = peers.get_mut(key) else {
            return Ok(());
        };
        record.forget_before(now);
        if let Some(wait) = record.locked_for(now) {
            return Err(wait);
        }
        if record.failures.len() >= MAX_FAILURES {
            return Err(record.retry_after(now));
        }
        Ok(())
    }

    /// What a call carrying a PIN (not a login) told about it.
    pub fn record(&self, key: &PeerKey, outcome: Outcome, now: Instant) {
        Self::note(&mut self.lock(), key, outcome, now);
    }

    fn note(peers: &mut HashMap<PeerKey, Record>, key: &PeerKey, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Accepted | Outcome::Other => {}
            Outcome::Refused => {
                let record = peers.entry(key.clone()).or_default();
                record.forget_before(now);
                record.failures.push_back(now);
                if record.failures.len() == MAX_FAILURES {
                    record.lock_out(now);
                }
            }
        }
        if peers.get(key).is_some_and(Record::is_empty) {
            peers.remove(key);
        }
        if peers.len() > TIDY_ABOVE {
            peers.retain(|_, r| {
                r.forget_before(now);
                !r.is_empty()
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerKey, Record>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn peers(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(l: &LoginLimiter, key: &PeerKey, now: Instant) {
        l.begin_login(key, now)
            .expect("not locked yet")
            .finish(Outcome::Refused, now);
    }

    #[test]
    fn five_failures_lock_the_peer_out_until_the_window_has_passed() {
        let l = LoginLimiter::default();
        let me = PeerKey::Uid(1000);
        let other = PeerKey::Uid(1001);
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            fail(&l, &me, t0 + Duration::from_secs(i as u64));
        }
        let t = t0 + Duration::from_secs(10);
        let Err(wait) = l.begin_login(&me, t) else {
            panic!("the sixth login is refused");
        };
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.check(&me, t).is_err(), "calls with a PIN are refused too");
        // Another peer is not affected.
        l.begin_login(&other, t)
            .unwrap()
            .finish(Outcome::Accepted, t);
        // The oldest failure leaves the window: one more attempt.
        let later = t0 + WINDOW;
        fail(&l, &me, later);
        assert!(l.begin_login(&me, later).is_err());
    }

    #[test]
    fn each_lock_out_lasts_twice_as_long_as_the_last() {
        let l = LoginLimiter::default();
        let me = PeerKey::Uid(1000);
        let mut t = Instant::now();
        let mut locks = Vec::new();
        for _ in 0..4 {
            for _ in 0..MAX_FAILURES {
                fail(&l, &me, t);
            }
            let Err(wait) = l.begin_login(&me, t) else {
                panic!("locked out after {MAX_FAILURES} failures");
            };
            assert!(l.check(&me, t).is_err(), "calls with a PIN are refused too");
            locks.push(wait.as_secs());
            t += wait;
            assert!(l.begin_login(&me, t).is_ok(), "the lock-out ends");
            l.begin_login(&me, t).unwrap().finish(Outcome::Other, t);
        }
        assert_eq!(locks, [60, 120, 240, 480]);
        // Quiet long enough, the peer starts again from the first lock-out.
        t += FORGET_LOCKOUTS;
        for _ in 0..MAX_FAILURES {
            fail(&l, &me, t);
        }
        assert_eq!(l.begin_login(&me, t).err(), Some(WINDOW));
        t += WINDOW + FORGET_LOCKOUTS;
        l.begin_login(&me, t).unwrap().finish(Outcome::Other, t);
        assert_eq!(l.peers(), 0, "nothing left to remember");
    }

    #[test]
    fn a_success_does_not_forget_the_failures() {
        let l = LoginLimiter::default();
        let me = PeerKey::Certificate([7; 32]);
        let t = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            fail(&l, &me, t);
        }
        // A peer holding one valid PIN cannot use it to buy more guesses.
        l.begin_login(&me, t).unwrap().finish(Outcome::Accepted, t);
        fail(&l, &me, t);
        assert!(l.begin_login(&me, t).is_err());
        assert_eq!(l.peers(), 1);
    }

    #[test]
    fn logins_in_flight_count_until_answered() {
        let l = LoginLimiter::default();
        let me = PeerKey::Uid(1);
        let t = Instant::now();
        let in_flight: Vec<_> = (0..MAX_FAILURES)
            .map(|_| l.begin_login(&me, t).expect("within the bound"))
            .collect();
        assert!(l.begin_login(&me, t).is_err(), "a sixth concurrent login");
        // Calls other than logins are not held back by logins in flight.
        assert!(l.check(&me, t).is_ok());
        // Attempts whose task ended count for nothing.
        drop(in_flight);
        l.begin_login(&me, t).unwrap().finish(Outcome::Other, t);
        assert_eq!(l.peers(), 0, "nothing left to remember");
    }

    #[test]
    fn failed_calls_with_a_pin_count_as_guesses() {
        let l = LoginLimiter::default();
        let me = PeerKey::Uid(2);
        let t = Instant::now();
        for _ in 0..MAX_FAILURES {
            l.check(&me, t).unwrap();
            l.record(&me, Outcome::Refused, t);
        }
        assert!(l.begin_login(&me, t).is_err());
        assert!(l.check(&me, t).is_err());
    }
}
