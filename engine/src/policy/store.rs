//! Named ACL policies kept under the barrier, and the ACLs built from them, cached per
//! set of policy names until a policy changes. Both caches are bounded in bytes and
//! epoch-guarded: an ACL built from policies read just before a concurrent write or
//! delete is never cached after that write cleared the cache. Policies another writer
//! changed (raised by storage) are dropped the same way.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::barrier::Barrier;
use crate::bounded_cache::{BoundedCache, Cached};
use crate::error::{EngineError, Result};
use crate::policy::{
    validate_name, Acl, Policy, DEFAULT_POLICY, RESPONSE_WRAPPING_POLICY,
    RESPONSE_WRAPPING_POLICY_NAME,
};
use crate::storage::within;

const PREFIX: &str = "sys/policy/";
/// Bytes each cache may hold (parsed policies; ACLs per set of names).
const POLICY_CACHE_BYTES: usize = 8 * 1024 * 1024;
const ACL_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Roughly what a parsed policy holds in memory: its text and the rules parsed from it,
/// a small multiple of the text.
fn policy_bytes(p: &Policy) -> usize {
    p.raw.len() * 4 + 256
}

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    raw: String,
}

pub struct PolicyStore {
    barrier: Arc<Barrier>,
    policies: Arc<BoundedCache<Policy>>,
    acls: Arc<BoundedCache<Acl>>,
    write_lock: tokio::sync::Mutex<()>,
}

impl PolicyStore {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        let policies = Arc::new(BoundedCache::new(POLICY_CACHE_BYTES));
        let acls = Arc::new(BoundedCache::new(ACL_CACHE_BYTES));
        let invalidations = barrier.storage().invalidations();
        invalidations.subscribe(&policies, |cache, prefix| {
            if let Some(names) = within(prefix, PREFIX) {
                cache.invalidate_prefix(names);
            }
        });
        invalidations.subscribe(&acls, |cache, prefix| {
            if within(prefix, PREFIX).is_some() {
                cache.clear();
            }
        });
        PolicyStore {
            barrier,
            policies,
            acls,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn clear(&self) {
        self.policies.clear();
        self.acls.clear();
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
        if name == RESPONSE_WRAPPING_POLICY_NAME {
            // Fixed, as in Vault: never stored, so no write can widen what wrapping
            // tokens may do.
            let policy = Policy::load(&name, RESPONSE_WRAPPING_POLICY)
                .map_err(|e| EngineError::internal(format!("built-in policy: {e}")))?;
            return Ok(Some(Arc::new(policy)));
        }
        let epoch = match self.policies.get(&name) {
            Cached::Hit(p) => return Ok(Some(p)),
            Cached::Miss(epoch) => epoch,
        };
        let stored: Option<StoredPolicy> = self.barrier.get_json(&format!("{PREFIX}{name}"))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let policy = Arc::new(
            Policy::load(&stored.name, &stored.raw)
                .map_err(|_| EngineError::Corrupt(format!("{PREFIX}{name}")))?,
        );
        self.policies
            .insert(epoch, &name, policy.clone(), policy_bytes(&policy));
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
        if name == "root" || name == RESPONSE_WRAPPING_POLICY_NAME {
            return Err(EngineError::bad(format!("cannot update {name:?} policy")));
        }
        validate_name(&name).map_err(|e| EngineError::bad(e.to_string()))?;
        Policy::parse(&name, raw).map_err(|e| EngineError::bad(e.to_string()))?;
        let _w = self.write_lock.lock().await;
        let stored = StoredPolicy {
            name: name.clone(),
            raw: raw.to_string(),
        };
        let written = self
            .barrier
            .put_json(&format!("{PREFIX}{name}"), &stored)
            .await;
        // After the commit, whether it succeeded or not (it may still have reached the
        // disk); the next reader loads the policy from the barrier.
        self.policies.invalidate(&name);
        self.acls.clear();
        written
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        if name == "root" || name == "default" || name == RESPONSE_WRAPPING_POLICY_NAME {
            return Err(EngineError::bad(format!("cannot delete \"{name}\" policy")));
        }
        let _w = self.write_lock.lock().await;
        let deleted = self.barrier.delete(&format!("{PREFIX}{name}")).await;
        self.policies.invalidate(&name);
        self.acls.clear();
        deleted
    }

    /// The ACL granted by a token's policies. Names that no longer exist grant nothing.
    pub fn acl_for(&self, names: &[String]) -> Result<Arc<Acl>> {
        let cache_key = names.join("\n");
        // Noted before any policy is read: a put or delete finishing meanwhile bumps it.
        let epoch = match self.acls.get(&cache_key) {
            Cached::Hit(acl) => return Ok(acl),
            Cached::Miss(epoch) => epoch,
        };
        let (acl, size) = if names.iter().any(|n| n == "root") {
            (Arc::new(Acl::root()), 256)
        } else {
            let mut loaded = Vec::with_capacity(names.len());
            for n in names {
                if let Some(p) = self.get(n)? {
                    loaded.push(p);
                }
            }
            let size = loaded.iter().map(|p| policy_bytes(p)).sum::<usize>() + 256;
            (Arc::new(Acl::new(&loaded)), size)
        };
        self.acls.insert(epoch, &cache_key, acl.clone(), size);
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Operation;
    use crate::storage::{MemoryBackend, Storage};
    use hsm_bridge::ShamirRoot;

    async fn store() -> PolicyStore {
        let storage = Storage::new(Arc::new(MemoryBackend::new()));
        let barrier = Arc::new(Barrier::new(storage));
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        barrier.initialize(&root).await.unwrap();
        PolicyStore::new(barrier)
    }

    const READ: &str = r#"path "secret/*" { capabilities = ["read"] }"#;

    /// A reader builds an ACL from the old policy, a delete commits and clears the
    /// cache, then the reader inserts: the stale ACL must not be cached.
    #[tokio::test]
    async fn an_acl_built_before_a_delete_is_not_cached_after_it() {
        let s = store().await;
        s.put("app", READ).await.unwrap();
        let names = vec!["app".to_string()];
        let key = names.join("\n");
        let Cached::Miss(epoch) = s.acls.get(&key) else {
            panic!("empty cache hit")
        };
        let stale = Arc::new(Acl::new(&[s.get("app").unwrap().unwrap()]));
        assert!(stale.allows("secret/x", Operation::Read, &serde_json::Map::new()));

        s.delete("app").await.unwrap();
        s.acls.insert(epoch, &key, stale, 1);

        let acl = s.acl_for(&names).unwrap();
        assert!(!acl.allows("secret/x", Operation::Read, &serde_json::Map::new()));
    }

    /// Another writer rewrites a policy in storage: once storage raises it, neither the
    /// cached policy nor an ACL built from it is used again.
    #[tokio::test]
    async fn a_policy_another_writer_changed_is_read_again() {
        let mem = Arc::new(MemoryBackend::new());
        let storage = Storage::new(mem.clone());
        let barrier = Arc::new(Barrier::new(storage));
        let (root, _) = ShamirRoot::generate(1, 1).unwrap();
        barrier.initialize(&root).await.unwrap();
        let s = PolicyStore::new(barrier.clone());
        s.put("app", READ).await.unwrap();
        s.put("other", READ).await.unwrap();
        let names = vec!["app".to_string()];
        assert!(s.acl_for(&names).unwrap().allows(
            "secret/x",
            Operation::Read,
            &serde_json::Map::new()
        ));
        s.get("other").unwrap().unwrap();
        assert!(matches!(s.policies.get("other"), Cached::Hit(_)));

        let mut other_node = crate::storage::Batch::new();
        other_node.delete(format!("{PREFIX}app"));
        mem.write_as_other_node(&other_node);

        assert!(matches!(s.policies.get("app"), Cached::Miss(_)));
        assert!(matches!(s.policies.get("other"), Cached::Hit(_)));
        assert!(s.get("app").unwrap().is_none());
        assert!(!s.acl_for(&names).unwrap().allows(
            "secret/x",
            Operation::Read,
            &serde_json::Map::new()
        ));
    }

    /// The same race on the policy cache against a rewrite of the policy.
    #[tokio::test]
    async fn a_policy_read_before_a_write_is_not_cached_after_it() {
        let s = store().await;
        s.put("app", READ).await.unwrap();
        let Cached::Miss(epoch) = s.policies.get("app") else {
            panic!("empty cache hit")
        };
        let old = Arc::new(Policy::parse("app", READ).unwrap());
        s.put("app", r#"path "other/*" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        s.policies.insert(epoch, "app", old, 1);
        let acl = s.acl_for(&["app".to_string()]).unwrap();
        assert!(!acl.allows("secret/x", Operation::Read, &serde_json::Map::new()));
        assert!(acl.allows("other/x", Operation::Read, &serde_json::Map::new()));
    }
}
