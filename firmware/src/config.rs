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
//! seal "shamir" {}
//! log_level     = "info"
//! disable_mlock = false
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

#[derive(Debug, Clone)]
pub struct Config {
    pub storage_path: PathBuf,
    pub listener: ListenerConfig,
    pub seal: String,
    pub log_level: Option<String>,
    pub disable_mlock: bool,
    /// Where generated TLS material lives: beside the storage file.
    pub data_dir: PathBuf,
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
    let mut seal = None;
    let mut log_level = None;
    let mut disable_mlock = false;

    for attr in body.attributes() {
        let key = attr.key();
        match key {
            "log_level" => log_level = Some(as_string(&src, key, attr.expr())?),
            "disable_mlock" => disable_mlock = as_bool(&src, key, attr.expr())?,
            // Vault settings with no meaning on a single appliance: accepted, ignored.
            "ui" | "api_addr" | "cluster_addr" | "cluster_name" | "default_lease_ttl"
            | "max_lease_ttl" | "pid_file" | "log_format" => {}
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
                if seal.is_some() {
                    return Err(src.err(kind, "only one seal block is allowed"));
                }
                let label = single_label(&src, block)?;
                if label != "shamir" {
                    return Err(src.err(
                        kind,
                        format!("unsupported seal {label:?}: this build supports \"shamir\""),
                    ));
                }
                if let Some(attr) = block.body().attributes().next() {
                    return Err(src.err(
                        attr.key(),
                        format!("unknown key `{}` in seal \"shamir\"", attr.key()),
                    ));
                }
                seal = Some(label.to_string());
            }
            "telemetry" => {}
            other => return Err(src.err(other, format!("unknown block `{other}`"))),
        }
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
        seal: seal.unwrap_or_else(|| "shamir".into()),
        log_level,
        disable_mlock,
        data_dir,
    })
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
}
