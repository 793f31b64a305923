//! TLS certificates below their mount (OpenBao's `builtin/credential/cert`): `certs`,
//! `certs/<name>`, `config` and `login`, which reads the chain the connection's TLS
//! handshake received.

use std::sync::Arc;

use engine::auth::cert::{Cert, CertConfig, CertRole, LEGACY_FIELDS};
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::cert::CertLoginOp;
use engine::ops::Access;
use engine::policy::Operation;
use engine::{Core, EngineError};

use super::{login_reply, manage, no_route, role_action, unsupported};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{apply, refuse};

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: AuthMountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let role_fields = [CertRole::FIELDS, TokenParams::FIELDS, LEGACY_FIELDS];
    if let Some(action) = role_action(req, &parts, "certs", &[CertConfig::FIELDS], &role_fields) {
        return manage::<Cert>(core, req, mount, action).await;
    }
    match (parts.as_slice(), req.op) {
        (["login"], Operation::Update) => {
            let name = req
                .refuse_unknown(&["name"])
                .and_then(|()| req.str_field("name"))
                .map_err(EngineError::from);
            let op = CertLoginOp {
                mount,
                name,
                chain: req.peer_chain.clone(),
            };
            apply(core, req, op, login_reply).await
        }
        (["crls"] | ["crls", _], _) => {
            let e = EngineError::bad(
                "certificate revocation lists are not implemented by this appliance's cert auth method",
            );
            refuse(core, req, Access::Acl(req.op), e).await
        }
        (["login"] | ["config"] | ["certs"] | ["certs", _], _) => unsupported(core, req).await,
        _ => no_route(core, req).await,
    }
}
