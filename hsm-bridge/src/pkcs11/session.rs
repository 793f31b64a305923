//! The session pool: sessions are reused; an operation that fails because its session or
//! login went away is retried once on a fresh, logged-in session, and a second loss marks
//! the token failed so the next `open` starts over.

use std::sync::atomic::Ordering;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};

use super::error::{describe, session_lost};
use super::root_key::find_key;
use super::Pkcs11Root;

/// Sessions kept open for reuse; more may exist briefly under load. Enough for the
/// engine's device lane (four calls per core) on a large machine, so that a steady load
/// never pays a `C_OpenSession` and `C_Login` per call.
const POOL_MAX: usize = 64;

impl Pkcs11Root {
    pub(super) fn healthy(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    pub(super) fn new_session(&self) -> Result<Session, CkError> {
        let s = self.ctx.open_rw_session(self.slot)?;
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(e) => Err(e),
        }
    }

    /// Runs `op` on a pooled session; if the session or login was lost, once more on a
    /// fresh one (re-finding the key, whose handle may have changed).
    pub(super) fn with_session<T>(
        &self,
        mut op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        let pooled = self.pool.lock().pop();
        let session = match pooled {
            Some(s) => s,
            None => self.new_session()?,
        };
        match op(&session) {
            Ok(v) => {
                self.give_back(session);
                Ok(v)
            }
            Err(e) if session_lost(&e) => {
                tracing::warn!(error = %describe(&e), "HSM session lost; opening a new one");
                drop(session);
                self.pool.lock().clear();
                let fresh = self.new_session().inspect_err(|_| self.mark_failed())?;
                if let Ok(Some(k)) = find_key(&fresh, &self.key_label) {
                    *self.key.lock() = k;
                }
                let out = op(&fresh);
                match &out {
                    Ok(_) => self.give_back(fresh),
                    Err(e) if session_lost(e) => self.mark_failed(),
                    Err(_) => self.give_back(fresh),
                }
                out
            }
            Err(e) => {
                self.give_back(session);
                Err(e)
            }
        }
    }

    fn give_back(&self, s: Session) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL_MAX {
            pool.push(s);
        }
    }

    fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}
