//! The server configuration file, in Vault's HCL syntax and parameter names:
//!
//! ```hcl
//! storage "redb" { path = "/var/lib/ironseal/ironseal.redb" }
//! listener "tcp" {
//!   address       = "0.0.0.0:8200"
//!   tls_cert_file = "/etc/ironseal/tls/cert.pem"   # omit both for a generated CA + cert
//!   tls_key_file  = "/etc/ironseal/tls/key.pem"
//!   # tls_disable = true                           # plain HTTP, only when asked for
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
//! log_level     = "info"
//! disable_mlock = false
//! default_lease_ttl = "768h"   # token lifetimes, as Vault's (768h each by default);
//! max_lease_ttl     = "768h"   # the auth/token/ tune overrides them
//! max_batch_items = 1000      # most items in one transit batch_input (default 1000)
//! ```
//!
//! Every error names the file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub tls_disable: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

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

#[derive(Debug, Clone)]
pub struct Config {
    pub storage_path: PathBuf,
    pub listener: ListenerConfig,
    /// The active seal.
    pub seal: SealBlock,
    /// A seal block marked `disabled = "true"`: the seal being migrated away from.
    pub previous_seal: Option<SealBlock>,
    pub log_level: Option<String>,
    pub disable_mlock: bool,
    /// Where generated TLS material lives: beside the storage file.
    pub data_dir: PathBuf,
    /// Vault's top-level `default_lease_ttl` / `max_lease_ttl`: bound every token's
    /// lifetime unless the `auth/token/` mount is tuned (768h each by default).
    pub leases: engine::token::LeaseTtls,
    /// `max_batch_items`: the most items a transit `batch_input` may hold.
    pub max_batch_items: Option<usize>,
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
            .position(|l| l.match_indices(key).any(|(at, _)| is_key_at(l, at)))
            .map(|i| i + 1)
            .unwrap_or(1)
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
    let src = Source { file, text };
    let body: Body = hcl::parse(text).map_err(|e| ConfigError {
        file: file.display().to_string(),
        line: match &e {
            hcl::Error::Parse(p) => p.location().line(),
            _ => 0,
        },
        message: format!("invalid HCL: {e}"),
    })?;

    let mut storage_path = None;
    let mut listener = None;
    let mut seal: Option<SealBlock> = None;
    let mut previous_seal: Option<SealBlock> = None;
    let mut log_level = None;
    let mut disable_mlock = false;
    let mut leases = engine::token::LeaseTtls::default();
    let mut max_batch_items = None;

    for attr in body.attributes() {
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
            // Vault settings with no meaning on a single appliance: accepted, ignored.
            "ui" | "api_addr" | "cluster_addr" | "cluster_name" | "pid_file" | "log_format" => {}
            other => return Err(src.err(other, format!("unknown key `{other}`"))),
        }
    }

    for block in body.blocks() {
        let kind = block.identifier();
        match kind {
            "storage" | "backend" => {
                if storage_path.is_some() {
                    return Err(src.err(kind, "only one storage block is allowed"));
                }
                let label = single_label(&src, block)?;
                if label != "redb" {
                    return Err(
                        src.err(kind, format!("unsupported storage {label:?}: use \"redb\""))
                    );
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
                storage_path =
                    Some(path.ok_or_else(|| src.err(kind, "storage \"redb\" needs `path`"))?);
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
            "telemetry" => {}
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
    let storage_path = storage_path.ok_or_else(|| ConfigError {
        file: file.display().to_string(),
        line: 1,
        message: "missing storage \"redb\" { path = \"...\" } block".into(),
    })?;
    let listener = listener.ok_or_else(|| ConfigError {
        file: file.display().to_string(),
        line: 1,
        message: "missing listener \"tcp\" { address = \"...\" } block".into(),
    })?;
    let data_dir = storage_path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Config {
        storage_path,
        listener,
        seal: seal.unwrap_or(SealBlock::Shamir),
        previous_seal,
        log_level,
        disable_mlock,
        data_dir,
        leases,
        max_batch_items,
    })
}

/// A TTL as Vault's config takes it: seconds, or a duration string such as "768h".
fn as_ttl(src: &Source, key: &str, e: &Expression) -> Result<u64, ConfigError> {
    let text = as_string(src, key, e)?;
    engine::duration::parse_duration(&text).map_err(|err| src.err(key, format!("`{key}`: {err}")))
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

fn parse_pcrs(src: &Source, key: &str, e: &Expression) -> Result<Vec<u8>, ConfigError> {
    let items: Vec<String> = match e {
        Expression::Array(a) => a
            .iter()
            .map(|x| as_string(src, key, x))
            .collect::<Result<_, _>>()?,
        other => as_string(src, key, other)?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    items
        .iter()
        .map(|s| {
            s.parse::<u8>()
                .ok()
                .filter(|p| *p < 24)
                .ok_or_else(|| src.err(key, format!("`pcrs`: {s:?} is not a PCR index 0-23")))
        })
        .collect()
}

fn parse_listener(src: &Source, body: &Body) -> Result<ListenerConfig, ConfigError> {
    let mut address = "127.0.0.1:8200".to_string();
    let mut tls_disable = false;
    let mut cert = None;
    let mut key = None;
    for attr in body.attributes() {
        let k = attr.key();
        match k {
            "address" => address = as_string(src, k, attr.expr())?,
            "tls_disable" => tls_disable = as_bool(src, k, attr.expr())?,
            "tls_cert_file" => cert = Some(PathBuf::from(as_string(src, k, attr.expr())?)),
            "tls_key_file" => key = Some(PathBuf::from(as_string(src, k, attr.expr())?)),
            "tls_min_version" | "cluster_address" | "max_request_duration" => {}
            other => {
                return Err(src.err(other, format!("unknown key `{other}` in listener \"tcp\"")))
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
    Ok(ListenerConfig {
        address,
        tls_disable,
        tls_cert_file: cert,
        tls_key_file: key,
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
}
