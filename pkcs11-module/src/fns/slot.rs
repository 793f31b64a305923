//! Slot and token management (PKCS#11 "Slot and token management functions"): one slot,
//! id 0, whose token is the appliance while it is reachable and unsealed.

use pkcs11_wire::{ck, Function, Mechanism, Params, TokenInfo};

use super::CkResult;
use crate::state::library;

pub const SLOT_ID: ck::CK_SLOT_ID = 0;

pub fn check_slot(slot: ck::CK_SLOT_ID) -> CkResult<()> {
    if slot == SLOT_ID {
        Ok(())
    } else {
        Err(ck::CKR_SLOT_ID_INVALID)
    }
}

/// `text` blank-padded (or cut at a character boundary) to `N` bytes, as PKCS#11 lays
/// out its fixed-width strings.
pub fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = text.len().min(N);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&text.as_bytes()[..end]);
    out
}

/// The token, or `None` when there is none: the appliance sealed or not initialised,
/// or the daemon unreachable (a slot whose token was removed).
fn present_token(function: Function) -> CkResult<Option<TokenInfo>> {
    let lib = library()?;
    match lib.token_info(function) {
        Ok(token) if token.present => Ok(Some(token)),
        Ok(_) => Ok(None),
        Err(ck::CKR_DEVICE_REMOVED | ck::CKR_DEVICE_ERROR | ck::CKR_TOKEN_NOT_PRESENT) => Ok(None),
        Err(rv) => Err(rv),
    }
}

/// The slot's token; the slot exists whatever the daemon answers, so any failure to
/// ask it means no token.
fn slot_token() -> Option<TokenInfo> {
    present_token(Function::C_GetSlotInfo).ok().flatten()
}

pub fn get_slot_list(token_present: bool) -> CkResult<Vec<ck::CK_SLOT_ID>> {
    library()?;
    if token_present && slot_token().is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![SLOT_ID])
}

pub fn get_slot_info(slot: ck::CK_SLOT_ID) -> CkResult<ck::CK_SLOT_INFO> {
    library()?;
    check_slot(slot)?;
    let token = slot_token();
    let firmware = token.as_ref().map_or((0, 0), |t| t.firmware);
    Ok(ck::CK_SLOT_INFO {
        slotDescription: padded("Ironseal appliance"),
        manufacturerID: padded("Ironseal"),
        // The token comes and goes as the appliance seals and unseals.
        flags: ck::CKF_REMOVABLE_DEVICE
            | if token.is_some() {
                ck::CKF_TOKEN_PRESENT
            } else {
                0
            },
        hardwareVersion: ck::CK_VERSION { major: 0, minor: 0 },
        firmwareVersion: ck::CK_VERSION {
            major: firmware.0,
            minor: firmware.1,
        },
    })
}

pub fn get_token_info(slot: ck::CK_SLOT_ID) -> CkResult<ck::CK_TOKEN_INFO> {
    let lib = library()?;
    check_slot(slot)?;
    let token = present_token(Function::C_GetTokenInfo)?.ok_or(ck::CKR_TOKEN_NOT_PRESENT)?;
    let (sessions, rw_sessions) = {
        let sessions = lib.sessions.read();
        (sessions.len(), sessions.values().filter(|s| s.rw).count())
    };
    let label = lib.config.token_label.as_deref().unwrap_or(&token.label);
    Ok(ck::CK_TOKEN_INFO {
        label: padded(label),
        manufacturerID: padded(&token.manufacturer),
        model: padded(&token.model),
        serialNumber: padded(&token.serial),
        flags: ck::CKF_RNG
            | ck::CKF_LOGIN_REQUIRED
            | ck::CKF_USER_PIN_INITIALIZED
            | ck::CKF_TOKEN_INITIALIZED,
        ulMaxSessionCount: ck::CK_EFFECTIVELY_INFINITE,
        ulSessionCount: sessions as ck::CK_ULONG,
        ulMaxRwSessionCount: ck::CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: rw_sessions as ck::CK_ULONG,
        ulMaxPinLen: token.max_pin_len,
        ulMinPinLen: token.min_pin_len,
        ulTotalPublicMemory: ck::CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: ck::CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: ck::CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: ck::CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: ck::CK_VERSION { major: 0, minor: 0 },
        firmwareVersion: ck::CK_VERSION {
            major: token.firmware.0,
            minor: token.firmware.1,
        },
        utcTime: [b' '; 16],
    })
}

fn token(slot: ck::CK_SLOT_ID, function: Function) -> CkResult<TokenInfo> {
    library()?;
    check_slot(slot)?;
    present_token(function)?.ok_or(ck::CKR_TOKEN_NOT_PRESENT)
}

pub fn get_mechanism_list(slot: ck::CK_SLOT_ID) -> CkResult<Vec<ck::CK_MECHANISM_TYPE>> {
    let token = token(slot, Function::C_GetTokenInfo)?;
    Ok(token.mechanisms.iter().map(|m| m.kind).collect())
}

/// From the token facts already known (a listing asks for each mechanism in turn).
pub fn get_mechanism_info(
    slot: ck::CK_SLOT_ID,
    kind: ck::CK_MECHANISM_TYPE,
) -> CkResult<ck::CK_MECHANISM_INFO> {
    let lib = library()?;
    check_slot(slot)?;
    let mechanism = Mechanism {
        kind,
        params: Params::None,
    };
    let info = lib
        .mechanism(Function::C_GetTokenInfo, &mechanism, 0)
        .map_err(|rv| match rv {
            ck::CKR_DEVICE_REMOVED | ck::CKR_DEVICE_ERROR => ck::CKR_TOKEN_NOT_PRESENT,
            rv => rv,
        })?;
    Ok(ck::CK_MECHANISM_INFO {
        ulMinKeySize: info.min_key_size,
        ulMaxKeySize: info.max_key_size,
        flags: info.flags,
    })
}

/// Token and PIN administration belong to the appliance's own API.
pub fn administration_not_supported() -> CkResult<()> {
    library()?;
    Err(ck::CKR_FUNCTION_NOT_SUPPORTED)
}
