//! The `seal "pkcs11"` block and the user PIN: read at each open, from `pin_file` or
//! `VAULT_HSM_PIN`, so a fixed PIN takes effect without a restart; never printed.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::error::{describe, refused, unavailable};
use crate::{BridgeError, SealFault};

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

impl Pkcs11Config {
    pub(super) fn read_pin(&self) -> Result<AuthPin, BridgeError> {
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

/// Logs `session` in, telling a wrong PIN and a locked one apart from an unreachable token.
pub(super) fn login(session: &Session, pin: &AuthPin, token: &str) -> Result<(), BridgeError> {
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
