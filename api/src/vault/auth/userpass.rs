//! userpass below its mount (OpenBao's `builtin/credential/userpass`): `users`,
//! `users/<name>`, its `password` and `policies`, and `login/<name>`.

use std::sync::Arc;

use engine::auth::userpass::LEGACY_FIELDS;
use engine::auth::{AuthMountRef, TokenParams};
use engine::ops::auth::userpass::{UserpassAction, UserpassLogin, UserpassOp, UserpassOutput};
use engine::policy::Operation;
use engine::{Core, EngineError};
use zeroize::Zeroizing;

use super::{fields, keys, login_reply, no_route, required, unsupported};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::apply;

fn password(req: &VaultRequest) -> Result<Zeroizing<String>, EngineError> {
    required(req, "password").map(Zeroizing::new)
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: AuthMountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    use Operation::{Delete, List, Read, Update};
    use UserpassAction as A;
    let parts: Vec<&str> = rest.split('/').collect();
    let name = parts.get(1).map(|n| n.to_string()).unwrap_or_default();
    let action = match (parts.as_slice(), req.op) {
        (["login", _], Update) => {
            let op = UserpassLogin {
                mount,
                name,
                password: req
                    .refuse_unknown(&["password"])
                    .map_err(Into::into)
                    .and_then(|()| password(req)),
            };
            return apply(core, req, op, login_reply).await;
        }
        (["users"], List) => A::UserList,
        (["users", _], Update) => A::UserWrite {
            name,
            fields: fields(req, &[&["password"], TokenParams::FIELDS, LEGACY_FIELDS]),
        },
        (["users", _], Read) => A::UserRead { name },
        (["users", _], Delete) => A::UserDelete { name },
        (["users", _, "password"], Update) => A::PasswordWrite {
            name,
            password: req
                .refuse_unknown(&["password"])
                .map_err(Into::into)
                .and_then(|()| password(req)),
        },
        (["users", _, "policies"], Update) => A::PoliciesWrite {
            name,
            fields: fields(req, &[&["policies", "token_policies"]]),
        },
        (["login", _] | ["users"] | ["users", _] | ["users", _, "password" | "policies"], _) => {
            return unsupported(core, req).await
        }
        _ => return no_route(core, req).await,
    };
    let op = UserpassOp {
        mount,
        verb: req.op,
        action,
    };
    apply(core, req, op, |out| match out {
        UserpassOutput::Done => Ok(Reply::no_content()),
        UserpassOutput::User(None) => Err(ApiError::not_found_empty()),
        UserpassOutput::User(Some(u)) => Ok(Reply::data(u.to_json())),
        UserpassOutput::Names(names) => keys(names),
    })
    .await
}
