//! AppRole below its mount (OpenBao's `builtin/credential/approle`): `role`,
//! `role/<name>`, its `role-id`, `secret-id` (generate, list), `custom-secret-id`,
//! `secret-id/lookup|destroy`, `secret-id-accessor/lookup|destroy`, the role's settings
//! one by one (`role/<name>/token-ttl`, ...), `tidy/secret-id`, and `login`.

use std::sync::Arc;

use engine::auth::approle::{
    parse_metadata, RoleField, SecretIdEntry, SecretIdRequest, ROLE_FIELDS,
};
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::approle::{AppRoleAction, AppRoleLogin, AppRoleOp, AppRoleOutput};
use engine::policy::Operation;
use engine::{Core, EngineError};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::{fields, keys, login_reply, no_route, required, unsupported};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{envelope, Reply};
use crate::vault::apply;

/// OpenBao's tidy runs in the background and answers 202 with a warning; the status is
/// kept, but here the work is done by the time the answer goes.
const TIDY_DONE: &str =
    "Tidy operation completed: expired secret IDs and their accessors were removed.";

const SECRET_ID_FIELDS: &[&str] = &[
    "metadata",
    "cidr_list",
    "token_bound_cidrs",
    "ttl",
    "num_uses",
];

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: AuthMountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    use AppRoleAction as A;
    use Operation::{Delete, List, Read, Update};
    let parts: Vec<&str> = rest.split('/').collect();
    let name = parts.get(1).map(|n| n.to_string()).unwrap_or_default();
    let action = match (parts.as_slice(), req.op) {
        (["login"], Update) => {
            let op = AppRoleLogin {
                mount,
                role_id: required(req, "role_id"),
                secret_id: req
                    .str_field("secret_id")
                    .map(Option::unwrap_or_default)
                    .map_err(Into::into),
            };
            return apply(core, req, op, login_reply).await;
        }
        (["role"], List) => A::RoleList,
        (["role", _], Update) => A::RoleWrite {
            name,
            fields: fields(req, &[ROLE_FIELDS, TokenParams::FIELDS]),
        },
        (["role", _], Read) => A::RoleRead { name },
        (["role", _], Delete) => A::RoleDelete { name },
        (["role", _, "role-id"], Read) => A::RoleIdRead { name },
        (["role", _, "role-id"], Update) => A::RoleIdWrite {
            name,
            role_id: required(req, "role_id"),
        },
        (["role", _, "secret-id"], Update) => A::SecretIdGenerate {
            name,
            request: secret_id_request(req, None),
        },
        (["role", _, "custom-secret-id"], Update) => {
            let custom = required(req, "secret_id");
            A::SecretIdGenerate {
                name,
                request: custom.and_then(|id| secret_id_request(req, Some(id))),
            }
        }
        (["role", _, "secret-id"], List) => A::SecretIdList { name },
        (["role", _, "secret-id", "lookup"], Update) => A::SecretIdLookup {
            name,
            secret_id: required(req, "secret_id"),
        },
        (["role", _, "secret-id", "destroy"], Update | Delete) => A::SecretIdDestroy {
            name,
            secret_id: required(req, "secret_id"),
        },
        (["role", _, "secret-id-accessor", "lookup"], Update) => A::AccessorLookup {
            name,
            accessor: required(req, "secret_id_accessor"),
        },
        (["role", _, "secret-id-accessor", "destroy"], Update | Delete) => A::AccessorDestroy {
            name,
            accessor: required(req, "secret_id_accessor"),
        },
        (["tidy", "secret-id"], Update) => A::TidySecretIds,
        (["role", _, sub], op) if RoleField::from_path(sub).is_some() => {
            let field = RoleField::from_path(sub).ok_or(ApiError::not_found_empty())?;
            match op {
                Read => A::RoleFieldRead { name, field },
                Update if field.writable() => A::RoleFieldWrite {
                    name,
                    field,
                    fields: fields(req, &[field.names()]),
                },
                Delete if field.writable() => A::RoleFieldDelete { name, field },
                _ => return unsupported(core, req).await,
            }
        }
        (
            ["login"]
            | ["tidy", "secret-id"]
            | ["role"]
            | ["role", _]
            | ["role", _, "role-id" | "secret-id" | "custom-secret-id"]
            | ["role", _, "secret-id" | "secret-id-accessor", "lookup" | "destroy"],
            _,
        ) => return unsupported(core, req).await,
        _ => return no_route(core, req).await,
    };
    let op = AppRoleOp {
        mount,
        verb: req.op,
        action,
    };
    apply(core, req, op, |out| match out {
        AppRoleOutput::Done => Ok(Reply::no_content()),
        AppRoleOutput::Role(None) => Err(ApiError::not_found_empty()),
        AppRoleOutput::Role(Some(role)) => Ok(Reply::data(role.to_json())),
        AppRoleOutput::Names(names) => keys(names),
        AppRoleOutput::RoleId(id) => Ok(Reply::data(json!({ "role_id": id }))),
        AppRoleOutput::SecretId(s) => Ok(Reply::data(json!({
            "secret_id": s.secret_id,
            "secret_id_accessor": s.accessor,
            "secret_id_ttl": s.ttl,
            "secret_id_num_uses": s.num_uses,
        }))),
        AppRoleOutput::SecretIdEntry(None) => Ok(Reply::no_content()),
        AppRoleOutput::SecretIdEntry(Some(e)) => Ok(Reply::data(secret_id_json(&e))),
        AppRoleOutput::RoleField(None) => Err(ApiError::not_found_empty()),
        AppRoleOutput::RoleField(Some(v)) => Ok(Reply::data(v)),
        AppRoleOutput::Tidied => {
            let mut body = envelope(None, None);
            body["warnings"] = json!([TIDY_DONE]);
            Ok(Reply::raw(body).with_status(StatusCode::ACCEPTED))
        }
    })
    .await
}

fn secret_id_request(
    req: &VaultRequest,
    secret_id: Option<String>,
) -> Result<SecretIdRequest, EngineError> {
    let known: Vec<&str> = SECRET_ID_FIELDS
        .iter()
        .copied()
        .chain(secret_id.is_some().then_some("secret_id"))
        .collect();
    req.refuse_unknown(&known)?;
    let num_uses = req
        .u64_field("num_uses")?
        .map(|n| u32::try_from(n).map_err(|_| EngineError::bad("num_uses is too large")))
        .transpose()?;
    Ok(SecretIdRequest {
        metadata: parse_metadata(&req.field("metadata").unwrap_or(Value::Null))?,
        cidr_list: req.list_field("cidr_list")?.unwrap_or_default(),
        token_bound_cidrs: req.list_field("token_bound_cidrs")?.unwrap_or_default(),
        ttl: req.duration_field("ttl")?,
        num_uses,
        secret_id,
    })
}

fn rfc3339(unix: i64) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok();
    Value::from(crate::response::rfc3339(t))
}

fn secret_id_json(e: &SecretIdEntry) -> Value {
    json!({
        "secret_id_accessor": e.secret_id_accessor,
        "secret_id_num_uses": e.secret_id_num_uses,
        "secret_id_ttl": e.secret_id_ttl,
        "creation_time": rfc3339(e.creation_time),
        "expiration_time": if e.expiration_time > 0 { rfc3339(e.expiration_time) } else { Value::from("0001-01-01T00:00:00Z") },
        "last_updated_time": rfc3339(e.last_updated_time),
        "metadata": e.metadata,
        "cidr_list": e.cidr_list,
        "token_bound_cidrs": e.token_bound_cidrs,
    })
}
