//! AppRole (`auth/approle`): a machine logs in with a role id (not secret) and a secret
//! id (secret, short-lived, use-limited). Secret ids, role ids and secret-id accessors
//! are stored under the HMAC of the mount's barrier-held salt, never in clear, as Vault
//! stores them.
//!
//! Layout below the mount's prefix:
//!
//! ```text
//! role/<name>                          the role
//! role-id/<hmac(role id)>              -> the role's name
//! secret-id/<hmac(name)>/<hmac(id)>    a secret id
//! accessor/<hmac(accessor)>            -> the secret id's HMAC
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cidr::{check_cidrs, parse_cidrs};
use super::token_params::{list, normalise_policies};
use super::{MethodStore, TokenParams};
use crate::duration::duration_from_json;
use crate::error::{EngineError, Result};
use crate::request_values::bool_from_json;
use crate::token::RoleTtls;

/// Vault's answer to any wrong role id or secret id, whichever was wrong.
pub const INVALID: &str = "invalid role or secret ID";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: u32,
    pub secret_id_ttl: u64,
    pub local_secret_ids: bool,
    pub token: TokenParams,
}

impl Role {
    /// The role as `role/<name>` reads it (the role id has its own path).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("bind_secret_id".into(), self.bind_secret_id.into());
        m.insert(
            "secret_id_bound_cidrs".into(),
            json!(self.secret_id_bound_cidrs),
        );
        m.insert("secret_id_num_uses".into(), self.secret_id_num_uses.into());
        m.insert("secret_id_ttl".into(), self.secret_id_ttl.into());
        m.insert("local_secret_ids".into(), self.local_secret_ids.into());
        // Vault's deprecated names, still read by older clients.
        m.insert("policies".into(), json!(self.token.token_policies));
        m.insert("period".into(), self.token.token_period.into());
        self.token.to_json(&mut m);
        Value::Object(m)
    }
}

/// A role setting with a path of its own below the role (`role/<name>/token-ttl`), read,
/// updated and deleted (reset to its default) alone, as OpenBao has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleField {
    Policies,
    BindSecretId,
    SecretIdBoundCidrs,
    /// The deprecated name of `secret-id-bound-cidrs`.
    BoundCidrList,
    TokenBoundCidrs,
    SecretIdNumUses,
    SecretIdTtl,
    TokenNumUses,
    TokenTtl,
    TokenMaxTtl,
    Period,
    /// Set at creation only: read-only here.
    LocalSecretIds,
}

impl RoleField {
    /// The field a path segment below a role names.
    pub fn from_path(segment: &str) -> Option<RoleField> {
        use RoleField as F;
        Some(match segment {
            "policies" => F::Policies,
            "bind-secret-id" => F::BindSecretId,
            "secret-id-bound-cidrs" => F::SecretIdBoundCidrs,
            "bound-cidr-list" => F::BoundCidrList,
            "token-bound-cidrs" => F::TokenBoundCidrs,
            "secret-id-num-uses" => F::SecretIdNumUses,
            "secret-id-ttl" => F::SecretIdTtl,
            "token-num-uses" => F::TokenNumUses,
            "token-ttl" => F::TokenTtl,
            "token-max-ttl" => F::TokenMaxTtl,
            "period" => F::Period,
            "local-secret-ids" => F::LocalSecretIds,
            _ => return None,
        })
    }

    /// The request fields an update takes, the first the setting's own name.
    pub fn names(self) -> &'static [&'static str] {
        use RoleField as F;
        match self {
            F::Policies => &["token_policies", "policies"],
            F::BindSecretId => &["bind_secret_id"],
            F::SecretIdBoundCidrs => &["secret_id_bound_cidrs", "bound_cidr_list"],
            F::BoundCidrList => &["bound_cidr_list"],
            F::TokenBoundCidrs => &["token_bound_cidrs"],
            F::SecretIdNumUses => &["secret_id_num_uses"],
            F::SecretIdTtl => &["secret_id_ttl"],
            F::TokenNumUses => &["token_num_uses"],
            F::TokenTtl => &["token_ttl"],
            F::TokenMaxTtl => &["token_max_ttl"],
            F::Period => &["token_period", "period"],
            F::LocalSecretIds => &["local_secret_ids"],
        }
    }

    pub fn writable(self) -> bool {
        self != RoleField::LocalSecretIds
    }

    /// The setting as its path reads it.
    pub fn read(self, role: &Role) -> Value {
        use RoleField as F;
        let t = &role.token;
        let value = match self {
            F::Policies => json!(t.token_policies),
            F::BindSecretId => json!(role.bind_secret_id),
            F::SecretIdBoundCidrs | F::BoundCidrList => json!(role.secret_id_bound_cidrs),
            F::TokenBoundCidrs => json!(t.token_bound_cidrs),
            F::SecretIdNumUses => json!(role.secret_id_num_uses),
            F::SecretIdTtl => json!(role.secret_id_ttl),
            F::TokenNumUses => json!(t.token_num_uses),
            F::TokenTtl => json!(t.token_ttl),
            F::TokenMaxTtl => json!(t.token_max_ttl),
            F::Period => json!(t.token_period),
            F::LocalSecretIds => json!(role.local_secret_ids),
        };
        json!({ self.names()[0]: value })
    }

    /// Sets the setting from an update's fields (OpenBao's words when it is missing), or
    /// back to its default when `fields` is None (a delete).
    fn apply(self, role: &mut Role, fields: Option<&Map<String, Value>>) -> Result<()> {
        use RoleField as F;
        let given = fields.and_then(|f| {
            self.names()
                .iter()
                .find_map(|n| f.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
        });
        let Some((name, v)) = given else {
            if fields.is_none() {
                self.reset(role);
                return Ok(());
            }
            return match self {
                // OpenBao writes the role unchanged when no CIDRs are given.
                F::SecretIdBoundCidrs | F::BoundCidrList | F::TokenBoundCidrs => Ok(()),
                F::Period => Err(EngineError::bad("missing period")),
                _ => Err(EngineError::bad(format!("missing {}", self.names()[0]))),
            };
        };
        let duration = |v: &Value| {
            duration_from_json(v).map_err(|e| EngineError::bad(format!("invalid '{name}': {e}")))
        };
        let count = |v: &Value| -> Result<u32> {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| EngineError::bad(format!("invalid '{name}'")))?;
            if n < 0 {
                return Err(EngineError::bad(format!("{name} cannot be negative")));
            }
            u32::try_from(n).map_err(|_| EngineError::bad(format!("{name} is too large")))
        };
        let t = &mut role.token;
        match self {
            F::Policies => t.token_policies = normalise_policies(list(v, name)?),
            F::BindSecretId => {
                role.bind_secret_id = bool_from_json(v)
                    .ok_or_else(|| EngineError::bad("invalid 'bind_secret_id': not a boolean"))?
            }
            F::SecretIdBoundCidrs | F::BoundCidrList => {
                let cidrs = list(v, name)?;
                if cidrs.is_empty() {
                    return Err(EngineError::bad("missing bound_cidr_list"));
                }
                role.secret_id_bound_cidrs = parse_cidrs(&cidrs)?;
            }
            F::TokenBoundCidrs => t.token_bound_cidrs = parse_cidrs(&list(v, name)?)?,
            F::SecretIdNumUses => role.secret_id_num_uses = count(v)?,
            F::SecretIdTtl => role.secret_id_ttl = duration(v)?,
            F::TokenNumUses => t.token_num_uses = count(v)?,
            F::TokenTtl => {
                t.token_ttl = duration(v)?;
                if t.token_max_ttl > 0 && t.token_ttl > t.token_max_ttl {
                    return Err(EngineError::bad(
                        "token_ttl should not be greater than token_max_ttl",
                    ));
                }
            }
            F::TokenMaxTtl => {
                t.token_max_ttl = duration(v)?;
                if t.token_max_ttl > 0 && t.token_ttl > t.token_max_ttl {
                    return Err(EngineError::bad(
                        "token_max_ttl should be greater than or equal to token_ttl",
                    ));
                }
            }
            F::Period => t.token_period = duration(v)?,
            F::LocalSecretIds => return Err(EngineError::UnsupportedOperation),
        }
        Ok(())
    }

    fn reset(self, role: &mut Role) {
        use RoleField as F;
        let t = &mut role.token;
        match self {
            F::Policies => t.token_policies.clear(),
            F::BindSecretId => role.bind_secret_id = true,
            F::SecretIdBoundCidrs | F::BoundCidrList => role.secret_id_bound_cidrs.clear(),
            F::TokenBoundCidrs => t.token_bound_cidrs.clear(),
            F::SecretIdNumUses => role.secret_id_num_uses = 0,
            F::SecretIdTtl => role.secret_id_ttl = 0,
            F::TokenNumUses => t.token_num_uses = 0,
            F::TokenTtl => t.token_ttl = 0,
            F::TokenMaxTtl => t.token_max_ttl = 0,
            F::Period => t.token_period = 0,
            F::LocalSecretIds => {}
        }
    }
}

/// The fields a role write takes.
pub const ROLE_FIELDS: &[&str] = &[
    "role_id",
    "bind_secret_id",
    "secret_id_bound_cidrs",
    "bound_cidr_list",
    "secret_id_num_uses",
    "secret_id_ttl",
    "local_secret_ids",
    "policies",
    "period",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretIdEntry {
    pub secret_id_accessor: String,
    pub secret_id_num_uses: u32,
    pub secret_id_ttl: u64,
    pub creation_time: i64,
    /// 0: does not expire.
    pub expiration_time: i64,
    pub last_updated_time: i64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    fn expired(&self, now: i64) -> bool {
        self.expiration_time > 0 && now >= self.expiration_time
    }
}

#[derive(Serialize, Deserialize)]
struct AccessorEntry {
    secret_id_hmac: String,
    role_hmac: String,
}

/// What `secret-id` generates a secret id with.
#[derive(Debug, Clone, Default)]
pub struct SecretIdRequest {
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
    pub ttl: Option<u64>,
    pub num_uses: Option<u32>,
    /// `custom-secret-id`: the secret id chosen by the caller.
    pub secret_id: Option<String>,
}

/// A new secret id, the one time it is seen in clear.
pub struct NewSecretId {
    pub secret_id: String,
    pub accessor: String,
    pub ttl: u64,
    pub num_uses: u32,
}

/// What a successful login establishes.
pub struct Authenticated {
    pub role_name: String,
    pub role: Role,
    pub metadata: BTreeMap<String, String>,
    /// The secret id's own `token_bound_cidrs`, in place of the role's when set.
    pub token_bound_cidrs: Vec<String>,
}

pub struct AppRole {
    store: MethodStore,
    /// Serialises read-modify-write of roles and secret ids (use counts above all).
    write_lock: tokio::sync::Mutex<()>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn role_path(name: &str) -> String {
    format!("role/{name}")
}

/// Role names are case-insensitive, as Vault's.
pub fn role_name(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    if name.is_empty() || name.contains('/') {
        return Err(EngineError::bad("missing role_name"));
    }
    Ok(name)
}

fn no_role(name: &str) -> EngineError {
    EngineError::NotFound(format!("role {name:?} does not exist"))
}

impl AppRole {
    pub(super) fn new(store: MethodStore) -> Self {
        AppRole {
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn role(&self, name: &str) -> Result<Option<Role>> {
        self.store.get_json(&role_path(name))
    }

    fn existing(&self, name: &str) -> Result<Role> {
        self.role(name)?.ok_or_else(|| no_role(name))
    }

    pub fn roles(&self) -> Result<Vec<String>> {
        self.store.list("role/")
    }

    /// Creates or updates a role from the fields a write gives; the others are kept.
    pub async fn write_role(&self, name: &str, fields: &Map<String, Value>) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let existing = self.role(name)?;
        let creating = existing.is_none();
        let mut role = existing.unwrap_or_else(|| Role {
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenParams::default(),
        });
        let old_role_id = role.role_id.clone();
        if let Some(v) = fields.get("role_id").filter(|v| !v.is_null()) {
            let id = v
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    EngineError::bad("invalid role_id supplied, or failed to generate a role_id")
                })?;
            role.role_id = id.to_string();
        }
        if role.role_id.is_empty() {
            role.role_id = uuid::Uuid::new_v4().to_string();
        }
        if let Some(v) = fields.get("bind_secret_id").filter(|v| !v.is_null()) {
            role.bind_secret_id = bool_from_json(v)
                .ok_or_else(|| EngineError::bad("invalid 'bind_secret_id': not a boolean"))?;
        }
        let cidrs = fields
            .get("secret_id_bound_cidrs")
            .or_else(|| fields.get("bound_cidr_list"))
            .filter(|v| !v.is_null());
        if let Some(v) = cidrs {
            role.secret_id_bound_cidrs = parse_cidrs(&list(v, "secret_id_bound_cidrs")?)?;
        }
        if let Some(v) = fields.get("secret_id_num_uses").filter(|v| !v.is_null()) {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| EngineError::bad("invalid 'secret_id_num_uses'"))?;
            if n < 0 {
                return Err(EngineError::bad("secret_id_num_uses cannot be negative"));
            }
            role.secret_id_num_uses = u32::try_from(n)
                .map_err(|_| EngineError::bad("secret_id_num_uses is too large"))?;
        }
        if let Some(v) = fields.get("secret_id_ttl").filter(|v| !v.is_null()) {
            role.secret_id_ttl = duration_from_json(v)
                .map_err(|e| EngineError::bad(format!("invalid 'secret_id_ttl': {e}")))?;
        }
        if let Some(v) = fields.get("local_secret_ids").filter(|v| !v.is_null()) {
            let local =
                bool_from_json(v).ok_or_else(|| EngineError::bad("invalid 'local_secret_ids'"))?;
            if !creating && local != role.local_secret_ids {
                return Err(EngineError::bad(
                    "local_secret_ids can only be modified during role creation",
                ));
            }
            role.local_secret_ids = local;
        }
        role.token.update_from(fields, &["policies", "period"])?;
        if !role.bind_secret_id
            && role.secret_id_bound_cidrs.is_empty()
            && role.token.token_bound_cidrs.is_empty()
        {
            return Err(EngineError::bad(
                "at least one constraint should be enabled on the role",
            ));
        }
        let new_hmac = self.store.hmac(&role.role_id).await?;
        let owner: Option<Value> = self.store.get_json(&format!("role-id/{new_hmac}"))?;
        if owner.is_some_and(|o| o["name"] != name) {
            return Err(EngineError::bad("role_id already in use"));
        }
        let mut deletes = Vec::new();
        if !old_role_id.is_empty() && old_role_id != role.role_id {
            deletes.push(format!("role-id/{}", self.store.hmac(&old_role_id).await?));
        }
        let puts = vec![
            (
                role_path(name),
                serde_json::to_value(&role).map_err(EngineError::internal)?,
            ),
            (format!("role-id/{new_hmac}"), json!({"name": name})),
        ];
        self.store.write(&puts, &deletes).await
    }

    /// Deletes a role with its role id and every secret id; a missing role is no error.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let Some(role) = self.role(name)? else {
            return Ok(());
        };
        let role_hmac = self.store.hmac(name).await?;
        let mut deletes = vec![
            role_path(name),
            format!("role-id/{}", self.store.hmac(&role.role_id).await?),
        ];
        for id in self.store.list(&format!("secret-id/{role_hmac}/"))? {
            let rel = format!("secret-id/{role_hmac}/{id}");
            if let Some(e) = self.store.get_json::<SecretIdEntry>(&rel)? {
                deletes.push(self.accessor_path(&e.secret_id_accessor).await?);
            }
            deletes.push(rel);
        }
        self.store.write(&[], &deletes).await
    }

    /// Updates one setting of an existing role (`fields`), or resets it (None: a delete,
    /// which leaves a missing role alone). False: no such role to update.
    pub async fn write_role_field(
        &self,
        name: &str,
        field: RoleField,
        fields: Option<&Map<String, Value>>,
    ) -> Result<bool> {
        let _w = self.write_lock.lock().await;
        let Some(mut role) = self.role(name)? else {
            return Ok(fields.is_none());
        };
        field.apply(&mut role, fields)?;
        self.store.put_json(&role_path(name), &role).await?;
        Ok(true)
    }

    pub fn role_id(&self, name: &str) -> Result<String> {
        Ok(self.existing(name)?.role_id)
    }

    pub async fn set_role_id(&self, name: &str, role_id: &str) -> Result<()> {
        self.existing(name)?;
        let mut fields = Map::new();
        fields.insert("role_id".into(), Value::from(role_id));
        self.write_role(name, &fields).await
    }

    async fn accessor_path(&self, accessor: &str) -> Result<String> {
        Ok(format!("accessor/{}", self.store.hmac(accessor).await?))
    }

    pub async fn generate_secret_id(
        &self,
        name: &str,
        req: SecretIdRequest,
    ) -> Result<NewSecretId> {
        let _w = self.write_lock.lock().await;
        let role = self.existing(name)?;
        if !role.bind_secret_id {
            return Err(EngineError::bad("bind_secret_id is not set on the role"));
        }
        let cidr_list = parse_cidrs(&req.cidr_list)?;
        subset(&cidr_list, &role.secret_id_bound_cidrs)?;
        let token_bound_cidrs = parse_cidrs(&req.token_bound_cidrs)?;
        subset(&token_bound_cidrs, &role.token.token_bound_cidrs)?;
        let num_uses = match req.num_uses {
            Some(n) if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) => {
                return Err(EngineError::bad(
                    "num_uses cannot be higher than the role's secret_id_num_uses",
                ))
            }
            Some(n) => n,
            None => role.secret_id_num_uses,
        };
        let ttl = match req.ttl {
            Some(t) if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) => {
                return Err(EngineError::bad(
                    "ttl cannot be longer than the role's secret_id_ttl",
                ))
            }
            Some(t) => t,
            None => role.secret_id_ttl,
        };
        let secret_id = req
            .secret_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let role_hmac = self.store.hmac(name).await?;
        let id_hmac = self.store.hmac(&secret_id).await?;
        let rel = format!("secret-id/{role_hmac}/{id_hmac}");
        if self.store.get_json::<SecretIdEntry>(&rel)?.is_some() {
            return Err(EngineError::bad("secret_id is already in use"));
        }
        let accessor = uuid::Uuid::new_v4().to_string();
        let now = now();
        let entry = SecretIdEntry {
            secret_id_accessor: accessor.clone(),
            secret_id_num_uses: num_uses,
            secret_id_ttl: ttl,
            creation_time: now,
            expiration_time: if ttl > 0 {
                now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
            } else {
                0
            },
            last_updated_time: now,
            metadata: req.metadata,
            cidr_list,
            token_bound_cidrs,
        };
        let puts = vec![
            (
                rel,
                serde_json::to_value(&entry).map_err(EngineError::internal)?,
            ),
            (
                self.accessor_path(&accessor).await?,
                serde_json::to_value(AccessorEntry {
                    secret_id_hmac: id_hmac,
                    role_hmac,
                })
                .map_err(EngineError::internal)?,
            ),
        ];
        self.store.write(&puts, &[]).await?;
        Ok(NewSecretId {
            secret_id,
            accessor,
            ttl,
            num_uses,
        })
    }

    async fn secret_id_path(&self, name: &str, secret_id: &str) -> Result<String> {
        Ok(format!(
            "secret-id/{}/{}",
            self.store.hmac(name).await?,
            self.store.hmac(secret_id).await?
        ))
    }

    /// A live secret id's entry (None: unknown or expired).
    pub async fn lookup_secret_id(
        &self,
        name: &str,
        secret_id: &str,
    ) -> Result<Option<SecretIdEntry>> {
        self.existing(name)?;
        let rel = self.secret_id_path(name, secret_id).await?;
        Ok(self
            .store
            .get_json::<SecretIdEntry>(&rel)?
            .filter(|e| !e.expired(now())))
    }

    pub async fn destroy_secret_id(&self, name: &str, secret_id: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.existing(name)?;
        let rel = self.secret_id_path(name, secret_id).await?;
        if let Some(e) = self.store.get_json::<SecretIdEntry>(&rel)? {
            let accessor = self.accessor_path(&e.secret_id_accessor).await?;
            self.store.write(&[], &[rel, accessor]).await?;
        }
        Ok(())
    }

    /// The secret id an accessor names, with its storage paths.
    async fn by_accessor(
        &self,
        name: &str,
        accessor: &str,
    ) -> Result<(String, String, SecretIdEntry)> {
        self.existing(name)?;
        let not_found = || {
            EngineError::bad(format!(
                "failed to find accessor entry for secret_id_accessor: {accessor:?}"
            ))
        };
        let acc_path = self.accessor_path(accessor).await?;
        let index: AccessorEntry = self.store.get_json(&acc_path)?.ok_or_else(not_found)?;
        if index.role_hmac != self.store.hmac(name).await? {
            return Err(not_found());
        }
        let rel = format!("secret-id/{}/{}", index.role_hmac, index.secret_id_hmac);
        let entry = self.store.get_json(&rel)?.ok_or_else(not_found)?;
        Ok((acc_path, rel, entry))
    }

    /// An unknown accessor's lookup is 404, as OpenBao answers it.
    pub async fn lookup_accessor(&self, name: &str, accessor: &str) -> Result<SecretIdEntry> {
        match self.by_accessor(name, accessor).await {
            Ok((_, _, entry)) => Ok(entry),
            Err(EngineError::BadRequest(e)) => Err(EngineError::NotFound(e)),
            Err(e) => Err(e),
        }
    }

    pub async fn destroy_accessor(&self, name: &str, accessor: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let (acc_path, rel, _) = self.by_accessor(name, accessor).await?;
        self.store.write(&[], &[acc_path, rel]).await
    }

    /// The accessors of a role's live secret ids.
    fn secret_id_accessors(&self, role_hmac: &str) -> Result<Vec<String>> {
        let now = now();
        let mut out = Vec::new();
        for id in self.store.list(&format!("secret-id/{role_hmac}/"))? {
            if let Some(e) = self
                .store
                .get_json::<SecretIdEntry>(&format!("secret-id/{role_hmac}/{id}"))?
                .filter(|e| !e.expired(now))
            {
                out.push(e.secret_id_accessor);
            }
        }
        out.sort();
        Ok(out)
    }

    pub async fn list_secret_ids(&self, name: &str) -> Result<Vec<String>> {
        self.existing(name)?;
        let role_hmac = self.store.hmac(name).await?;
        self.secret_id_accessors(&role_hmac)
    }

    /// Removes expired secret ids with their accessors, and accessors whose secret id is
    /// gone, as OpenBao's tidy does; how many entries it removed.
    pub async fn tidy_secret_ids(&self) -> Result<usize> {
        let _w = self.write_lock.lock().await;
        let now = now();
        let mut deletes = BTreeSet::new();
        let mut live = BTreeSet::new();
        for rel in self.store.list("secret-id/")? {
            let path = format!("secret-id/{rel}");
            match self.store.get_json::<SecretIdEntry>(&path)? {
                Some(e) if e.expired(now) => {
                    deletes.insert(self.accessor_path(&e.secret_id_accessor).await?);
                    deletes.insert(path);
                }
                Some(_) => {
                    live.insert(rel);
                }
                None => {}
            }
        }
        for rel in self.store.list("accessor/")? {
            let path = format!("accessor/{rel}");
            let orphan = self
                .store
                .get_json::<AccessorEntry>(&path)?
                .is_some_and(|a| !live.contains(&format!("{}/{}", a.role_hmac, a.secret_id_hmac)));
            if orphan {
                deletes.insert(path);
            }
        }
        let deletes: Vec<String> = deletes.into_iter().collect();
        for chunk in deletes.chunks(1000) {
            self.store.write(&[], chunk).await?;
        }
        Ok(deletes.len())
    }

    /// A login token renews while its role exists, with the role's token TTLs as they
    /// are now; its policies stay those it was issued with (OpenBao's `pathLoginRenew`).
    pub fn renewal(&self, meta: &BTreeMap<String, String>) -> Result<RoleTtls> {
        let name = meta
            .get("role_name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| EngineError::internal("failed to fetch role_name during renewal"))?;
        let role = self.role(name)?.ok_or_else(|| {
            EngineError::RenewalRefused(format!("role {name:?} does not exist during renewal"))
        })?;
        Ok(role.token.role_ttls())
    }

    /// Checks a login's credentials, spending one use of a use-limited secret id. Every
    /// wrong role id or secret id gets the same answer.
    pub async fn login(
        &self,
        role_id: &str,
        secret_id: &str,
        remote: Option<IpAddr>,
    ) -> Result<Authenticated> {
        let role_id = role_id.trim();
        if role_id.is_empty() {
            return Err(EngineError::bad("missing role_id"));
        }
        let _w = self.write_lock.lock().await;
        let index: Option<Value> = self
            .store
            .get_json(&format!("role-id/{}", self.store.hmac(role_id).await?))?;
        let name = index
            .as_ref()
            .and_then(|i| i["name"].as_str())
            .map(str::to_string)
            .ok_or_else(|| EngineError::bad(INVALID))?;
        let role = self.role(&name)?.ok_or_else(|| EngineError::bad(INVALID))?;
        let mut metadata = BTreeMap::new();
        let mut token_bound_cidrs = role.token.token_bound_cidrs.clone();
        if role.bind_secret_id {
            let secret_id = secret_id.trim();
            if secret_id.is_empty() {
                return Err(EngineError::bad("missing secret_id"));
            }
            let rel = self.secret_id_path(&name, secret_id).await?;
            let mut entry: SecretIdEntry = self
                .store
                .get_json(&rel)?
                .ok_or_else(|| EngineError::bad(INVALID))?;
            let accessor = self.accessor_path(&entry.secret_id_accessor).await?;
            if entry.expired(now()) {
                self.store.write(&[], &[rel, accessor]).await?;
                return Err(EngineError::bad(INVALID));
            }
            check_cidrs(&entry.cidr_list, remote, "the secret ID")?;
            match entry.secret_id_num_uses {
                0 => {}
                1 => self.store.write(&[], &[rel, accessor]).await?,
                n => {
                    entry.secret_id_num_uses = n - 1;
                    entry.last_updated_time = now();
                    let value = serde_json::to_value(&entry).map_err(EngineError::internal)?;
                    self.store.write(&[(rel, value)], &[]).await?;
                }
            }
            if !entry.token_bound_cidrs.is_empty() {
                token_bound_cidrs = entry.token_bound_cidrs.clone();
            }
            metadata = entry.metadata;
        }
        check_cidrs(&role.secret_id_bound_cidrs, remote, "the role")?;
        Ok(Authenticated {
            role_name: name,
            role,
            metadata,
            token_bound_cidrs,
        })
    }
}

/// A secret id's blocks must lie within the role's, as Vault requires.
fn subset(inner: &[String], outer: &[String]) -> Result<()> {
    if outer.is_empty() {
        return Ok(());
    }
    let nets =
        |v: &[String]| -> Vec<ipnet::IpNet> { v.iter().filter_map(|c| c.parse().ok()).collect() };
    let outer = nets(outer);
    for net in nets(inner) {
        if !outer.iter().any(|o| o.contains(&net)) {
            return Err(EngineError::bad(format!(
                "failed to verify subset relationship between CIDR blocks on the role {outer:?} and CIDR blocks on the secret ID {net}"
            )));
        }
    }
    Ok(())
}

/// Metadata as `secret-id` takes it: a JSON object, or one encoded in a string.
pub fn parse_metadata(v: &Value) -> Result<BTreeMap<String, String>> {
    let object = match v {
        Value::Null => return Ok(BTreeMap::new()),
        Value::String(s) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| EngineError::bad(format!("failed to parse metadata: {e}")))?,
        other => other.clone(),
    };
    let Value::Object(m) = object else {
        return Err(EngineError::bad(
            "failed to parse metadata: not a JSON object",
        ));
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(EngineError::bad(format!(
                "failed to parse metadata: the value of {k:?} is not a string"
            ))),
        })
        .collect()
}
