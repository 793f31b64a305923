//! `sys/rotate/root/*` and `sys/rotate/recovery/*` (`init`, `update`, `verify`,
//! `backup`): key-share rotation as OpenBao 2.4+ serves it, answers under `data`, which
//! is what `bao operator rotate-keys` calls. The bare `sys/rotate/root` (a new root key
//! without shares) is refused: the unseal key is this appliance's root key.

use std::sync::Arc;

use engine::ops::sys::rotate_keys::{
    RotateBackup, RotateCancel, RotateKey, RotateRead, RotateStart, RotateUpdateKey,
    RotateVerifyKey, RotateVerifyRead, RotateVerifyRestart,
};
use engine::ops::Access;
use engine::policy::Operation;
use engine::rotate::{RotateConfig, RotateTarget, RotateUpdate, VerifyUpdate};
use engine::{Core, EngineError};
use serde_json::json;

use super::seal::{decode_key, encode_keys};
use super::{apply, not_allowed, refuse, to_json};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// `rest`: what follows `sys/rotate/`, starting with `root/` or `recovery/`.
pub async fn handle(core: &Arc<Core>, req: &VaultRequest, rest: &str) -> Result<Reply, ApiError> {
    let (target, step) = match rest.split_once('/') {
        Some(("root", step)) => (RotateTarget::Root, step),
        Some(("recovery", step)) => (RotateTarget::Recovery, step),
        _ => return crate::vault::no_route(core, req).await,
    };
    match (step, req.op) {
        ("init", Operation::Read) => {
            apply(core, req, RotateRead { target }, |s| {
                Ok(Reply::data(to_json(s)?))
            })
            .await
        }
        ("init", Operation::Update | Operation::Create) => {
            let op = RotateStart {
                target,
                config: config(req).map_err(Into::into),
            };
            apply(core, req, op, |s| Ok(Reply::data(to_json(s)?))).await
        }
        ("init", Operation::Delete) => {
            apply(core, req, RotateCancel { target }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        ("update", Operation::Update | Operation::Create) => {
            let op = RotateUpdateKey {
                target,
                key: key(req).map_err(Into::into),
            };
            apply(core, req, op, |outcome| {
                Ok(Reply::data(match outcome {
                    RotateUpdate::Progress(s) => to_json(s)?,
                    RotateUpdate::Complete(done) => {
                        let (hex, b64) = encode_keys(&done.keys);
                        json!({
                            "complete": true,
                            "nonce": done.nonce,
                            "backup": false,
                            "pgp_fingerprints": null,
                            "verification_required": done.verification_required,
                            "verification_nonce": done.verification_nonce,
                            "keys": hex,
                            "keys_base64": b64,
                        })
                    }
                }))
            })
            .await
        }
        ("verify", Operation::Read) => {
            apply(core, req, RotateVerifyRead { target }, |s| {
                Ok(Reply::data(to_json(s)?))
            })
            .await
        }
        ("verify", Operation::Update | Operation::Create) => {
            let op = RotateVerifyKey {
                target,
                key: key(req).map_err(Into::into),
            };
            apply(core, req, op, |outcome| {
                Ok(Reply::data(match outcome {
                    VerifyUpdate::Progress(s) => to_json(s)?,
                    VerifyUpdate::Complete { nonce } => json!({
                        "complete": true,
                        "nonce": nonce,
                    }),
                }))
            })
            .await
        }
        ("verify", Operation::Delete) => {
            apply(core, req, RotateVerifyRestart { target }, |s| {
                Ok(Reply::data(to_json(s)?))
            })
            .await
        }
        ("backup", op @ (Operation::Read | Operation::Delete)) => {
            apply(core, req, RotateBackup { operation: op }, |()| {
                Ok(Reply::no_content())
            })
            .await
        }
        ("init" | "update" | "verify" | "backup", _) => not_allowed(core, req).await,
        _ => crate::vault::no_route(core, req).await,
    }
}

/// `sys/rotate/root` itself: OpenBao replaces its root key there without shares, a key
/// this appliance does not have apart from the unseal key (Shamir) or the device's key.
pub async fn root_without_shares(core: &Arc<Core>, req: &VaultRequest) -> Result<Reply, ApiError> {
    if req.op != Operation::Update {
        return not_allowed(core, req).await;
    }
    refuse(
        core,
        req,
        Access::AclSudo(Operation::Update),
        EngineError::bad(
            "rotating the root key without key shares is not supported: the root key is the unseal key (Shamir seal) or is held by the seal device; rotate the unseal keys with sys/rotate/root/init (bao operator rotate-keys), the recovery keys with sys/rotate/recovery/init, or the encryption keyring with sys/rotate/keyring",
        ),
    )
    .await
}

/// Every parameter OpenBao's `init` takes; each is honoured or refused.
const INIT_PARAMS: &[&str] = &[
    "secret_shares",
    "secret_threshold",
    "pgp_keys",
    "backup",
    "require_verification",
];

fn config(req: &VaultRequest) -> Result<RotateConfig, ApiError> {
    req.refuse_unknown(INIT_PARAMS)?;
    if req.list_field("pgp_keys")?.is_some_and(|k| !k.is_empty()) {
        return Err(ApiError::bad(
            "pgp_keys is not supported: the new keys are returned in the clear, distribute them securely",
        ));
    }
    if req.bool_field("backup")?.unwrap_or(false) {
        return Err(ApiError::bad(
            "backup is not supported: it keeps PGP-encrypted copies of the new keys, and pgp_keys is not supported",
        ));
    }
    let count = |name: &str, what: &str| -> Result<u8, ApiError> {
        let n = req.u64_field(name)?.unwrap_or(0);
        u8::try_from(n).map_err(|_| {
            ApiError::bad(format!(
                "invalid rotate seal configuration: {what} must be less than 256"
            ))
        })
    };
    Ok(RotateConfig {
        secret_shares: count("secret_shares", "shares")?,
        secret_threshold: count("secret_threshold", "threshold")?,
        require_verification: req.bool_field("require_verification")?.unwrap_or(false),
    })
}

fn key(req: &VaultRequest) -> Result<RotateKey, ApiError> {
    let key = req
        .str_field("key")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad("missing required field 'key'"))?;
    let nonce = req
        .str_field("nonce")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad("missing required field 'nonce'"))?;
    Ok(RotateKey {
        share: decode_key(&key)?,
        nonce,
    })
}
