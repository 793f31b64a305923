//! `auth/<userpass mount>/...`: users, their passwords and policies, and the login.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{issue, metadata, source_key, throttled};
use crate::auth::userpass::{user_name, User};
use crate::auth::{AuthMountRef, LoginGrant};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::IssuedToken;

pub enum UserpassAction {
    /// The fields: `password` (required to create a user) and the token settings.
    UserWrite {
        name: String,
        fields: Decoded<Map<String, Value>>,
    },
    UserRead {
        name: String,
    },
    UserDelete {
        name: String,
    },
    UserList,
    PasswordWrite {
        name: String,
        password: Decoded<Zeroizing<String>>,
    },
    PoliciesWrite {
        name: String,
        fields: Decoded<Map<String, Value>>,
    },
}

pub enum UserpassOutput {
    Done,
    User(Option<Box<User>>),
    Names(Vec<String>),
}

/// A userpass management request, checked against the ACL on its own path (a user
/// write: `create` or `update` as the user exists, as Vault).
pub struct UserpassOp {
    pub mount: AuthMountRef,
    pub verb: Operation,
    pub action: UserpassAction,
}

impl Op for UserpassOp {
    type Output = UserpassOutput;

    fn access(&self) -> Access {
        match self.action {
            UserpassAction::UserWrite { .. } => Access::AclCreateOrUpdate,
            _ => Access::Acl(self.verb),
        }
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        match &self.action {
            UserpassAction::UserWrite { name, .. } => Ok(user_name(name)
                .ok()
                .map(|n| self.mount.userpass()?.user(&n))
                .transpose()?
                .flatten()
                .is_some()),
            _ => Ok(true),
        }
    }

    async fn run(self, _cx: Context<'_>) -> Result<UserpassOutput> {
        use UserpassAction as A;
        use UserpassOutput as O;
        let m = self.mount.userpass()?;
        Ok(match self.action {
            A::UserWrite { name, fields } => {
                let fields = fields?;
                let password = match fields.get("password") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) => Some(Zeroizing::new(p.clone())),
                    Some(_) => return Err(EngineError::bad("invalid 'password': not a string")),
                };
                m.write_user(&user_name(&name)?, password, &fields).await?;
                O::Done
            }
            A::UserRead { name } => O::User(m.user(&user_name(&name)?)?.map(Box::new)),
            A::UserDelete { name } => {
                m.delete_user(&user_name(&name)?).await?;
                O::Done
            }
            A::UserList => O::Names(m.users()?),
            A::PasswordWrite { name, password } => {
                m.set_password(&user_name(&name)?, password?).await?;
                O::Done
            }
            A::PoliciesWrite { name, fields } => {
                m.set_policies(&user_name(&name)?, &fields?).await?;
                O::Done
            }
        })
    }
}

/// `login/<name>`: a password for a token. Wrong passwords slow down the next attempts
/// for the same user from the same source.
pub struct UserpassLogin {
    pub mount: AuthMountRef,
    pub name: String,
    pub password: Decoded<Zeroizing<String>>,
}

impl Op for UserpassLogin {
    type Output = IssuedToken;

    fn access(&self) -> Access {
        Access::Unauthenticated
    }

    async fn run(self, cx: Context<'_>) -> Result<IssuedToken> {
        let m = self.mount.userpass()?;
        let name = user_name(&self.name)?;
        let password = self.password?;
        let keys = [format!("{name}@{}", source_key(&cx))];
        let user = throttled(&self.mount, &keys, m.login(&name, password)).await?;
        let grant = LoginGrant {
            display_name: name.clone(),
            metadata: metadata([("username", name.as_str())]),
            params: user.token,
            path: format!("auth/{}login/{name}", self.mount.path()),
        };
        issue(&cx, &self.mount, grant).await
    }
}
