//! Session management (PKCS#11 "Session management functions"): sessions, and the one
//! login all sessions of the application share.

use pkcs11_wire::{ck, Function, Op, UserType};
use zeroize::Zeroizing;

use super::object::expect_ok;
use super::slot::check_slot;
use super::CkResult;
use crate::state::{library, Library, Login};

pub fn open_session(slot: ck::CK_SLOT_ID, flags: ck::CK_FLAGS) -> CkResult<ck::CK_SESSION_HANDLE> {
    let lib = library()?;
    check_slot(slot)?;
    if flags & ck::CKF_SERIAL_SESSION == 0 {
        return Err(ck::CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    }
    if !lib.token_info(Function::C_OpenSession)?.present {
        return Err(ck::CKR_TOKEN_NOT_PRESENT);
    }
    let rw = flags & ck::CKF_RW_SESSION != 0;
    if !rw && lib.user() == Some(UserType::SecurityOfficer) {
        return Err(ck::CKR_SESSION_READ_WRITE_SO_EXISTS);
    }
    Ok(lib.add_session(rw))
}

pub fn close_session(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    let lib = library()?;
    let closed = lib
        .sessions
        .write()
        .remove(&session)
        .ok_or(ck::CKR_SESSION_HANDLE_INVALID)?;
    let objects = std::mem::take(&mut closed.lock().objects);
    release(&lib, objects, Function::C_CloseSession);
    if lib.sessions.read().is_empty() {
        *lib.login.write() = None;
    }
    Ok(())
}

pub fn close_all_sessions(slot: ck::CK_SLOT_ID) -> CkResult<()> {
    let lib = library()?;
    check_slot(slot)?;
    close_all(&lib, Function::C_CloseAllSessions);
    Ok(())
}

/// Closes every session (releasing their session objects) and logs out.
pub fn close_all(lib: &Library, function: Function) {
    let sessions: Vec<_> = lib.sessions.write().drain().map(|(_, s)| s).collect();
    let objects = sessions
        .iter()
        .flat_map(|s| std::mem::take(&mut s.lock().objects))
        .collect();
    release(lib, objects, function);
    *lib.login.write() = None;
}

/// Tells the daemon the session objects are no longer needed. Best effort: the daemon
/// drops them anyway when this instance's connections close.
fn release(lib: &Library, objects: Vec<u64>, function: Function) {
    if objects.is_empty() {
        return;
    }
    {
        let mut handles = lib.handles.lock();
        for id in &objects {
            handles.forget(&pkcs11_wire::ObjectRef::Session { id: *id });
        }
    }
    if let Err(rv) = lib.call(function, Op::ReleaseSessionObjects { objects }) {
        super::debug(
            function,
            &format!("releasing session objects failed: {rv:#x}"),
        );
    }
}

pub struct SessionInfo {
    pub state: ck::CK_STATE,
    pub flags: ck::CK_FLAGS,
}

pub fn get_session_info(session: ck::CK_SESSION_HANDLE) -> CkResult<SessionInfo> {
    let lib = library()?;
    let rw = lib.session(session)?.rw;
    let state = match (lib.user(), rw) {
        (None, false) => ck::CKS_RO_PUBLIC_SESSION,
        (None, true) => ck::CKS_RW_PUBLIC_SESSION,
        (Some(UserType::User), false) => ck::CKS_RO_USER_FUNCTIONS,
        (Some(UserType::User), true) => ck::CKS_RW_USER_FUNCTIONS,
        (Some(UserType::SecurityOfficer), _) => ck::CKS_RW_SO_FUNCTIONS,
    };
    let flags = ck::CKF_SERIAL_SESSION | if rw { ck::CKF_RW_SESSION } else { 0 };
    Ok(SessionInfo { state, flags })
}

/// Logs the application in: the PIN is an appliance token, checked by the daemon and
/// sent with every later call.
pub fn login(session: ck::CK_SESSION_HANDLE, user: ck::CK_USER_TYPE, pin: &[u8]) -> CkResult<()> {
    let lib = library()?;
    lib.session(session)?;
    let user = match user {
        ck::CKU_USER => UserType::User,
        ck::CKU_SO => UserType::SecurityOfficer,
        // No appliance key asks for re-authentication (CKA_ALWAYS_AUTHENTICATE is
        // false), so no operation ever waits for a context-specific login.
        ck::CKU_CONTEXT_SPECIFIC => return Err(ck::CKR_OPERATION_NOT_INITIALIZED),
        _ => return Err(ck::CKR_USER_TYPE_INVALID),
    };
    match lib.user() {
        Some(current) if current == user => return Err(ck::CKR_USER_ALREADY_LOGGED_IN),
        Some(_) => return Err(ck::CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
        None => {}
    }
    if user == UserType::SecurityOfficer && any_read_only(&lib) {
        return Err(ck::CKR_SESSION_READ_ONLY_EXISTS);
    }
    let pin = Zeroizing::new(
        std::str::from_utf8(pin)
            .map_err(|_| ck::CKR_PIN_INCORRECT)?
            .to_string(),
    );
    expect_ok(lib.call_as(Function::C_Login, Some(pin.clone()), Op::Login { user })?)?;
    let mut login = lib.login.write();
    // Another thread may have logged in while the daemon checked this PIN.
    if login.is_some() {
        return Err(ck::CKR_USER_ALREADY_LOGGED_IN);
    }
    *login = Some(Login { user, pin });
    Ok(())
}

fn any_read_only(lib: &Library) -> bool {
    lib.sessions.read().values().any(|s| !s.rw)
}

pub fn logout(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    let lib = library()?;
    lib.session(session)?;
    if lib.login.write().take().is_none() {
        return Err(ck::CKR_USER_NOT_LOGGED_IN);
    }
    let sessions: Vec<_> = lib.sessions.read().values().cloned().collect();
    for session in sessions {
        session.lock().end_key_operations();
    }
    Ok(())
}

/// Operations that cannot be saved or restored: the daemon holds no operation state.
pub fn operation_state(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    library()?.session(session)?;
    Err(ck::CKR_FUNCTION_NOT_SUPPORTED)
}

/// For the session-level functions PKCS#11 keeps for parallel sessions.
pub fn not_parallel(session: ck::CK_SESSION_HANDLE) -> CkResult<()> {
    library()?.session(session)?;
    Err(ck::CKR_FUNCTION_NOT_PARALLEL)
}
