//! `auth/<jwt mount>/...`: the trusted keys (`config`), the roles, and the login.

use serde_json::{Map, Value};

use super::{issue, source_key, throttled};
use crate::auth::jwt::{role_name, JwtConfig, JwtRole};
use crate::auth::{AuthMountRef, LoginGrant};
use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::IssuedToken;

pub enum JwtAction {
    ConfigWrite(Decoded<Map<String, Value>>),
    ConfigRead,
    RoleWrite {
        name: String,
        fields: Decoded<Map<String, Value>>,
    },
    RoleRead {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleList,
}

pub enum JwtOutput {
    Done,
    Config(Option<Box<JwtConfig>>),
    Role(Option<Box<JwtRole>>),
    Names(Vec<String>),
}

/// A JWT mount's management request, checked against the ACL on its own path.
pub struct JwtOp {
    pub mount: AuthMountRef,
    pub verb: Operation,
    pub action: JwtAction,
}

impl Op for JwtOp {
    type Output = JwtOutput;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, _cx: Context<'_>) -> Result<JwtOutput> {
        use JwtAction as A;
        use JwtOutput as O;
        let m = self.mount.jwt()?;
        Ok(match self.action {
            A::ConfigWrite(fields) => {
                m.write_config(&fields?).await?;
                O::Done
            }
            A::ConfigRead => O::Config(m.config()?.map(Box::new)),
            A::RoleWrite { name, fields } => {
                m.write_role(&role_name(&name)?, &fields?).await?;
                O::Done
            }
            A::RoleRead { name } => O::Role(m.role(&role_name(&name)?)?.map(Box::new)),
            A::RoleDelete { name } => {
                m.delete_role(&role_name(&name)?).await?;
                O::Done
            }
            A::RoleList => O::Names(m.roles()?),
        })
    }
}

/// `login`: a JWT for a token, its claims checked against the role.
pub struct JwtLoginOp {
    pub mount: AuthMountRef,
    pub login: Decoded<JwtLoginRequest>,
}

pub struct JwtLoginRequest {
    /// None: the configured `default_role`.
    pub role: Option<String>,
    pub jwt: String,
}

impl Op for JwtLoginOp {
    type Output = IssuedToken;

    fn access(&self) -> Access {
        Access::Unauthenticated
    }

    async fn run(self, cx: Context<'_>) -> Result<IssuedToken> {
        let m = self.mount.jwt()?;
        let JwtLoginRequest { role, jwt } = self.login?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let keys = [source_key(&cx)];
        let login = throttled(&self.mount, &keys, m.login(role.as_deref(), &jwt, now)).await?;
        let grant = LoginGrant {
            display_name: login.user,
            metadata: login.metadata,
            params: login.role.token,
            path: format!("auth/{}login", self.mount.path()),
        };
        issue(&cx, &self.mount, grant).await
    }
}
