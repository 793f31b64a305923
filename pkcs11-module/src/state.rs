//! The library's global state: one [`Library`] per `C_Initialize`, its sessions, the
//! login they share, and the object handles it has given out.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock as StdRwLock, RwLockReadGuard, RwLockWriteGuard};

use parking_lot::{Mutex, MutexGuard, RwLock};
use pkcs11_wire::{
    ck, AttrValue, Call, Function, KeyClass, Mechanism, MechanismInfo, Object, ObjectRef, Op,
    Reply, TokenInfo, UserType,
};
use zeroize::Zeroizing;

use crate::client::{Client, Config};
use crate::fns::{debug, CkResult};

/// `None` before `C_Initialize` and after `C_Finalize`. A std lock rather than
/// parking_lot's: its unlock in a forked child (see [`before_fork`]) touches nothing but
/// the lock's own word, never a queue another thread may have been holding.
static LIBRARY: StdRwLock<Option<Arc<Library>>> = StdRwLock::new(None);

type Slot = Option<Arc<Library>>;

fn read_slot() -> RwLockReadGuard<'static, Slot> {
    LIBRARY.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_slot() -> RwLockWriteGuard<'static, Slot> {
    LIBRARY.write().unwrap_or_else(PoisonError::into_inner)
}

/// Forks this process has made since the library was loaded (counted in the child by a
/// `pthread_atfork` handler). A pid alone would not do: a descendant can be given the pid
/// of an ancestor that has exited, and must still not use its connections or login.
static FORKS: AtomicU64 = AtomicU64::new(0);
static WATCH_FORKS: std::sync::Once = std::sync::Once::new();

thread_local! {
    /// The global lock, held by the forking thread from just before `fork` until it
    /// returns, in the parent and in the child alike (the child's one thread is a copy
    /// of the forking one).
    static HELD_ACROSS_FORK: RefCell<Option<RwLockWriteGuard<'static, Slot>>> =
        const { RefCell::new(None) };
}

/// `fork` is never made while another thread holds the global lock (`C_Initialize`
/// swapping the library in, any call reading it): the child would inherit a lock that no
/// thread of its own can release, and hang in its first call.
extern "C" fn before_fork() {
    let guard = write_slot();
    let _ = HELD_ACROSS_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

extern "C" fn after_fork_in_parent() {
    let _ = HELD_ACROSS_FORK.try_with(|held| held.borrow_mut().take());
}

extern "C" fn after_fork_in_child() {
    FORKS.fetch_add(1, Ordering::SeqCst);
    let _ = HELD_ACROSS_FORK.try_with(|held| held.borrow_mut().take());
}

fn watch_forks() {
    WATCH_FORKS.call_once(|| {
        if let Err(e) =
            crate::ffi::sys::on_fork(before_fork, after_fork_in_parent, after_fork_in_child)
        {
            debug(
                Function::C_Initialize,
                &format!("cannot watch for fork, relying on the pid alone: {e}"),
            );
        }
    });
}

/// The initialised library, if this process initialised it (a forked child has not).
pub fn library() -> CkResult<Arc<Library>> {
    match read_slot().as_ref() {
        Some(lib) if lib.ours() => Ok(lib.clone()),
        _ => Err(ck::CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

/// Installs a new library unless this process already has one. A library inherited
/// through `fork` is forgotten, never closed: its connections are the parent's.
pub fn install(make: impl FnOnce() -> CkResult<Library>) -> CkResult<()> {
    if library().is_ok() {
        return Err(ck::CKR_CRYPTOKI_ALREADY_INITIALIZED);
    }
    // Built before the lock is taken (reading the configuration, drawing the instance
    // id), so that the lock is held only for the swap and a `fork` waits the least.
    let made = Arc::new(make()?);
    let mut slot = write_slot();
    if let Some(lib) = slot.as_ref() {
        if lib.ours() {
            return Err(ck::CKR_CRYPTOKI_ALREADY_INITIALIZED);
        }
        if let Some(inherited) = slot.take() {
            std::mem::forget(inherited);
        }
    }
    *slot = Some(made);
    Ok(())
}

/// Takes the library out for `C_Finalize`.
pub fn remove() -> CkResult<Arc<Library>> {
    let mut slot = write_slot();
    match slot.as_ref() {
        Some(lib) if lib.ours() => slot.take().ok_or(ck::CKR_CRYPTOKI_NOT_INITIALIZED),
        _ => Err(ck::CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

pub struct Login {
    pub user: UserType,
    pub pin: Zeroizing<String>,
}

pub struct Library {
    pid: u32,
    /// `FORKS` when this library was made.
    forks: u64,
    pub client: Client,
    pub config: Config,
    pub sessions: RwLock<HashMap<ck::CK_SESSION_HANDLE, Arc<SessionEntry>>>,
    next_session: AtomicU64,
    pub login: RwLock<Option<Login>>,
    pub handles: Mutex<Handles>,
    /// The latest token facts, for mechanism checks at `*Init` without a round trip.
    token: Mutex<Option<TokenInfo>>,
}

impl Library {
    /// Made by this process, not inherited through `fork`.
    fn ours(&self) -> bool {
        self.pid == std::process::id() && self.forks == FORKS.load(Ordering::SeqCst)
    }

    pub fn new(config: Config, client: Client) -> Library {
        watch_forks();
        Library {
            pid: std::process::id(),
            forks: FORKS.load(Ordering::SeqCst),
            client,
            config,
            sessions: RwLock::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            login: RwLock::new(None),
            handles: Mutex::new(Handles::default()),
            token: Mutex::new(None),
        }
    }

    /// One call on the wire under the current login; a daemon's error becomes its `CK_RV`.
    pub fn call(&self, function: Function, op: Op) -> CkResult<Reply> {
        let pin = self.login.read().as_ref().map(|l| l.pin.clone());
        self.call_as(function, pin, op)
    }

    /// One call on the wire under the given PIN.
    pub fn call_as(
        &self,
        function: Function,
        pin: Option<Zeroizing<String>>,
        op: Op,
    ) -> CkResult<Reply> {
        match self.client.call(&Call { function, pin, op }) {
            Ok(Reply::Error { rv, message }) => {
                debug(function, &message);
                Err(if rv == ck::CKR_OK {
                    ck::CKR_DEVICE_ERROR
                } else {
                    rv
                })
            }
            Ok(reply) => Ok(reply),
            Err(e) => {
                debug(function, &e.to_string());
                Err(e.rv())
            }
        }
    }

    /// Fresh token facts from the daemon.
    pub fn token_info(&self, function: Function) -> CkResult<TokenInfo> {
        match self.call(function, Op::TokenInfo)? {
            Reply::Token(token) => {
                *self.token.lock() = Some(token.clone());
                Ok(token)
            }
            _ => Err(ck::CKR_DEVICE_ERROR),
        }
    }

    /// The token facts last seen, fetched if none were.
    pub fn known_token(&self, function: Function) -> CkResult<TokenInfo> {
        if let Some(token) = self.token.lock().clone() {
            return Ok(token);
        }
        if let Some(token) = self.client.welcomed() {
            return Ok(token);
        }
        self.token_info(function)
    }

    /// The mechanism if the token offers it for `flag` (`CKF_SIGN`, ...).
    pub fn mechanism(
        &self,
        function: Function,
        mechanism: &Mechanism,
        flag: ck::CK_FLAGS,
    ) -> CkResult<MechanismInfo> {
        let find = |token: &TokenInfo| {
            if !token.present {
                return Err(ck::CKR_TOKEN_NOT_PRESENT);
            }
            token
                .mechanisms
                .iter()
                .find(|m| m.kind == mechanism.kind && m.flags & flag == flag)
                .copied()
                .ok_or(ck::CKR_MECHANISM_INVALID)
        };
        // The facts last seen may predate an unseal or an upgrade: a miss asks again.
        find(&self.known_token(function)?).or_else(|_| find(&self.token_info(function)?))
    }

    pub fn session(&self, handle: ck::CK_SESSION_HANDLE) -> CkResult<Arc<SessionEntry>> {
        self.sessions
            .read()
            .get(&handle)
            .cloned()
            .ok_or(ck::CKR_SESSION_HANDLE_INVALID)
    }

    pub fn add_session(&self, rw: bool) -> ck::CK_SESSION_HANDLE {
        let handle = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.sessions.write().insert(
            handle,
            Arc::new(SessionEntry {
                rw,
                state: Mutex::new(Session::new()),
            }),
        );
        handle
    }

    pub fn user(&self) -> Option<UserType> {
        self.login.read().as_ref().map(|l| l.user)
    }

    /// The object a handle names, or `invalid` (`CKR_OBJECT_HANDLE_INVALID` or
    /// `CKR_KEY_HANDLE_INVALID`, as the function calls it).
    pub fn object(&self, handle: ck::CK_OBJECT_HANDLE, invalid: ck::CK_RV) -> CkResult<ObjectRef> {
        self.known(handle, invalid).map(|known| known.object)
    }

    /// The object a handle names with what the library knows of it, or `invalid`.
    pub fn known(&self, handle: ck::CK_OBJECT_HANDLE, invalid: ck::CK_RV) -> CkResult<Known> {
        self.handles.lock().known(handle).ok_or(invalid)
    }

    pub fn handle(&self, object: &Object) -> ck::CK_OBJECT_HANDLE {
        self.handles.lock().handle(object)
    }
}

/// An object as the library keeps it behind a handle: the daemon's reference, and the
/// class and key type the daemon reported when the handle was made (neither changes),
/// so `*Init` can check a key against a mechanism without a round trip. `None` where the
/// daemon did not say; the daemon checks again in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub object: ObjectRef,
    pub class: Option<ck::CK_OBJECT_CLASS>,
    pub key_type: Option<ck::CK_KEY_TYPE>,
}

impl Known {
    pub fn of(object: &Object) -> Known {
        let ulong = |kind| {
            object.attributes.iter().find_map(|a| match a.value {
                AttrValue::Ulong(value) if a.kind == kind => Some(value),
                _ => None,
            })
        };
        let class = ulong(ck::CKA_CLASS).or(match object.handle {
            ObjectRef::Key { class, .. } => Some(match class {
                KeyClass::Public => ck::CKO_PUBLIC_KEY,
                KeyClass::Private => ck::CKO_PRIVATE_KEY,
                KeyClass::Secret => ck::CKO_SECRET_KEY,
            }),
            _ => None,
        });
        Known {
            object: object.handle,
            class,
            key_type: ulong(ck::CKA_KEY_TYPE),
        }
    }
}

/// `CK_OBJECT_HANDLE`s for the daemon's objects: non-zero, and the same for the same
/// object for the library's life.
#[derive(Default)]
pub struct Handles {
    by_object: HashMap<ObjectRef, ck::CK_OBJECT_HANDLE>,
    by_handle: HashMap<ck::CK_OBJECT_HANDLE, Known>,
    last: ck::CK_OBJECT_HANDLE,
}

impl Handles {
    pub fn handle(&mut self, object: &Object) -> ck::CK_OBJECT_HANDLE {
        let known = Known::of(object);
        let handle = match self.by_object.get(&object.handle) {
            Some(handle) => *handle,
            None => {
                self.last += 1;
                self.by_object.insert(object.handle, self.last);
                self.last
            }
        };
        self.by_handle.insert(handle, known);
        handle
    }

    pub fn known(&self, handle: ck::CK_OBJECT_HANDLE) -> Option<Known> {
        self.by_handle.get(&handle).copied()
    }

    /// Forgets an object that no longer exists.
    pub fn forget(&mut self, object: &ObjectRef) {
        if let Some(handle) = self.by_object.remove(object) {
            self.by_handle.remove(&handle);
        }
    }
}

/// A cryptographic operation between its `*Init` and its end.
pub struct Operation {
    pub mechanism: Mechanism,
    pub key: Option<ObjectRef>,
    /// What `*Update` gathered (sent as one call at `*Final`).
    pub data: Zeroizing<Vec<u8>>,
    pub multipart: bool,
    /// The output of the call already made, kept when the application's buffer was
    /// missing or too small.
    pub output: Option<Zeroizing<Vec<u8>>>,
}

impl Operation {
    pub fn new(mechanism: Mechanism, key: Option<ObjectRef>) -> Operation {
        Operation {
            mechanism,
            key,
            data: Zeroizing::new(Vec::new()),
            multipart: false,
            output: None,
        }
    }
}

/// What a completed `C_EncapsulateKey` left behind for the call after a size query.
pub struct Encapsulated {
    pub key: ck::CK_OBJECT_HANDLE,
    pub ciphertext: Vec<u8>,
    pub new_key: ck::CK_OBJECT_HANDLE,
}

/// A session: its fixed kind, and its state behind a lock held for one call at a time.
pub struct SessionEntry {
    pub rw: bool,
    state: Mutex<Session>,
}

impl SessionEntry {
    pub fn lock(&self) -> MutexGuard<'_, Session> {
        self.state.lock()
    }
}

pub struct Session {
    pub find: Option<Vec<ck::CK_OBJECT_HANDLE>>,
    pub encrypt: Option<Operation>,
    pub decrypt: Option<Operation>,
    pub sign: Option<Operation>,
    pub verify: Option<Operation>,
    pub digest: Option<Operation>,
    pub encapsulated: Option<Encapsulated>,
    /// Session objects (`CKA_TOKEN` false) made in this session, released when it closes.
    pub objects: Vec<u64>,
}

impl Session {
    fn new() -> Session {
        Session {
            find: None,
            encrypt: None,
            decrypt: None,
            sign: None,
            verify: None,
            digest: None,
            encapsulated: None,
            objects: Vec::new(),
        }
    }

    /// Ends the operations that used a key (logout makes private keys unusable).
    pub fn end_key_operations(&mut self) {
        self.encrypt = None;
        self.decrypt = None;
        self.sign = None;
        self.verify = None;
        self.find = None;
    }

    /// Remembers a session object made here, so closing the session releases it.
    pub fn owns(&mut self, object: &ObjectRef) {
        if let ObjectRef::Session { id } = object {
            self.objects.push(*id);
        }
    }
}
