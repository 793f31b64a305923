//! Auth methods as mounts, as Vault has them: `sys/auth/<path>` enables a method at
//! `auth/<path>/`, whose logins issue tokens through the token store. The table is kept
//! under the barrier (`core/auth`); each method keeps its own data below
//! `auth/<mount uuid>/`, removed with the mount, and disabling a mount revokes every
//! token it issued.
//!
//! # Adding a method
//!
//! A method is one module here (`approle.rs`, `userpass.rs`), its operations in
//! `ops::auth::<method>` and a thin handler in `api/src/vault/auth/<method>.rs`:
//!
//! 1. Add a variant to [`AuthKind`] (its Vault type name in [`AuthKind::parse`] and
//!    [`AuthKind::as_str`]) and to [`Method`], built in [`AuthMounts::mounted`] from the
//!    mount's [`MethodStore`] (its barrier prefix and salt).
//! 2. Roles take the common `token_*` fields through [`TokenParams`]: decode them with
//!    [`TokenParams::update_from`] (one parser for every method) and store them with the
//!    role.
//! 3. A login op declares [`crate::ops::Access::Unauthenticated`] (no token, audited, not while
//!    sealed), checks the credentials, and returns [`crate::ops::auth::issue`]`(cx, mount,
//!    grant)` with a [`LoginGrant`]: the engine caps the TTLs by the role, the mount and
//!    the system, binds the CIDRs, sets the mount's accessor on the token, and refuses
//!    token types it does not issue. Failed logins go through [`LoginThrottle`].
//! 4. In `api`, route the kind in `vault/auth/mod.rs` and answer a login with
//!    `auth::login_reply`.

pub mod approle;
pub mod cert;
mod cidr;
pub mod jwt;
mod throttle;
mod token_params;
pub mod userpass;

pub use cidr::{check_cidrs, parse_cidrs, remote_allowed};
pub use throttle::LoginThrottle;
pub(crate) use token_params::list as policy_names;
pub use token_params::{TokenParams, TokenType};

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::mounts::{hold_committed, normalize_mount_path, rebuild_table};
use crate::token::{MountTtls, RoleTtls};

pub(crate) const TABLE_PATH: &str = "core/auth";

/// The methods this appliance implements, by Vault's type names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    AppRole,
    Userpass,
    Jwt,
    Cert,
}

impl AuthKind {
    pub fn parse(kind: &str) -> Result<AuthKind> {
        match kind {
            "approle" => Ok(AuthKind::AppRole),
            "userpass" => Ok(AuthKind::Userpass),
            "jwt" => Ok(AuthKind::Jwt),
            "cert" => Ok(AuthKind::Cert),
            "oidc" => Err(EngineError::bad(
                "the oidc auth method (browser login) is not implemented by this appliance: enable jwt for JWT login",
            )),
            "token" => Err(EngineError::bad(
                "token credential backend cannot be instantiated",
            )),
            other => Err(EngineError::bad(format!(
                "plugin not found in the catalog: {other} (the auth methods this appliance implements are approle, userpass, jwt and cert)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::AppRole => "approle",
            AuthKind::Userpass => "userpass",
            AuthKind::Jwt => "jwt",
            AuthKind::Cert => "cert",
        }
    }
}

/// A mount's tunable settings; 0 TTLs mean the system's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub token_type: TokenType,
    #[serde(default)]
    pub listing_visibility: String,
}

impl AuthConfig {
    pub fn ttls(&self) -> MountTtls {
        MountTtls {
            default_lease_ttl: self.default_lease_ttl,
            max_lease_ttl: self.max_lease_ttl,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthEntry {
    /// Below `auth/`, with its trailing slash (`approle/`).
    pub path: String,
    pub kind: AuthKind,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub options: BTreeMap<String, String>,
    pub config: AuthConfig,
    pub local: bool,
    pub seal_wrap: bool,
}

/// What a method may keep: values below its mount's barrier prefix, and a salt for
/// HMACs of the secrets it stores (secret ids), made on first use.
pub struct MethodStore {
    barrier: Arc<Barrier>,
    prefix: String,
    salt: RwLock<Option<Zeroizing<Vec<u8>>>>,
}

impl MethodStore {
    fn new(barrier: Arc<Barrier>, uuid: &str) -> Self {
        MethodStore {
            barrier,
            prefix: format!("auth/{uuid}/"),
            salt: RwLock::new(None),
        }
    }

    fn path(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    pub(crate) fn get_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<Option<T>> {
        self.barrier.get_json(&self.path(rel))
    }

    pub(crate) async fn put_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<()> {
        self.barrier.put_json(&self.path(rel), value).await
    }

    /// Puts and deletes in one atomic commit.
    pub(crate) async fn write(
        &self,
        puts: &[(String, serde_json::Value)],
        deletes: &[String],
    ) -> Result<()> {
        let mut batch = self.barrier.batch()?;
        for (rel, value) in puts {
            batch.put_json(&self.path(rel), value)?;
        }
        for rel in deletes {
            batch.delete(&self.path(rel));
        }
        self.barrier.commit(batch).await
    }

    /// Keys below `rel` (recursively), relative to it.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>> {
        self.barrier.list(&self.path(rel))
    }

    /// HMAC-SHA256 of `value` with the mount's salt, hex: how secrets are stored and
    /// indexed, so storage never holds one.
    pub(crate) async fn hmac(&self, value: &str) -> Result<String> {
        let salt = self.salt().await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&salt).map_err(EngineError::internal)?;
        mac.update(value.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    async fn salt(&self) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(s) = self.salt.read().as_ref() {
            return Ok(s.clone());
        }
        let salt = self
            .barrier
            .get_or_create(&self.path("salt"), crate::barrier::random_secret)
            .await?;
        *self.salt.write() = Some(salt.clone());
        Ok(salt)
    }

    /// Removes everything the method stored.
    async fn destroy(&self) -> Result<()> {
        let keys = self.barrier.list(&self.prefix)?;
        for chunk in keys.chunks(1000) {
            let mut batch = self.barrier.batch()?;
            for k in chunk {
                batch.delete(&format!("{}{k}", self.prefix));
            }
            self.barrier.commit(batch).await?;
        }
        Ok(())
    }
}

/// The method behind a mount.
pub enum Method {
    AppRole(approle::AppRole),
    Userpass(userpass::Userpass),
    Jwt(jwt::Jwt),
    Cert(cert::Cert),
}

impl Method {
    /// Whether a login token this method issued may be renewed now, and its role's token
    /// settings as they are now (OpenBao's `pathLoginRenew`): None declines without error.
    /// `internal` is what the method kept with the token at login, `chain` the
    /// certificate chain of the renewing client's TLS connection.
    pub(crate) fn renewal(
        &self,
        meta: &BTreeMap<String, String>,
        policies: &[String],
        internal: &BTreeMap<String, String>,
        chain: Option<&cert::PeerChain>,
    ) -> Result<Option<RoleTtls>> {
        match self {
            Method::AppRole(m) => m.renewal(meta).map(Some),
            Method::Userpass(m) => m.renewal(meta, policies),
            Method::Jwt(m) => m.renewal(meta).map(Some),
            Method::Cert(m) => m.renewal(meta, policies, internal, chain),
        }
    }
}

/// A mounted method, ready to serve.
pub struct AuthMounted {
    pub entry: AuthEntry,
    /// Shared so a tune keeps the same method, with its salt and locks.
    pub(crate) method: Arc<Method>,
    /// Failed logins, per source (and user): in memory, per mount.
    pub(crate) throttle: Arc<LoginThrottle>,
}

/// A routed auth mount as a front door holds it: its kind and path to name in an
/// operation; the method itself is reachable only by the operation.
#[derive(Clone)]
pub struct AuthMountRef(pub(crate) Arc<AuthMounted>);

impl AuthMountRef {
    pub fn kind(&self) -> AuthKind {
        self.0.entry.kind
    }

    /// The mount's path below `auth/`, with its trailing slash.
    pub fn path(&self) -> &str {
        &self.0.entry.path
    }

    pub(crate) fn approle(&self) -> Result<&approle::AppRole> {
        match self.0.method.as_ref() {
            Method::AppRole(m) => Ok(m),
            _ => Err(EngineError::internal("approle operation routed elsewhere")),
        }
    }

    pub(crate) fn userpass(&self) -> Result<&userpass::Userpass> {
        match self.0.method.as_ref() {
            Method::Userpass(m) => Ok(m),
            _ => Err(EngineError::internal("userpass operation routed elsewhere")),
        }
    }

    pub(crate) fn jwt(&self) -> Result<&jwt::Jwt> {
        match self.0.method.as_ref() {
            Method::Jwt(m) => Ok(m),
            _ => Err(EngineError::internal("jwt operation routed elsewhere")),
        }
    }

    pub(crate) fn cert(&self) -> Result<&cert::Cert> {
        match self.0.method.as_ref() {
            Method::Cert(m) => Ok(m),
            _ => Err(EngineError::internal("cert operation routed elsewhere")),
        }
    }
}

/// What a method established at a login, for the engine to issue a token from.
pub struct LoginGrant {
    /// The token's display name: the mount's path and the method's name for the caller
    /// (`userpass-alice`), as Vault makes it.
    pub display_name: String,
    pub metadata: BTreeMap<String, String>,
    pub params: TokenParams,
    /// Where the login came from (`token_bound_cidrs` apply to the token, not to this).
    pub path: String,
}

/// The auth mount table. `token/` is the token store's, built in and not listed here.
pub struct AuthMounts {
    barrier: Arc<Barrier>,
    table: RwLock<BTreeMap<String, Arc<AuthMounted>>>,
    /// Held across a reload's read and swap, and while a commit's table is taken up.
    taking_up: parking_lot::Mutex<()>,
    write_lock: tokio::sync::Mutex<()>,
}

impl AuthMounts {
    pub fn new(barrier: Arc<Barrier>) -> Self {
        AuthMounts {
            barrier,
            table: RwLock::new(BTreeMap::new()),
            taking_up: parking_lot::Mutex::new(()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mounted(&self, entry: AuthEntry) -> Arc<AuthMounted> {
        let store = MethodStore::new(self.barrier.clone(), &entry.uuid);
        let (method, throttle) = match entry.kind {
            AuthKind::AppRole => (
                Method::AppRole(approle::AppRole::new(store)),
                LoginThrottle::default(),
            ),
            AuthKind::Userpass => (
                Method::Userpass(userpass::Userpass::new(store)),
                LoginThrottle::default(),
            ),
            AuthKind::Jwt => (
                Method::Jwt(jwt::Jwt::new(store)),
                LoginThrottle::for_signed_credentials(),
            ),
            AuthKind::Cert => (
                Method::Cert(cert::Cert::new(store)),
                LoginThrottle::for_signed_credentials(),
            ),
        };
        Arc::new(AuthMounted {
            entry,
            method: Arc::new(method),
            throttle: Arc::new(throttle),
        })
    }

    fn store_of(&self, entry: &AuthEntry) -> MethodStore {
        MethodStore::new(self.barrier.clone(), &entry.uuid)
    }

    pub fn load(&self) -> Result<()> {
        let entries: Vec<AuthEntry> = self.barrier.get_json(TABLE_PATH)?.unwrap_or_default();
        let table = entries
            .into_iter()
            .map(|e| (e.path.clone(), self.mounted(e)))
            .collect();
        *self.table.write() = table;
        Ok(())
    }

    pub fn clear(&self) {
        self.table.write().clear();
    }

    pub fn list(&self) -> Vec<AuthEntry> {
        self.table
            .read()
            .values()
            .map(|m| m.entry.clone())
            .collect()
    }

    pub fn get(&self, path: &str) -> Option<AuthEntry> {
        self.table.read().get(path).map(|m| m.entry.clone())
    }

    /// The mount with `accessor`.
    pub(crate) fn by_accessor(&self, accessor: &str) -> Option<Arc<AuthMounted>> {
        self.table
            .read()
            .values()
            .find(|m| m.entry.accessor == accessor)
            .cloned()
    }

    /// The method mounted at the longest prefix of `path` (below `auth/`), and the rest.
    pub fn route(&self, path: &str) -> Option<(AuthMountRef, String)> {
        let table = self.table.read();
        let best = table
            .iter()
            .filter(|(prefix, _)| {
                path.starts_with(prefix.as_str()) || path == prefix.trim_end_matches('/')
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, m)| m.clone())?;
        let rest = path.get(best.entry.path.len()..).unwrap_or("").to_string();
        Some((AuthMountRef(best), rest))
    }

    /// Writes `table` in place of `before`, only if the stored table is still `before`:
    /// when another node changed it meanwhile, nothing is written and the caller is told
    /// to try again (by then this node has taken the other's table up).
    async fn persist(
        &self,
        before: &BTreeMap<String, Arc<AuthMounted>>,
        table: &BTreeMap<String, Arc<AuthMounted>>,
    ) -> Result<()> {
        let expected = table_json(before)?;
        let entries = table_json(table)?;
        self.barrier
            .transact(|tx| {
                let stored: serde_json::Value = tx
                    .get_json(TABLE_PATH)?
                    .unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
                if stored != expected {
                    return Err(EngineError::Conflict(
                        "the auth method table was changed on another node meanwhile; try again"
                            .into(),
                    ));
                }
                tx.put_json(TABLE_PATH, &entries)?;
                Ok(())
            })
            .await
    }

    /// Takes up the table another node wrote: entries this node has too keep what they
    /// hold (an engine's caches, a method's login throttle), new ones are built, and
    /// removed or changed ones are dropped.
    pub fn reload(&self) -> Result<()> {
        let _taking_up = self.taking_up.lock();
        let entries: Vec<AuthEntry> = self.barrier.get_json(TABLE_PATH)?.unwrap_or_default();
        let before = self.table.read().clone();
        *self.table.write() = rebuild_table(
            &before,
            entries,
            |e| &e.path,
            |m| &m.entry,
            |e| self.mounted(e),
        );
        Ok(())
    }

    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: String,
        options: BTreeMap<String, String>,
        config: AuthConfig,
    ) -> Result<AuthEntry> {
        let path = normalize_mount_path(path)?;
        let kind = AuthKind::parse(kind)?;
        if path == "token/" || path.starts_with("token/") {
            return Err(EngineError::bad(format!(
                "cannot mount at reserved path \"auth/{path}\""
            )));
        }
        config.ttls().validate()?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        if let Some(existing) = table
            .keys()
            .find(|p| p.starts_with(path.as_str()) || path.starts_with(p.as_str()))
        {
            return Err(EngineError::bad(format!(
                "path is already in use at auth/{existing}"
            )));
        }
        let uuid = uuid::Uuid::new_v4().to_string();
        let entry = AuthEntry {
            path: path.clone(),
            kind,
            description,
            accessor: format!("auth_{}_{}", kind.as_str(), &uuid[..8]),
            uuid,
            options,
            config,
            local: false,
            seal_wrap: false,
        };
        table.insert(path, self.mounted(entry.clone()));
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        Ok(entry)
    }

    /// Removes a mount from the table; the caller revokes its tokens, then
    /// [`Self::destroy_data`] removes what it stored.
    pub async fn disable(&self, path: &str) -> Result<Option<AuthEntry>> {
        let path = normalize_mount_path(path)?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        let Some(removed) = table.remove(&path) else {
            return Ok(None);
        };
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        Ok(Some(removed.entry.clone()))
    }

    /// Tidies the secret ids of every AppRole mount; how many entries went.
    pub async fn tidy_secret_ids(&self) -> Result<usize> {
        let mounts: Vec<Arc<AuthMounted>> = self.table.read().values().cloned().collect();
        let mut removed = 0;
        for m in mounts {
            if let Method::AppRole(approle) = m.method.as_ref() {
                removed += approle.tidy_secret_ids().await?;
            }
        }
        Ok(removed)
    }

    pub async fn destroy_data(&self, entry: &AuthEntry) -> Result<()> {
        self.store_of(entry).destroy().await
    }

    pub async fn tune(&self, path: &str, tune: impl FnOnce(&mut AuthEntry)) -> Result<()> {
        let path = normalize_mount_path(path)?;
        let _w = self.write_lock.lock().await;
        let before = self.table.read().clone();
        let mut table = before.clone();
        let Some(current) = table.get(&path) else {
            return Err(EngineError::bad(format!("no mount at \"auth/{path}\"")));
        };
        let mut entry = current.entry.clone();
        tune(&mut entry);
        entry.config.ttls().validate()?;
        let mounted = Arc::new(AuthMounted {
            entry,
            method: current.method.clone(),
            throttle: current.throttle.clone(),
        });
        table.insert(path, mounted);
        self.persist(&before, &table).await?;
        hold_committed(&self.table, &self.taking_up, &before, table);
        Ok(())
    }
}

/// A table's entries as stored.
fn table_json(table: &BTreeMap<String, Arc<AuthMounted>>) -> Result<serde_json::Value> {
    let entries: Vec<&AuthEntry> = table.values().map(|m| &m.entry).collect();
    serde_json::to_value(entries).map_err(EngineError::internal)
}
