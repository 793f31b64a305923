//! `auth/<jwt mount>/...`: the trusted keys (`config`), the roles, and the login.

use std::future::Future;

use serde_json::{Map, Value};

use super::roles::RoleMethod;
use super::{issue, source_key, throttled};
use crate::auth::jwt::{role_name, Jwt};
use crate::auth::{AuthMountRef, LoginGrant};
use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::token::IssuedToken;

impl RoleMethod for Jwt {
    fn of(mount: &AuthMountRef) -> Result<&Self> {
        mount.jwt()
    }

    fn role_name(name: &str) -> Result<String> {
        role_name(name)
    }

    fn config_json(&self) -> Result<Option<Value>> {
        Ok(self.config()?.map(|c| c.to_json()))
    }

    fn write_config(&self, fields: &Map<String, Value>) -> impl Future<Output = Result<()>> + Send {
        Jwt::write_config(self, fields)
    }

    fn role_json(&self, name: &str) -> Result<Option<Value>> {
        Ok(self.role(name)?.map(|r| r.to_json()))
    }

    fn role_names(&self) -> Result<Vec<String>> {
        self.roles()
    }

    fn write_role(
        &self,
        name: &str,
        fields: &Map<String, Value>,
    ) -> impl Future<Output = Result<()>> + Send {
        Jwt::write_role(self, name, fields)
    }

    fn delete_role(&self, name: &str) -> impl Future<Output = Result<()>> + Send {
        Jwt::delete_role(self, name)
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
