//! Named ACL policies kept under the barrier, and the ACLs built from them, cached per
//! set of policy names until a policy changes.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::policy::{validate_name, Acl, Policy, DEFAULT_POLICY};

const PREFIX: &str = "sys/policy/";

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

pub struct PolicyStore {
    barrier: Arc<Barrier>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<String, Arc<Acl>>>,
    write_lock: tokio::sync::Mutex<()>,
}

impl PolicyStore {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        PolicyStore {
            barrier,
            policies: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn clear(&self) {
        self.policies.write().clear();
        self.acls.write().clear();
    }

    /// Writes Vault's built-in `default` policy if it is not there yet.
    pub async fn ensure_default(&self) -> Result<()> {
        if self.barrier.get(&format!("{PREFIX}default"))?.is_none() {
            self.put("default", DEFAULT_POLICY).await?;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        let name = name.to_lowercase();
        if let Some(p) = self.policies.read().get(&name) {
            return Ok(Some(p.clone()));
        }
        let stored: Option<StoredPolicy> = self.barrier.get_json(&format!("{PREFIX}{name}"))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let policy = Arc::new(
            Policy::load(&stored.name, &stored.raw)
                .map_err(|_| EngineError::Corrupt(format!("{PREFIX}{name}")))?,
        );
        self.policies.write().insert(name, policy.clone());
        Ok(Some(policy))
    }

    /// The raw text of a policy; `root` has none, as in Vault.
    pub fn read_raw(&self, name: &str) -> Result<Option<String>> {
        if name == "root" {
            return Ok(Some(String::new()));
        }
        Ok(self.get(name)?.map(|p| p.raw.clone()))
    }

    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = self.barrier.list(PREFIX)?;
        names.push("root".into());
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub async fn put(&self, name: &str, raw: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" {
            return Err(EngineError::bad("cannot update \"root\" policy"));
        }
        validate_name(&name).map_err(|e| EngineError::bad(e.to_string()))?;
        let policy = Policy::parse(&name, raw).map_err(|e| EngineError::bad(e.to_string()))?;
        let _w = self.write_lock.lock().await;
        let stored = StoredPolicy {
            name: name.clone(),
            raw: raw.to_string(),
        };
        self.barrier
            .put_json(&format!("{PREFIX}{name}"), &stored)
            .await?;
        self.policies.write().insert(name, Arc::new(policy));
        self.acls.write().clear();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" || name == "default" {
            return Err(EngineError::bad(format!("cannot delete \"{name}\" policy")));
        }
        let _w = self.write_lock.lock().await;
        self.barrier.delete(&format!("{PREFIX}{name}")).await?;
        self.policies.write().remove(&name);
        self.acls.write().clear();
        Ok(())
    }

    /// The ACL granted by a token's policies. Names that no longer exist grant nothing.
    pub fn acl_for(&self, names: &[String]) -> Result<Arc<Acl>> {
        let cache_key = names.join("\n");
        if let Some(acl) = self.acls.read().get(&cache_key) {
            return Ok(acl.clone());
        }
        let acl = if names.iter().any(|n| n == "root") {
            Arc::new(Acl::root())
        } else {
            let mut loaded = Vec::with_capacity(names.len());
            for n in names {
                if let Some(p) = self.get(n)? {
                    loaded.push(p);
                }
            }
            Arc::new(Acl::new(&loaded))
        };
        self.acls.write().insert(cache_key, acl.clone());
        Ok(acl)
    }
}
