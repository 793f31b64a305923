//! userpass (`auth/userpass`): people log in with a name and a password. Passwords are
//! kept as Argon2id PHC strings (salted, never in clear) under `user/<name>`, and
//! checked on the compute pool: a hash costs tens of milliseconds by design.

use std::collections::{BTreeMap, BTreeSet};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{MethodStore, TokenParams};
use crate::error::{EngineError, Result};
use crate::token::RoleTtls;

/// Vault's answer to a wrong name or password alike.
pub const INVALID: &str = "invalid username or password";

/// Vault's deprecated field names a user write still reads.
pub const LEGACY_FIELDS: &[&str] = &["policies", "ttl", "max_ttl", "bound_cidrs"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Argon2id, PHC string format.
    password_hash: String,
    pub token: TokenParams,
}

impl User {
    /// The user as a read shows it (never the hash).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        self.token.to_json(&mut m);
        m.insert(
            "policies".into(),
            serde_json::json!(self.token.token_policies),
        );
        m.insert("ttl".into(), self.token.token_ttl.into());
        m.insert("max_ttl".into(), self.token.token_max_ttl.into());
        m.insert(
            "bound_cidrs".into(),
            serde_json::json!(self.token.token_bound_cidrs),
        );
        Value::Object(m)
    }
}

pub struct Userpass {
    store: MethodStore,
    write_lock: tokio::sync::Mutex<()>,
}

/// User names are case-insensitive, as Vault's.
pub fn user_name(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    if name.is_empty() || name.contains('/') {
        return Err(EngineError::bad("missing username"));
    }
    Ok(name)
}

fn user_path(name: &str) -> String {
    format!("user/{name}")
}

async fn hash(password: Zeroizing<String>) -> Result<String> {
    crate::compute::run(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| EngineError::internal(format!("argon2: {e}")))
    })
    .await?
}

/// Whether `password` matches `phc`; a hash that does not parse matches nothing.
async fn verify(password: Zeroizing<String>, phc: String) -> Result<bool> {
    crate::compute::run(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
}

/// A hash of nothing anyone knows, checked when the user does not exist so that the
/// answer takes as long as for a wrong password.
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Y0mGv2mTn2DQ0Cxyo8Yl0v2cQ9iM6yq0Zp8q1c3cYk";

impl Userpass {
    pub(super) fn new(store: MethodStore) -> Self {
        Userpass {
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.store.get_json(&user_path(name))
    }

    pub fn users(&self) -> Result<Vec<String>> {
        self.store.list("user/")
    }

    /// Creates or updates a user: the password is required to create one; the other
    /// fields given replace the stored ones.
    pub async fn write_user(
        &self,
        name: &str,
        password: Option<Zeroizing<String>>,
        fields: &Map<String, Value>,
    ) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let existing = self.user(name)?;
        let password_hash = match (password, &existing) {
            (Some(p), _) if p.is_empty() => return Err(EngineError::bad("missing password")),
            (Some(p), _) => hash(p).await?,
            (None, Some(u)) => u.password_hash.clone(),
            (None, None) => return Err(EngineError::bad("missing password")),
        };
        let mut token = existing.map(|u| u.token).unwrap_or_default();
        token.update_from(fields, LEGACY_FIELDS)?;
        self.store
            .put_json(
                &user_path(name),
                &User {
                    password_hash,
                    token,
                },
            )
            .await
    }

    pub async fn set_password(&self, name: &str, password: Zeroizing<String>) -> Result<()> {
        if self.user(name)?.is_none() {
            return Err(EngineError::bad("username does not exist"));
        }
        self.write_user(name, Some(password), &Map::new()).await
    }

    pub async fn set_policies(&self, name: &str, fields: &Map<String, Value>) -> Result<()> {
        if self.user(name)?.is_none() {
            return Err(EngineError::bad("username does not exist"));
        }
        self.write_user(name, None, fields).await
    }

    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.store.write(&[], &[user_path(name)]).await
    }

    /// A login token renews while its user exists (else it is left as it is) and has the
    /// policies the token was issued with, with the user's token TTLs as they are now
    /// (OpenBao's `pathLoginRenew`).
    pub fn renewal(
        &self,
        meta: &BTreeMap<String, String>,
        policies: &[String],
    ) -> Result<Option<RoleTtls>> {
        let name = meta.get("username").map(String::as_str).unwrap_or_default();
        let Some(user) = user_name(name)
            .ok()
            .map(|n| self.user(&n))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        // `default` is left out, as OpenBao's `EquivalentPolicies` leaves it.
        let set = |p: &[String]| -> BTreeSet<String> {
            p.iter().filter(|p| *p != "default").cloned().collect()
        };
        if set(&user.token.token_policies) != set(policies) {
            return Err(EngineError::RenewalRefused(
                "policies have changed, not renewing".into(),
            ));
        }
        Ok(Some(user.token.role_ttls()))
    }

    /// The user, if `password` is theirs.
    pub async fn login(&self, name: &str, password: Zeroizing<String>) -> Result<User> {
        let user = self.user(name)?;
        let phc = user
            .as_ref()
            .map_or_else(|| DECOY.to_string(), |u| u.password_hash.clone());
        let matches = verify(password, phc).await?;
        match user {
            Some(u) if matches => Ok(u),
            _ => Err(EngineError::bad(INVALID)),
        }
    }
}
