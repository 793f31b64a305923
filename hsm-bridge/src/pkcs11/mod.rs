//! The PKCS#11 root of trust (cryptoki): an AES-256 key generated inside the token,
//! `CKA_SENSITIVE`, not extractable, kept on the token (`CKA_TOKEN`). The keyring is
//! encrypted and decrypted by the token with `CKM_AES_GCM` (SoftHSM2 2.6 has it; its
//! measured gaps are in wrapping mechanisms, see DESIGN.md), so the root key's value never
//! exists outside the device.
//!
//! Blob format: `0x01 || iv (12) || ciphertext || tag (16)`, the caller's AAD bound in.
//!
//! The PIN is read at each open (`config`); sessions are pooled and a lost one is replaced
//! (`session`); the root key is checked before use (`root_key`); managed keys live in
//! the token only as blobs wrapped by the root key (`managed`).
//!
//! What a stolen user PIN can do: the root key is `CKA_EXTRACTABLE=false`, so no wrap
//! (under a key of the thief's choosing or any other) moves it out of the token; it is
//! `CKA_MODIFIABLE=false`, so that cannot be flipped. With the PIN *and* a copy of the data
//! dir, the thief can ask the token to decrypt the keyring, as the appliance itself does
//! at every start: protecting against that needs the PIN kept off the data disk (pin_file
//! on a separate, root-only mount, or `VAULT_HSM_PIN` from a secret store).
//!
//! Managed keys (`managed`) are extractable only as the short-lived generation objects,
//! because the wrap under the root key needs it; those are session objects, which PKCS#11
//! shows to this process's sessions only. A stored blob unwraps into a sensitive,
//! non-extractable session object, and the root key's `CKA_UNWRAP_TEMPLATE` forces that on
//! every unwrap, whoever asks (SoftHSM2 2.6 keeps and enforces it, answering
//! CKR_TEMPLATE_INCONSISTENT to a request for an extractable copy: measured in
//! tests/pkcs11_softhsm.rs). A token that refuses the template gets a root key without it
//! and a logged capability. Keys created exportable are the one exception, by the owner's
//! choice at creation: they are wrapped by a second token key, the export key
//! (`<key_label>-export`), whose template forces only `CKA_SENSITIVE`, so that `byok` can
//! unwrap them extractable for the one wrap under a provider's key. Someone holding the
//! PIN and the data dir can do the same with those keys (and only those): an exportable
//! key is exportable for whoever can act as the appliance.
//!
//! `CKA_WRAP_WITH_TRUSTED` is not used. A key carrying it can be wrapped only by a key the
//! security officer marked `CKA_TRUSTED` (SoftHSM2 answers CKR_KEY_NOT_WRAPPABLE
//! otherwise, measured in tests/pkcs11_byok.rs), and the appliance holds the user PIN
//! only: it could not wrap a generation object under its own root key, which every
//! managed key needs once to be stored, and the unwrapped objects it uses are already
//! non-extractable, which is stronger. Binding exports to trusted provider keys would need
//! the security officer to mark each provider's wrapping key trusted in a ceremony; the
//! appliance leaves that to deployments that have one.
//!
//! BYOK export runs inside the token (`byok`) by the routes the start-up self-test
//! (`byok_check`) proved against a software computation, per key kind and format; a
//! format it did not prove is refused with the reason, never done in software. BYOK
//! import (`byok_import`, transit's `keys/:name/import`) unwraps inside the token the same
//! way, by the OAEP hashes its own self-test proved.

mod byok;
mod byok_check;
mod byok_import;
mod config;
mod error;
mod managed;
mod mechanisms;
#[allow(unsafe_code)]
mod raw;
mod root_key;
mod session;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::PkcsPssParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use parking_lot::{Mutex, RwLock};
use zeroize::Zeroizing;

pub use config::{Pkcs11Config, PIN_ENV};

use self::config::login;
use self::error::{describe, device, unavailable, unsupported};
use crate::random::mix_hardware_entropy;
use crate::{
    BridgeError, Capabilities, DecryptMechanism, EncryptMechanism, HashAlg, ImportError, KeySpec,
    Mechanisms, OpenMode, RootOfTrust, SealDevice, SealKind, SignMechanism, WrapMechanism,
    WrappedKey,
};

const BLOB_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

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

    fn open(&self, mode: OpenMode) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        let mut current = self.current.lock();
        if let Some(root) = current.as_ref() {
            if root.healthy() {
                return Ok(root.clone());
            }
        }
        if let Some(old) = current.take() {
            old.shutdown();
        }
        let root = Arc::new(Pkcs11Root::open(&self.config, mode)?);
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
    /// The module's path, for the calls cryptoki cannot make (`raw`).
    lib: PathBuf,
    /// Whether the appliance may make keys on the token (`generate_key`): the export key.
    generate_keys: bool,
    slot: Slot,
    pin: AuthPin,
    key_label: String,
    token_label: String,
    key: Mutex<ObjectHandle>,
    pool: Mutex<Vec<Session>>,
    failed: AtomicBool,
    /// Held while the module is reinitialised after a loss (`session`), so that one
    /// thread does it and the others wait for its result.
    reconnecting: Mutex<()>,
    /// Shared by every call on the module's sessions and objects, taken alone by a
    /// reconnect: `C_Finalize` under a call in flight in another thread is undefined
    /// (SoftHSM2 frees the session and object stores that call is using).
    module: RwLock<()>,
    /// Managed keys unwrapped for use: session objects (non-extractable) owned by
    /// `holder`, a session kept open for them, keyed by the wrapped blob.
    holder: Mutex<Option<Session>>,
    unwrapped: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
    /// What the token does with managed keys (`mechanisms`), found out on first use.
    mechanisms: OnceLock<Mechanisms>,
    /// The key that wraps exportable managed keys (`byok`), found or made on first use.
    export_key: Mutex<Option<ObjectHandle>>,
    /// The BYOK formats the token produces correctly (`byok_check`), measured at open.
    exports: OnceLock<byok_check::ExportTable>,
    /// The AES key wrap of new managed-key blobs (`managed`).
    blob_wrap: OnceLock<byok_check::KeyWrap>,
    /// The OAEP hashes the token unwraps BYOK imports with (`byok_import`), measured at
    /// open.
    imports: OnceLock<byok_import::ImportTable>,
}

impl Pkcs11Root {
    fn open(config: &Pkcs11Config, mode: OpenMode) -> Result<Self, BridgeError> {
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
        let result = Self::find_slot_and_key(&ctx, config, pin, mode);
        if result.is_err() {
            let _ = ctx.clone().finalize();
        }
        result.map(|(slot, token_label, pin, key, session)| {
            let root = Pkcs11Root {
                ctx,
                lib: config.lib.clone(),
                generate_keys: config.generate_key,
                slot,
                pin,
                key_label: config.key_label.clone(),
                token_label,
                key: Mutex::new(key),
                pool: Mutex::new(vec![session]),
                failed: AtomicBool::new(false),
                reconnecting: Mutex::new(()),
                module: RwLock::new(()),
                holder: Mutex::new(None),
                unwrapped: Mutex::new(HashMap::new()),
                mechanisms: OnceLock::new(),
                export_key: Mutex::new(None),
                exports: OnceLock::new(),
                blob_wrap: OnceLock::new(),
                imports: OnceLock::new(),
            };
            let mut hw = Zeroizing::new([0u8; 32]);
            if root
                .with_session(|s| s.generate_random_slice(hw.as_mut()))
                .is_ok()
            {
                mix_hardware_entropy(&hw);
            }
            root.export_table();
            root.import_table();
            root
        })
    }

    #[allow(clippy::type_complexity)]
    fn find_slot_and_key(
        ctx: &Pkcs11,
        config: &Pkcs11Config,
        pin: AuthPin,
        mode: OpenMode,
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
        let key = root_key::find_or_create(&session, config, &token_label, mode)?;
        Ok((slot, token_label, pin, key, session))
    }

    fn shutdown(&self) {
        self.forget_all();
        self.pool.lock().clear();
        let _ = self.ctx.clone().finalize();
    }

    pub fn token_label(&self) -> &str {
        &self.token_label
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
            mechanisms: self.mechanisms(),
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
        self.generate_managed(spec, false)
    }

    fn generate_exportable_key(&self, spec: KeySpec) -> Result<WrappedKey, BridgeError> {
        self.generate_managed(spec, true)
    }

    fn export_support(&self, spec: KeySpec, mechanism: WrapMechanism) -> Result<(), String> {
        self.export_table()
            .route(byok_check::Target::of(spec), mechanism)
            .map(|_| ())
    }

    fn export_wrap(
        &self,
        key: &WrappedKey,
        wrapping_public_der: &[u8],
        mechanism: WrapMechanism,
    ) -> Result<Vec<u8>, BridgeError> {
        self.export_managed(key, wrapping_public_der, mechanism)
    }

    fn import_support(&self, hash: HashAlg) -> Result<(), String> {
        self.import_table().route(hash).map(|_| ())
    }

    fn import_unwrap(
        &self,
        key: &WrappedKey,
        hash: HashAlg,
        wrapped_ephemeral: &[u8],
        wrapped_target: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ImportError> {
        self.import_managed(key, hash, wrapped_ephemeral, wrapped_target)
    }

    fn sign(
        &self,
        key: &WrappedKey,
        mechanism: SignMechanism,
        data: &[u8],
    ) -> Result<Vec<u8>, BridgeError> {
        if Mechanisms::sign(key.spec, &mechanism) == Mechanisms::IMPOSSIBLE {
            return Err(unsupported("sign"));
        }
        let mech = match mechanism {
            SignMechanism::RsaPkcs1 { hash: None } => Mechanism::RsaPkcs,
            SignMechanism::RsaPkcs1 { hash: Some(h) } => mechanisms::rsa_pkcs_with(h),
            SignMechanism::RsaPss {
                digest,
                mgf,
                salt_len,
            } => Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg: mechanisms::hash_type(digest),
                mgf: mechanisms::mgf_type(mgf),
                s_len: (salt_len as u64).into(),
            }),
            SignMechanism::EcdsaPrehashed => Mechanism::Ecdsa,
        };
        self.with_key(key, |s, h| s.sign(&mech, h, data))
            .map_err(|e| match e {
                CkError::Pkcs11(RvError::DataLenRange | RvError::DataInvalid, _) => {
                    BridgeError::BadInput("the data does not fit the mechanism and key")
                }
                e => device("C_Sign", e),
            })
    }

    fn encrypt(
        &self,
        key: &WrappedKey,
        mechanism: EncryptMechanism<'_>,
        data: &[u8],
    ) -> Result<Vec<u8>, BridgeError> {
        if Mechanisms::encrypt(key.spec, &mechanism) == Mechanisms::IMPOSSIBLE {
            return Err(unsupported("encrypt"));
        }
        self.with_key(key, |s, h| match mechanism {
            EncryptMechanism::AesGcm { iv, aad, tag_len } => {
                // cryptoki wants the IV mutable (PKCS#11 lets a token write a generated IV
                // back); this one is the caller's and stays as given.
                let mut iv = iv.to_vec();
                let params = GcmParams::new(&mut iv, aad, (tag_len as u64 * 8).into())?;
                s.encrypt(&Mechanism::AesGcm(params), h, data)
            }
            EncryptMechanism::AesCbcPad { iv } => s.encrypt(&Mechanism::AesCbcPad(iv), h, data),
        })
        .map_err(|e| device("C_Encrypt", e))
    }

    fn decrypt(
        &self,
        key: &WrappedKey,
        mechanism: DecryptMechanism<'_>,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        if Mechanisms::decrypt(key.spec, &mechanism) == Mechanisms::IMPOSSIBLE {
            return Err(unsupported("decrypt"));
        }
        let out = self.with_key(key, |s, h| match mechanism {
            DecryptMechanism::AesGcm { iv, aad, tag_len } => {
                let mut iv = iv.to_vec();
                let params = GcmParams::new(&mut iv, aad, (tag_len as u64 * 8).into())?;
                s.decrypt(&Mechanism::AesGcm(params), h, data)
            }
            DecryptMechanism::AesCbcPad { iv } => s.decrypt(&Mechanism::AesCbcPad(iv), h, data),
            DecryptMechanism::RsaPkcs1 => s.decrypt(&Mechanism::RsaPkcs, h, data),
            DecryptMechanism::RsaOaep { hash, mgf, label } => {
                s.decrypt(&mechanisms::oaep(hash, mgf, label), h, data)
            }
        });
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
