//! `sys/generate-root/attempt` and `sys/generate-root/update`: a new root token from a
//! quorum of unseal keys (Shamir) or recovery keys (hardware seal), Vault's OTP flow.
//! Decoding happens in the CLI (`bao operator generate-root -decode`).
//!
//! Two spellings of the same endpoints: Vault's `sys/generate-root/*`, answering the
//! status at the top level, and OpenBao's `sys/generate-root-token/*` (what `bao` 2.5+
//! calls), answering it under `data`. OpenBao puts the latter behind a token and a
//! policy; here both stay reachable without a token, as Vault's are, because the quorum
//! of unseal/recovery keys is the authorisation, and an operator who lost every root
//! token has no token to present.

use std::sync::Arc;

use engine::policy::Operation;
use engine::Core;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// How the answer is shaped: Vault's top-level fields, or OpenBao's `data` envelope.
#[derive(Clone, Copy)]
pub enum Shape {
    Flat,
    Data,
}

fn reply(
    shape: Shape,
    status: engine::generate_root::GenerateRootStatus,
) -> Result<Reply, ApiError> {
    let value = serde_json::to_value(status)
        .map_err(|_| ApiError::new(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    Ok(match shape {
        Shape::Flat => Reply::raw(value),
        Shape::Data => Reply::data(value),
    })
}

pub fn attempt(core: &Arc<Core>, req: &VaultRequest, shape: Shape) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => reply(shape, core.generate_root_status()?),
        Operation::Update | Operation::Create => {
            let otp = req.str_field("otp")?;
            let pgp = req.str_field("pgp_key")?;
            reply(shape, core.generate_root_init(otp, pgp)?)
        }
        Operation::Delete => {
            core.generate_root_cancel();
            Ok(Reply::no_content())
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

pub async fn update(core: &Arc<Core>, req: &VaultRequest, shape: Shape) -> Result<Reply, ApiError> {
    if !matches!(req.op, Operation::Update | Operation::Create) {
        return Err(ApiError::unsupported_operation());
    }
    let key = req
        .str_field("key")?
        .ok_or_else(|| ApiError::bad("'key' must be specified in request body as JSON"))?;
    let nonce = req
        .str_field("nonce")?
        .ok_or_else(|| ApiError::bad("'nonce' must be specified in request body as JSON"))?;
    let share = super::seal::decode_key(&key)?;
    reply(shape, core.generate_root_update(share, &nonce).await?)
}
