//! TLS certificates (`auth/cert`), as OpenBao's `cert` method: `certs/<name>` trusts a
//! CA (any client certificate chaining to it) or one client certificate, narrowed by
//! glob constraints on the client certificate's names; `login` matches the chain the
//! client presented on its TLS connection. The chain reaches the method from the
//! listener's handshake with the request, never from a header. Chains are verified by
//! `rustls-webpki` and names read by `x509-parser`.

use std::collections::BTreeMap;
use std::sync::Arc;

use pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::jwt::glob_match;
use super::token_params::list;
use super::{MethodStore, TokenParams};
use crate::error::{EngineError, Result};
use crate::token::RoleTtls;

/// Vault's deprecated field names a certificate write still reads.
pub const LEGACY_FIELDS: &[&str] = &["policies", "ttl", "max_ttl", "period", "bound_cidrs"];

/// OpenBao's answers, word for word.
pub const NO_CERTIFICATE: &str = "no client certificate found";
pub const UNTRUSTED: &str = "invalid certificate or no client certificate supplied";
pub const NO_MATCH: &str =
    "no chain matching all constraints could be found for this login certificate";

/// Where a cert login's token keeps the SHA-256 of the certificate it logged in with.
pub const LOGIN_CERT: &str = "cert_sha256";

/// The chain a client presented in its TLS handshake, leaf first, as DER.
#[derive(Clone, Debug)]
pub struct PeerChain(Arc<[Vec<u8>]>);

impl PeerChain {
    /// None for an empty chain: a client that presented nothing.
    pub fn new(certs: Vec<Vec<u8>>) -> Option<PeerChain> {
        (!certs.is_empty()).then(|| PeerChain(certs.into()))
    }

    fn leaf(&self) -> &[u8] {
        self.0.first().map(Vec::as_slice).unwrap_or_default()
    }

    fn intermediates(&self) -> Vec<CertificateDer<'_>> {
        self.0
            .iter()
            .skip(1)
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect()
    }
}

/// The fields OpenBao's cert method has that this appliance does not implement: refused
/// when set, never ignored.
const UNSUPPORTED: &[&str] = &[
    "ocsp_enabled",
    "ocsp_ca_certificates",
    "ocsp_servers_override",
    "ocsp_fail_open",
    "ocsp_query_all_servers",
    "required_extensions",
    "allowed_metadata_extensions",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertRole {
    /// PEM: a CA (trusting what chains to it) or a client certificate (trusting it alone).
    pub certificate: String,
    pub display_name: String,
    pub allowed_names: Vec<String>,
    pub allowed_common_names: Vec<String>,
    pub allowed_dns_sans: Vec<String>,
    pub allowed_email_sans: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_organizational_units: Vec<String>,
    pub token: TokenParams,
}

impl CertRole {
    pub const FIELDS: &'static [&'static str] = &[
        "certificate",
        "display_name",
        "allowed_names",
        "allowed_common_names",
        "allowed_dns_sans",
        "allowed_email_sans",
        "allowed_uri_sans",
        "allowed_organizational_units",
        "lease",
        "ocsp_enabled",
        "ocsp_ca_certificates",
        "ocsp_servers_override",
        "ocsp_fail_open",
        "ocsp_query_all_servers",
        "required_extensions",
        "allowed_metadata_extensions",
    ];

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        self.token.to_json(&mut m);
        let fields = json!({
            "certificate": self.certificate,
            "display_name": self.display_name,
            "allowed_names": self.allowed_names,
            "allowed_common_names": self.allowed_common_names,
            "allowed_dns_sans": self.allowed_dns_sans,
            "allowed_email_sans": self.allowed_email_sans,
            "allowed_uri_sans": self.allowed_uri_sans,
            "allowed_organizational_units": self.allowed_organizational_units,
            "required_extensions": [],
            "allowed_metadata_extensions": [],
            "ocsp_ca_certificates": "",
            "ocsp_enabled": false,
            "ocsp_servers_override": [],
            "ocsp_fail_open": false,
            "ocsp_query_all_servers": false,
        });
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        Value::Object(m)
    }

    /// Applies a write: the fields given replace the stored ones.
    fn update_from(&mut self, fields: &Map<String, Value>) -> Result<()> {
        let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
        for name in UNSUPPORTED {
            let set = match get(name) {
                None | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) => !s.is_empty() && s != "false",
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                return Err(EngineError::bad(format!(
                    "'{name}' is not supported by this appliance's cert auth method: OCSP and certificate extension constraints are not implemented"
                )));
            }
        }
        let text = |name: &str| -> Result<Option<String>> {
            get(name)
                .map(|v| match v {
                    Value::String(s) => Ok(s.to_string()),
                    _ => Err(EngineError::bad(format!("invalid '{name}': not a string"))),
                })
                .transpose()
        };
        if let Some(c) = text("certificate")? {
            self.certificate = c;
        }
        if let Some(d) = text("display_name")? {
            self.display_name = d;
        }
        for (name, slot) in [
            ("allowed_names", &mut self.allowed_names),
            ("allowed_common_names", &mut self.allowed_common_names),
            ("allowed_dns_sans", &mut self.allowed_dns_sans),
            ("allowed_email_sans", &mut self.allowed_email_sans),
            ("allowed_uri_sans", &mut self.allowed_uri_sans),
            (
                "allowed_organizational_units",
                &mut self.allowed_organizational_units,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = list(v, name)?;
            }
        }
        let mut fields = fields.clone();
        // The oldest name of the TTL, read when neither newer one is given.
        if let Some(lease) = fields.remove("lease") {
            if !fields.contains_key("token_ttl") && !fields.contains_key("ttl") {
                fields.insert("token_ttl".into(), lease);
            }
        }
        self.token.update_from(&fields, LEGACY_FIELDS)
    }

    /// The certificates the role trusts; the first says whether it is a CA.
    fn parsed(&self) -> Vec<Vec<u8>> {
        pem_certificates(&self.certificate)
    }
}

/// The DER of every `CERTIFICATE` (or `TRUSTED CERTIFICATE`) block of `pem` that parses,
/// as OpenBao's `parsePEM` keeps them.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map_while(|p| p.ok())
        .filter(|p| p.label == "CERTIFICATE" || p.label == "TRUSTED CERTIFICATE")
        .map(|p| p.contents)
        .filter(|der| X509Certificate::from_der(der).is_ok())
        .collect()
}

/// Role names are case-insensitive, as OpenBao's.
pub fn role_name(name: &str) -> Result<String> {
    let name = name.trim().to_lowercase();
    if name.is_empty() || name.contains('/') {
        return Err(EngineError::bad("missing name"));
    }
    Ok(name)
}

fn role_path(name: &str) -> String {
    format!("cert/{name}")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertConfig {
    /// Renewals skip checking that the client presents the certificate it logged in with.
    pub disable_binding: bool,
}

impl CertConfig {
    pub const FIELDS: &'static [&'static str] = &[
        "disable_binding",
        "enable_identity_alias_metadata",
        "ocsp_cache_size",
        "role_cache_size",
    ];

    pub fn to_json(&self) -> Value {
        json!({
            "disable_binding": self.disable_binding,
            "enable_identity_alias_metadata": false,
        })
    }
}

/// What a successful login matched.
pub struct CertLogin {
    pub name: String,
    pub role: CertRole,
    pub metadata: BTreeMap<String, String>,
}

/// The names of a client certificate the constraints look at.
struct Names {
    common_name: String,
    dns: Vec<String>,
    email: Vec<String>,
    uri: Vec<String>,
    organizational_units: Vec<String>,
}

impl Names {
    fn of(cert: &X509Certificate<'_>) -> Names {
        let strings = |it: &mut dyn Iterator<
            Item = &x509_parser::x509::AttributeTypeAndValue<'_>,
        >|
         -> Vec<String> {
            it.filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect()
        };
        // Go keeps the last common name of the subject.
        let common_name = strings(&mut cert.subject().iter_common_name())
            .pop()
            .unwrap_or_default();
        let organizational_units = strings(&mut cert.subject().iter_organizational_unit());
        let (mut dns, mut email, mut uri) = (Vec::new(), Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns.push(n.to_string()),
                    GeneralName::RFC822Name(n) => email.push(n.to_string()),
                    GeneralName::URI(n) => uri.push(n.to_string()),
                    _ => {}
                }
            }
        }
        Names {
            common_name,
            dns,
            email,
            uri,
            organizational_units,
        }
    }

    /// OpenBao's `matchesConstraints` without CRLs, OCSP and extensions: each non-empty
    /// list needs one of its globs to match one of the certificate's names.
    fn match_role(&self, role: &CertRole) -> bool {
        fn strs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        let any = |globs: &[String], names: &[&str]| {
            globs.is_empty() || globs.iter().any(|g| names.iter().any(|n| glob_match(g, n)))
        };
        let mut all_names = vec![self.common_name.as_str()];
        all_names.extend(strs(&self.dns));
        all_names.extend(strs(&self.email));
        any(&role.allowed_names, &all_names)
            && any(&role.allowed_common_names, &[self.common_name.as_str()])
            && any(&role.allowed_dns_sans, &strs(&self.dns))
            && any(&role.allowed_email_sans, &strs(&self.email))
            && any(&role.allowed_uri_sans, &strs(&self.uri))
            && any(
                &role.allowed_organizational_units,
                &strs(&self.organizational_units),
            )
    }
}

/// Bytes as Vault's `GetHexFormatted(b, ":")` writes them.
fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The token metadata OpenBao's login sets from the client certificate.
fn metadata(name: &str, cert: &X509Certificate<'_>, names: &Names) -> BTreeMap<String, String> {
    let (mut skid, mut akid) = (Vec::new(), Vec::new());
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => skid = k.0.to_vec(),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                if let Some(k) = &a.key_identifier {
                    akid = k.0.to_vec();
                }
            }
            _ => {}
        }
    }
    [
        ("cert_name", name.to_string()),
        ("common_name", names.common_name.clone()),
        ("serial_number", cert.serial.to_string()),
        ("subject_key_id", hex_colons(&skid)),
        ("authority_key_id", hex_colons(&akid)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How a presented chain relates to one role's certificates.
enum Trust {
    /// The role's certificate is the client's own, or its chain ends at one of the
    /// role's CAs.
    Trusted,
    /// The chain does not lead to this role.
    Unrelated,
}

/// Whether `chain` is trusted by `role`: byte equality with a client certificate, or a
/// path (client authentication usage, valid `now`) from the leaf to one of a CA role's
/// certificates through the intermediates the client sent.
fn trust(role: &CertRole, chain: &PeerChain, now: UnixTime) -> Result<Trust> {
    let certs = role.parsed();
    let Some(first) = certs.first() else {
        return Ok(Trust::Unrelated);
    };
    let is_ca = X509Certificate::from_der(first).is_ok_and(|(_, c)| c.is_ca());
    if !is_ca {
        return Ok(if first.as_slice() == chain.leaf() {
            Trust::Trusted
        } else {
            Trust::Unrelated
        });
    }
    let ders: Vec<CertificateDer<'_>> = certs
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let anchors: Vec<TrustAnchor<'_>> = ders
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    let leaf = CertificateDer::from(chain.leaf());
    let Ok(ee) = webpki::EndEntityCert::try_from(&leaf) else {
        return Ok(Trust::Unrelated);
    };
    let intermediates = chain.intermediates();
    match ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    ) {
        Ok(_) => Ok(Trust::Trusted),
        Err(webpki::Error::UnknownIssuer) => Ok(Trust::Unrelated),
        Err(e) => Err(EngineError::bad(format!(
            "failed to verify client's certificate: {e}"
        ))),
    }
}

pub struct Cert {
    store: MethodStore,
    write_lock: tokio::sync::Mutex<()>,
}

impl Cert {
    pub(super) fn new(store: MethodStore) -> Self {
        Cert {
            store,
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> Result<CertConfig> {
        Ok(self.store.get_json("config")?.unwrap_or_default())
    }

    pub async fn write_config(&self, fields: &Map<String, Value>) -> Result<()> {
        let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
        if let Some(v) = get("enable_identity_alias_metadata") {
            if crate::request_values::bool_from_json(v) != Some(false) {
                return Err(EngineError::bad(
                    "'enable_identity_alias_metadata' is not supported: this appliance has no identity store",
                ));
            }
        }
        for name in ["ocsp_cache_size", "role_cache_size"] {
            if get(name).is_some() {
                return Err(EngineError::bad(format!(
                    "'{name}' is not supported: this appliance's cert auth method keeps no OCSP or role cache"
                )));
            }
        }
        let _w = self.write_lock.lock().await;
        let mut config = self.config()?;
        if let Some(v) = get("disable_binding") {
            config.disable_binding = crate::request_values::bool_from_json(v)
                .ok_or_else(|| EngineError::bad("invalid 'disable_binding': not a boolean"))?;
        }
        self.store.put_json("config", &config).await
    }

    pub fn role(&self, name: &str) -> Result<Option<CertRole>> {
        self.store.get_json(&role_path(name))
    }

    pub fn roles(&self) -> Result<Vec<String>> {
        self.store.list("cert/")
    }

    /// Creates or updates a trusted certificate: the fields given replace the stored
    /// ones; the certificate must parse, and a client (non-CA) certificate that names
    /// its usages must allow TLS client authentication, as OpenBao checks.
    pub async fn write_role(&self, name: &str, fields: &Map<String, Value>) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let mut role = self.role(name)?.unwrap_or_default();
        role.update_from(fields)?;
        if role.display_name.is_empty() {
            role.display_name = name.to_string();
        }
        let certs = role.parsed();
        let Some(first) = certs.first() else {
            return Err(EngineError::bad("failed to parse certificate"));
        };
        let (_, parsed) = X509Certificate::from_der(first)
            .map_err(|_| EngineError::bad("failed to parse certificate"))?;
        if !parsed.is_ca() {
            if let Ok(Some(eku)) = parsed.extended_key_usage() {
                if !eku.value.client_auth && !eku.value.any {
                    return Err(EngineError::bad(
                        "nonCA certificates should have TLS client authentication set as an extended key usage",
                    ));
                }
            }
        }
        self.store.put_json(&role_path(name), &role).await
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        self.store.write(&[], &[role_path(name)]).await
    }

    /// The role trusting `chain` whose constraints its leaf meets: only `name` when
    /// given, else the first by name, client certificates before CAs, as OpenBao.
    pub fn login(
        &self,
        name: Option<&str>,
        chain: Option<&PeerChain>,
        now: UnixTime,
    ) -> Result<CertLogin> {
        let chain = chain.ok_or_else(|| EngineError::bad(NO_CERTIFICATE))?;
        let (_, leaf) =
            X509Certificate::from_der(chain.leaf()).map_err(|_| EngineError::bad(UNTRUSTED))?;
        let names = Names::of(&leaf);
        let candidates = match name {
            Some(n) => vec![role_name(n)?],
            None => self.roles()?,
        };
        let mut roles = Vec::new();
        for n in candidates {
            if let Some(r) = self.role(&n)? {
                let is_ca = r
                    .parsed()
                    .first()
                    .is_some_and(|d| X509Certificate::from_der(d).is_ok_and(|(_, c)| c.is_ca()));
                roles.push((is_ca, n, r));
            }
        }
        // Stable: names stay in order within each kind.
        roles.sort_by_key(|(is_ca, _, _)| *is_ca);
        // As OpenBao, only a chain to a CA makes a mismatch "no chain matching": a
        // client certificate role that fails its constraints leaves the chain untrusted.
        let mut chained = false;
        for (is_ca, n, role) in roles {
            if let Trust::Trusted = trust(&role, chain, now)? {
                chained |= is_ca;
                if names.match_role(&role) {
                    let metadata = metadata(&n, &leaf, &names);
                    return Ok(CertLogin {
                        name: n,
                        role,
                        metadata,
                    });
                }
            }
        }
        Err(EngineError::bad(if chained { NO_MATCH } else { UNTRUSTED }))
    }

    /// OpenBao's `pathLoginRenew`: a token renews only while the role that issued it
    /// exists (None: declined) with the same policies and, unless `disable_binding`, while
    /// the renewing client presents the certificate it logged in with, still trusted by
    /// the role.
    pub fn renewal(
        &self,
        meta: &BTreeMap<String, String>,
        policies: &[String],
        internal: &BTreeMap<String, String>,
        chain: Option<&PeerChain>,
    ) -> Result<Option<RoleTtls>> {
        let name = meta.get("cert_name").map(String::as_str).unwrap_or("");
        let Some(role) = role_name(name)
            .ok()
            .map(|n| self.role(&n))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        // `default` is left out, as OpenBao's `EquivalentPolicies` leaves it.
        let set = |p: &[String]| -> std::collections::BTreeSet<String> {
            p.iter().filter(|p| *p != "default").cloned().collect()
        };
        if set(&role.token.token_policies) != set(policies) {
            return Err(EngineError::RenewalRefused(
                "policies have changed, not renewing".into(),
            ));
        }
        if !self.config()?.disable_binding {
            self.login(Some(name), chain, UnixTime::now())?;
            let presented = chain.map(PeerChain::leaf_sha256);
            if presented.as_ref() != internal.get(LOGIN_CERT) {
                return Err(EngineError::RenewalRefused(
                    "client identity during renewal not matching client identity used during login"
                        .into(),
                ));
            }
        }
        Ok(Some(role.token.role_ttls()))
    }
}

/// The SHA-256 of a certificate, hex: how a token remembers the certificate it logged
/// in with, for renewals to compare.
pub fn leaf_sha256(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

impl PeerChain {
    /// [`leaf_sha256`] of the client's own certificate.
    pub fn leaf_sha256(&self) -> String {
        leaf_sha256(self.leaf())
    }
}

#[cfg(test)]
mod tests;
