//! JWT below its mount (OpenBao's `builtin/credential/jwt`, JWT login only): `config`,
//! `role`, `role/<name>` and `login`.

use std::sync::Arc;

use engine::auth::jwt::{Jwt, JwtConfig, JwtRole, LEGACY_FIELDS};
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::jwt::{JwtLoginOp, JwtLoginRequest};
use engine::policy::Operation;
use engine::{Core, EngineError};

use super::{login_reply, manage, no_route, required, role_action, unsupported};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: AuthMountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let role_fields = [JwtRole::FIELDS, TokenParams::FIELDS, LEGACY_FIELDS];
    if let Some(action) = role_action(req, &parts, "role", &[JwtConfig::FIELDS], &role_fields) {
        return manage::<Jwt>(core, req, mount, action).await;
    }
    match (parts.as_slice(), req.op) {
        (["login"], Operation::Update) => {
            let login = || -> Result<JwtLoginRequest, EngineError> {
                req.refuse_unknown(&["role", "jwt"])?;
                Ok(JwtLoginRequest {
                    role: req.str_field("role")?,
                    jwt: required(req, "jwt")?,
                })
            };
            let op = JwtLoginOp {
                mount,
                login: login(),
            };
            apply(core, req, op, login_reply).await
        }
        (["login"] | ["config"] | ["role"] | ["role", _], _) => unsupported(core, req).await,
        _ => no_route(core, req).await,
    }
}
