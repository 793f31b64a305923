//! The token store. Minted tokens are Biscuit tokens signed by a key kept under the
//! barrier; tokens with a caller-chosen id (`-dev-root-token-id`, `auth/token/create`
//! with `id`) are opaque. Either way the token names an entry in storage, and that entry
//! is the authority: its policies, TTL, use count and existence (revocation) are checked
//! on every request.

mod biscuit;
mod entry;
mod roles;
mod ttl;
mod wrapping;

pub use biscuit::{KeyRequestFacts, VerifiedBiscuit};
pub use entry::{CreateRequest, MethodOrigin, Renewal, RoleTtls, TokenEntry, TokenKind, SCOPES};
pub use roles::{TokenRole, ROLE_FIELDS};
pub use ttl::{LeaseTtls, MountTtls, SYSTEM_TTL};
pub use wrapping::{WrapInfo, Wrapped};

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use self::biscuit::BiscuitSigner;
use crate::barrier::{random_secret, Barrier};
use crate::bounded_cache::{BoundedCache, Cached};
use crate::error::{EngineError, Result};
use crate::policy::Operation;
use crate::storage::within;

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
const PARENT_PREFIX: &str = "sys/token/parent/";
/// Revoked attenuated Biscuits, by the revocation id of their last block.
const REVOKED_BLOCK_PREFIX: &str = "sys/token/revoked-block/";
/// Token roles, by name.
const ROLE_PREFIX: &str = "sys/token/roles/";
/// The tune of the `auth/token/` mount (default and max lease TTL).
pub(crate) const MOUNT_CONFIG_PATH: &str = "sys/token/mount-config";

/// The longest token string the appliance looks at. Vault's tokens are under 100 bytes
/// and the Biscuits minted here under 1 KiB; a holder's attenuations add a few hundred
/// bytes each. Anything longer is refused before it is parsed, hashed or cached.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Bytes each token cache may hold (store entries; verified token strings).
const ENTRY_CACHE_BYTES: usize = 8 * 1024 * 1024;
const VERIFIED_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// A request's caller, once its token has been checked.
#[derive(Clone)]
pub struct Caller {
    pub entry: Arc<TokenEntry>,
    pub key: String,
    /// For an attenuated Biscuit: its revocation identity (the last block's revocation
    /// id, hex), which tells it apart from its base token in audit entries and
    /// revocation. None for a token as minted.
    pub revocation_id: Option<String>,
}

impl Caller {
    /// A caller holding the token as minted (no attenuation).
    pub fn new(key: String, entry: Arc<TokenEntry>) -> Self {
        Caller {
            entry,
            key,
            revocation_id: None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }

    /// Whether the token holds a key-API scope (root tokens hold every scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.is_root() || self.entry.scopes.iter().any(|s| s == scope)
    }

    /// Whether the caller holds an attenuated Biscuit rather than the token as minted.
    pub fn is_attenuated(&self) -> bool {
        self.revocation_id.is_some()
    }
}

/// What `auth/token/create` hands back.
pub struct IssuedToken {
    pub token: Zeroizing<String>,
    pub entry: TokenEntry,
}

/// What `revoke` did with a token string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The token and every token created under it.
    Tree,
    /// Only this attenuated Biscuit; its base token lives on.
    Attenuation,
    /// The string names no live token: nothing was left to revoke.
    Nothing,
}

#[derive(Serialize, Deserialize)]
struct RevokedBlock {
    /// The base token's store key: once it is gone the record is no longer needed.
    base: String,
}

struct Unsealed {
    salt: Zeroizing<Vec<u8>>,
    signer: BiscuitSigner,
}

pub struct TokenStore {
    barrier: Arc<Barrier>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    entries: Arc<BoundedCache<TokenEntry>>,
    /// Token strings (by SHA-256) already checked: genuine, and naming a stored entry.
    verified: Arc<BoundedCache<VerifiedBiscuit>>,
    system_ttls: LeaseTtls,
    mount_ttls: RwLock<MountTtls>,
    /// Held across a read of the stored mount TTLs and taking them up, so the last to
    /// take them up read the newest.
    taking_up_ttls: parking_lot::Mutex<()>,
    /// Serialises read-modify-write of entries (use counts, renewals, revocation trees).
    write_lock: tokio::sync::Mutex<()>,
}

/// A token bound to CIDR blocks is refused elsewhere, before any of its uses is spent.
fn bound_here(entry: &TokenEntry, remote: Option<IpAddr>) -> Result<()> {
    if crate::auth::remote_allowed(&entry.bound_cidrs, remote) {
        Ok(())
    } else {
        Err(EngineError::Forbidden)
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The verified cache's key: a digest, so the cache never holds token strings and each
/// key costs the same whatever the token's length.
fn cache_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The keys besides its own that an entry occupies: what revoking it deletes.
fn index_keys(key: &str, e: &TokenEntry) -> Vec<String> {
    let mut keys = vec![format!("{ACCESSOR_PREFIX}{}", e.accessor)];
    if let Some(p) = &e.parent {
        keys.push(format!("{PARENT_PREFIX}{p}/{key}"));
    }
    if e.is_wrapping() {
        keys.push(format!("{}{key}", wrapping::WRAPPED_PREFIX));
    }
    keys
}

impl TokenStore {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self::with_ttls(barrier, LeaseTtls::default())
    }

    pub fn with_ttls(barrier: Arc<Barrier>, system_ttls: LeaseTtls) -> Self {
        let entries = Arc::new(BoundedCache::new(ENTRY_CACHE_BYTES));
        let verified = Arc::new(BoundedCache::new(VERIFIED_CACHE_BYTES));
        // Entries another writer changed are read again. A verified string is looked up
        // again only when revoked blocks change: on a hit its entry is still loaded
        // through `entries`, so a token another writer revoked is refused anyway.
        let invalidations = barrier.storage().invalidations();
        invalidations.subscribe(&entries, |cache, prefix| {
            if let Some(keys) = within(prefix, ID_PREFIX) {
                cache.invalidate_prefix(keys);
            }
        });
        invalidations.subscribe(&verified, |cache, prefix| {
            if within(prefix, REVOKED_BLOCK_PREFIX).is_some() {
                cache.clear();
            }
        });
        TokenStore {
            barrier,
            unsealed: RwLock::new(None),
            entries,
            verified,
            system_ttls,
            mount_ttls: RwLock::new(MountTtls::default()),
            taking_up_ttls: parking_lot::Mutex::new(()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the salt and signing key after unseal, making them on first use.
    pub async fn load(&self) -> Result<()> {
        let salt = self.barrier.get_or_create(SALT_PATH, random_secret).await?;
        let signer = BiscuitSigner::load_or_create(&self.barrier).await?;
        *self.mount_ttls.write() = self
            .barrier
            .get_json(MOUNT_CONFIG_PATH)?
            .unwrap_or_default();
        *self.unsealed.write() = Some(Arc::new(Unsealed { salt, signer }));
        Ok(())
    }

    /// Forgets every key and cached entry; called when the appliance seals.
    pub fn clear(&self) {
        self.unsealed.write().take();
        self.entries.clear();
        self.verified.clear();
    }

    /// The system TTLs from the server configuration.
    pub fn system_ttls(&self) -> LeaseTtls {
        self.system_ttls
    }

    /// The tune of `auth/token/` as stored (0: the system value).
    pub fn mount_ttls(&self) -> MountTtls {
        *self.mount_ttls.read()
    }

    /// The TTLs in force for tokens: the tune where set, else the system's.
    pub fn effective_ttls(&self) -> LeaseTtls {
        self.mount_ttls().effective(self.system_ttls)
    }

    /// Takes up the mount TTLs another node tuned.
    pub fn reload_mount_ttls(&self) -> Result<()> {
        if self.unsealed.read().is_none() {
            return Ok(());
        }
        let _taking_up = self.taking_up_ttls.lock();
        *self.mount_ttls.write() = self
            .barrier
            .get_json(MOUNT_CONFIG_PATH)?
            .unwrap_or_default();
        Ok(())
    }

    /// `sys/auth/token/tune`: changes the mount's default and max lease TTL.
    pub async fn tune(&self, tune: MountTtls) -> Result<()> {
        tune.validate()?;
        let _w = self.write_lock.lock().await;
        self.barrier.put_json(MOUNT_CONFIG_PATH, &tune).await?;
        // Read back rather than held as written: another node's tune stored after this
        // one, and taken up here meanwhile, must not be replaced by this older one.
        self.reload_mount_ttls()
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
        let epoch = match self.entries.get(key) {
            Cached::Hit(e) => return Ok(Some(e)),
            Cached::Miss(epoch) => epoch,
        };
        let entry: Option<TokenEntry> = self.barrier.get_json(&format!("{ID_PREFIX}{key}"))?;
        Ok(entry.map(|e| {
            let size = e.approx_bytes();
            let e = Arc::new(e);
            self.entries.insert(epoch, key, e.clone(), size);
            e
        }))
    }

    /// The entry a token string names, if the token is genuine; attenuations of a Biscuit
    /// are checked against `path` and `op`.
    fn resolve(
        &self,
        token: &str,
        path: &str,
        op: Operation,
    ) -> Result<(Arc<VerifiedBiscuit>, Arc<TokenEntry>)> {
        let (v, entry) = self.resolve_verified(token)?;
        v.authorize(path, op)?;
        Ok((v, entry))
    }

    /// The genuine, live token behind a string, its attenuations not yet checked. Only a
    /// string that verified and names a live entry is cached, so strings from
    /// unauthenticated callers cost nothing that outlives their request.
    fn resolve_verified(&self, token: &str) -> Result<(Arc<VerifiedBiscuit>, Arc<TokenEntry>)> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(EngineError::Unauthenticated);
        }
        let ck = cache_key(token);
        let epoch = match self.verified.get(&ck) {
            Cached::Hit(v) => {
                let entry = self.live_entry(&v.key)?;
                return Ok((v, entry));
            }
            Cached::Miss(epoch) => epoch,
        };
        let verified = if biscuit::looks_like_biscuit(token) {
            let u = self.unsealed()?;
            let (id, parsed) = u.signer.verify(token)?;
            let key = self.key_for(TokenKind::Biscuit, &id)?;
            VerifiedBiscuit::new(key, parsed, token.len())
        } else {
            let key = self.key_for(TokenKind::Opaque, token)?;
            VerifiedBiscuit::opaque(key)
        };
        for id in verified.block_ids() {
            if self
                .barrier
                .get(&format!("{REVOKED_BLOCK_PREFIX}{id}"))?
                .is_some()
            {
                return Err(EngineError::Unauthenticated);
            }
        }
        let entry = self.live_entry(&verified.key)?;
        let size = verified.approx_bytes();
        let v = Arc::new(verified);
        self.verified.insert(epoch, &ck, v.clone(), size);
        Ok((v, entry))
    }

    fn caller(key: String, entry: Arc<TokenEntry>, v: &VerifiedBiscuit) -> Caller {
        Caller {
            entry,
            key,
            revocation_id: v.revocation_id().map(str::to_string),
        }
    }

    /// For the key API: checks that the token is genuine and alive, without its
    /// attenuations yet; the caller checks those with the request's facts
    /// ([`VerifiedBiscuit::authorize_key_request`]) once it knows the key.
    pub async fn authenticate_deferred(
        &self,
        token: &str,
        remote: Option<IpAddr>,
    ) -> Result<(Caller, Arc<VerifiedBiscuit>)> {
        let (v, entry) = self.resolve_verified(token)?;
        bound_here(&entry, remote)?;
        let caller = if entry.num_uses > 0 {
            self.consume_use(v.key.clone(), &v).await?
        } else {
            Self::caller(v.key.clone(), entry, &v)
        };
        Ok((caller, v))
    }

    /// Checks a presented token for a request on `path`: genuine, not revoked, not
    /// expired, its parents alive, uses left, used from inside its bound CIDRs. Consumes
    /// one use if it has a limit.
    pub async fn authenticate(
        &self,
        token: &str,
        path: &str,
        op: Operation,
        remote: Option<IpAddr>,
    ) -> Result<Caller> {
        let (v, entry) = self.resolve(token, path, op)?;
        bound_here(&entry, remote)?;
        if entry.num_uses > 0 {
            return self.consume_use(v.key.clone(), &v).await;
        }
        Ok(Self::caller(v.key.clone(), entry, &v))
    }

    /// Checks a presented token as [`Self::authenticate`] does but spends none of its
    /// uses: for answers that only grow richer with a qualifying token (the detail view
    /// of `sys/seal-status`), where Vault does not count the request as a use.
    pub fn authenticate_without_use(
        &self,
        token: &str,
        path: &str,
        op: Operation,
        remote: Option<IpAddr>,
    ) -> Result<Caller> {
        let (v, entry) = self.resolve(token, path, op)?;
        bound_here(&entry, remote)?;
        Ok(Self::caller(v.key.clone(), entry, &v))
    }

    /// The entry for `key` if it and every parent above it are still valid.
    fn live_entry(&self, key: &str) -> Result<Arc<TokenEntry>> {
        let now = now();
        let entry = self.load_entry(key)?.ok_or(EngineError::Unauthenticated)?;
        if entry.is_expired(now) {
            return Err(EngineError::Unauthenticated);
        }
        let mut parent = entry.parent.clone();
        let mut depth = 0;
        while let Some(p) = parent {
            depth += 1;
            let pe = self.load_entry(&p)?.ok_or(EngineError::Unauthenticated)?;
            if pe.is_expired(now) || depth > 64 {
                return Err(EngineError::Unauthenticated);
            }
            parent = pe.parent.clone();
        }
        Ok(entry)
    }

    async fn consume_use(&self, key: String, v: &VerifiedBiscuit) -> Result<Caller> {
        let _w = self.write_lock.lock().await;
        self.entries.invalidate(&key);
        let entry = self.live_entry(&key)?;
        let last = self
            .update_entry(&key, |current| {
                if current.num_uses <= 1 {
                    // Deleted in the same transaction that counts the use, so a node
                    // counting another use at once conflicts and finds it gone.
                    return Ok(None);
                }
                let mut next = current.clone();
                next.num_uses -= 1;
                Ok(Some(next))
            })
            .await?
            .is_none();
        if last {
            // The last use: the token is gone once this request is through, with the
            // tokens made under it.
            self.revoke_tree_locked(&key).await?;
        }
        Ok(Self::caller(key, entry, v))
    }

    /// Replaces the stored entry of `key` with what `change` makes of it (`None`: deletes
    /// it and its indexes), in a transaction on the entry as stored: a use counted or a
    /// renewal made by another node meanwhile is built upon, and a token revoked
    /// meanwhile stays revoked.
    async fn update_entry(
        &self,
        key: &str,
        mut change: impl FnMut(&TokenEntry) -> Result<Option<TokenEntry>>,
    ) -> Result<Option<TokenEntry>> {
        let id_path = format!("{ID_PREFIX}{key}");
        let committed = self
            .barrier
            .transact(|tx| {
                let current: TokenEntry =
                    tx.get_json(&id_path)?.ok_or(EngineError::Unauthenticated)?;
                let next = change(&current)?;
                match &next {
                    Some(next) => {
                        tx.put_json(&id_path, next)?;
                    }
                    None => {
                        for index in index_keys(key, &current) {
                            tx.delete(&index);
                        }
                        tx.delete(&id_path);
                    }
                }
                Ok(next)
            })
            .await;
        // Whether or not the commit succeeded it may have reached the disk: the next
        // reader loads the entry from the barrier.
        self.entries.invalidate(key);
        committed
    }

    /// Mints a token. `parent` is None only for root tokens made by init, dev mode or
    /// generate-root.
    pub async fn create(&self, parent: Option<&Caller>, req: CreateRequest) -> Result<IssuedToken> {
        if parent.is_some_and(Caller::is_attenuated) {
            // A child cannot carry the holder's Biscuit checks (they are signed into the
            // holder's token, not transferable), so it would shed them.
            return Err(EngineError::Forbidden);
        }
        let _w = self.write_lock.lock().await;
        let now = now();
        let entry = TokenEntry::from_request(parent, &req, self.effective_ttls(), now)?;
        let (token, kind, id) = match &req.id {
            Some(id) => {
                if id.is_empty() || id.len() > MAX_TOKEN_BYTES {
                    return Err(EngineError::bad(format!(
                        "invalid token id: it must be 1 to {MAX_TOKEN_BYTES} bytes"
                    )));
                }
                if id.contains('.') && biscuit::looks_like_biscuit(id) {
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
        let mut entry = entry;
        entry.kind = kind;
        let id_path = format!("{ID_PREFIX}{key}");
        // The id's absence is a condition of the commit: of two nodes creating the same
        // id at once, one fails here instead of overwriting the other's token.
        let committed = self
            .barrier
            .transact(|tx| {
                if tx.get(&id_path)?.is_some() {
                    return Err(EngineError::bad("a token with that id already exists"));
                }
                tx.put_json(&id_path, &entry)?.put(
                    &format!("{ACCESSOR_PREFIX}{}", entry.accessor),
                    key.as_bytes(),
                )?;
                if let (Some(p), false) = (parent, entry.orphan) {
                    tx.put(&format!("{PARENT_PREFIX}{}/{key}", p.key), b"")?;
                }
                Ok(())
            })
            .await;
        self.entries.invalidate(&key);
        committed?;
        Ok(IssuedToken { token, entry })
    }

    /// The entry for a token string named in a request (`auth/token/lookup`, `revoke`,
    /// `renew`, capabilities, audit): the token is the subject there, not the actor, so
    /// its own attenuation checks do not apply, but a revoked attenuation does. An
    /// invalid token is 403, as in Vault.
    pub fn lookup(&self, token: &str) -> Result<(String, Arc<TokenEntry>)> {
        let (v, entry) = self.resolve_verified(token)?;
        Ok((v.key.clone(), entry))
    }

    /// Like [`TokenStore::lookup`], with the token's revocation identity when it is an
    /// attenuated Biscuit (for audit entries).
    pub fn identify(&self, token: &str) -> Result<(Arc<TokenEntry>, Option<String>)> {
        let (v, entry) = self.resolve_verified(token)?;
        Ok((entry, v.revocation_id().map(str::to_string)))
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

    /// Extends a token's TTL from now, bounded by the lease TTLs in force and its explicit
    /// max TTL, both counted from its creation, as `renew-self` does. `renewal` says how
    /// (for a login token, as the auth method that issued it decides now); None from it
    /// leaves the token as it is, and so does this.
    pub async fn renew(
        &self,
        key: &str,
        increment: Option<u64>,
        renewal: impl FnOnce(&TokenEntry) -> Result<Option<Renewal>>,
    ) -> Result<Option<TokenEntry>> {
        let _w = self.write_lock.lock().await;
        let entry = self.live_entry(key)?;
        if !entry.renewable {
            return Err(EngineError::bad("lease is not renewable"));
        }
        let Some(renewal) = renewal(&entry)? else {
            return Ok(None);
        };
        self.update_entry(key, |current| {
            let mut next = current.clone();
            next.renew(increment, renewal, now())?;
            Ok(Some(next))
        })
        .await
    }

    /// How the token store's own tokens renew: within its TTLs.
    pub fn own_renewal(&self) -> Renewal {
        Renewal {
            ttls: self.effective_ttls(),
            role: None,
        }
    }

    /// Revokes a token and every token created under it.
    pub async fn revoke(&self, key: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.revoke_tree_locked(key).await
    }

    /// Revokes what the caller holds (`revoke-self`): an attenuated Biscuit alone, else
    /// the token and its children.
    pub async fn revoke_caller(&self, caller: &Caller) -> Result<Revoked> {
        self.revoke_held(&caller.key, caller.revocation_id.as_deref())
            .await
    }

    /// `auth/token/revoke`: revokes the token a string names. An attenuated Biscuit is
    /// revoked alone (its base token and other attenuations live on); a string naming no
    /// live token leaves nothing to revoke, which Vault answers with 204 as well.
    pub async fn revoke_token(&self, token: &str) -> Result<Revoked> {
        let (v, _) = match self.resolve_verified(token) {
            Ok(found) => found,
            Err(EngineError::Unauthenticated) => return Ok(Revoked::Nothing),
            Err(e) => return Err(e),
        };
        self.revoke_held(&v.key, v.revocation_id()).await
    }

    /// An attenuation (`revocation_id`) alone, else the token `key` and its children.
    async fn revoke_held(&self, key: &str, revocation_id: Option<&str>) -> Result<Revoked> {
        match revocation_id {
            Some(id) => {
                self.revoke_block(key, id).await?;
                Ok(Revoked::Attenuation)
            }
            None => {
                self.revoke(key).await?;
                Ok(Revoked::Tree)
            }
        }
    }

    async fn revoke_block(&self, base: &str, id: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let record = RevokedBlock {
            base: base.to_string(),
        };
        let written = self
            .barrier
            .put_json(&format!("{REVOKED_BLOCK_PREFIX}{id}"), &record)
            .await;
        // Verified strings may include this attenuation (or ones derived from it).
        self.verified.clear();
        written
    }

    /// Revokes every expired token (and so its children), as Vault's expiration manager
    /// does; returns how many were removed. Expired tokens are already refused, this only
    /// reclaims their storage, and the records of revoked attenuations whose base token
    /// is gone.
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
        for id in self.barrier.list(REVOKED_BLOCK_PREFIX)? {
            let path = format!("{REVOKED_BLOCK_PREFIX}{id}");
            let record: Option<RevokedBlock> = self.barrier.get_json(&path)?;
            if let Some(r) = record {
                if self.load_entry(&r.base)?.is_none() {
                    self.barrier.delete(&path).await?;
                }
            }
        }
        Ok(removed)
    }

    /// Revokes every token an auth method mount issued (and their children), when the
    /// mount is disabled; returns how many logins were revoked.
    pub async fn revoke_issued_by(&self, mount_accessor: &str) -> Result<usize> {
        let mut revoked = 0;
        for key in self.barrier.list(ID_PREFIX)? {
            let issued = self
                .load_entry(&key)?
                .is_some_and(|e| e.mount_accessor.as_deref() == Some(mount_accessor));
            if issued {
                self.revoke(&key).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    pub fn role(&self, name: &str) -> Result<Option<TokenRole>> {
        self.barrier.get_json(&format!("{ROLE_PREFIX}{name}"))
    }

    pub fn roles(&self) -> Result<Vec<String>> {
        self.barrier.list(ROLE_PREFIX)
    }

    /// Creates or updates a role from a write's fields.
    pub async fn write_role(
        &self,
        name: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let existing = self.role(name)?;
        let creating = existing.is_none();
        let mut role = existing.unwrap_or_default();
        role.update_from(fields, creating)?;
        self.barrier
            .put_json(&format!("{ROLE_PREFIX}{name}"), &role)
            .await
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.barrier.delete(&format!("{ROLE_PREFIX}{name}")).await
    }

    /// The accessors of every stored token (`LIST auth/token/accessors`).
    pub fn accessors(&self) -> Result<Vec<String>> {
        self.barrier.list(ACCESSOR_PREFIX)
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
        let committed = self.barrier.commit(batch).await;
        self.entries.clear();
        self.verified.clear();
        committed
    }

    fn delete_entry_into(&self, key: &str, batch: &mut crate::barrier::BarrierBatch) -> Result<()> {
        if let Some(e) = self.load_entry(key)? {
            for index in index_keys(key, &e) {
                batch.delete(&index);
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
        let committed = self.barrier.commit(batch).await;
        // Cached entries and verified strings may name revoked tokens: drop them all
        // (which also bumps the caches' epochs, so a read that raced this revoke cannot
        // put them back).
        self.entries.clear();
        self.verified.clear();
        committed
    }
}

#[cfg(test)]
mod tests;
