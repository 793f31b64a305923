//! JWT below its mount (OpenBao's `builtin/credential/jwt`, JWT login only): `config`,
//! `role`, `role/<name>` and `login`.

use std::sync::Arc;

use engine::auth::jwt::{JwtConfig, JwtRole, LEGACY_FIELDS};
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::jwt::{JwtAction, JwtLoginOp, JwtLoginRequest, JwtOp, JwtOutput};
use engine::policy::Operation;
use engine::{Core, EngineError};

use super::{fields, keys, login_reply, no_route, required, unsupported};
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
    use JwtAction as A;
    use Operation::{Delete, List, Read, Update};
    let parts: Vec<&str> = rest.split('/').collect();
    let name = parts.get(1).map(|n| n.to_string()).unwrap_or_default();
    let action = match (parts.as_slice(), req.op) {
        (["login"], Update) => {
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
            return apply(core, req, op, login_reply).await;
        }
        (["config"], Update) => A::ConfigWrite(fields(req, &[JwtConfig::FIELDS])),
        (["config"], Read) => A::ConfigRead,
        (["role"], List) => A::RoleList,
        (["role", _], Update) => A::RoleWrite {
            name,
            fields: fields(req, &[JwtRole::FIELDS, TokenParams::FIELDS, LEGACY_FIELDS]),
        },
        (["role", _], Read) => A::RoleRead { name },
        (["role", _], Delete) => A::RoleDelete { name },
        (["login"] | ["config"] | ["role"] | ["role", _], _) => {
            return unsupported(core, req).await
        }
        _ => return no_route(core, req).await,
    };
    let op = JwtOp {
        mount,
        verb: req.op,
        action,
    };
    apply(core, req, op, |out| match out {
        JwtOutput::Done => Ok(Reply::no_content()),
        JwtOutput::Config(None) => Ok(Reply::no_content()),
        JwtOutput::Config(Some(c)) => Ok(Reply::data(c.to_json())),
        JwtOutput::Role(None) => Err(ApiError::not_found_empty()),
        JwtOutput::Role(Some(r)) => Ok(Reply::data(r.to_json())),
        JwtOutput::Names(names) => keys(names),
    })
    .await
}
