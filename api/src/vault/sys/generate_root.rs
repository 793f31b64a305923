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

use engine::generate_root::GenerateRootStatus;
use engine::ops::sys::generate_root::{
    GenerateRootCancel, GenerateRootKey, GenerateRootRead, GenerateRootStart, GenerateRootUpdate,
};
use engine::policy::Operation;
use engine::Core;

use super::{apply, to_json};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;

/// How the answer is shaped: Vault's top-level fields, or OpenBao's `data` envelope.
#[derive(Clone, Copy)]
pub enum Shape {
    Flat,
    Data,
}

impl Shape {
    fn reply(self, status: GenerateRootStatus) -> Result<Reply, ApiError> {
        let value = to_json(status)?;
        Ok(match self {
            Shape::Flat => Reply::raw(value),
            Shape::Data => Reply::data(value),
        })
    }
}

pub async fn attempt(
    core: &Arc<Core>,
    req: &VaultRequest,
    shape: Shape,
) -> Result<Reply, ApiError> {
    match req.op {
        Operation::Read => apply(core, req, GenerateRootRead, |s| shape.reply(s)).await,
        Operation::Update | Operation::Create => {
            let op = GenerateRootStart {
                otp: req.str_field("otp").map_err(Into::into),
                pgp_key: req.str_field("pgp_key").map_err(Into::into),
            };
            apply(core, req, op, |s| shape.reply(s)).await
        }
        Operation::Delete => {
            apply(core, req, GenerateRootCancel, |()| Ok(Reply::no_content())).await
        }
        _ => Err(ApiError::unsupported_operation()),
    }
}

fn key(req: &VaultRequest) -> Result<GenerateRootKey, ApiError> {
    let key = req
        .str_field("key")?
        .ok_or_else(|| ApiError::bad("'key' must be specified in request body as JSON"))?;
    let nonce = req
        .str_field("nonce")?
        .ok_or_else(|| ApiError::bad("'nonce' must be specified in request body as JSON"))?;
    Ok(GenerateRootKey {
        share: super::seal::decode_key(&key)?,
        nonce,
    })
}

pub async fn update(core: &Arc<Core>, req: &VaultRequest, shape: Shape) -> Result<Reply, ApiError> {
    if !matches!(req.op, Operation::Update | Operation::Create) {
        return Err(ApiError::unsupported_operation());
    }
    let op = GenerateRootUpdate {
        key: key(req).map_err(Into::into),
    };
    apply(core, req, op, |s| shape.reply(s)).await
}
