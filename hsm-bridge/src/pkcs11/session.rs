//! The session pool: sessions are reused; an operation that fails because its session or
//! login went away is retried once on a fresh, logged-in session. A second loss marks the
//! token failed, and the next call reinitialises the module, logs in again and finds the
//! root key again before it runs: a token that went away and came back serves again
//! without a restart of the appliance.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use parking_lot::RwLockReadGuard;

use super::error::{describe, session_lost, token_gone};
use super::root_key::find_key;
use super::Pkcs11Root;

/// Sessions kept open for reuse; more may exist briefly under load. Enough for the
/// engine's device lane (four calls per core) on a large machine, so that a steady load
/// never pays a `C_OpenSession` and `C_Login` per call.
const POOL_MAX: usize = 64;

/// How long a reconnect waits for the calls in flight to end. A thread that is itself in
/// such a call (a nested one) cannot wait for it: it gives up, and the next request
/// reconnects.
const RECONNECT_WAIT: Duration = Duration::from_secs(5);

impl Pkcs11Root {
    pub(super) fn healthy(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// Reconnects if the token was marked failed. Not to be called holding `module`,
    /// `holder` or `unwrapped`: a reconnect needs the module alone and empties the others.
    pub(super) fn reconnect_if_failed(&self) -> Result<(), CkError> {
        if self.healthy() {
            Ok(())
        } else {
            self.reconnect()
        }
    }

    /// Shared use of the module, held across calls on its sessions and objects.
    pub(super) fn using_module(&self) -> RwLockReadGuard<'_, ()> {
        self.module.read_recursive()
    }

    /// A fresh session, logged in.
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
        self.reconnect_if_failed()?;
        let _module = self.using_module();
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
                let fresh = self.new_session().map_err(|e| self.lost(e))?;
                // A token whose objects went away (SoftHSM2 with its token directory moved
                // away answers CKR_OBJECT_HANDLE_INVALID, then finds nothing) is not served
                // by a fresh session: only a reconnect once it is back.
                match find_key(&fresh, &self.key_label) {
                    Ok(Some(k)) => *self.key.lock() = k,
                    Ok(None) => return Err(self.lost(e)),
                    Err(e) => return Err(self.lost(e)),
                }
                let out = op(&fresh);
                match out {
                    Err(e) if session_lost(&e) => Err(self.lost(e)),
                    out => {
                        self.give_back(fresh);
                        out
                    }
                }
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

    /// Marks the token failed after a fresh session did not cure a loss: the next call
    /// reconnects first.
    pub(super) fn lost(&self, e: CkError) -> CkError {
        self.mark_failed();
        token_gone("a fresh session after a lost one", e)
    }

    /// Finalises and initialises the module again, logs in and finds the root key again.
    /// A module whose token went away keeps answering from its stale state after the
    /// token is back (SoftHSM2 with its token directory moved away and back still answers
    /// CKR_OBJECT_HANDLE_INVALID and finds no objects until `C_Finalize`/`C_Initialize`),
    /// so a fresh session is not enough. Every handle held is stale afterwards: the
    /// unwrapped managed keys are dropped and the export key is found again on use.
    fn reconnect(&self) -> Result<(), CkError> {
        let _one = self.reconnecting.lock();
        if self.healthy() {
            return Ok(());
        }
        let Some(_alone) = self.module.try_write_for(RECONNECT_WAIT) else {
            tracing::warn!("reconnecting to the HSM token: calls still in flight; the next request tries again");
            return Err(CkError::Pkcs11(
                RvError::TokenNotPresent,
                Function::Finalize,
            ));
        };
        self.forget_all();
        self.pool.lock().clear();
        *self.export_key.lock() = None;
        let _ = self.ctx.clone().finalize();
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(token_gone("reconnecting: C_Initialize", e)),
        }
        let session = self
            .new_session()
            .map_err(|e| token_gone("reconnecting: C_OpenSession / C_Login", e))?;
        match find_key(&session, &self.key_label) {
            Ok(Some(k)) => *self.key.lock() = k,
            Ok(None) => {
                tracing::warn!(key = %self.key_label, "reconnecting to the HSM token: no root key under its label (yet)");
                return Err(CkError::Pkcs11(
                    RvError::TokenNotPresent,
                    Function::FindObjects,
                ));
            }
            Err(e) => return Err(token_gone("reconnecting: C_FindObjects (root key)", e)),
        }
        self.give_back(session);
        self.failed.store(false, Ordering::Relaxed);
        tracing::info!(token = %self.token_label, "HSM session restored: reinitialised, logged in, root key found");
        Ok(())
    }
}
