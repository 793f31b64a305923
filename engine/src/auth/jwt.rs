//! JWT (`auth/jwt`): workloads log in with a JWT signed by an issuer the mount trusts
//! (GitHub Actions, GitLab CI, Kubernetes service accounts), as OpenBao's `jwt` method
//! does without its browser OIDC flow. The mount's `config` names the keys (PEM public
//! keys or a JWKS URL); `role/<name>` binds the claims a token must carry and the token
//! it earns. Signatures are checked by `jsonwebtoken`; the claims by the rules below,
//! with OpenBao's error words.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::token_params::list;
use super::{MethodStore, TokenParams};
use crate::duration::duration_from_json;
use crate::error::{EngineError, Result};
use crate::token::RoleTtls;

/// Vault's deprecated field names a role write still reads.
pub const LEGACY_FIELDS: &[&str] = &[
    "policies",
    "ttl",
    "max_ttl",
    "num_uses",
    "period",
    "bound_cidrs",
];

/// The browser OIDC flow's fields: refused, not ignored.
const OIDC_FIELDS: &[&str] = &[
    "oidc_discovery_url",
    "oidc_discovery_ca_pem",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_response_mode",
    "oidc_response_types",
    "provider_config",
    "allowed_redirect_uris",
];

const OIDC_REFUSED: &str = "OIDC discovery and the browser OIDC flow are not implemented by this appliance: use 'jwt_validation_pubkeys' or 'jwks_url', and roles of role_type \"jwt\"";

/// How long a JWKS fetch may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwtConfig {
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub bound_issuer: String,
    pub default_role: String,
    pub jwt_supported_algs: Vec<String>,
}

impl JwtConfig {
    pub const FIELDS: &'static [&'static str] = &[
        "jwt_validation_pubkeys",
        "jwks_url",
        "jwks_ca_pem",
        "bound_issuer",
        "default_role",
        "jwt_supported_algs",
        "oidc_discovery_url",
        "oidc_discovery_ca_pem",
        "oidc_client_id",
        "oidc_client_secret",
        "oidc_response_mode",
        "oidc_response_types",
        "provider_config",
    ];

    pub fn to_json(&self) -> Value {
        json!({
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "jwks_url": self.jwks_url,
            "jwks_ca_pem": self.jwks_ca_pem,
            "bound_issuer": self.bound_issuer,
            "default_role": self.default_role,
            "jwt_supported_algs": self.jwt_supported_algs,
            "oidc_discovery_url": "",
            "oidc_client_id": "",
        })
    }

    /// The configuration a write makes: every field given replaces the stored one, as
    /// OpenBao's config write does.
    fn from_fields(fields: &Map<String, Value>) -> Result<JwtConfig> {
        if OIDC_FIELDS
            .iter()
            .any(|f| fields.get(*f).is_some_and(|v| !is_empty(v)))
        {
            return Err(EngineError::bad(OIDC_REFUSED));
        }
        let text = |name: &str| -> Result<String> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.trim().to_string()),
                Some(_) => Err(EngineError::bad(format!("invalid '{name}': not a string"))),
            }
        };
        let strings = |name: &str| -> Result<Vec<String>> {
            fields
                .get(name)
                .filter(|v| !v.is_null())
                .map(|v| list(v, name))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let config = JwtConfig {
            jwt_validation_pubkeys: strings("jwt_validation_pubkeys")?,
            jwks_url: text("jwks_url")?,
            jwks_ca_pem: text("jwks_ca_pem")?,
            bound_issuer: text("bound_issuer")?,
            default_role: text("default_role")?,
            jwt_supported_algs: strings("jwt_supported_algs")?,
        };
        if config.jwt_validation_pubkeys.is_empty() == config.jwks_url.is_empty() {
            return Err(EngineError::bad(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url', 'jwks_pairs', 'oidc_discovery_url', or 'provider_config' must be set",
            ));
        }
        if !config.jwks_ca_pem.is_empty() && config.jwks_url.is_empty() {
            return Err(EngineError::bad(
                "'jwks_ca_pem' is only used with 'jwks_url'",
            ));
        }
        for key in &config.jwt_validation_pubkeys {
            pem_key(key).map_err(|e| EngineError::bad(format!("error parsing public key: {e}")))?;
        }
        config.algorithms()?;
        Ok(config)
    }

    /// The signing algorithms accepted: RS256 unless configured, as OpenBao. HMAC ones
    /// never: a public key is no secret.
    fn algorithms(&self) -> Result<Vec<Algorithm>> {
        if self.jwt_supported_algs.is_empty() {
            return Ok(vec![Algorithm::RS256]);
        }
        self.jwt_supported_algs
            .iter()
            .map(|a| match a.parse::<Algorithm>() {
                Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) | Err(_) => {
                    Err(EngineError::bad(format!("invalid jwt_supported_algs: {a}")))
                }
                Ok(alg) => Ok(alg),
            })
            .collect()
    }

    /// The keys a token may be signed with: the configured PEM keys, or the JWKS the
    /// URL serves now (those with the token's `kid` when it names one).
    async fn keys(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>> {
        if self.jwks_url.is_empty() {
            return self
                .jwt_validation_pubkeys
                .iter()
                .map(|k| {
                    pem_key(k)
                        .map_err(|e| EngineError::bad(format!("error parsing public key: {e}")))
                })
                .collect();
        }
        let set = self.fetch_jwks(&self.jwks_client()?).await?;
        Ok(set
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .filter_map(|k| DecodingKey::from_jwk(k).ok())
            .collect())
    }

    /// The client that fetches the JWKS, trusting only `jwks_ca_pem` when it is set.
    fn jwks_client(&self) -> Result<reqwest::Client> {
        let mut client = reqwest::Client::builder().timeout(JWKS_TIMEOUT);
        if !self.jwks_ca_pem.is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(self.jwks_ca_pem.as_bytes())
                .map_err(|e| EngineError::bad(format!("could not parse jwks_ca_pem: {e}")))?;
            client = client.tls_built_in_root_certs(false);
            for c in certs {
                client = client.add_root_certificate(c);
            }
        }
        client
            .build()
            .map_err(|e| EngineError::bad(format!("could not build the JWKS client: {e}")))
    }

    /// The JWKS at `jwks_url`.
    async fn fetch_jwks(&self, client: &reqwest::Client) -> Result<JwkSet> {
        let fail = |e: &dyn std::fmt::Display| {
            EngineError::bad(format!("error fetching keys from jwks_url: {e}"))
        };
        let resp = client
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| fail(&e))?;
        resp.json::<JwkSet>().await.map_err(|e| fail(&e))
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A PEM public key of any family `jsonwebtoken` verifies with.
fn pem_key(pem: &str) -> std::result::Result<DecodingKey, jsonwebtoken::errors::Error> {
    let pem = pem.as_bytes();
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
}

/// A leeway in seconds: -1 turns the check's leeway off, 0 means the default.
fn leeway(v: &Value, name: &str) -> Result<i64> {
    let signed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match signed {
        Some(n) if n < 0 => Ok(-1),
        _ => duration_from_json(v)
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX))
            .map_err(|e| EngineError::bad(format!("invalid '{name}': {e}"))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtRole {
    pub bound_audiences: Vec<String>,
    pub bound_subject: String,
    pub bound_claims: Map<String, Value>,
    pub bound_claims_type: String,
    pub user_claim: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    pub token: TokenParams,
}

impl Default for JwtRole {
    fn default() -> Self {
        JwtRole {
            bound_audiences: Vec::new(),
            bound_subject: String::new(),
            bound_claims: Map::new(),
            bound_claims_type: "string".into(),
            user_claim: String::new(),
            claim_mappings: BTreeMap::new(),
            clock_skew_leeway: 60,
            expiration_leeway: 150,
            not_before_leeway: 150,
            token: TokenParams::default(),
        }
    }
}

impl JwtRole {
    pub const FIELDS: &'static [&'static str] = &[
        "role_type",
        "bound_audiences",
        "bound_subject",
        "bound_claims",
        "bound_claims_type",
        "user_claim",
        "claim_mappings",
        "clock_skew_leeway",
        "expiration_leeway",
        "not_before_leeway",
        "allowed_redirect_uris",
    ];

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        self.token.to_json(&mut m);
        let extra = json!({
            "role_type": "jwt",
            "bound_audiences": self.bound_audiences,
            "bound_subject": self.bound_subject,
            "bound_claims": if self.bound_claims.is_empty() { Value::Null } else { Value::Object(self.bound_claims.clone()) },
            "bound_claims_type": self.bound_claims_type,
            "user_claim": self.user_claim,
            "claim_mappings": if self.claim_mappings.is_empty() { Value::Null } else { json!(self.claim_mappings) },
            "clock_skew_leeway": self.clock_skew_leeway,
            "expiration_leeway": self.expiration_leeway,
            "not_before_leeway": self.not_before_leeway,
            "policies": self.token.token_policies,
            "ttl": self.token.token_ttl,
            "max_ttl": self.token.token_max_ttl,
            "num_uses": self.token.token_num_uses,
            "period": self.token.token_period,
            "bound_cidrs": self.token.token_bound_cidrs,
        });
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
        Value::Object(m)
    }

    /// Applies a role write: the fields given replace the stored ones.
    fn update_from(&mut self, fields: &Map<String, Value>) -> Result<()> {
        let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
        let text = |name: &str| -> Result<Option<String>> {
            get(name)
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    _ => Err(EngineError::bad(format!("invalid '{name}': not a string"))),
                })
                .transpose()
        };
        match text("role_type")?.as_deref() {
            None | Some("jwt") => {}
            Some("oidc") => return Err(EngineError::bad(OIDC_REFUSED)),
            Some(other) => return Err(EngineError::bad(format!("invalid 'role_type': {other}"))),
        }
        if get("allowed_redirect_uris").is_some_and(|v| !is_empty(v)) {
            return Err(EngineError::bad(OIDC_REFUSED));
        }
        if let Some(v) = get("bound_audiences") {
            self.bound_audiences = list(v, "bound_audiences")?;
        }
        if let Some(s) = text("bound_subject")? {
            self.bound_subject = s;
        }
        if let Some(v) = get("bound_claims") {
            self.bound_claims = match v {
                Value::Object(m) => m.clone(),
                Value::String(s) if s.trim().is_empty() => Map::new(),
                Value::String(s) => serde_json::from_str(s)
                    .map_err(|_| EngineError::bad("invalid 'bound_claims': not a map"))?,
                _ => return Err(EngineError::bad("invalid 'bound_claims': not a map")),
            };
        }
        if let Some(t) = text("bound_claims_type")? {
            if t != "string" && t != "glob" {
                return Err(EngineError::bad(format!(
                    "invalid 'bound_claims_type': {t:?} (\"string\" or \"glob\")"
                )));
            }
            self.bound_claims_type = t;
        }
        for values in self.bound_claims.values() {
            let ok = match values {
                Value::String(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                _ => false,
            };
            if !ok {
                return Err(EngineError::bad(
                    "bound claim is not a string or list of strings",
                ));
            }
        }
        if let Some(s) = text("user_claim")? {
            self.user_claim = s;
        }
        if let Some(v) = get("claim_mappings") {
            let map: Map<String, Value> = match v {
                Value::Object(m) => m.clone(),
                Value::String(s) => serde_json::from_str(s)
                    .map_err(|_| EngineError::bad("invalid 'claim_mappings': not a map"))?,
                _ => return Err(EngineError::bad("invalid 'claim_mappings': not a map")),
            };
            let mut mappings = BTreeMap::new();
            for (claim, target) in map {
                let Value::String(target) = target else {
                    return Err(EngineError::bad(
                        "invalid 'claim_mappings': not a map of strings",
                    ));
                };
                if mappings.values().any(|t| *t == target) {
                    return Err(EngineError::bad(format!(
                        "multiple keys are mapped to metadata key {target:?}"
                    )));
                }
                mappings.insert(claim, target);
            }
            self.claim_mappings = mappings;
        }
        for (name, slot) in [
            ("clock_skew_leeway", &mut self.clock_skew_leeway),
            ("expiration_leeway", &mut self.expiration_leeway),
            ("not_before_leeway", &mut self.not_before_leeway),
        ] {
            if let Some(v) = get(name) {
                *slot = leeway(v, name)?;
            }
        }
        self.token.update_from(fields, LEGACY_FIELDS)?;
        if self.user_claim.is_empty() {
            return Err(EngineError::bad("a user claim must be defined on the role"));
        }
        if self.bound_audiences.is_empty()
            && self.bound_subject.is_empty()
            && self.bound_claims.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(EngineError::bad(
                "must have at least one bound constraint when creating/updating a role",
            ));
        }
        Ok(())
    }

    /// The claims' time, issuer, audience and subject, as OpenBao checks them.
    fn check_registered(
        &self,
        config: &JwtConfig,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<()> {
        let invalid = |what: &str| EngineError::bad(format!("error validating token: {what}"));
        let skew = self.clock_skew_leeway.max(0);
        let time = |name: &str| -> Result<Option<i64>> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_f64()
                    .map(|f| Some(f as i64))
                    .ok_or_else(|| invalid(&format!("invalid '{name}' claim"))),
                Some(_) => Err(invalid(&format!("invalid '{name}' claim"))),
            }
        };
        if let Some(exp) = time("exp")? {
            let leeway = if self.expiration_leeway < 0 {
                0
            } else {
                self.expiration_leeway + skew
            };
            if now > exp.saturating_add(leeway) {
                return Err(invalid(
                    "invalid expiration time (exp) claim: token is expired",
                ));
            }
        }
        if let Some(nbf) = time("nbf")?.or(time("iat")?) {
            let leeway = if self.not_before_leeway < 0 {
                0
            } else {
                self.not_before_leeway + skew
            };
            if now.saturating_add(leeway) < nbf {
                return Err(invalid(
                    "invalid not before (nbf) claim: token not yet valid",
                ));
            }
        }
        if !config.bound_issuer.is_empty()
            && claims.get("iss").and_then(Value::as_str) != Some(config.bound_issuer.as_str())
        {
            return Err(invalid("invalid issuer (iss) claim"));
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if self.bound_audiences.is_empty() {
            if !audiences.is_empty() {
                return Err(EngineError::bad(
                    "audience claim found in JWT but no audiences bound to the role",
                ));
            }
        } else if !audiences
            .iter()
            .any(|a| self.bound_audiences.iter().any(|b| b == a))
        {
            return Err(invalid(
                "invalid audience (aud) claim: audience claim does not match any expected audience",
            ));
        }
        if !self.bound_subject.is_empty()
            && claims.get("sub").and_then(Value::as_str) != Some(self.bound_subject.as_str())
        {
            return Err(invalid("invalid subject (sub) claim"));
        }
        Ok(())
    }

    fn check_bound_claims(&self, claims: &Value) -> Result<()> {
        let glob = self.bound_claims_type == "glob";
        for (name, expected) in &self.bound_claims {
            let expected: Vec<&str> = match expected {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let found: Vec<String> = match claim(claims, name) {
                Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
                Some(v) => scalar(v).into_iter().collect(),
                None => {
                    return Err(EngineError::bad(format!(
                        "error validating claims: claim {name:?} is missing"
                    )))
                }
            };
            let matches = found.iter().any(|f| {
                expected
                    .iter()
                    .any(|e| if glob { glob_match(e, f) } else { e == f })
            });
            if !matches {
                return Err(EngineError::bad(format!(
                    "error validating claims: claim {name:?} does not match any associated bound claim values"
                )));
            }
        }
        Ok(())
    }
}

/// A claim by name, or by JSON pointer when it starts with `/`, as OpenBao reads them.
fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        claims.pointer(name)
    } else {
        claims.get(name)
    }
    .filter(|v| !v.is_null())
}

/// A claim value as metadata and bound claims compare it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters, the only wildcard OpenBao's globs have.
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == value;
    };
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What a successful login established.
pub struct JwtLogin {
    pub role_name: String,
    pub role: JwtRole,
    /// The user claim's value: the alias name and the token's display name.
    pub user: String,
    pub metadata: BTreeMap<String, String>,
}

pub struct Jwt {
    store: MethodStore,
    write_lock: tokio::sync::Mutex<()>,
}

fn role_path(name: &str) -> String {
    format!("role/{name}")
}

pub fn role_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(EngineError::bad("missing role"));
    }
    Ok(name.to_string())
}

impl Jwt {
    pub(super) fn new(store: MethodStore) -> Self {
        Jwt {
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> Result<Option<JwtConfig>> {
        self.store.get_json("config")
    }

    /// Checks and stores a configuration; a JWKS URL is fetched once to check it.
    pub async fn write_config(&self, fields: &Map<String, Value>) -> Result<()> {
        let config = JwtConfig::from_fields(fields)?;
        if !config.jwks_url.is_empty() {
            // OpenBao's words; the reason goes to the log.
            let client = config.jwks_client().map_err(|e| {
                tracing::info!(error = %e, "jwks_ca_pem refused");
                EngineError::bad("error checking jwks_ca_pem")
            })?;
            if let Err(e) = config.fetch_jwks(&client).await {
                tracing::info!(error = %e, "jwks_url refused");
                return Err(EngineError::bad("error checking jwks URL"));
            }
        }
        let _w = self.write_lock.lock().await;
        self.store.put_json("config", &config).await
    }

    pub fn role(&self, name: &str) -> Result<Option<JwtRole>> {
        self.store.get_json(&role_path(name))
    }

    pub fn roles(&self) -> Result<Vec<String>> {
        self.store.list("role/")
    }

    pub async fn write_role(&self, name: &str, fields: &Map<String, Value>) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let mut role = self.role(name)?.unwrap_or_default();
        role.update_from(fields)?;
        self.store.put_json(&role_path(name), &role).await
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.store.write(&[], &[role_path(name)]).await
    }

    /// A login token renews while its role exists, with the role's token TTLs as they
    /// are now (OpenBao's `pathLoginRenew`).
    pub fn renewal(&self, meta: &BTreeMap<String, String>) -> Result<RoleTtls> {
        let name = meta
            .get("role")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| EngineError::internal("failed to fetch role_name during renewal"))?;
        let role = self.role(name)?.ok_or_else(|| {
            EngineError::RenewalRefused(format!("role {name} does not exist during renewal"))
        })?;
        Ok(role.token.role_ttls())
    }

    /// Verifies `jwt` for the role (or the configured default role) at time `now`.
    pub async fn login(&self, role: Option<&str>, jwt: &str, now: i64) -> Result<JwtLogin> {
        let config = self
            .config()?
            .ok_or_else(|| EngineError::bad("could not load configuration"))?;
        let role_name = match role.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None if !config.default_role.is_empty() => config.default_role.clone(),
            None => return Err(EngineError::bad("missing role")),
        };
        let role = self
            .role(&role_name)?
            .ok_or_else(|| EngineError::bad(format!("role {role_name:?} could not be found")))?;
        if jwt.trim().is_empty() {
            return Err(EngineError::bad("missing token"));
        }
        let claims = verify(&config, jwt).await?;
        role.check_registered(&config, &claims, now)?;
        let claims = Value::Object(claims);
        role.check_bound_claims(&claims)?;
        let user = match claim(&claims, &role.user_claim) {
            Some(v) => scalar(v).ok_or_else(|| {
                EngineError::bad(format!(
                    "claim {:?} could not be converted to string",
                    role.user_claim
                ))
            })?,
            None => {
                return Err(EngineError::bad(format!(
                    "claim {:?} not found in token",
                    role.user_claim
                )))
            }
        };
        let mut metadata = BTreeMap::from([("role".to_string(), role_name.clone())]);
        for (name, target) in &role.claim_mappings {
            if let Some(v) = claim(&claims, name).and_then(scalar) {
                metadata.insert(target.clone(), v);
            }
        }
        Ok(JwtLogin {
            role_name,
            role,
            user,
            metadata,
        })
    }
}

/// The token's claims if one of the configured keys signed it with an accepted
/// algorithm; `alg: none` and HMAC algorithms never verify. The refusals are OpenBao's
/// words, whatever the reason the signature is not accepted.
async fn verify(config: &JwtConfig, jwt: &str) -> Result<Map<String, Value>> {
    let invalid = |what: &str| {
        EngineError::bad(format!(
            "error validating token: error verifying token signature: {what}"
        ))
    };
    let no_key = || invalid("no known key successfully validated the token signature");
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| no_key())?;
    if !config.algorithms()?.contains(&header.alg) {
        return Err(no_key());
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let keys = config.keys(header.kid.as_deref()).await?;
    keys.iter()
        .find_map(|key| jsonwebtoken::decode::<Map<String, Value>>(jwt, key, &validation).ok())
        .map(|data| data.claims)
        .ok_or_else(|| {
            if config.jwks_url.is_empty() {
                no_key()
            } else {
                invalid("failed to verify id token signature")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_openbao() {
        assert!(glob_match(
            "repo:acme/*:ref:refs/heads/main",
            "repo:acme/app:ref:refs/heads/main"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "abbbc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("main", "mainx"));
        assert!(!glob_match("ab*ba", "aba"));
    }
}
