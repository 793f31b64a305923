//! TLS certificates below their mount (OpenBao's `builtin/credential/cert`): `certs`,
//! `certs/<name>`, `config` and `login`, which reads the chain the connection's TLS
//! handshake received.

use std::sync::Arc;

use engine::auth::cert::{CertConfig, CertRole, LEGACY_FIELDS};
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::cert::{CertAction, CertLoginOp, CertOp, CertOutput};
use engine::ops::Access;
use engine::policy::Operation;
use engine::{Core, EngineError};

use super::{fields, keys, login_reply, no_route, unsupported};
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
    use CertAction as A;
    use Operation::{Delete, List, Read, Update};
    let parts: Vec<&str> = rest.split('/').collect();
    let name = parts.get(1).map(|n| n.to_string()).unwrap_or_default();
    let action = match (parts.as_slice(), req.op) {
        (["login"], Update) => {
            let name = req
                .refuse_unknown(&["name"])
                .and_then(|()| req.str_field("name"))
                .map_err(EngineError::from);
            let op = CertLoginOp {
                mount,
                name,
                chain: req.peer_chain.clone(),
            };
            return apply(core, req, op, login_reply).await;
        }
        (["config"], Update) => A::ConfigWrite(fields(req, &[CertConfig::FIELDS])),
        (["config"], Read) => A::ConfigRead,
        (["certs"], List) => A::RoleList,
        (["certs", _], Update) => A::RoleWrite {
            name,
            fields: fields(req, &[CertRole::FIELDS, TokenParams::FIELDS, LEGACY_FIELDS]),
        },
        (["certs", _], Read) => A::RoleRead { name },
        (["certs", _], Delete) => A::RoleDelete { name },
        (["crls"] | ["crls", _], _) => {
            let e = EngineError::bad(
                "certificate revocation lists are not implemented by this appliance's cert auth method",
            );
            return refuse(core, req, Access::Acl(req.op), e).await;
        }
        (["login"] | ["config"] | ["certs"] | ["certs", _], _) => {
            return unsupported(core, req).await
        }
        _ => return no_route(core, req).await,
    };
    let op = CertOp {
        mount,
        verb: req.op,
        action,
    };
    apply(core, req, op, |out| match out {
        CertOutput::Done => Ok(Reply::no_content()),
        CertOutput::Config(c) => Ok(Reply::data(c.to_json())),
        CertOutput::Role(None) => Err(ApiError::not_found_empty()),
        CertOutput::Role(Some(r)) => Ok(Reply::data(r.to_json())),
        CertOutput::Names(names) => keys(names),
    })
    .await
}
