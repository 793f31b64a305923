//! The token store. Minted tokens are Biscuit tokens signed by a key kept under the
//! barrier; tokens with a caller-chosen id (`-dev-root-token-id`, `auth/token/create`
//! with `id`) are opaque. Either way the token names an entry in storage, and that entry
//! is the authority: its policies, TTL, use count and existence (revocation) are checked
//! on every request.

mod biscuit;
mod entry;

pub use biscuit::{KeyRequestFacts, VerifiedBiscuit};
pub use entry::{CreateRequest, TokenEntry, TokenKind, SCOPES};

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use sha2::Sha256;
use zeroize::Zeroizing;

use self::biscuit::BiscuitSigner;
use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::policy::Operation;

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
const PARENT_PREFIX: &str = "sys/token/parent/";
/// Token strings already resolved to a store key (Biscuits after their signature check),
/// kept until the cache is this full and is cleared.
const VERIFIED_CACHE_MAX: usize = 10_000;

/// A request's caller, once its token has been checked.
#[derive(Clone)]
pub struct Caller {
    pub entry: Arc<TokenEntry>,
    pub key: String,
}

impl Caller {
    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }

    /// Whether the token holds a key-API scope (root tokens hold every scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.is_root() || self.entry.scopes.iter().any(|s| s == scope)
    }
}

/// What `auth/token/create` hands back.
pub struct IssuedToken {
    pub token: Zeroizing<String>,
    pub entry: TokenEntry,
}

struct Unsealed {
    salt: Zeroizing<Vec<u8>>,
    signer: BiscuitSigner,
}

pub struct TokenStore {
    barrier: Arc<Barrier>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    entries: RwLock<HashMap<String, Arc<TokenEntry>>>,
    verified: RwLock<HashMap<String, Arc<VerifiedBiscuit>>>,
    /// Serialises read-modify-write of entries (use counts, renewals, revocation trees).
    write_lock: tokio::sync::Mutex<()>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TokenStore {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        TokenStore {
            barrier,
            unsealed: RwLock::new(None),
            entries: RwLock::new(HashMap::new()),
            verified: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the salt and signing key after unseal, making them on first use.
    pub async fn load(&self) -> Result<()> {
        let salt = match self.barrier.get(SALT_PATH)? {
            Some(s) => s,
            None => {
                let mut salt = Zeroizing::new(vec![0u8; 32]);
                hsm_bridge::fill_random(&mut salt);
                let mut batch = self.barrier.batch()?;
                batch.put(SALT_PATH, &salt)?;
                self.barrier.commit(batch).await?;
                salt
            }
        };
        let signer = BiscuitSigner::load_or_create(&self.barrier).await?;
        *self.unsealed.write() = Some(Arc::new(Unsealed { salt, signer }));
        Ok(())
    }

    /// Forgets every key and cached entry; called when the appliance seals.
    pub fn clear(&self) {
        self.unsealed.write().take();
        self.entries.write().clear();
        self.verified.write().clear();
    }

    fn unsealed(&self) -> Result<Arc<Unsealed>> {
        self.unsealed.read().clone().ok_or(EngineError::Sealed)
    }

    fn key_for(&self, kind: TokenKind, id: &str) -> Result<String> {
        let u = self.unsealed()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&u.salt).map_err(EngineError::internal)?;
        // The kind is part of the key so the id inside a Biscuit can never be presented on
        // its own as an opaque token, which would shed the Biscuit's attenuations.
        mac.update(kind.domain().as_bytes());
        mac.update(id.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    fn load_entry(&self, key: &str) -> Result<Option<Arc<TokenEntry>>> {
        if let Some(e) = self.entries.read().get(key) {
            return Ok(Some(e.clone()));
        }
        let entry: Option<TokenEntry> = self.barrier.get_json(&format!("{ID_PREFIX}{key}"))?;
        Ok(entry.map(|e| {
            let e = Arc::new(e);
            self.entries.write().insert(key.to_string(), e.clone());
            e
        }))
    }

    /// The entry a token string names, if the token is genuine; attenuations of a Biscuit
    /// are checked against `path` and `op`.
    fn resolve(&self, token: &str, path: &str, op: Operation) -> Result<String> {
        let v = self.resolve_verified(token)?;
        v.authorize(path, op)?;
        Ok(v.key.clone())
    }

    /// The genuine token behind a string, its attenuations not yet checked.
    fn resolve_verified(&self, token: &str) -> Result<Arc<VerifiedBiscuit>> {
        if let Some(v) = self.verified.read().get(token).cloned() {
            return Ok(v);
        }
        let verified = if biscuit::looks_like_biscuit(token) {
            let u = self.unsealed()?;
            let (id, parsed) = u.signer.verify(token)?;
            let key = self.key_for(TokenKind::Biscuit, &id)?;
            VerifiedBiscuit::new(key, parsed)
        } else {
            let key = self.key_for(TokenKind::Opaque, token)?;
            VerifiedBiscuit::opaque(key)
        };
        Ok(self.remember(token, verified))
    }

    fn remember(&self, token: &str, verified: VerifiedBiscuit) -> Arc<VerifiedBiscuit> {
        let mut cache = self.verified.write();
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.clear();
        }
        let v = Arc::new(verified);
        cache.insert(token.to_string(), v.clone());
        v
    }

    /// For the key API: checks that the token is genuine and alive, without its
    /// attenuations yet; the caller checks those with the request's facts
    /// ([`VerifiedBiscuit::authorize_key_request`]) once it knows the key.
    pub async fn authenticate_deferred(
        &self,
        token: &str,
    ) -> Result<(Caller, Arc<VerifiedBiscuit>)> {
        if token.is_empty() {
            return Err(EngineError::PermissionDenied);
        }
        let v = self.resolve_verified(token)?;
        let entry = self.live_entry(&v.key)?;
        let caller = if entry.num_uses > 0 {
            self.consume_use(v.key.clone()).await?
        } else {
            Caller {
                entry,
                key: v.key.clone(),
            }
        };
        Ok((caller, v))
    }

    /// Checks a presented token for a request on `path`: genuine, not revoked, not
    /// expired, its parents alive, uses left. Consumes one use if it has a limit.
    pub async fn authenticate(&self, token: &str, path: &str, op: Operation) -> Result<Caller> {
        if token.is_empty() {
            return Err(EngineError::PermissionDenied);
        }
        let key = self.resolve(token, path, op)?;
        let entry = self.live_entry(&key)?;
        if entry.num_uses > 0 {
            return self.consume_use(key).await;
        }
        Ok(Caller { entry, key })
    }

    /// The entry for `key` if it and every parent above it are still valid.
    fn live_entry(&self, key: &str) -> Result<Arc<TokenEntry>> {
        let now = now();
        let entry = self.load_entry(key)?.ok_or(EngineError::PermissionDenied)?;
        if entry.is_expired(now) {
            return Err(EngineError::PermissionDenied);
        }
        let mut parent = entry.parent.clone();
        let mut depth = 0;
        while let Some(p) = parent {
            depth += 1;
            let pe = self.load_entry(&p)?.ok_or(EngineError::PermissionDenied)?;
            if pe.is_expired(now) || depth > 64 {
                return Err(EngineError::PermissionDenied);
            }
            parent = pe.parent.clone();
        }
        Ok(entry)
    }

    async fn consume_use(&self, key: String) -> Result<Caller> {
        let _w = self.write_lock.lock().await;
        self.entries.write().remove(&key);
        let entry = self.live_entry(&key)?;
        let mut next = (*entry).clone();
        if next.num_uses == 1 {
            // The last use: the token is gone once this request is through.
            self.revoke_tree_locked(&key).await?;
        } else {
            next.num_uses -= 1;
            self.store_entry(&key, &next).await?;
        }
        Ok(Caller { entry, key })
    }

    async fn store_entry(&self, key: &str, entry: &TokenEntry) -> Result<()> {
        let mut batch = self.barrier.batch()?;
        batch.put_json(&format!("{ID_PREFIX}{key}"), entry)?;
        self.barrier.commit(batch).await?;
        self.entries
            .write()
            .insert(key.to_string(), Arc::new(entry.clone()));
        Ok(())
    }

    /// Mints a token. `parent` is None only for root tokens made by init, dev mode or
    /// generate-root.
    pub async fn create(&self, parent: Option<&Caller>, req: CreateRequest) -> Result<IssuedToken> {
        let _w = self.write_lock.lock().await;
        let now = now();
        let entry = TokenEntry::from_request(parent, &req, now)?;
        let (token, kind, id) = match &req.id {
            Some(id) => {
                if id.is_empty() || id.contains('.') && biscuit::looks_like_biscuit(id) {
                    return Err(EngineError::bad("invalid token id"));
                }
                (Zeroizing::new(id.clone()), TokenKind::Opaque, id.clone())
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let u = self.unsealed()?;
                (
                    u.signer.mint(&id, &entry.policies, &entry.scopes)?,
                    TokenKind::Biscuit,
                    id,
                )
            }
        };
        let key = self.key_for(kind, &id)?;
        if self.load_entry(&key)?.is_some() {
            return Err(EngineError::bad("a token with that id already exists"));
        }
        let mut entry = entry;
        entry.kind = kind;
        let mut batch = self.barrier.batch()?;
        batch.put_json(&format!("{ID_PREFIX}{key}"), &entry)?;
        batch.put(
            &format!("{ACCESSOR_PREFIX}{}", entry.accessor),
            key.as_bytes(),
        )?;
        if let (Some(p), false) = (parent, entry.orphan) {
            batch.put(&format!("{PARENT_PREFIX}{}/{key}", p.key), b"")?;
        }
        self.barrier.commit(batch).await?;
        self.entries.write().insert(key, Arc::new(entry.clone()));
        Ok(IssuedToken { token, entry })
    }

    /// The entry for a token string, for `auth/token/lookup`.
    pub fn lookup(&self, token: &str) -> Result<(String, Arc<TokenEntry>)> {
        let key = self
            .resolve(token, "auth/token/lookup", Operation::Update)
            .map_err(|_| EngineError::bad("bad token"))?;
        let entry = self
            .live_entry(&key)
            .map_err(|_| EngineError::bad("bad token"))?;
        Ok((key, entry))
    }

    pub fn key_for_accessor(&self, accessor: &str) -> Result<String> {
        if accessor.is_empty() || accessor.contains('/') {
            return Err(EngineError::bad("invalid accessor"));
        }
        let key = self
            .barrier
            .get(&format!("{ACCESSOR_PREFIX}{accessor}"))?
            .ok_or_else(|| EngineError::bad("invalid accessor"))?;
        String::from_utf8(key.to_vec()).map_err(EngineError::internal)
    }

    pub fn lookup_accessor(&self, accessor: &str) -> Result<(String, Arc<TokenEntry>)> {
        let key = self.key_for_accessor(accessor)?;
        let entry = self
            .live_entry(&key)
            .map_err(|_| EngineError::bad("invalid accessor"))?;
        Ok((key, entry))
    }

    /// Extends a token's TTL, bounded by its explicit max TTL, as `renew-self` does.
    pub async fn renew(&self, key: &str, increment: Option<u64>) -> Result<TokenEntry> {
        let _w = self.write_lock.lock().await;
        let entry = self.live_entry(key)?;
        if !entry.renewable {
            return Err(EngineError::bad("lease is not renewable"));
        }
        let mut next = (*entry).clone();
        next.renew(increment, now());
        self.store_entry(key, &next).await?;
        Ok(next)
    }

    /// Revokes a token and every token created under it.
    pub async fn revoke(&self, key: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.revoke_tree_locked(key).await
    }

    /// Revokes every expired token (and so its children), as Vault's expiration manager
    /// does; returns how many were removed. Expired tokens are already refused, this only
    /// reclaims their storage.
    pub async fn tidy(&self) -> Result<usize> {
        let now = now();
        let mut removed = 0;
        for key in self.barrier.list(ID_PREFIX)? {
            let expired = self.load_entry(&key)?.is_some_and(|e| e.is_expired(now));
            if expired {
                self.revoke(&key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Revokes only the token; its children become orphans, as `revoke-orphan` does.
    pub async fn revoke_orphan(&self, key: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let children = self.barrier.list(&format!("{PARENT_PREFIX}{key}/"))?;
        let mut batch = self.barrier.batch()?;
        for child in children {
            if let Some(e) = self.load_entry(&child)? {
                let mut e = (*e).clone();
                e.parent = None;
                e.orphan = true;
                batch.put_json(&format!("{ID_PREFIX}{child}"), &e)?;
            }
            batch.delete(&format!("{PARENT_PREFIX}{key}/{child}"));
        }
        self.delete_entry_into(key, &mut batch)?;
        self.barrier.commit(batch).await?;
        self.entries.write().clear();
        Ok(())
    }

    fn delete_entry_into(&self, key: &str, batch: &mut crate::barrier::BarrierBatch) -> Result<()> {
        if let Some(e) = self.load_entry(key)? {
            batch.delete(&format!("{ACCESSOR_PREFIX}{}", e.accessor));
            if let Some(p) = &e.parent {
                batch.delete(&format!("{PARENT_PREFIX}{p}/{key}"));
            }
        }
        batch.delete(&format!("{ID_PREFIX}{key}"));
        Ok(())
    }

    async fn revoke_tree_locked(&self, key: &str) -> Result<()> {
        // Depth-first over the parent index; one atomic batch so a crash never leaves a
        // child alive whose parent is gone.
        let mut batch = self.barrier.batch()?;
        let mut stack = vec![key.to_string()];
        let mut seen = 0usize;
        while let Some(k) = stack.pop() {
            seen += 1;
            if seen > 100_000 {
                return Err(EngineError::Internal(
                    "token tree too large to revoke".into(),
                ));
            }
            for child in self.barrier.list(&format!("{PARENT_PREFIX}{k}/"))? {
                batch.delete(&format!("{PARENT_PREFIX}{k}/{child}"));
                stack.push(child);
            }
            self.delete_entry_into(&k, &mut batch)?;
        }
        self.barrier.commit(batch).await?;
        // Cached entries and verified strings may name revoked tokens: drop them all.
        self.entries.write().clear();
        self.verified.write().clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
