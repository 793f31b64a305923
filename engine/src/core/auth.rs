//! Who may act: the ACL a caller's policies make (checked per request by `ops`), the root
//! token, and the `-dev` set-up.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::Core;
use crate::error::{EngineError, Result};
use crate::mounts::MountConfig;
use crate::policy::Acl;
use crate::seal::{InitResult, UnsealStep};
use crate::token::{Caller, CreateRequest};

impl Core {
    pub(crate) fn acl(&self, caller: &Caller) -> Result<Arc<Acl>> {
        self.policies.acl_for(&caller.entry.policies)
    }

    pub(crate) async fn create_root_token(&self, id: String) -> Result<Zeroizing<String>> {
        let issued = self
            .tokens
            .create(
                None,
                CreateRequest {
                    id: Some(id),
                    policies: vec!["root".into()],
                    path: "auth/token/root".into(),
                    ..Default::default()
                },
            )
            .await?;
        Ok(issued.token)
    }

    /// `vault server -dev`: one unseal key, unsealed, kv v2 at `secret/`, transit at
    /// `transit/`, and optionally a root token with a chosen id in place of the
    /// generated one.
    pub async fn dev_setup(&self, root_token_id: Option<String>) -> Result<InitResult> {
        let mut init = self.init(1, 1).await?;
        let first = init
            .keys
            .first()
            .cloned()
            .ok_or_else(|| EngineError::Internal("init returned no unseal key".into()))?;
        self.unseal(UnsealStep::Share(first)).await?;
        self.mounts
            .mount(
                "secret",
                "kv-v2",
                "key/value secret storage".into(),
                Default::default(),
                MountConfig::default(),
            )
            .await?;
        self.mounts
            .mount(
                "transit",
                "transit",
                "encryption as a service".into(),
                Default::default(),
                MountConfig::default(),
            )
            .await?;
        if let Some(id) = root_token_id {
            let generated = self.tokens.lookup(&init.root_token)?;
            self.tokens.revoke(&generated.0).await?;
            init.root_token = self.create_root_token(id).await?;
        }
        Ok(init)
    }
}
