//! The management paths the cert and jwt methods share: one `config` and named roles
//! (cert's `certs/<name>`, jwt's `role/<name>`), each request checked against the ACL on
//! its own path. A method takes part by saying how it reads and writes them.

use std::future::Future;
use std::marker::PhantomData;

use serde_json::{Map, Value};

use crate::auth::AuthMountRef;
use crate::error::Result;
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;

/// An auth method whose mount holds a `config` and named roles.
pub trait RoleMethod: Sync + 'static {
    /// This method's state on `mount` (an internal error if the mount is another's).
    fn of(mount: &AuthMountRef) -> Result<&Self>;
    /// The name a role is stored under, or the method's refusal of `name`.
    fn role_name(name: &str) -> Result<String>;
    /// None: never configured.
    fn config_json(&self) -> Result<Option<Value>>;
    fn write_config(&self, fields: &Map<String, Value>) -> impl Future<Output = Result<()>> + Send;
    fn role_json(&self, name: &str) -> Result<Option<Value>>;
    fn role_names(&self) -> Result<Vec<String>>;
    fn write_role(
        &self,
        name: &str,
        fields: &Map<String, Value>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn delete_role(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
}

pub enum RoleAction {
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

pub enum RoleOutput {
    Done,
    Config(Option<Value>),
    Role(Option<Value>),
    Names(Vec<String>),
}

/// A `config` or role request on a mount of method `M`.
pub struct RoleOp<M> {
    mount: AuthMountRef,
    verb: Operation,
    action: RoleAction,
    method: PhantomData<fn() -> M>,
}

impl<M: RoleMethod> RoleOp<M> {
    pub fn new(mount: AuthMountRef, verb: Operation, action: RoleAction) -> Self {
        RoleOp {
            mount,
            verb,
            action,
            method: PhantomData,
        }
    }
}

impl<M: RoleMethod> Op for RoleOp<M> {
    type Output = RoleOutput;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, _cx: Context<'_>) -> Result<RoleOutput> {
        use RoleAction as A;
        use RoleOutput as O;
        let m = M::of(&self.mount)?;
        Ok(match self.action {
            A::ConfigWrite(fields) => {
                m.write_config(&fields?).await?;
                O::Done
            }
            A::ConfigRead => O::Config(m.config_json()?),
            A::RoleWrite { name, fields } => {
                m.write_role(&M::role_name(&name)?, &fields?).await?;
                O::Done
            }
            A::RoleRead { name } => O::Role(m.role_json(&M::role_name(&name)?)?),
            A::RoleDelete { name } => {
                m.delete_role(&M::role_name(&name)?).await?;
                O::Done
            }
            A::RoleList => O::Names(m.role_names()?),
        })
    }
}
