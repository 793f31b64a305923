//! `auth/<approle mount>/...`: roles, role ids, secret ids and their accessors, and the
//! login.

use serde_json::{Map, Value};

use super::{issue, source_key, throttled};
use crate::auth::approle::{
    role_name, NewSecretId, Role, RoleField, SecretIdEntry, SecretIdRequest,
};
use crate::auth::{AuthMountRef, LoginGrant, TokenParams};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;
use crate::token::IssuedToken;

/// What an AppRole management request asks, by path; `name` is the role's.
pub enum AppRoleAction {
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
    RoleIdRead {
        name: String,
    },
    RoleIdWrite {
        name: String,
        role_id: Decoded<String>,
    },
    SecretIdGenerate {
        name: String,
        request: Decoded<SecretIdRequest>,
    },
    SecretIdList {
        name: String,
    },
    SecretIdLookup {
        name: String,
        secret_id: Decoded<String>,
    },
    SecretIdDestroy {
        name: String,
        secret_id: Decoded<String>,
    },
    AccessorLookup {
        name: String,
        accessor: Decoded<String>,
    },
    AccessorDestroy {
        name: String,
        accessor: Decoded<String>,
    },
    RoleFieldRead {
        name: String,
        field: RoleField,
    },
    RoleFieldWrite {
        name: String,
        field: RoleField,
        fields: Decoded<Map<String, Value>>,
    },
    RoleFieldDelete {
        name: String,
        field: RoleField,
    },
    /// `tidy/secret-id`: expired secret ids and stray accessors go now.
    TidySecretIds,
}

pub enum AppRoleOutput {
    Done,
    /// None: no such role.
    Role(Option<Box<Role>>),
    Names(Vec<String>),
    RoleId(String),
    SecretId(NewSecretId),
    SecretIdEntry(Option<Box<SecretIdEntry>>),
    /// A role setting with its path, as it reads; None: no such role.
    RoleField(Option<Value>),
    Tidied,
}

/// An AppRole management request, checked against the ACL on its own path with the
/// request's verb (a role write: `create` or `update` as the role exists, as Vault).
pub struct AppRoleOp {
    pub mount: AuthMountRef,
    pub verb: Operation,
    pub action: AppRoleAction,
}

impl Op for AppRoleOp {
    type Output = AppRoleOutput;

    fn access(&self) -> Access {
        match self.action {
            AppRoleAction::RoleWrite { .. } => Access::AclCreateOrUpdate,
            _ => Access::Acl(self.verb),
        }
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        match &self.action {
            AppRoleAction::RoleWrite { name, .. } => Ok(role_name(name)
                .ok()
                .map(|n| self.mount.approle()?.role(&n))
                .transpose()?
                .flatten()
                .is_some()),
            _ => Ok(true),
        }
    }

    async fn run(self, cx: Context<'_>) -> Result<AppRoleOutput> {
        use AppRoleAction as A;
        use AppRoleOutput as O;
        let m = self.mount.approle()?;
        Ok(match self.action {
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
            A::RoleIdRead { name } => O::RoleId(m.role_id(&role_name(&name)?)?),
            A::RoleIdWrite { name, role_id } => {
                m.set_role_id(&role_name(&name)?, &role_id?).await?;
                O::Done
            }
            A::SecretIdGenerate { name, request } => {
                O::SecretId(m.generate_secret_id(&role_name(&name)?, request?).await?)
            }
            A::SecretIdList { name } => O::Names(m.list_secret_ids(&role_name(&name)?).await?),
            A::SecretIdLookup { name, secret_id } => O::SecretIdEntry(
                m.lookup_secret_id(&role_name(&name)?, &secret_id?)
                    .await?
                    .map(Box::new),
            ),
            A::SecretIdDestroy { name, secret_id } => {
                m.destroy_secret_id(&role_name(&name)?, &secret_id?).await?;
                O::Done
            }
            A::AccessorLookup { name, accessor } => O::SecretIdEntry(Some(Box::new(
                m.lookup_accessor(&role_name(&name)?, &accessor?).await?,
            ))),
            A::AccessorDestroy { name, accessor } => {
                m.destroy_accessor(&role_name(&name)?, &accessor?).await?;
                O::Done
            }
            A::RoleFieldRead { name, field } => {
                O::RoleField(m.role(&role_name(&name)?)?.map(|r| field.read(&r)))
            }
            A::RoleFieldWrite {
                name,
                field,
                fields,
            } => {
                let fields = fields?;
                if !m
                    .write_role_field(&role_name(&name)?, field, Some(&fields))
                    .await?
                {
                    // OpenBao's answer to an update of a role that does not exist.
                    return Err(EngineError::NoRoute(cx.request.path.to_string()));
                }
                O::Done
            }
            A::RoleFieldDelete { name, field } => {
                m.write_role_field(&role_name(&name)?, field, None).await?;
                O::Done
            }
            A::TidySecretIds => {
                let removed = m.tidy_secret_ids().await?;
                tracing::info!(removed, "AppRole secret ids tidied");
                O::Tidied
            }
        })
    }
}

/// `login`: a role id and (with `bind_secret_id`) a secret id for a token. Wrong
/// credentials slow down the next attempts from the same source.
pub struct AppRoleLogin {
    pub mount: AuthMountRef,
    pub role_id: Decoded<String>,
    pub secret_id: Decoded<String>,
}

impl Op for AppRoleLogin {
    type Output = IssuedToken;

    fn access(&self) -> Access {
        Access::Unauthenticated
    }

    async fn run(self, cx: Context<'_>) -> Result<IssuedToken> {
        let m = self.mount.approle()?;
        let (role_id, secret_id) = (self.role_id?, self.secret_id?);
        let remote = cx.request.remote;
        let keys = [source_key(&cx)];
        let who = throttled(&self.mount, &keys, m.login(&role_id, &secret_id, remote)).await?;
        let mut metadata = who.metadata;
        metadata.insert("role_name".into(), who.role_name.clone());
        let params = TokenParams {
            token_bound_cidrs: who.token_bound_cidrs,
            ..who.role.token
        };
        let grant = LoginGrant {
            display_name: String::new(),
            metadata,
            params,
            path: format!("auth/{}login", self.mount.path()),
        };
        issue(&cx, &self.mount, grant).await
    }
}
