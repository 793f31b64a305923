//! The console's sessions: in memory only (a restart signs everyone out), bounded in
//! number. A session starts anonymous, so that init, unseal and sign-in carry a CSRF
//! token too; signing in replaces it with a new one bound to the token (a session id
//! known before sign-in is worth nothing after it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Sessions held at once; past it the least recently used goes (anonymous ones first).
pub const MAX_SESSIONS: usize = 1024;
/// An anonymous session unused this long is dropped.
const ANONYMOUS_IDLE: Duration = Duration::from_secs(30 * 60);
/// A signed-in session unused this long is dropped, whatever its token's TTL.
const SIGNED_IN_IDLE: Duration = Duration::from_secs(8 * 60 * 60);

/// 256 random bits, base64url.
fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sessions are found by a hash of their id: the map never holds a usable cookie.
fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Who a signed-in session acts as.
#[derive(Clone)]
pub struct Identity {
    pub token: Zeroizing<String>,
    pub display_name: String,
    pub policies: Vec<String>,
    pub accessor: String,
    /// Unix seconds; None: the token does not expire.
    pub expire_time: Option<i64>,
    /// The appliance's seal count when the session was made.
    pub seals: u64,
}

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    pub identity: Option<Identity>,
    /// Why the previous signed-in session on this cookie ended, told once.
    pub ended: Option<String>,
    last_used: Instant,
}

impl Session {
    fn new() -> Self {
        Session {
            csrf: random_id(),
            identity: None,
            ended: None,
            last_used: Instant::now(),
        }
    }

    fn idle_limit(&self) -> Duration {
        if self.identity.is_some() {
            SIGNED_IN_IDLE
        } else {
            ANONYMOUS_IDLE
        }
    }

    fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.last_used) > self.idle_limit()
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        engine::constant_time_eq(self.csrf.as_bytes(), given.as_bytes())
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// The session `id` names, marked used; None when there is none (or it went stale).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock();
        let now = Instant::now();
        let k = key(id);
        let s = map.get_mut(&k)?;
        if s.stale(now) {
            map.remove(&k);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// A new anonymous session: its id and state.
    pub fn create(&self) -> (String, Session) {
        self.insert(Session::new())
    }

    /// A new session bound to `identity`, replacing `old` (if any).
    pub fn sign_in(&self, old: Option<&str>, identity: Identity) -> (String, Session) {
        if let Some(old) = old {
            self.remove(old);
        }
        let mut s = Session::new();
        s.identity = Some(identity);
        self.insert(s)
    }

    fn insert(&self, s: Session) -> (String, Session) {
        let id = random_id();
        let mut map = self.map.lock();
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| !s.stale(now));
        }
        if map.len() >= MAX_SESSIONS {
            // Anonymous sessions cost their owner nothing to make again.
            let victim = map
                .iter()
                .min_by_key(|(_, s)| (s.identity.is_some(), s.last_used))
                .map(|(k, _)| *k);
            if let Some(k) = victim {
                map.remove(&k);
            }
        }
        map.insert(key(&id), s.clone());
        (id, s)
    }

    /// Drops the session.
    pub fn remove(&self, id: &str) {
        self.map.lock().remove(&key(id));
    }

    /// Ends a signed-in session: its token is forgotten and the session, anonymous
    /// again with a new CSRF token, tells `reason` to the next session read.
    pub fn end(&self, id: &str, reason: String) {
        if let Some(s) = self.map.lock().get_mut(&key(id)) {
            s.identity = None;
            s.csrf = random_id();
            s.ended = Some(reason);
        }
    }

    /// Takes the reason the session's sign-in ended, to tell it once.
    pub fn take_ended(&self, id: &str) -> Option<String> {
        self.map
            .lock()
            .get_mut(&key(id))
            .and_then(|s| s.ended.take())
    }

    /// Records the token's current expiry (renewals move it).
    pub fn set_expiry(&self, id: &str, expire_time: Option<i64>) {
        if let Some(identity) = self
            .map
            .lock()
            .get_mut(&key(id))
            .and_then(|s| s.identity.as_mut())
        {
            identity.expire_time = expire_time;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            token: Zeroizing::new("t".into()),
            display_name: "root".into(),
            policies: vec!["root".into()],
            accessor: "a".into(),
            expire_time: None,
            seals: 0,
        }
    }

    #[test]
    fn signing_in_replaces_the_anonymous_session() {
        let sessions = Sessions::default();
        let (anon, a) = sessions.create();
        let (signed, s) = sessions.sign_in(Some(&anon), identity());
        assert_ne!(anon, signed);
        assert_ne!(a.csrf, s.csrf);
        assert!(sessions.get(&anon).is_none());
        assert!(sessions.get(&signed).unwrap().identity.is_some());
    }

    #[test]
    fn an_ended_session_forgets_its_token_and_tells_why_once() {
        let sessions = Sessions::default();
        let (id, s) = sessions.sign_in(None, identity());
        sessions.end(&id, "session ended: the token was revoked".into());
        let now = sessions.get(&id).unwrap();
        assert!(now.identity.is_none());
        assert_ne!(now.csrf, s.csrf);
        assert_eq!(
            sessions.take_ended(&id).as_deref(),
            Some("session ended: the token was revoked")
        );
        assert_eq!(sessions.take_ended(&id), None);
    }

    #[test]
    fn the_number_of_sessions_is_bounded_and_signed_in_ones_go_last() {
        let sessions = Sessions::default();
        let (signed, _) = sessions.sign_in(None, identity());
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.create();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&signed).is_some());
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let s = Session::new();
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches(""));
        assert!(!s.csrf_matches(&s.csrf[..10]));
    }
}
