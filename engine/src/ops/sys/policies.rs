//! `sys/policies/acl` and the older `sys/policy`: named ACL policies.

use crate::error::{EngineError, Result};
use crate::ops::{Access, Context, Decoded, Op};
use crate::policy::Operation;

/// The policies' names. `verb`: the capability the listing path asks for (`list` on
/// `sys/policies/acl`, `read` on the older `sys/policy`).
pub struct PolicyList {
    pub verb: Operation,
}

impl Op for PolicyList {
    type Output = Vec<String>;

    fn access(&self) -> Access {
        Access::Acl(self.verb)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<String>> {
        cx.core.policies.list()
    }
}

/// A policy's text as written.
pub struct PolicyRead {
    pub name: String,
}

impl Op for PolicyRead {
    type Output = String;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<String> {
        cx.core
            .policies
            .read_raw(&self.name)?
            .ok_or(EngineError::NotFound(self.name))
    }
}

pub struct PolicyWrite {
    pub name: String,
    pub text: Decoded<String>,
}

impl Op for PolicyWrite {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Update)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.policies.put(&self.name, &self.text?).await
    }
}

pub struct PolicyDelete {
    pub name: String,
}

impl Op for PolicyDelete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Acl(Operation::Delete)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        cx.core.policies.delete(&self.name).await
    }
}
