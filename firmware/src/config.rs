//! The server configuration file, in Vault's HCL syntax and parameter names:
//!
//! ```hcl
//! storage "redb" { path = "/var/lib/ironseal/ironseal.redb" }
//! # or, several nodes on one database (generated TLS material then lives beside this
//! # file; the URL may come from IRONSEAL_PG_URL instead):
//! # storage "postgresql" {
//! #   connection_url = "postgres://ironseal:PASSWORD@db.example:5432/ironseal"
//! #   table          = "ironseal_store"
//! #   tls_ca_file    = "/etc/ironseal/db-ca.pem"   # optional, besides the system's CAs
//! # }
//! # or, in a build with the `fdb` feature, the keyspace in a FoundationDB cluster that
//! # several appliances share (each under its own prefix); local files (generated TLS)
//! # then live in /var/lib/ironseal:
//! # storage "foundationdb" {
//! #   cluster_file = "/etc/foundationdb/fdb.cluster"   # default: the client's own default
//! #   prefix       = "ironseal"                        # this appliance's keyspace
//! #   api_version  = 730                                # at most 730
//! # }
//! listener "tcp" {
//!   address       = "0.0.0.0:8200"
//!   tls_cert_file = "/etc/ironseal/tls/cert.pem"   # omit both for a generated CA + cert
//!   tls_key_file  = "/etc/ironseal/tls/key.pem"
//!   # tls_disable = true                           # plain HTTP, only when asked for
//!   # Vault's limits (see `listener_limit_key`): http_read_header_timeout,
//!   # http_read_timeout, http_write_timeout, http_idle_timeout, max_request_size,
//!   # max_request_duration, tls_min_version, tls_max_version; and Ironseal's
//!   # max_connections, max_request_bytes_in_flight (request bodies held at once across
//!   # connections, default 256 MiB) and tls_san (names for the generated certificate).
//!   # Client certificates, as Vault: asked for by default (for the cert auth method);
//!   # tls_client_ca_file with tls_require_and_verify_client_cert = true requires one
//!   # from that CA; tls_disable_client_certs = true never asks.
//! }
//! seal "shamir" {}            # or one of:
//! # seal "pkcs11" {
//! #   lib          = "/usr/lib/softhsm/libsofthsm2.so"
//! #   token_label  = "ironseal"          # or slot = "0"
//! #   key_label    = "ironseal-root"
//! #   generate_key = "true"
//! #   pin_file     = "/etc/ironseal/hsm-pin"   # else the VAULT_HSM_PIN environment variable
//! # }
//! # seal "tpm2" {
//! #   tcti = "device:/dev/tpmrm0"       # or "swtpm:host=127.0.0.1,port=2321"
//! #   pcrs = "0,7"                       # optional PCR policy (SHA-256 bank)
//! # }
//! # Seal migration (Vault's flow): keep the old seal with `disabled = "true"` next to the
//! # new one (none for Shamir), then `bao operator unseal -migrate`.
//! # pkcs11 {                             # the listener for libironseal_pkcs11.so
//! #   socket       = "/run/ironseal/pkcs11.sock"   # the default; mode 0660
//! #   allowed_uids = [1000, 1001]        # peers' uids (SO_PEERCRED); default: the daemon's
//! #   address            = "0.0.0.0:5696"   # TCP with mutual TLS, all three files needed
//! #   tls_cert_file      = "/etc/ironseal/pkcs11/cert.pem"
//! #   tls_key_file       = "/etc/ironseal/pkcs11/key.pem"
//! #   tls_client_ca_file = "/etc/ironseal/pkcs11/clients-ca.pem"
//! #   token_label  = "ironseal"          # C_GetTokenInfo's label, at most 32 bytes
//! #   # max_connections (default 256), max_connections_per_peer (uid or IP, default 64)
//! #   pin "billing" {                    # C_Login with PIN "billing" logs in with the
//! #     token_file = "/etc/ironseal/pkcs11/billing.token"   # token in this file (not
//! #   }                                  # readable by other users)
//! # }
//! log_level     = "info"
//! disable_mlock = false
//! default_lease_ttl = "768h"   # token lifetimes, as Vault's (768h each by default);
//! max_lease_ttl     = "768h"   # the auth/token/ tune overrides them
//! max_batch_items = 1000      # most items in one transit batch_input (default 1000)
//! # node_name = "kms-2"       # this node among those sharing a database (default: the
//! #                           # host name); it names the node's audit files and chains
//! # log_format = "json"; default_max_request_duration = "90s"
//! ui = true                   # the web console at /ui (off unless set)
//! telemetry {                 # optional; what `sys/metrics` serves
//!   prometheus_retention_time = "24h"   # "0" turns the Prometheus text format off
//!   disable_hostname          = true    # metric names never carry the host name
//! }
//! ```
//!
//! Every error names the file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::tls::TlsVersion;
use hcl::{Attribute, Block, Body, Expression};

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub tls_disable: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_min_version: TlsVersion,
    pub tls_max_version: TlsVersion,
    /// Extra names and addresses for the generated certificate.
    pub tls_san: Vec<String>,
    /// Which client certificates the handshake asks for (see [`client_certs`]).
    pub client_certs: api::tls::ClientCerts,
    /// Timeouts, sizes and the connection cap (see `listener_limit_key`).
    pub limits: api::Limits,
    /// `max_request_duration` as written in the block; None falls back to the top-level
    /// `default_max_request_duration`, then to Vault's 90 s.
    max_request_duration: Option<Duration>,
}

/// The `pkcs11` block: the listener for `libironseal_pkcs11.so`.
#[derive(Debug, Clone)]
pub struct Pkcs11Block {
    /// The Unix socket; None when only `address` is set.
    pub socket: Option<PathBuf>,
    /// Uids admitted on the socket; None: the daemon's own only.
    pub allowed_uids: Option<Vec<u32>>,
    /// TCP with mutual TLS.
    pub tcp: Option<Pkcs11Tcp>,
    pub token_label: Option<String>,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    /// PIN entries: a name an application may give as its PIN, and the file holding the
    /// token it stands for.
    pub pins: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct Pkcs11Tcp {
    pub address: SocketAddr,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    /// The CA whose client certificates are admitted.
    pub tls_client_ca_file: PathBuf,
}

/// Where the library looks when nothing else is configured.
pub const DEFAULT_PKCS11_SOCKET: &str = "/run/ironseal/pkcs11.sock";

/// One `seal` block.
#[derive(Debug, Clone)]
pub enum SealBlock {
    Shamir,
    Pkcs11 {
        lib: PathBuf,
        slot: Option<u64>,
        token_label: Option<String>,
        key_label: String,
        generate_key: bool,
        pin_file: Option<PathBuf>,
    },
    Tpm2 {
        tcti: String,
        pcrs: Vec<u8>,
    },
}

impl SealBlock {
    pub fn name(&self) -> &'static str {
        match self {
            SealBlock::Shamir => "shamir",
            SealBlock::Pkcs11 { .. } => "pkcs11",
            SealBlock::Tpm2 { .. } => "tpm2",
        }
    }
}

/// `storage "foundationdb"`: parsed in every build, refused in one without `fdb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundationDbBlock {
    pub cluster_file: Option<PathBuf>,
    pub prefix: String,
    pub api_version: i32,
}

/// Local files' directory when the keyspace is in FoundationDB.
const FOUNDATIONDB_DATA_DIR: &str = "/var/lib/ironseal";
/// The API versions the `foundationdb` crate can select: from the first with
/// versionstamp offsets (520) up to the headers it is built with (7.3).
const FOUNDATIONDB_API_VERSIONS: std::ops::RangeInclusive<i64> = 520..=730;

/// Where the keyspace lives.
#[derive(Debug, Clone)]
pub enum StorageBlock {
    Redb {
        path: PathBuf,
    },
    #[cfg(feature = "postgresql")]
    Postgresql(engine::storage::postgresql::PostgresConfig),
    /// Parsed in every build; a build without `fdb` refuses it at parse time.
    Foundationdb(FoundationDbBlock),
}

impl std::fmt::Display for StorageBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageBlock::Redb { path } => write!(f, "redb {}", path.display()),
            #[cfg(feature = "postgresql")]
            StorageBlock::Postgresql(pg) => write!(
                f,
                "postgresql {}",
                engine::storage::postgresql::redact(&pg.connection_url)
            ),
            StorageBlock::Foundationdb(block) => write!(
                f,
                "foundationdb (cluster file {}, prefix {:?}, API version {})",
                block
                    .cluster_file
                    .as_deref()
                    .map_or("default".into(), |p| p.display().to_string()),
                block.prefix,
                block.api_version
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub storage: StorageBlock,
    pub listener: ListenerConfig,
    /// The active seal.
    pub seal: SealBlock,
    /// A seal block marked `disabled = "true"`: the seal being migrated away from.
    pub previous_seal: Option<SealBlock>,
    pub log_level: Option<String>,
    pub disable_mlock: bool,
    /// Where generated TLS material lives: beside the storage file (beside the config
    /// file when storage is a database).
    pub data_dir: PathBuf,
    /// Vault's top-level `default_lease_ttl` / `max_lease_ttl`: bound every token's
    /// lifetime unless the `auth/token/` mount is tuned (768h each by default).
    pub leases: engine::token::LeaseTtls,
    /// `max_batch_items`: the most items a transit `batch_input` may hold.
    pub max_batch_items: Option<usize>,
    /// `node_name`: this node among those sharing one store (None: the host name).
    pub node_name: Option<String>,
    /// Top-level keys about serving (see `server_key`).
    pub server: ServerOptions,
    /// The PKCS#11 listener, if the `pkcs11` block is present.
    pub pkcs11: Option<Pkcs11Block>,
}

/// Top-level keys about serving requests and logging.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Vault's `default_max_request_duration`: for listeners that set none.
    pub default_max_request_duration: Option<Duration>,
    /// `log_format`: `"standard"` (the default) or `"json"`.
    pub log_format: LogFormat,
    /// `ui`: serve the web console at `/ui` (off unless set, as in Vault).
    pub ui: bool,
}

/// How the daemon writes its log lines to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Standard,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

struct Source<'a> {
    file: &'a Path,
    text: &'a str,
    /// Lines before this one are not searched: a block's keys are found in the block,
    /// not under the same name in an earlier one.
    from: usize,
}

impl Source<'_> {
    /// The line where `key` is first assigned or opened as a block, for error messages.
    fn line_of(&self, key: &str) -> usize {
        let is_key_at = |line: &str, at: usize| {
            let before_ok = line[..at]
                .chars()
                .next_back()
                .is_none_or(|c| c.is_whitespace() || c == '{');
            let rest = line[at + key.len()..].trim_start();
            before_ok && (rest.starts_with('=') || rest.starts_with('{') || rest.starts_with('"'))
        };
        self.text
            .lines()
            .enumerate()
            .skip(self.from)
            .find(|(_, l)| l.match_indices(key).any(|(at, _)| is_key_at(l, at)))
            .map(|(i, _)| i + 1)
            .unwrap_or(1)
    }

    /// The same file, searched from where `block` opens.
    fn within_block(&self, block: &str) -> Source<'_> {
        Source {
            file: self.file,
            text: self.text,
            from: self.line_of(block) - 1,
        }
    }

    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.display().to_string(),
            line: self.line_of(key),
            message: message.into(),
        }
    }
}

fn as_string(src: &Source, key: &str, e: &Expression) -> Result<String, ConfigError> {
    match e {
        Expression::String(s) => Ok(s.clone()),
        Expression::Number(n) => Ok(n.to_string()),
        _ => Err(src.err(key, format!("`{key}` must be a string"))),
    }
}

fn as_bool(src: &Source, key: &str, e: &Expression) -> Result<bool, ConfigError> {
    match e {
        Expression::Bool(b) => Ok(*b),
        Expression::String(s) if s == "true" || s == "1" => Ok(true),
        Expression::String(s) if s == "false" || s == "0" => Ok(false),
        Expression::Number(n) => Ok(n.as_i64() != Some(0)),
        _ => Err(src.err(key, format!("`{key}` must be true or false"))),
    }
}

#[cfg(feature = "postgresql")]
const SUPPORTED_STORAGE: &str = "\"redb\", \"postgresql\" or \"foundationdb\"";
#[cfg(not(feature = "postgresql"))]
const SUPPORTED_STORAGE: &str =
    "\"redb\" or \"foundationdb\" (this build has no PostgreSQL storage)";

/// `storage "postgresql" { connection_url, table, tls_ca_file }`; the URL may come from
/// `IRONSEAL_PG_URL` instead, so the password need not sit in the file.
#[cfg(feature = "postgresql")]
fn parse_postgresql(
    src: &Source,
    body: &hcl::Body,
) -> Result<engine::storage::postgresql::PostgresConfig, ConfigError> {
    let mut url = None;
    let mut table = None;
    let mut tls_ca_file = None;
    for attr in body.attributes() {
        match attr.key() {
            "connection_url" => url = Some(as_string(src, "connection_url", attr.expr())?),
            "table" => table = Some(as_string(src, "table", attr.expr())?),
            "tls_ca_file" => {
                tls_ca_file = Some(PathBuf::from(as_string(src, "tls_ca_file", attr.expr())?))
            }
            other => {
                return Err(src.err(
                    other,
                    format!("unknown key `{other}` in storage \"postgresql\" (not supported here)"),
                ))
            }
        }
    }
    let connection_url = match std::env::var("IRONSEAL_PG_URL") {
        Ok(env) if !env.is_empty() => env,
        _ => url.ok_or_else(|| {
            src.err(
                "storage",
                "storage \"postgresql\" needs `connection_url` (or IRONSEAL_PG_URL)",
            )
        })?,
    };
    Ok(engine::storage::postgresql::PostgresConfig {
        connection_url,
        table,
        tls_ca_file,
    })
}

fn single_label<'b>(src: &Source, block: &'b Block) -> Result<&'b str, ConfigError> {
    let kind = block.identifier();
    match block.labels() {
        [label] => Ok(label.as_str()),
        _ => Err(src.err(
            kind,
            format!("`{kind}` needs exactly one label, e.g. {kind} \"...\" {{ }}"),
        )),
    }
}

pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.display().to_string(),
        line: 0,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(file, &text)
}

pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let src = Source {
        file,
        text,
        from: 0,
    };
    engine::hcl_bounds::check(text).map_err(|e| ConfigError {
        file: file.display().to_string(),
        line: e.line(),
        message: format!("invalid HCL: {e}"),
    })?;
    let body: Body = hcl::parse(text).map_err(|e| ConfigError {
        file: file.display().to_string(),
        line: match &e {
            hcl::Error::Parse(p) => p.location().line(),
            _ => 0,
        },
        message: format!("invalid HCL: {e}"),
    })?;

    let mut storage = None;
    let mut listener = None;
    let mut seal: Option<SealBlock> = None;
    let mut previous_seal: Option<SealBlock> = None;
    let mut log_level = None;
    let mut disable_mlock = false;
    let mut leases = engine::token::LeaseTtls::default();
    let mut max_batch_items = None;
    let mut node_name = None;
    let mut pkcs11 = None;
    let mut prometheus_enabled = None;

    let mut server = ServerOptions::default();
    for attr in body.attributes() {
        if server_key(&src, attr, &mut server)? {
            continue;
        }
        let key = attr.key();
        match key {
            "log_level" => log_level = Some(as_string(&src, key, attr.expr())?),
            "disable_mlock" => disable_mlock = as_bool(&src, key, attr.expr())?,
            "default_lease_ttl" => leases.default_lease_ttl = as_ttl(&src, key, attr.expr())?,
            "max_lease_ttl" => leases.max_lease_ttl = as_ttl(&src, key, attr.expr())?,
            "max_batch_items" => {
                let v = as_string(&src, key, attr.expr())?;
                max_batch_items =
                    Some(v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        src.err(
                            key,
                            format!("`max_batch_items` {v:?} is not a positive integer"),
                        )
                    })?);
            }
            "node_name" => {
                let v = as_string(&src, key, attr.expr())?;
                if !valid_node_name(&v) {
                    return Err(src.err(
                        key,
                        format!("`node_name` {v:?}: give 1 to 64 letters, digits, '.', '-' or '_'"),
                    ));
                }
                node_name = Some(v);
            }
            other => return Err(src.err(other, format!("unknown key `{other}`"))),
        }
    }

    for block in body.blocks() {
        let kind = block.identifier();
        match kind {
            "storage" | "backend" => {
                if storage.is_some() {
                    return Err(src.err(kind, "only one storage block is allowed"));
                }
                let label = single_label(&src, block)?;
                if label == "foundationdb" {
                    storage = Some(StorageBlock::Foundationdb(parse_foundationdb(
                        &src,
                        block.body(),
                    )?));
                    continue;
                }
                #[cfg(feature = "postgresql")]
                if label == "postgresql" {
                    storage = Some(StorageBlock::Postgresql(parse_postgresql(
                        &src,
                        block.body(),
                    )?));
                    continue;
                }
                if label != "redb" {
                    return Err(src.err(
                        kind,
                        format!("unsupported storage {label:?}: use {SUPPORTED_STORAGE}"),
                    ));
                }
                let mut path = None;
                for attr in block.body().attributes() {
                    match attr.key() {
                        "path" => path = Some(PathBuf::from(as_string(&src, "path", attr.expr())?)),
                        other => {
                            return Err(src
                                .err(other, format!("unknown key `{other}` in storage \"redb\"")))
                        }
                    }
                }
                let path = path.ok_or_else(|| src.err(kind, "storage \"redb\" needs `path`"))?;
                storage = Some(StorageBlock::Redb { path });
            }
            "listener" => {
                if listener.is_some() {
                    return Err(src.err(kind, "only one listener block is supported"));
                }
                let label = single_label(&src, block)?;
                if label != "tcp" {
                    return Err(
                        src.err(kind, format!("unsupported listener {label:?}: use \"tcp\""))
                    );
                }
                listener = Some(parse_listener(&src, block.body())?);
            }
            "seal" => {
                let label = single_label(&src, block)?;
                let (parsed, disabled) = parse_seal(&src, label, block.body())?;
                let slot = if disabled {
                    &mut previous_seal
                } else {
                    &mut seal
                };
                if slot.is_some() {
                    return Err(src.err(
                        kind,
                        if disabled {
                            "only one disabled seal block is allowed"
                        } else {
                            "only one enabled seal block is allowed (mark the old one disabled = \"true\" to migrate)"
                        },
                    ));
                }
                *slot = Some(parsed);
            }
            "pkcs11" => {
                if pkcs11.is_some() {
                    return Err(src.err(kind, "only one pkcs11 block is allowed"));
                }
                if !block.labels().is_empty() {
                    return Err(src.err(
                        kind,
                        "the pkcs11 listener block takes no label: pkcs11 { socket = \"...\" } (the HSM seal is seal \"pkcs11\")",
                    ));
                }
                pkcs11 = Some(parse_pkcs11(&src.within_block(kind), block.body())?);
            }
            "telemetry" => {
                if prometheus_enabled.is_some() {
                    return Err(src.err(kind, "only one telemetry block is allowed"));
                }
                prometheus_enabled = Some(parse_telemetry(&src.within_block(kind), block)?);
            }
            other => return Err(src.err(other, format!("unknown block `{other}`"))),
        }
    }

    if let Err(e) = leases.validate() {
        let key = if leases.max_lease_ttl == 0 {
            "max_lease_ttl"
        } else {
            "default_lease_ttl"
        };
        return Err(src.err(key, e));
    }
    let storage = storage.ok_or_else(|| ConfigError {
        file: file.display().to_string(),
        line: 1,
        message: "missing storage \"redb\" { path = \"...\" } block".into(),
    })?;
    let mut listener = listener.ok_or_else(|| ConfigError {
        file: file.display().to_string(),
        line: 1,
        message: "missing listener \"tcp\" { address = \"...\" } block".into(),
    })?;
    listener.limits.prometheus_enabled = prometheus_enabled.unwrap_or(true);
    listener.limits.max_request_duration = Some(
        listener
            .max_request_duration
            .or(server.default_max_request_duration)
            .unwrap_or(api::limits::DEFAULT_MAX_REQUEST_DURATION),
    );
    let beside = match &storage {
        StorageBlock::Redb { path } => path.as_path(),
        #[cfg(feature = "postgresql")]
        StorageBlock::Postgresql(_) => file,
        StorageBlock::Foundationdb(_) => Path::new(FOUNDATIONDB_DATA_DIR),
    };
    let data_dir = if matches!(storage, StorageBlock::Foundationdb(_)) {
        beside.to_path_buf()
    } else {
        beside
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    };
    Ok(Config {
        storage,
        listener,
        seal: seal.unwrap_or(SealBlock::Shamir),
        previous_seal,
        log_level,
        disable_mlock,
        data_dir,
        leases,
        max_batch_items,
        node_name,
        server,
        pkcs11,
    })
}

/// A node name goes into file names and storage keys: no separators, nothing hidden.
pub fn valid_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn parse_foundationdb(src: &Source, body: &Body) -> Result<FoundationDbBlock, ConfigError> {
    let mut block = FoundationDbBlock {
        cluster_file: None,
        prefix: "ironseal".into(),
        api_version: *FOUNDATIONDB_API_VERSIONS.end() as i32,
    };
    for attr in body.attributes() {
        let key = attr.key();
        match key {
            "cluster_file" => block.cluster_file = Some(as_string(src, key, attr.expr())?.into()),
            "prefix" => {
                block.prefix = as_string(src, key, attr.expr())?;
                if block.prefix.is_empty() {
                    return Err(src.err(key, "`prefix` must not be empty: it keeps this appliance's keyspace apart from others' in the cluster"));
                }
            }
            "api_version" => {
                let v = integer(src, key, attr.expr())?;
                if !FOUNDATIONDB_API_VERSIONS.contains(&v) {
                    return Err(src.err(
                        key,
                        format!(
                            "`api_version` {v} is not one this build can select: use {} to {}",
                            FOUNDATIONDB_API_VERSIONS.start(),
                            FOUNDATIONDB_API_VERSIONS.end()
                        ),
                    ));
                }
                block.api_version = v as i32;
            }
            other => {
                return Err(src.err(
                    other,
                    format!("unknown key `{other}` in storage \"foundationdb\""),
                ))
            }
        }
    }
    if !cfg!(feature = "fdb") {
        return Err(src.err(
            "storage",
            "storage \"foundationdb\" needs an ironseal built with the `fdb` feature (cargo build -p ironseal --features fdb)",
        ));
    }
    Ok(block)
}

/// A TTL as Vault's config takes it: seconds, or a duration string such as "768h".
fn as_ttl(src: &Source, key: &str, e: &Expression) -> Result<u64, ConfigError> {
    let text = as_string(src, key, e)?;
    engine::duration::parse_duration(&text).map_err(|err| src.err(key, format!("`{key}`: {err}")))
}

/// The top-level `telemetry` block: the keys that shape what `sys/metrics` serves are
/// taken; metrics sinks and tunings the appliance does not have are refused by name.
/// Whether the Prometheus text format is on.
fn parse_telemetry(src: &Source, block: &Block) -> Result<bool, ConfigError> {
    if !block.labels().is_empty() {
        return Err(src.err("telemetry", "the telemetry block takes no label"));
    }
    if let Some(inner) = block.body().blocks().next() {
        let kind = inner.identifier();
        return Err(src.err(kind, format!("unknown block `{kind}` in telemetry")));
    }
    let mut prometheus = true;
    for attr in block.body().attributes() {
        let k = attr.key();
        match k {
            "prometheus_retention_time" => {
                // The appliance's figures are live and cumulative: nothing to retain,
                // only the format to turn on or off.
                prometheus = as_ttl(src, k, attr.expr())? > 0;
            }
            "disable_hostname" => {
                if !as_bool(src, k, attr.expr())? {
                    return Err(src.err(
                        k,
                        "`disable_hostname = false` is not supported: metric names never carry the host name",
                    ));
                }
            }
            "statsite_address" | "statsd_address" | "dogstatsd_addr" | "dogstatsd_tags" => {
                return Err(src.err(
                    k,
                    format!("`{k}` is not supported: push sinks are not implemented, scrape sys/metrics"),
                ))
            }
            k if k.starts_with("circonus_") || k.starts_with("stackdriver_") => {
                return Err(src.err(
                    k,
                    format!("`{k}` is not supported: push sinks are not implemented, scrape sys/metrics"),
                ))
            }
            "usage_gauge_period"
            | "maximum_gauge_cardinality"
            | "metrics_prefix"
            | "enable_hostname_label"
            | "lease_metrics_epsilon"
            | "num_lease_metrics_buckets"
            | "add_lease_metrics_namespace_labels"
            | "filter_default"
            | "prefix_filter" => {
                return Err(src.err(
                    k,
                    format!("`{k}` is not supported: sys/metrics has a fixed set of metrics"),
                ))
            }
            other => return Err(src.err(other, format!("unknown key `{other}` in telemetry"))),
        }
    }
    Ok(prometheus)
}

fn parse_seal(src: &Source, label: &str, body: &Body) -> Result<(SealBlock, bool), ConfigError> {
    let mut disabled = false;
    let mut lib = None;
    let mut slot = None;
    let mut token_label = None;
    let mut key_label = None;
    let mut generate_key = false;
    let mut pin_file = None;
    let mut tcti = None;
    let mut pcrs = Vec::new();
    for attr in body.attributes() {
        let k = attr.key();
        match (label, k) {
            (_, "disabled") => disabled = as_bool(src, k, attr.expr())?,
            ("pkcs11", "lib") => lib = Some(PathBuf::from(as_string(src, k, attr.expr())?)),
            ("pkcs11", "slot") => {
                let v = as_string(src, k, attr.expr())?;
                let parsed = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => v.parse().ok(),
                };
                slot = Some(parsed.ok_or_else(|| {
                    src.err(k, format!("`slot` {v:?} is not a slot number"))
                })?);
            }
            ("pkcs11", "token_label") => token_label = Some(as_string(src, k, attr.expr())?),
            ("pkcs11", "key_label") => key_label = Some(as_string(src, k, attr.expr())?),
            ("pkcs11", "generate_key") => generate_key = as_bool(src, k, attr.expr())?,
            ("pkcs11", "pin_file") => {
                pin_file = Some(PathBuf::from(as_string(src, k, attr.expr())?))
            }
            ("pkcs11", "pin") => {
                return Err(src.err(
                    k,
                    "the HSM PIN does not belong in the config file: use pin_file or the VAULT_HSM_PIN environment variable",
                ))
            }
            ("tpm2", "tcti") => tcti = Some(as_string(src, k, attr.expr())?),
            ("tpm2", "pcrs") => pcrs = parse_pcrs(src, k, attr.expr())?,
            (_, other) => {
                return Err(src.err(other, format!("unknown key `{other}` in seal \"{label}\"")))
            }
        }
    }
    let block = match label {
        "shamir" => SealBlock::Shamir,
        "pkcs11" => {
            if !cfg!(feature = "pkcs11") {
                return Err(src.err(
                    "seal",
                    "this build has no pkcs11 support (cargo feature `pkcs11`)",
                ));
            }
            SealBlock::Pkcs11 {
                lib: lib.ok_or_else(|| {
                    src.err("seal", "seal \"pkcs11\" needs `lib`, the module's path")
                })?,
                slot,
                token_label,
                key_label: key_label
                    .ok_or_else(|| src.err("seal", "seal \"pkcs11\" needs `key_label`"))?,
                generate_key,
                pin_file,
            }
        }
        "tpm2" => {
            if !cfg!(feature = "tpm2") {
                return Err(src.err(
                    "seal",
                    "this build has no tpm2 support (cargo feature `tpm2`)",
                ));
            }
            SealBlock::Tpm2 {
                tcti: tcti.ok_or_else(|| {
                    src.err(
                        "seal",
                        "seal \"tpm2\" needs `tcti`, e.g. \"device:/dev/tpmrm0\"",
                    )
                })?,
                pcrs,
            }
        }
        other => {
            return Err(src.err(
                "seal",
                format!("unsupported seal {other:?}: use \"shamir\", \"pkcs11\" or \"tpm2\""),
            ))
        }
    };
    Ok((block, disabled))
}

/// A list as an HCL array of strings or one comma-separated string.
fn string_list(src: &Source, key: &str, e: &Expression) -> Result<Vec<String>, ConfigError> {
    Ok(match e {
        Expression::Array(a) => a
            .iter()
            .map(|x| as_string(src, key, x))
            .collect::<Result<_, _>>()?,
        other => as_string(src, key, other)?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

fn parse_pcrs(src: &Source, key: &str, e: &Expression) -> Result<Vec<u8>, ConfigError> {
    string_list(src, key, e)?
        .iter()
        .map(|s| {
            s.parse::<u8>()
                .ok()
                .filter(|p| *p < 24)
                .ok_or_else(|| src.err(key, format!("`pcrs`: {s:?} is not a PCR index 0-23")))
        })
        .collect()
}

fn parse_pkcs11(src: &Source, body: &Body) -> Result<Pkcs11Block, ConfigError> {
    let mut socket = None;
    let mut allowed_uids = None;
    let mut address = None;
    let mut cert = None;
    let mut key = None;
    let mut client_ca = None;
    let mut token_label = None;
    let mut max_connections = api::pkcs11::listener::DEFAULT_MAX_CONNECTIONS;
    let mut max_connections_per_peer = api::pkcs11::listener::DEFAULT_MAX_CONNECTIONS_PER_PEER;
    let mut pins: Vec<(String, PathBuf)> = Vec::new();
    for block in body.blocks() {
        let kind = block.identifier();
        if kind != "pin" {
            return Err(src.err(
                kind,
                format!("unknown block `{kind}` in pkcs11 (known: pin \"name\" {{ token_file = \"...\" }})"),
            ));
        }
        let name = match block.labels() {
            [label] => label.as_str().to_string(),
            _ => {
                return Err(src.err(
                    kind,
                    "a pin block takes its name: pin \"name\" { token_file = \"...\" }",
                ))
            }
        };
        if name.is_empty() || name.len() > MAX_PIN_NAME {
            return Err(src.err(kind, format!("a PIN name is 1 to {MAX_PIN_NAME} bytes")));
        }
        if pins.iter().any(|(n, _)| *n == name) {
            return Err(src.err(kind, format!("PIN name {name:?} is given twice")));
        }
        let mut token_file = None;
        for attr in block.body().attributes() {
            match attr.key() {
                "token_file" => {
                    token_file = Some(PathBuf::from(as_string(src, "token_file", attr.expr())?))
                }
                "token" => {
                    return Err(src.err(
                        "token",
                        "a token does not belong in the config file: put it in a file named by token_file",
                    ))
                }
                other => {
                    return Err(src.err(
                        other,
                        format!("unknown key `{other}` in pin \"{name}\" (known: token_file)"),
                    ))
                }
            }
        }
        let token_file = token_file
            .ok_or_else(|| src.err(kind, format!("pin \"{name}\" needs `token_file`")))?;
        pins.push((name, token_file));
    }
    for attr in body.attributes() {
        let k = attr.key();
        let e = attr.expr();
        match k {
            "socket" => socket = Some(PathBuf::from(as_string(src, k, e)?)),
            "allowed_uids" => {
                let uids = match e {
                    Expression::Array(items) => items
                        .iter()
                        .map(|x| {
                            let v = as_string(src, k, x)?;
                            v.trim().parse::<u32>().map_err(|_| {
                                src.err(k, format!("`allowed_uids`: {v:?} is not a numeric uid"))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(src.err(k, "`allowed_uids` must be a list of uids, e.g. [1000, 1001]")),
                };
                allowed_uids = Some(uids);
            }
            "address" => {
                let v = as_string(src, k, e)?;
                address = Some(v.parse::<SocketAddr>().map_err(|_| {
                    src.err(k, format!("`address` {v:?} is not an IP:port"))
                })?);
            }
            "tls_cert_file" => cert = Some(PathBuf::from(as_string(src, k, e)?)),
            "tls_key_file" => key = Some(PathBuf::from(as_string(src, k, e)?)),
            "tls_client_ca_file" => client_ca = Some(PathBuf::from(as_string(src, k, e)?)),
            "token_label" => {
                let v = as_string(src, k, e)?;
                // CK_TOKEN_INFO's label is 32 bytes, blank-padded.
                if v.trim().is_empty() || v.len() > 32 {
                    return Err(src.err(k, "`token_label` must be 1 to 32 bytes"));
                }
                token_label = Some(v);
            }
            "max_connections" => max_connections = count(src, k, e)?,
            "max_connections_per_peer" => max_connections_per_peer = count(src, k, e)?,
            other => {
                return Err(src.err(
                    other,
                    format!("unknown key `{other}` in pkcs11 (known: socket, allowed_uids, address, tls_cert_file, tls_key_file, tls_client_ca_file, token_label, max_connections, max_connections_per_peer)"),
                ))
            }
        }
    }
    let tcp = match address {
        Some(address) => {
            let need = |v: Option<PathBuf>, k: &str| {
                v.ok_or_else(|| {
                    src.err(
                        "address",
                        format!("pkcs11 `address` serves mutual TLS and needs `{k}`"),
                    )
                })
            };
            Some(Pkcs11Tcp {
                address,
                tls_cert_file: need(cert, "tls_cert_file")?,
                tls_key_file: need(key, "tls_key_file")?,
                tls_client_ca_file: need(client_ca, "tls_client_ca_file")?,
            })
        }
        None => {
            let tls_key = ["tls_cert_file", "tls_key_file", "tls_client_ca_file"];
            if let Some(k) = first_key(body, &tls_key) {
                return Err(src.err(
                    k,
                    format!("pkcs11 `{k}` is for TCP: set `address` too, or remove it"),
                ));
            }
            None
        }
    };
    // With neither, the socket the library looks for by default.
    if socket.is_none() && tcp.is_none() {
        socket = Some(PathBuf::from(DEFAULT_PKCS11_SOCKET));
    }
    if socket.is_none() && allowed_uids.is_some() {
        return Err(src.err(
            "allowed_uids",
            "pkcs11 `allowed_uids` admits peers on the Unix socket: set `socket` too, or remove it",
        ));
    }
    Ok(Pkcs11Block {
        socket,
        allowed_uids,
        tcp,
        token_label,
        max_connections,
        max_connections_per_peer,
        pins,
    })
}

/// The longest PIN name (a PIN entry's label).
const MAX_PIN_NAME: usize = 128;

/// Vault's listener rules for client certificates: asked for by default and left to the
/// cert auth method to verify; required (verified against `tls_client_ca_file`) with
/// `tls_require_and_verify_client_cert`; not asked for with `tls_disable_client_certs`.
/// Combinations that would leave a setting without effect are refused.
fn client_certs(
    src: &Source,
    client_ca: Option<PathBuf>,
    require: bool,
    disable: bool,
) -> Result<api::tls::ClientCerts, ConfigError> {
    use api::tls::ClientCerts;
    match (client_ca, require, disable) {
        (_, true, true) => Err(src.err(
            "tls_disable_client_certs",
            "'tls_disable_client_certs' and 'tls_require_and_verify_client_cert' are mutually exclusive",
        )),
        (Some(ca), true, false) => Ok(ClientCerts::Required(ca)),
        (None, true, false) => Err(src.err(
            "tls_require_and_verify_client_cert",
            "`tls_require_and_verify_client_cert = true` needs `tls_client_ca_file`: this appliance verifies client certificates against that CA only, never the system's",
        )),
        (Some(_), false, disable) => Err(src.err(
            "tls_client_ca_file",
            if disable {
                "`tls_client_ca_file` has no effect with `tls_disable_client_certs = true`: remove one of them"
            } else {
                "`tls_client_ca_file` is only used with `tls_require_and_verify_client_cert = true` (otherwise the cert auth method's trusted certificates decide): set that too, or remove it"
            },
        )),
        (None, false, true) => Ok(ClientCerts::Disabled),
        (None, false, false) => Ok(ClientCerts::Requested),
    }
}

fn parse_listener(src: &Source, body: &Body) -> Result<ListenerConfig, ConfigError> {
    let mut address = "127.0.0.1:8200".to_string();
    let mut tls_disable = false;
    let mut cert = None;
    let mut key = None;
    let (mut client_ca, mut require_client, mut disable_client) = (None, false, false);
    let mut l = ListenerConfig {
        address: SocketAddr::from(([127, 0, 0, 1], 8200)),
        tls_disable: false,
        tls_cert_file: None,
        tls_key_file: None,
        tls_min_version: TlsVersion::Tls12,
        tls_max_version: TlsVersion::Tls13,
        tls_san: Vec::new(),
        client_certs: api::tls::ClientCerts::Requested,
        limits: api::Limits::default(),
        max_request_duration: None,
    };
    for attr in body.attributes() {
        let k = attr.key();
        if listener_limit_key(src, attr, &mut l)? {
            continue;
        }
        match k {
            "address" => address = as_string(src, k, attr.expr())?,
            "tls_disable" => tls_disable = as_bool(src, k, attr.expr())?,
            "tls_cert_file" => cert = Some(PathBuf::from(as_string(src, k, attr.expr())?)),
            "tls_key_file" => key = Some(PathBuf::from(as_string(src, k, attr.expr())?)),
            "tls_client_ca_file" => {
                client_ca = Some(PathBuf::from(as_string(src, k, attr.expr())?))
            }
            "tls_require_and_verify_client_cert" => require_client = as_bool(src, k, attr.expr())?,
            "tls_disable_client_certs" => disable_client = as_bool(src, k, attr.expr())?,
            other => {
                return Err(src.err(other, format!("unknown key `{other}` in listener \"tcp\"")))
            }
        }
    }
    for block in body.blocks() {
        let kind = block.identifier();
        if kind != "telemetry" {
            return Err(src.err(kind, format!("unknown block `{kind}` in listener \"tcp\"")));
        }
        for attr in block.body().attributes() {
            match attr.key() {
                "unauthenticated_metrics_access" => {
                    l.limits.unauthenticated_metrics_access = as_bool(src, attr.key(), attr.expr())?
                }
                other => {
                    return Err(src.err(
                        other,
                        format!("unknown key `{other}` in the listener's telemetry block"),
                    ))
                }
            }
        }
    }
    let address: SocketAddr = address.parse().map_err(|_| {
        src.err(
            "address",
            format!("`address` {address:?} is not an IP:port"),
        )
    })?;
    if cert.is_some() != key.is_some() {
        return Err(src.err(
            if cert.is_some() {
                "tls_cert_file"
            } else {
                "tls_key_file"
            },
            "tls_cert_file and tls_key_file go together",
        ));
    }
    if l.tls_min_version > l.tls_max_version {
        return Err(src.err(
            "tls_min_version",
            "`tls_min_version` is above `tls_max_version`",
        ));
    }
    if tls_disable {
        const TLS_KEYS: [&str; 8] = [
            "tls_cert_file",
            "tls_key_file",
            "tls_min_version",
            "tls_max_version",
            "tls_san",
            "tls_client_ca_file",
            "tls_require_and_verify_client_cert",
            "tls_disable_client_certs",
        ];
        if let Some(k) = first_key(body, &TLS_KEYS) {
            return Err(src.err(
                k,
                format!("`{k}` has no effect with `tls_disable = true`: remove one of them"),
            ));
        }
    }
    l.client_certs = client_certs(src, client_ca, require_client, disable_client)?;
    let budget_set = body
        .attributes()
        .any(|a| a.key() == "max_request_bytes_in_flight");
    if !budget_set {
        l.limits.max_request_bytes_in_flight = l
            .limits
            .max_request_bytes_in_flight
            .max(l.limits.max_request_size);
    } else if l.limits.max_request_bytes_in_flight < l.limits.max_request_size {
        return Err(src.err(
            "max_request_bytes_in_flight",
            "`max_request_bytes_in_flight` is below `max_request_size`: a request of the largest allowed size could never be accepted",
        ));
    }
    if cert.is_some() && !l.tls_san.is_empty() {
        return Err(src.err(
            "tls_san",
            "`tls_san` names the generated certificate; with tls_cert_file, put the names in that certificate",
        ));
    }
    l.address = address;
    l.tls_disable = tls_disable;
    l.tls_cert_file = cert;
    l.tls_key_file = key;
    Ok(l)
}

/// Top-level keys about serving. True when `attr` was one of them.
fn server_key(
    src: &Source,
    attr: &Attribute,
    out: &mut ServerOptions,
) -> Result<bool, ConfigError> {
    let k = attr.key();
    match k {
        "default_max_request_duration" => {
            out.default_max_request_duration = Some(positive_duration(src, k, attr.expr())?)
        }
        "log_format" => {
            out.log_format = match as_string(src, k, attr.expr())?.as_str() {
                "standard" => LogFormat::Standard,
                "json" => LogFormat::Json,
                other => {
                    return Err(src.err(
                        k,
                        format!("`log_format` {other:?}: use \"standard\" or \"json\""),
                    ))
                }
            }
        }
        "ui" => out.ui = as_bool(src, k, attr.expr())?,
        "api_addr" | "cluster_addr" | "cluster_name" => {
            return Err(src.err(
                k,
                format!(
                    "`{k}` is for Vault clustering, which this appliance does not do: remove it"
                ),
            ))
        }
        "pid_file" => {
            return Err(src.err(
                k,
                "`pid_file` is not supported: the service manager tracks the process",
            ))
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The listener's limits and TLS versions. True when `attr` was one of them.
///
/// Timeouts take Vault's forms (a number of seconds, or "10s", "500ms", "5m"); 0 turns
/// a timeout off, as in Vault, except `max_request_duration`, where 0 means the default.
/// `max_connections` is Ironseal's own (Vault has no cap): past it, new connections are
/// answered 503 and closed.
fn listener_limit_key(
    src: &Source,
    attr: &Attribute,
    l: &mut ListenerConfig,
) -> Result<bool, ConfigError> {
    let k = attr.key();
    let e = attr.expr();
    let off_if_zero = |d: Duration| (!d.is_zero()).then_some(d);
    match k {
        "http_read_header_timeout" => {
            l.limits.read_header_timeout = off_if_zero(duration(src, k, e)?)
        }
        "http_read_timeout" => l.limits.read_timeout = off_if_zero(duration(src, k, e)?),
        "http_write_timeout" => l.limits.write_timeout = off_if_zero(duration(src, k, e)?),
        "http_idle_timeout" => l.limits.idle_timeout = off_if_zero(duration(src, k, e)?),
        "max_request_duration" => l.max_request_duration = off_if_zero(duration(src, k, e)?),
        "max_request_size" => {
            let n = integer(src, k, e)?;
            if n < 0 {
                return Err(src.err(
                    k,
                    "`max_request_size` below 0 would turn the limit off, which this appliance does not allow",
                ));
            }
            if n > 0 {
                l.limits.max_request_size = usize::try_from(n)
                    .map_err(|_| src.err(k, "`max_request_size` is too large"))?;
            }
        }
        "max_connections" => l.limits.max_connections = count(src, k, e)?,
        "max_request_bytes_in_flight" => l.limits.max_request_bytes_in_flight = count(src, k, e)?,
        "tls_min_version" => l.tls_min_version = tls_version(src, k, e)?,
        "tls_max_version" => l.tls_max_version = tls_version(src, k, e)?,
        "tls_san" => l.tls_san = tls_names(src, k, e)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A count that must be at least 1.
fn count(src: &Source, key: &str, e: &Expression) -> Result<usize, ConfigError> {
    let n = integer(src, key, e)?;
    if n < 1 {
        return Err(src.err(key, format!("`{key}` must be at least 1")));
    }
    usize::try_from(n).map_err(|_| src.err(key, format!("`{key}` is too large")))
}

/// The first of `keys` that `body` sets.
fn first_key<'b>(body: &'b Body, keys: &[&str]) -> Option<&'b str> {
    body.attributes()
        .map(|a| a.key())
        .find(|k| keys.contains(k))
}

fn integer(src: &Source, key: &str, e: &Expression) -> Result<i64, ConfigError> {
    let s = as_string(src, key, e)?;
    s.trim()
        .parse::<i64>()
        .map_err(|_| src.err(key, format!("`{key}` {s:?} is not a whole number")))
}

/// A duration in Vault's forms: a number of seconds, or a string with units.
fn duration(src: &Source, key: &str, e: &Expression) -> Result<Duration, ConfigError> {
    let s = as_string(src, key, e)?;
    let t = s.trim();
    if t.starts_with('-') {
        return Err(src.err(key, format!("`{key}` must not be negative")));
    }
    engine::duration::parse_duration_precise(t).map_err(|e| src.err(key, format!("`{key}`: {e}")))
}

fn positive_duration(src: &Source, key: &str, e: &Expression) -> Result<Duration, ConfigError> {
    let d = duration(src, key, e)?;
    if d.is_zero() {
        return Err(src.err(key, format!("`{key}` must be above 0")));
    }
    Ok(d)
}

fn tls_version(src: &Source, key: &str, e: &Expression) -> Result<TlsVersion, ConfigError> {
    let s = as_string(src, key, e)?;
    TlsVersion::parse(&s).ok_or_else(|| {
        src.err(
            key,
            format!("`{key}` {s:?} is not supported: use \"tls12\" or \"tls13\""),
        )
    })
}

/// `tls_san`: DNS names (a leading `*.` allowed) and IP addresses.
fn tls_names(src: &Source, key: &str, e: &Expression) -> Result<Vec<String>, ConfigError> {
    let items = string_list(src, key, e)?;
    for name in &items {
        if name.parse::<std::net::IpAddr>().is_err() && !is_dns_name(name) {
            return Err(src.err(
                key,
                format!("`tls_san`: {name:?} is neither a DNS name nor an IP address"),
            ));
        }
    }
    Ok(items)
}

fn is_dns_name(name: &str) -> bool {
    let host = name.strip_prefix("*.").unwrap_or(name);
    !host.is_empty()
        && name.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("ironseal.hcl"), text)
    }

    #[test]
    fn reads_a_vault_style_config() {
        let c = p(r#"
storage "redb" { path = "/tmp/x/ironseal.redb" }
listener "tcp" {
  address = "127.0.0.1:8300"
  tls_disable = "true"
}
seal "shamir" {}
log_level = "debug"
"#)
        .unwrap();
        assert_eq!(c.listener.address.port(), 8300);
        assert!(c.listener.tls_disable);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn reads_lease_ttls_and_refuses_a_default_above_the_max() {
        let base = "storage \"redb\" { path = \"/x/db\" }\nlistener \"tcp\" { address = \"127.0.0.1:1\" }\n";
        let c = p(base).unwrap();
        assert_eq!(c.leases, engine::token::LeaseTtls::default());
        let c = p(&format!(
            "{base}default_lease_ttl = \"1h\"\nmax_lease_ttl = 7200\n"
        ))
        .unwrap();
        assert_eq!(
            (c.leases.default_lease_ttl, c.leases.max_lease_ttl),
            (3600, 7200)
        );
        let e = p(&format!("{base}default_lease_ttl = \"1000h\"\n")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("max_lease_ttl"), "{e}");
        let e = p(&format!("{base}max_lease_ttl = \"soon\"\n")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn reads_hardware_seals() {
        let base = "storage \"redb\" { path = \"/x/db\" }\nlistener \"tcp\" { address = \"127.0.0.1:1\" }\n";
        let c = p(&format!(
            "{base}seal \"pkcs11\" {{\n  lib = \"/m.so\"\n  slot = \"0x2\"\n  key_label = \"k\"\n  generate_key = \"true\"\n}}\n"
        ))
        .unwrap();
        match c.seal {
            SealBlock::Pkcs11 {
                slot,
                generate_key,
                ref key_label,
                ..
            } => {
                assert_eq!(slot, Some(2));
                assert!(generate_key);
                assert_eq!(key_label, "k");
            }
            other => panic!("{other:?}"),
        }
        let c = p(&format!(
            "{base}seal \"tpm2\" {{\n  tcti = \"swtpm:port=1\"\n  pcrs = \"0, 7\"\n}}\nseal \"pkcs11\" {{\n  disabled = \"true\"\n  lib = \"/m\"\n  key_label = \"k\"\n}}\n"
        ))
        .unwrap();
        assert!(matches!(c.seal, SealBlock::Tpm2 { ref pcrs, .. } if pcrs == &[0, 7]));
        assert!(matches!(c.previous_seal, Some(SealBlock::Pkcs11 { .. })));
        let e = p(&format!(
            "{base}seal \"pkcs11\" {{\n  lib = \"/m\"\n  key_label = \"k\"\n  pin = \"1234\"\n}}\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("pin_file"), "{e}");
        assert!(!e.message.contains("1234"), "{e}");
        let e = p(&format!(
            "{base}seal \"tpm2\" {{\n  pcrs = \"99\"\n tcti = \"x\"\n}}\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("PCR"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = p("storage \"redb\" { path = \"/x\" }\nlistener \"tcp\" {\n  adress = \"1\"\n}\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("ironseal.hcl:3: unknown key `adress`"),
            "{e}"
        );
        let e = p("storage \"consul\" {}\n").unwrap_err();
        assert!(e.to_string().contains("unsupported storage"), "{e}");
        let e = p("storage \"redb\" { path = \"/x\" }\nlistener \"tcp\" { address = \"nope\" }\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        let e = p("storage \"redb\" {\n").unwrap_err();
        assert!(e.message.contains("invalid HCL"), "{e}");
    }

    #[test]
    fn storage_foundationdb_checks_its_keys_and_needs_the_fdb_feature() {
        let listener = "listener \"tcp\" { address = \"127.0.0.1:1\" }\n";
        let block = |body: &str| format!("storage \"foundationdb\" {{\n{body}}}\n{listener}");
        let parsed = p(&block(
            "  cluster_file = \"/etc/foundationdb/fdb.cluster\"\n  prefix = \"tenant-a\"\n  api_version = 710\n",
        ));
        if cfg!(feature = "fdb") {
            let c = parsed.unwrap();
            assert!(matches!(
                c.storage,
                StorageBlock::Foundationdb(ref b) if *b == FoundationDbBlock {
                    cluster_file: Some("/etc/foundationdb/fdb.cluster".into()),
                    prefix: "tenant-a".into(),
                    api_version: 710,
                }
            ));
            assert_eq!(c.data_dir, Path::new(FOUNDATIONDB_DATA_DIR));
            let StorageBlock::Foundationdb(defaults) = p(&block("")).unwrap().storage else {
                panic!("not a foundationdb block");
            };
            assert_eq!(
                (defaults.prefix.as_str(), defaults.api_version),
                ("ironseal", 730)
            );
        } else {
            let e = parsed.unwrap_err();
            assert_eq!(e.line, 1);
            assert!(
                e.to_string().contains("built with the `fdb` feature"),
                "{e}"
            );
        }
        for (body, says) in [
            ("  api_version = 800\n", "use 520 to 730"),
            ("  prefix = \"\"\n", "must not be empty"),
            (
                "  paht = \"x\"\n",
                "unknown key `paht` in storage \"foundationdb\"",
            ),
        ] {
            let e = p(&block(body)).unwrap_err();
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
        let e = p(&format!(
            "storage \"redb\" {{ path = \"/x\" }}\n{}",
            block("")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("only one storage block"), "{e}");
    }

    #[test]
    fn node_name_is_a_plain_name() {
        let base = "storage \"redb\" { path = \"/tmp/x.redb\" }\nlistener \"tcp\" { address = \"127.0.0.1:8200\" }\n";
        assert_eq!(p(base).unwrap().node_name, None);
        let c = p(&format!("{base}node_name = \"kms-2.eu\"\n")).unwrap();
        assert_eq!(c.node_name.as_deref(), Some("kms-2.eu"));
        for bad in ["\"\"", "\"a/b\"", "\"..\"", "\"a b\""] {
            let e = p(&format!("{base}node_name = {bad}\n")).unwrap_err();
            assert!(e.message.contains("node_name"), "{e}");
        }
    }

    #[test]
    fn max_batch_items_is_a_positive_integer() {
        let base = "storage \"redb\" { path = \"/x/db\" }\nlistener \"tcp\" { address = \"127.0.0.1:1\" }\n";
        assert_eq!(p(base).unwrap().max_batch_items, None);
        let c = p(&format!("{base}max_batch_items = 50\n")).unwrap();
        assert_eq!(c.max_batch_items, Some(50));
        for bad in ["0", "-1", "\"lots\""] {
            let e = p(&format!("{base}max_batch_items = {bad}\n")).unwrap_err();
            assert_eq!(e.line, 3, "{e}");
            assert!(e.message.contains("max_batch_items"), "{e}");
        }
    }

    const BASE: &str = "storage \"redb\" {\n  path = \"/x/db\"\n}\n";

    fn with_listener(lines: &str) -> Result<Config, ConfigError> {
        p(&format!(
            "{BASE}listener \"tcp\" {{\n  address = \"127.0.0.1:1\"\n{lines}\n}}\n"
        ))
    }

    #[track_caller]
    fn refused(text: &str, line: usize, needle: &str) {
        let e = p(text).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("ironseal.hcl:{line}: ")),
            "{shown}"
        );
        assert!(shown.contains(needle), "{shown}");
    }

    #[test]
    fn every_block_refuses_unknown_keys_with_their_line() {
        let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n}\n";
        // storage
        refused(
            &format!("storage \"redb\" {{\n  path = \"/x\"\n  paht = \"/y\"\n}}\n{listener}"),
            3,
            "unknown key `paht` in storage",
        );
        // listener
        refused(
            &format!("{BASE}listener \"tcp\" {{\n  address = \"127.0.0.1:1\"\n  tls_cipher_suites = \"x\"\n}}\n"),
            6,
            "unknown key `tls_cipher_suites` in listener",
        );
        refused(
            &format!("{BASE}listener \"tcp\" {{\n  address = \"127.0.0.1:1\"\n  cluster_address = \"127.0.0.1:2\"\n}}\n"),
            6,
            "unknown key `cluster_address`",
        );
        // seals
        for (label, key) in [
            ("shamir", "lib"),
            ("pkcs11", "modulepath"),
            ("tpm2", "device"),
        ] {
            refused(
                &format!("{BASE}{listener}seal \"{label}\" {{\n  {key} = \"z\"\n}}\n"),
                8,
                &format!("unknown key `{key}` in seal \"{label}\""),
            );
        }
        // top level, and blocks
        refused(
            &format!("{BASE}{listener}\nlog_levl = \"info\"\n"),
            8,
            "unknown key `log_levl`",
        );
        refused(
            &format!("{BASE}{listener}\nha_storage \"x\" {{}}\n"),
            8,
            "unknown block `ha_storage`",
        );
        // Vault keys with no meaning here are refused, not ignored.
        refused(
            &format!("{BASE}{listener}api_addr = \"https://x:8200\"\n"),
            7,
            "api_addr",
        );
        refused(
            &format!("{BASE}{listener}pid_file = \"/run/x.pid\"\n"),
            7,
            "pid_file",
        );
        let c = p(&format!(
            "{BASE}{listener}ui = false\nlog_format = \"json\"\n"
        ))
        .unwrap();
        assert_eq!(c.server.log_format, LogFormat::Json);
        assert!(!c.server.ui);
        assert!(
            p(&format!("{BASE}{listener}ui = true\n"))
                .unwrap()
                .server
                .ui
        );
        assert!(!p(&format!("{BASE}{listener}")).unwrap().server.ui);
    }

    #[test]
    fn the_pkcs11_block_configures_socket_and_mutual_tls() {
        let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n}\n";
        assert!(p(&format!("{BASE}{listener}")).unwrap().pkcs11.is_none());
        let c = p(&format!("{BASE}{listener}pkcs11 {{}}\n")).unwrap();
        let b = c.pkcs11.unwrap();
        assert_eq!(b.socket.as_deref(), Some(Path::new(DEFAULT_PKCS11_SOCKET)));
        assert_eq!(b.allowed_uids, None);
        assert!(b.tcp.is_none());
        let c = p(&format!(
            "{BASE}{listener}pkcs11 {{\n  socket = \"/run/x/p.sock\"\n  allowed_uids = [0, 1000]\n  token_label = \"hsm\"\n  max_connections_per_peer = 8\n}}\n"
        ))
        .unwrap();
        let b = c.pkcs11.unwrap();
        assert_eq!(b.socket.as_deref(), Some(Path::new("/run/x/p.sock")));
        assert_eq!(b.allowed_uids, Some(vec![0, 1000]));
        assert_eq!(b.token_label.as_deref(), Some("hsm"));
        assert_eq!(b.max_connections_per_peer, 8);
        // TCP only: no socket unless asked for.
        let c = p(&format!(
            "{BASE}{listener}pkcs11 {{\n  address = \"127.0.0.1:5696\"\n  tls_cert_file = \"/c\"\n  tls_key_file = \"/k\"\n  tls_client_ca_file = \"/ca\"\n}}\n"
        ))
        .unwrap();
        let b = c.pkcs11.unwrap();
        assert!(b.socket.is_none());
        assert_eq!(b.tcp.unwrap().address.port(), 5696);
        // PIN entries: names for tokens kept in files.
        let c = p(&format!(
            "{BASE}{listener}pkcs11 {{\n  pin \"billing\" {{\n    token_file = \"/etc/b.token\"\n  }}\n  pin \"ops\" {{ token_file = \"/etc/o.token\" }}\n}}\n"
        ))
        .unwrap();
        assert_eq!(
            c.pkcs11.unwrap().pins,
            vec![
                ("billing".to_string(), PathBuf::from("/etc/b.token")),
                ("ops".to_string(), PathBuf::from("/etc/o.token")),
            ]
        );
    }

    #[test]
    fn the_pkcs11_block_refuses_what_it_cannot_honour() {
        let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n}\n";
        for (body, line, needle) in [
            ("  sockt = \"/x\"", 8, "unknown key `sockt` in pkcs11"),
            ("  allowed_uids = [\"alice\"]", 8, "not a numeric uid"),
            ("  allowed_uids = 1000", 8, "list of uids"),
            (
                "  address = \"127.0.0.1:5696\"\n  tls_cert_file = \"/c\"\n  tls_key_file = \"/k\"",
                8,
                "tls_client_ca_file",
            ),
            ("  tls_client_ca_file = \"/ca\"", 8, "set `address` too"),
            (
                "  token_label = \"a label far longer than thirty-two bytes\"",
                8,
                "1 to 32 bytes",
            ),
            ("  max_connections = 0", 8, "at least 1"),
            ("  address = \"nope\"", 8, "not an IP:port"),
            (
                "  pin \"a\" {\n    token = \"s.secret\"\n  }",
                9,
                "does not belong",
            ),
            (
                "  pin \"a\" {\n    tokenfile = \"/t\"\n  }",
                9,
                "unknown key `tokenfile`",
            ),
            ("  pin \"a\" {\n  }", 8, "needs `token_file`"),
            ("  pin {\n    token_file = \"/t\"\n  }", 8, "takes its name"),
            (
                "  pin \"a\" { token_file = \"/t\" }\n  pin \"a\" { token_file = \"/u\" }",
                8,
                "given twice",
            ),
            ("  pins {\n  }", 8, "unknown block `pins`"),
        ] {
            refused(
                &format!("{BASE}{listener}pkcs11 {{\n{body}\n}}\n"),
                line,
                needle,
            );
        }
        refused(
            &format!("{BASE}{listener}pkcs11 \"x\" {{\n}}\n"),
            7,
            "takes no label",
        );
        refused(
            &format!("{BASE}{listener}pkcs11 {{\n}}\npkcs11 {{\n}}\n"),
            7,
            "only one pkcs11 block",
        );
    }

    #[test]
    fn listener_limits_take_vaults_keys_and_forms() {
        let c = with_listener("").unwrap();
        let l = &c.listener.limits;
        assert_eq!(l.read_header_timeout, Some(Duration::from_secs(10)));
        assert_eq!(l.read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(l.write_timeout, None);
        assert_eq!(l.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(l.max_request_duration, Some(Duration::from_secs(90)));
        assert_eq!(l.max_request_size, 32 << 20);
        assert_eq!(c.listener.tls_min_version, TlsVersion::Tls12);

        let c = with_listener(
            "  http_read_header_timeout = \"250ms\"\n  http_read_timeout = 5\n  http_write_timeout = \"1m\"\n  http_idle_timeout = 0\n  max_request_size = 2048\n  max_request_duration = \"2s\"\n  max_connections = 7\n  tls_min_version = \"tls13\"\n  tls_san = [\"kms.example.org\", \"10.0.0.5\", \"*.example.net\"]",
        )
        .unwrap();
        let l = &c.listener.limits;
        assert_eq!(l.read_header_timeout, Some(Duration::from_millis(250)));
        assert_eq!(l.read_timeout, Some(Duration::from_secs(5)));
        assert_eq!(l.write_timeout, Some(Duration::from_secs(60)));
        assert_eq!(l.idle_timeout, None, "0 turns a timeout off, as in Vault");
        assert_eq!(l.max_request_size, 2048);
        assert_eq!(l.max_request_duration, Some(Duration::from_secs(2)));
        assert_eq!(l.max_connections, 7);
        assert_eq!(c.listener.tls_min_version, TlsVersion::Tls13);
        assert_eq!(c.listener.tls_san.len(), 3);

        // The top-level default applies where the listener sets none.
        let c = p(&format!(
            "{BASE}listener \"tcp\" {{\n  address = \"127.0.0.1:1\"\n}}\ndefault_max_request_duration = \"7s\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.listener.limits.max_request_duration,
            Some(Duration::from_secs(7))
        );
        // 0 in max_request_size means the default, as in Vault.
        let c = with_listener("  max_request_size = 0").unwrap();
        assert_eq!(c.listener.limits.max_request_size, 32 << 20);
    }

    #[test]
    fn the_telemetry_block_takes_what_sys_metrics_honours() {
        let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n}\n";
        let with = |lines: &str| p(&format!("{BASE}{listener}telemetry {{\n{lines}\n}}\n"));
        assert!(with("").unwrap().listener.limits.prometheus_enabled);
        let c = with("  prometheus_retention_time = \"24h\"\n  disable_hostname = true").unwrap();
        assert!(c.listener.limits.prometheus_enabled);
        let c = with("  prometheus_retention_time = \"0\"").unwrap();
        assert!(!c.listener.limits.prometheus_enabled);
        for (line, needle) in [
            (
                "  statsd_address = \"127.0.0.1:8125\"",
                "`statsd_address` is not supported",
            ),
            (
                "  dogstatsd_addr = \"127.0.0.1:8125\"",
                "`dogstatsd_addr` is not supported",
            ),
            (
                "  circonus_api_token = \"x\"",
                "`circonus_api_token` is not supported",
            ),
            (
                "  usage_gauge_period = \"10m\"",
                "`usage_gauge_period` is not supported",
            ),
            (
                "  disable_hostname = false",
                "`disable_hostname = false` is not supported",
            ),
            (
                "  prometheus_retention = \"1h\"",
                "unknown key `prometheus_retention` in telemetry",
            ),
        ] {
            refused(
                &format!("{BASE}{listener}telemetry {{\n{line}\n}}\n"),
                8,
                needle,
            );
        }
        refused(
            &format!("{BASE}{listener}telemetry {{\n}}\ntelemetry {{\n}}\n"),
            7,
            "only one telemetry block",
        );
    }

    #[test]
    fn the_listener_telemetry_block_opens_sys_metrics() {
        assert!(
            !with_listener("")
                .unwrap()
                .listener
                .limits
                .unauthenticated_metrics_access
        );
        let c =
            with_listener("  telemetry {\n    unauthenticated_metrics_access = true\n  }").unwrap();
        assert!(c.listener.limits.unauthenticated_metrics_access);
        refused(
            &format!(
                "{BASE}listener \"tcp\" {{\n  telemetry {{\n    metrics_prefix = \"x\"\n  }}\n}}\n"
            ),
            6,
            "unknown key `metrics_prefix`",
        );
        refused(
            &format!("{BASE}listener \"tcp\" {{\n  profiling {{\n  }}\n}}\n"),
            5,
            "unknown block `profiling`",
        );
    }

    #[test]
    fn listener_values_it_cannot_honour_are_refused() {
        for (line, needle) in [
            ("  max_request_size = -1", "turn the limit off"),
            ("  max_request_size = \"lots\"", "not a whole number"),
            ("  max_connections = 0", "at least 1"),
            ("  http_idle_timeout = \"-5s\"", "negative"),
            ("  http_read_timeout = \"soon\"", "invalid duration"),
            (
                "  tls_min_version = \"tls10\"",
                "use \"tls12\" or \"tls13\"",
            ),
            (
                "  tls_max_version = \"tls11\"",
                "use \"tls12\" or \"tls13\"",
            ),
            (
                "  tls_min_version = \"tls13\"\n  tls_max_version = \"tls12\"",
                "above",
            ),
            (
                "  tls_san = [\"bad name!\"]",
                "neither a DNS name nor an IP",
            ),
            ("  tls_san = [\"a..b\"]", "neither a DNS name nor an IP"),
        ] {
            let e = with_listener(line).unwrap_err();
            assert!(e.message.contains(needle), "{line}: {e}");
            assert_eq!(e.line, 6, "{line}: {e}");
        }
        let e = p(&format!(
            "{BASE}listener \"tcp\" {{\n  address = \"127.0.0.1:1\"\n}}\ndefault_max_request_duration = 0\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("above 0"), "{e}");
        let e = with_listener(
            "  tls_cert_file = \"/c\"\n  tls_key_file = \"/k\"\n  tls_san = [\"x.example\"]",
        )
        .unwrap_err();
        assert!(e.message.contains("tls_cert_file"), "{e}");
    }

    #[test]
    fn tls_keys_are_refused_when_tls_is_disabled() {
        for key in [
            "  tls_san = [\"x.example\"]",
            "  tls_min_version = \"tls13\"",
            "  tls_max_version = \"tls12\"",
            "  tls_cert_file = \"/c\"\n  tls_key_file = \"/k\"",
            "  tls_key_file = \"/k\"\n  tls_cert_file = \"/c\"",
        ] {
            let e = with_listener(&format!("  tls_disable = true\n{key}")).unwrap_err();
            assert!(e.message.contains("tls_disable"), "{key}: {e}");
            assert_eq!(e.line, 7, "{key}: {e}");
        }
        // Without tls_disable the same keys are fine.
        assert!(with_listener("  tls_san = [\"x.example\"]").is_ok());
    }

    #[test]
    fn client_certificate_options_combine_as_vault_and_contradictions_are_refused() {
        use api::tls::ClientCerts;
        let certs = |text: &str| with_listener(text).map(|c| c.listener.client_certs);
        assert_eq!(certs("").unwrap(), ClientCerts::Requested);
        assert_eq!(
            certs("  tls_disable_client_certs = true").unwrap(),
            ClientCerts::Disabled
        );
        assert_eq!(
            certs("  tls_client_ca_file = \"/ca\"\n  tls_require_and_verify_client_cert = true")
                .unwrap(),
            ClientCerts::Required(PathBuf::from("/ca"))
        );
        for (text, needle) in [
            (
                "  tls_client_ca_file = \"/ca\"\n  tls_require_and_verify_client_cert = true\n  tls_disable_client_certs = true",
                "mutually exclusive",
            ),
            ("  tls_require_and_verify_client_cert = true", "needs `tls_client_ca_file`"),
            ("  tls_client_ca_file = \"/ca\"", "only used with"),
            (
                "  tls_client_ca_file = \"/ca\"\n  tls_disable_client_certs = true",
                "no effect",
            ),
            (
                "  tls_disable = true\n  tls_disable_client_certs = true",
                "tls_disable = true",
            ),
        ] {
            let e = certs(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn the_body_budget_has_a_default_and_never_falls_below_one_request() {
        let c = with_listener("").unwrap();
        assert_eq!(c.listener.limits.max_request_bytes_in_flight, 256 << 20);
        let c = with_listener("  max_request_bytes_in_flight = 4096\n  max_request_size = 1024")
            .unwrap();
        assert_eq!(c.listener.limits.max_request_bytes_in_flight, 4096);
        // A larger max_request_size raises the default budget with it.
        let c = with_listener("  max_request_size = 300000000").unwrap();
        assert_eq!(c.listener.limits.max_request_bytes_in_flight, 300000000);
        for (line, needle) in [
            ("  max_request_bytes_in_flight = 0", "at least 1"),
            (
                "  max_request_bytes_in_flight = 1024\n  max_request_size = 2048",
                "below `max_request_size`",
            ),
        ] {
            let e = with_listener(line).unwrap_err();
            assert!(e.message.contains(needle), "{line}: {e}");
            assert_eq!(e.line, 6, "{line}: {e}");
        }
    }
}
