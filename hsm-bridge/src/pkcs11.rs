//! The PKCS#11 root of trust (cryptoki): an AES-256 key generated inside the token,
//! `CKA_SENSITIVE`, not extractable, kept on the token (`CKA_TOKEN`). The keyring is
//! encrypted and decrypted by the token with `CKM_AES_GCM` (SoftHSM2 2.6 has it; its
//! measured gaps are in wrapping mechanisms, see DESIGN.md), so the root key's value never
//! exists outside the device.
//!
//! Blob format: `0x01 || iv (12) || ciphertext || tag (16)`, the caller's AAD bound in.
//!
//! The PIN comes from `pin_file` or `VAULT_HSM_PIN`, read at each open so a fixed PIN
//! takes effect without a restart; it is held as a `secrecy` string and never printed.
//! Sessions are pooled; an operation that fails because its session or login went away
//! is retried once on a fresh, logged-in session.
//!
//! What a stolen user PIN can do: the root key is `CKA_EXTRACTABLE=false`, so no wrap
//! (under a key of the thief's choosing or any other) moves it out of the token; it is
//! `CKA_MODIFIABLE=false`, so that cannot be flipped. With the PIN *and* a copy of the data
//! dir, the thief can ask the token to decrypt the keyring, as the appliance itself does
//! at every start: protecting against that needs the PIN kept off the data disk (pin_file
//! on a separate, root-only mount, or `VAULT_HSM_PIN` from a secret store). Managed keys
//! are extractable only as the short-lived generation objects, because the wrap under
//! the root key needs it; a stored blob unwraps into a sensitive, non-extractable session
//! object, and the root key's `CKA_UNWRAP_TEMPLATE` forces that on every unwrap, whoever
//! asks (SoftHSM2 2.6 keeps and enforces it, answering CKR_TEMPLATE_INCONSISTENT to a
//! request for an extractable copy: measured in tests/pkcs11_softhsm.rs). A token that
//! refuses the template gets a root key without it and a logged capability.
//! `CKA_WRAP_WITH_TRUSTED` is not used: SoftHSM2 would then refuse the wrap by the root
//! key too, unless the security officer marks the root key `CKA_TRUSTED`.
//!
//! A root key found by label is checked before use: exactly one object under the label,
//! an AES-256 secret key, `CKA_SENSITIVE` and `CKA_ALWAYS_SENSITIVE`, not
//! `CKA_EXTRACTABLE` and `CKA_NEVER_EXTRACTABLE`; anything else is refused with a seal
//! error (never used, never shadowed by a second key), so an init run again after a crash
//! reuses the key the first attempt made, and a key planted under the label is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::random::mix_hardware_entropy;
use crate::{
    BridgeError, Capabilities, KeySpec, RootOfTrust, SealDevice, SealFault, SealKind, WrappedKey,
};

const BLOB_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Sessions kept open for reuse; more may exist briefly under load.
const POOL_MAX: usize = 4;
/// The environment variable Vault's pkcs11 seal reads the PIN from.
pub const PIN_ENV: &str = "VAULT_HSM_PIN";

/// `seal "pkcs11" { ... }`, in Vault's parameter names.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// `lib`: the module's path.
    pub lib: PathBuf,
    /// `slot`: a slot id; or
    pub slot: Option<u64>,
    /// `token_label`: the label of the token to use (first match).
    pub token_label: Option<String>,
    /// `key_label`: the label of the root key.
    pub key_label: String,
    /// `generate_key`: whether init may create the root key when it is missing.
    pub generate_key: bool,
    /// `pin_file`: where the user PIN is; else `VAULT_HSM_PIN`.
    pub pin_file: Option<PathBuf>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("lib", &self.lib)
            .field("slot", &self.slot)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("generate_key", &self.generate_key)
            .field("pin_file", &self.pin_file)
            .finish()
    }
}

fn unavailable(message: impl Into<String>) -> BridgeError {
    BridgeError::Unavailable {
        kind: SealKind::Pkcs11,
        message: message.into(),
    }
}

fn refused(fault: SealFault, message: impl Into<String>) -> BridgeError {
    BridgeError::Refused {
        kind: SealKind::Pkcs11,
        fault,
        message: message.into(),
    }
}

fn device(op: &str, e: CkError) -> BridgeError {
    BridgeError::Device {
        kind: SealKind::Pkcs11,
        message: format!("{op}: {}", describe(&e)),
    }
}

/// A short description of a cryptoki error: the CKR name rather than the spec's prose.
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("{func:?} returned CKR_{}", rv_name(*rv)),
        other => other.to_string(),
    }
}

fn rv_name(rv: RvError) -> String {
    // `RvError`'s Debug is CamelCase (`PinIncorrect`): make it the CKR_ spelling.
    let camel = format!("{rv:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Errors after which the session (or the whole login) is gone and a fresh one may work.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
                | RvError::DeviceMemory,
            _
        )
    )
}

impl Pkcs11Config {
    fn read_pin(&self) -> Result<AuthPin, BridgeError> {
        let pin_unavailable = |m: String| refused(SealFault::PinUnavailable, m);
        let pin = match &self.pin_file {
            Some(path) => {
                let meta = std::fs::metadata(path).map_err(|e| {
                    pin_unavailable(format!("cannot read pin_file {}: {e}", path.display()))
                })?;
                if meta.permissions().mode() & 0o004 != 0 {
                    return Err(pin_unavailable(format!(
                        "pin_file {} is readable by other users; run `chmod o-rwx {}`",
                        path.display(),
                        path.display()
                    )));
                }
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    pin_unavailable(format!("cannot read pin_file {}: {e}", path.display()))
                })?);
                text.trim_end_matches(['\r', '\n']).to_string()
            }
            None => std::env::var(PIN_ENV).map_err(|_| {
                pin_unavailable(format!(
                    "no PIN: set {PIN_ENV} or pin_file in the seal \"pkcs11\" block"
                ))
            })?,
        };
        if pin.is_empty() {
            return Err(pin_unavailable("the HSM PIN is empty".into()));
        }
        Ok(AuthPin::from(pin))
    }
}

/// The configured PKCS#11 seal; `open` loads the module and finds the root key.
pub struct Pkcs11Device {
    config: Pkcs11Config,
    /// The open context: only one per module may be initialised in a process, so a
    /// reopen first drops (and finalises) the previous one.
    current: Mutex<Option<Arc<Pkcs11Root>>>,
}

impl Pkcs11Device {
    pub fn new(config: Pkcs11Config) -> Self {
        Pkcs11Device {
            config,
            current: Mutex::new(None),
        }
    }
}

impl SealDevice for Pkcs11Device {
    fn kind(&self) -> SealKind {
        SealKind::Pkcs11
    }

    fn open(&self, create: bool) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        let mut current = self.current.lock();
        if let Some(root) = current.as_ref() {
            if root.healthy() {
                return Ok(root.clone());
            }
        }
        if let Some(old) = current.take() {
            old.shutdown();
        }
        let root = Arc::new(Pkcs11Root::open(&self.config, create)?);
        *current = Some(root.clone());
        Ok(root)
    }

    fn describe(&self) -> String {
        format!(
            "module {}, {}, key {:?}",
            self.config.lib.display(),
            match (&self.config.token_label, self.config.slot) {
                (Some(l), _) => format!("token {l:?}"),
                (None, Some(s)) => format!("slot {s}"),
                (None, None) => "first token".into(),
            },
            self.config.key_label
        )
    }
}

/// An open token holding the root key.
pub struct Pkcs11Root {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    key_label: String,
    token_label: String,
    key: Mutex<ObjectHandle>,
    pool: Mutex<Vec<Session>>,
    failed: std::sync::atomic::AtomicBool,
    /// Managed keys unwrapped for use: session objects (non-extractable) owned by
    /// `holder`, a session kept open for them, keyed by the wrapped blob.
    holder: Mutex<Option<Session>>,
    unwrapped: Mutex<std::collections::HashMap<Vec<u8>, ObjectHandle>>,
}

impl Pkcs11Root {
    fn open(config: &Pkcs11Config, create: bool) -> Result<Self, BridgeError> {
        if !config.lib.exists() {
            return Err(unavailable(format!(
                "the PKCS#11 module {} does not exist: check `lib` in the seal \"pkcs11\" block",
                config.lib.display()
            )));
        }
        let pin = config.read_pin()?;
        let ctx = Pkcs11::new(&config.lib).map_err(|e| {
            unavailable(format!(
                "cannot load the PKCS#11 module {}: {}",
                config.lib.display(),
                describe(&e)
            ))
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(unavailable(format!(
                    "C_Initialize failed on {}: {}",
                    config.lib.display(),
                    describe(&e)
                )))
            }
        }
        // From here on a failure must finalise the module so the next attempt starts clean.
        let result = Self::find_slot_and_key(&ctx, config, pin, create);
        if result.is_err() {
            let _ = ctx.clone().finalize();
        }
        result.map(|(slot, token_label, pin, key, session)| {
            let root = Pkcs11Root {
                ctx,
                slot,
                pin,
                key_label: config.key_label.clone(),
                token_label,
                key: Mutex::new(key),
                pool: Mutex::new(vec![session]),
                failed: std::sync::atomic::AtomicBool::new(false),
                holder: Mutex::new(None),
                unwrapped: Mutex::new(std::collections::HashMap::new()),
            };
            let mut hw = Zeroizing::new([0u8; 32]);
            if root
                .with_session(|s| s.generate_random_slice(hw.as_mut()))
                .is_ok()
            {
                mix_hardware_entropy(&hw);
            }
            root
        })
    }

    #[allow(clippy::type_complexity)]
    fn find_slot_and_key(
        ctx: &Pkcs11,
        config: &Pkcs11Config,
        pin: AuthPin,
        create: bool,
    ) -> Result<(Slot, String, AuthPin, ObjectHandle, Session), BridgeError> {
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| unavailable(format!("C_GetSlotList failed: {}", describe(&e))))?;
        let mut chosen = None;
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_string();
            let matches = match (&config.token_label, config.slot) {
                (Some(want), _) => *want == label,
                (None, Some(id)) => slot.id() == id,
                (None, None) => info.token_initialized(),
            };
            if matches {
                chosen = Some((slot, label));
                break;
            }
        }
        let (slot, token_label) = chosen.ok_or_else(|| {
            unavailable(match (&config.token_label, config.slot) {
                (Some(l), _) => format!("no token labelled {l:?} in {}", config.lib.display()),
                (None, Some(s)) => format!("no token in slot {s} of {}", config.lib.display()),
                (None, None) => format!("no initialised token in {}", config.lib.display()),
            })
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| unavailable(format!("C_OpenSession failed: {}", describe(&e))))?;
        login(&session, &pin, &token_label)?;
        let key = match find_root_key(&session, &config.key_label, &token_label)? {
            Some(k) => k,
            None if create && config.generate_key => {
                let k = generate_root_key(&config.lib, &session, &config.key_label)?;
                tracing::info!(token = %token_label, key_label = %config.key_label, "generated the root key inside the HSM");
                k
            }
            None if create => {
                return Err(refused(
                    SealFault::DeviceMismatch,
                    format!(
                        "no AES key labelled {:?} on token {token_label:?} and generate_key is false: create it in the HSM or set generate_key = true",
                        config.key_label
                    ),
                ))
            }
            None => {
                return Err(refused(
                    SealFault::DeviceMismatch,
                    format!(
                        "no AES key labelled {:?} on token {token_label:?}: this data dir was sealed by another HSM token, or the root key was deleted; restore the token or use the recovery keys",
                        config.key_label
                    ),
                ))
            }
        };
        log_unwrap_template(&config.lib, &session, key);
        Ok((slot, token_label, pin, key, session))
    }

    fn healthy(&self) -> bool {
        !self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn shutdown(&self) {
        self.forget_all();
        self.pool.lock().clear();
        let _ = self.ctx.clone().finalize();
    }

    fn new_session(&self) -> Result<Session, CkError> {
        let s = self.ctx.open_rw_session(self.slot)?;
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(e) => Err(e),
        }
    }

    /// Runs `op` on a pooled session; if the session or login was lost, once more on a
    /// fresh one (re-finding the key, whose handle may have changed).
    fn with_session<T>(
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
        self.failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn token_label(&self) -> &str {
        &self.token_label
    }
}

fn login(session: &Session, pin: &AuthPin, token: &str) -> Result<(), BridgeError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(refused(
            SealFault::PinIncorrect,
            format!(
                "token {token:?} rejected the PIN (CKR_PIN_INCORRECT): fix {PIN_ENV} or pin_file"
            ),
        )),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(refused(
            SealFault::PinLocked,
            format!(
                "the user PIN of token {token:?} is locked (CKR_PIN_LOCKED): the security officer must reset it"
            ),
        )),
        Err(e) => Err(unavailable(format!(
            "login to token {token:?} failed: {}",
            describe(&e)
        ))),
    }
}

/// The root key's handle, for re-finding it on a fresh session (already verified).
fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, CkError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    Ok(found.into_iter().next())
}

/// Finds the root key by label and checks it is one the appliance may trust. Every object
/// under the label counts, whatever its class: a second object would make "the root key"
/// ambiguous (an init killed after generating one and retried must reuse it, never add
/// another), and an object someone else created there with unsafe attributes must be
/// refused, not used nor shadowed by a fresh key.
fn find_root_key(
    session: &Session,
    label: &str,
    token: &str,
) -> Result<Option<ObjectHandle>, BridgeError> {
    let found = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(|e| unavailable(format!("C_FindObjects failed: {}", describe(&e))))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => {
            check_root_key(session, *one, label, token)?;
            Ok(Some(*one))
        }
        more => Err(refused(
            SealFault::RootKeyAmbiguous,
            format!(
                "{} objects on token {token:?} carry the root key label {label:?}, so which one seals this appliance is ambiguous: remove the ones that are not its root key (or configure another key_label)",
                more.len()
            ),
        )),
    }
}

/// Refuses a root key whose value is, or once was, readable or movable out of the token.
fn check_root_key(
    session: &Session,
    key: ObjectHandle,
    label: &str,
    token: &str,
) -> Result<(), BridgeError> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| device("C_GetAttributeValue (root key)", e))?;
    let (mut class, mut key_type, mut len) = (None, None, None);
    let mut flags = std::collections::HashMap::new();
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::ValueLen(l) => len = Some(u64::from(l)),
            Attribute::Sensitive(b) => {
                flags.insert("CKA_SENSITIVE", b);
            }
            Attribute::Extractable(b) => {
                flags.insert("CKA_EXTRACTABLE", b);
            }
            Attribute::AlwaysSensitive(b) => {
                flags.insert("CKA_ALWAYS_SENSITIVE", b);
            }
            Attribute::NeverExtractable(b) => {
                flags.insert("CKA_NEVER_EXTRACTABLE", b);
            }
            Attribute::Encrypt(b) => {
                flags.insert("CKA_ENCRYPT", b);
            }
            Attribute::Decrypt(b) => {
                flags.insert("CKA_DECRYPT", b);
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    if class != Some(ObjectClass::SECRET_KEY) || key_type != Some(KeyType::AES) {
        problems.push("it is not an AES secret key".to_string());
    } else if len != Some(32) {
        problems.push(format!(
            "it is AES-{} rather than AES-256",
            len.map_or_else(|| "?".into(), |l| (l * 8).to_string())
        ));
    }
    // ALWAYS_SENSITIVE and NEVER_EXTRACTABLE: a key that was readable or extractable
    // once may have a copy outside the token, whatever its flags say now.
    for (name, want) in [
        ("CKA_SENSITIVE", true),
        ("CKA_EXTRACTABLE", false),
        ("CKA_ALWAYS_SENSITIVE", true),
        ("CKA_NEVER_EXTRACTABLE", true),
        ("CKA_ENCRYPT", true),
        ("CKA_DECRYPT", true),
    ] {
        if class == Some(ObjectClass::SECRET_KEY) && flags.get(name) != Some(&want) {
            problems.push(format!("{name} is not {want}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(refused(
        SealFault::RootKeyUnsafe,
        format!(
            "the object labelled {label:?} on token {token:?} is not a safe root key ({}): the appliance will not use it; generate a non-extractable, sensitive AES-256 key under this label, or configure another key_label",
            problems.join(", ")
        ),
    ))
}

/// Says in the log whether the root key forces safe attributes on what it unwraps.
fn log_unwrap_template(lib: &std::path::Path, session: &Session, key: ObjectHandle) {
    use crate::pkcs11_raw::{unwrap_template, FORCED_ON_UNWRAP};
    match unwrap_template(lib, session.handle(), key.handle()) {
        Ok(Some(t)) if FORCED_ON_UNWRAP.iter().all(|f| t.contains(f)) => {
            tracing::debug!(
                capability = "unwrap_template",
                supported = true,
                "the HSM root key's CKA_UNWRAP_TEMPLATE forces CKA_SENSITIVE and non-extractable"
            );
        }
        Ok(_) => {
            tracing::warn!(capability = "unwrap_template", supported = false, "the HSM root key has no CKA_UNWRAP_TEMPLATE forcing CKA_SENSITIVE and non-extractable (made elsewhere, or the token does not keep it): keys it unwraps rely on the appliance's own template");
        }
        Err(e) => {
            tracing::warn!(capability = "unwrap_template", error = %e, "cannot read the HSM root key's CKA_UNWRAP_TEMPLATE");
        }
    }
}

/// Makes the root key. Where the token takes `CKA_UNWRAP_TEMPLATE`, the key forces
/// `CKA_SENSITIVE=true, CKA_EXTRACTABLE=false` on everything unwrapped with it, so even a
/// stolen PIN cannot unwrap a stored managed-key blob into a key that could be wrapped
/// out; where it does not, the key is made without and the log says so.
fn generate_root_key(
    lib: &std::path::Path,
    session: &Session,
    label: &str,
) -> Result<ObjectHandle, BridgeError> {
    match crate::pkcs11_raw::generate_root_with_unwrap_template(
        lib,
        session.handle(),
        label.as_bytes(),
    ) {
        Ok(raw) => {
            #[allow(unsafe_code)]
            // SAFETY: `raw` is the handle C_GenerateKey just returned on this session.
            let key = unsafe { ObjectHandle::new_from_raw(raw) };
            tracing::info!(
                capability = "unwrap_template",
                supported = true,
                "the HSM root key forces CKA_SENSITIVE and non-extractable on every key it unwraps"
            );
            Ok(key)
        }
        Err(why) => {
            tracing::warn!(capability = "unwrap_template", supported = false, reason = %why, "the HSM did not take CKA_UNWRAP_TEMPLATE on the root key; keys it unwraps rely on the appliance's own unwrap template");
            session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::ValueLen(32.into()),
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Modifiable(false),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                        // Managed-key blobs are stored wrapped by the root key (C_WrapKey).
                        Attribute::Wrap(true),
                        Attribute::Unwrap(true),
                        Attribute::Label(label.as_bytes().to_vec()),
                        Attribute::Id(label.as_bytes().to_vec()),
                    ],
                )
                .map_err(|e| device("C_GenerateKey (AES-256 root key)", e))
        }
    }
}

impl Drop for Pkcs11Root {
    fn drop(&mut self) {
        self.forget_all();
        self.pool.lock().clear();
    }
}

impl RootOfTrust for Pkcs11Root {
    fn kind(&self) -> SealKind {
        SealKind::Pkcs11
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hardware: true,
            in_boundary_keys: true,
            hardware_rng: true,
        }
    }

    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        let mut iv = [0u8; IV_LEN];
        crate::fill_random(&mut iv);
        let ct = self
            .with_session(|s| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, aad, (TAG_LEN as u64 * 8).into())?;
                let key = *self.key.lock();
                s.encrypt(&Mechanism::AesGcm(params), key, plaintext)
            })
            .map_err(|e| device("C_Encrypt (AES-GCM)", e))?;
        let mut out = Vec::with_capacity(1 + IV_LEN + ct.len());
        out.push(BLOB_VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        if blob.len() < 1 + IV_LEN + TAG_LEN || blob[0] != BLOB_VERSION {
            return Err(BridgeError::ForeignKeyring(SealKind::Pkcs11));
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&blob[1..1 + IV_LEN]);
        let ct = &blob[1 + IV_LEN..];
        match self.with_session(|s| {
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, aad, (TAG_LEN as u64 * 8).into())?;
            let key = *self.key.lock();
            s.decrypt(&Mechanism::AesGcm(params), key, ct)
        }) {
            Ok(plain) => Ok(Zeroizing::new(plain)),
            // A GCM tag mismatch: SoftHSM2 (OpenSSL backend) reports it as
            // CKR_GENERAL_ERROR, conformant tokens as CKR_ENCRYPTED_DATA_INVALID.
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError,
                _,
            )) => Err(BridgeError::ForeignKeyring(SealKind::Pkcs11)),
            Err(e) => Err(device("C_Decrypt (AES-GCM)", e)),
        }
    }

    fn generate_key(&self, spec: KeySpec) -> Result<WrappedKey, BridgeError> {
        let (blob, public) = self
            .with_session(|s| generate_wrapped(s, *self.key.lock(), spec))
            .map_err(|e| device("C_GenerateKey / C_WrapKey (managed key)", e))?;
        Ok(WrappedKey { spec, blob, public })
    }

    fn sign(&self, key: &WrappedKey, mechanism: &str, data: &[u8]) -> Result<Vec<u8>, BridgeError> {
        let mech = match (key.spec, mechanism) {
            (KeySpec::Rsa(_), "rsa-pkcs1-sha256") => Mechanism::Sha256RsaPkcs,
            (KeySpec::EcP256 | KeySpec::EcP384, "ecdsa") => Mechanism::Ecdsa,
            _ => return Err(self.unsupported("sign")),
        };
        self.with_key(key, |s, h| s.sign(&mech, h, data))
            .map_err(|e| device("C_Sign", e))
    }

    fn encrypt(
        &self,
        key: &WrappedKey,
        mechanism: &str,
        data: &[u8],
    ) -> Result<Vec<u8>, BridgeError> {
        if key.spec != KeySpec::Aes256 || mechanism != "aes-256-gcm" {
            return Err(self.unsupported("encrypt"));
        }
        let mut iv = [0u8; IV_LEN];
        crate::fill_random(&mut iv);
        let ct = self
            .with_key(key, |s, h| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, &[], (TAG_LEN as u64 * 8).into())?;
                s.encrypt(&Mechanism::AesGcm(params), h, data)
            })
            .map_err(|e| device("C_Encrypt (AES-GCM)", e))?;
        let mut out = Vec::with_capacity(IV_LEN + ct.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn decrypt(
        &self,
        key: &WrappedKey,
        mechanism: &str,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        let out = match (key.spec, mechanism) {
            (KeySpec::Aes256, "aes-256-gcm") => {
                if data.len() < IV_LEN + TAG_LEN {
                    return Err(BridgeError::BadInput("ciphertext too short"));
                }
                let mut iv = [0u8; IV_LEN];
                iv.copy_from_slice(&data[..IV_LEN]);
                self.with_key(key, |s, h| {
                    let mut iv = iv;
                    let params = GcmParams::new(&mut iv, &[], (TAG_LEN as u64 * 8).into())?;
                    s.decrypt(&Mechanism::AesGcm(params), h, &data[IV_LEN..])
                })
            }
            (KeySpec::Rsa(_), "rsa-oaep-sha1") => self.with_key(key, |s, h| {
                let params = PkcsOaepParams::new(
                    MechanismType::SHA1,
                    PkcsMgfType::MGF1_SHA1,
                    PkcsOaepSource::empty(),
                );
                s.decrypt(&Mechanism::RsaPkcsOaep(params), h, data)
            }),
            _ => return Err(self.unsupported("decrypt")),
        };
        match out {
            Ok(p) => Ok(Zeroizing::new(p)),
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError
                | RvError::DataLenRange
                | RvError::DataInvalid,
                _,
            )) => Err(BridgeError::BadInput(
                "the ciphertext does not decrypt under this key version",
            )),
            Err(e) => Err(device("C_Decrypt", e)),
        }
    }

    fn forget_key(&self, key: &WrappedKey) {
        let handle = self.unwrapped.lock().remove(&key.blob);
        if let (Some(h), Some(s)) = (handle, self.holder.lock().as_ref()) {
            let _ = s.destroy_object(h);
        }
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), BridgeError> {
        crate::fill_random(buf);
        let mut hw = Zeroizing::new(vec![0u8; buf.len()]);
        self.with_session(|s| s.generate_random_slice(&mut hw))
            .map_err(|e| device("C_GenerateRandom", e))?;
        for (b, h) in buf.iter_mut().zip(hw.iter()) {
            *b ^= h;
        }
        Ok(())
    }
}

// ---- managed keys inside the boundary ---------------------------------------------------
//
// A managed key version is generated as session objects (`CKA_TOKEN=false`), wrapped by
// the root key with `CKM_AES_KEY_WRAP_PAD` and destroyed: the token keeps no copy, the
// appliance stores only the blob. To be wrapped the private key must be
// `CKA_EXTRACTABLE=true` (its value stays unreadable, `CKA_SENSITIVE=true`). In use it is
// unwrapped into a session object with `CKA_EXTRACTABLE=false`, owned by the `holder`
// session and cached by blob (the root key's unwrap template forces the same).
// `CKA_WRAP_WITH_TRUSTED` is not set: SoftHSM2 would then refuse the wrap by the root
// key, which only the security officer can mark trusted; a stolen user PIN can therefore
// wrap a managed key out only while it exists as the short-lived generation object.

/// DER OIDs for CKA_EC_PARAMS.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn generate_wrapped(
    s: &Session,
    root: ObjectHandle,
    spec: KeySpec,
) -> Result<(Vec<u8>, Option<Vec<u8>>), CkError> {
    let private_template = |extra: &[Attribute]| {
        let mut t = vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
        ];
        t.extend_from_slice(extra);
        t
    };
    match spec {
        KeySpec::Aes256 => {
            let k = s.generate_key(
                &Mechanism::AesKeyGen,
                &private_template(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ]),
            )?;
            let blob = s.wrap_key(&Mechanism::AesKeyWrapPad, root, k);
            let _ = s.destroy_object(k);
            Ok((blob?, None))
        }
        KeySpec::Rsa(bits) => {
            let (public, private) = s.generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::ModulusBits((bits as u64).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                    Attribute::Verify(true),
                    Attribute::Encrypt(true),
                ],
                &private_template(&[Attribute::Sign(true), Attribute::Decrypt(true)]),
            )?;
            let result = (|| {
                let attrs = s.get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )?;
                let (mut n, mut e) = (Vec::new(), Vec::new());
                for a in attrs {
                    match a {
                        Attribute::Modulus(v) => n = v,
                        Attribute::PublicExponent(v) => e = v,
                        _ => {}
                    }
                }
                let blob = s.wrap_key(&Mechanism::AesKeyWrapPad, root, private)?;
                Ok((blob, Some(der::rsa_spki(&n, &e))))
            })();
            let _ = s.destroy_object(private);
            let _ = s.destroy_object(public);
            result
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let (oid, point_len) = if spec == KeySpec::EcP256 {
                (P256_OID, 65)
            } else {
                (P384_OID, 97)
            };
            let (public, private) = s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(false),
                    Attribute::EcParams(oid.to_vec()),
                    Attribute::Verify(true),
                ],
                &private_template(&[Attribute::Sign(true)]),
            )?;
            let result = (|| {
                let attrs = s.get_attributes(public, &[AttributeType::EcPoint])?;
                let mut point = Vec::new();
                for a in attrs {
                    if let Attribute::EcPoint(v) = a {
                        point = v;
                    }
                }
                // CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give
                // the bare point).
                if point.len() == point_len + 2 {
                    point.drain(..2);
                }
                let blob = s.wrap_key(&Mechanism::AesKeyWrapPad, root, private)?;
                Ok((blob, Some(der::ec_spki(oid, &point))))
            })();
            let _ = s.destroy_object(private);
            let _ = s.destroy_object(public);
            result
        }
    }
}

impl Pkcs11Root {
    fn unsupported(&self, op: &'static str) -> BridgeError {
        BridgeError::Unsupported {
            kind: SealKind::Pkcs11,
            op,
        }
    }

    fn forget_all(&self) {
        self.unwrapped.lock().clear();
        // Closing the holder session destroys every session object it owns.
        self.holder.lock().take();
    }

    /// The session object for `key`, unwrapping it on first use.
    fn unwrapped_handle(&self, key: &WrappedKey) -> Result<ObjectHandle, CkError> {
        if let Some(h) = self.unwrapped.lock().get(&key.blob) {
            return Ok(*h);
        }
        let mut holder = self.holder.lock();
        if let Some(h) = self.unwrapped.lock().get(&key.blob) {
            return Ok(*h);
        }
        if self.unwrapped.lock().len() >= UNWRAPPED_MAX {
            // Closing the holder destroys its objects; start over.
            self.unwrapped.lock().clear();
            holder.take();
        }
        if holder.is_none() {
            *holder = Some(self.new_session()?);
        }
        let Some(s) = holder.as_ref() else {
            return Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid,
                cryptoki::context::Function::UnwrapKey,
            ));
        };
        let mut template = vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        match key.spec {
            KeySpec::Aes256 => template.extend([
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ]),
            KeySpec::Rsa(_) => template.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ]),
            KeySpec::EcP256 | KeySpec::EcP384 => template.extend([
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Sign(true),
            ]),
        }
        let root = *self.key.lock();
        let h = s.unwrap_key(&Mechanism::AesKeyWrapPad, root, &key.blob, &template)?;
        self.unwrapped.lock().insert(key.blob.clone(), h);
        Ok(h)
    }

    /// Runs `op` with the unwrapped session object for `key`; if the object or its
    /// session went away, unwraps again once.
    fn with_key<T>(
        &self,
        key: &WrappedKey,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        for attempt in 0..2 {
            let result = self
                .unwrapped_handle(key)
                .and_then(|h| self.with_session(|s| op(s, h)));
            match result {
                Err(e) if attempt == 0 && session_lost(&e) => {
                    tracing::debug!(error = %describe(&e), "managed key object lost; unwrapping again");
                    self.forget_all();
                }
                other => return other,
            }
        }
        Err(CkError::Pkcs11(
            RvError::KeyHandleInvalid,
            cryptoki::context::Function::Sign,
        ))
    }
}

/// Unwrapped managed keys kept at once; past this the cache starts over.
const UNWRAPPED_MAX: usize = 1024;

/// Just enough DER to name a public key as a SubjectPublicKeyInfo.
mod der {
    fn len(n: usize, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = (n as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        len(body.len(), &mut out);
        out.extend_from_slice(body);
        out
    }

    fn uint(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = {
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            &bytes[skip.min(bytes.len().saturating_sub(1))..]
        };
        let mut body = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
        tlv(0x02, &body)
    }

    fn bit_string(bytes: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8];
        body.extend_from_slice(bytes);
        tlv(0x03, &body)
    }

    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

    pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut key = uint(n);
        key.extend(uint(e));
        let mut body = tlv(0x30, RSA_ENCRYPTION);
        body.extend(bit_string(&tlv(0x30, &key)));
        tlv(0x30, &body)
    }

    pub fn ec_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
        let mut alg = EC_PUBLIC_KEY.to_vec();
        alg.extend_from_slice(curve_oid);
        let mut body = tlv(0x30, &alg);
        body.extend(bit_string(point));
        tlv(0x30, &body)
    }
}
