//! Where the daemon is: `IRONSEAL_PKCS11_CONF` (a file of `key = value` lines), else
//! `IRONSEAL_PKCS11_SOCKET`, else the appliance's default socket.

use std::path::{Path, PathBuf};

/// The socket the appliance's packaging creates when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "/run/ironseal/pkcs11.sock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: expected `key = value`")]
    Syntax { path: PathBuf, line: usize },
    #[error("{path} line {line}: unknown key `{key}` (known: socket, address, ca_file, cert_file, key_file, server_name, token_label)")]
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
    },
    #[error("{path}: set either `socket` or `address`, not both")]
    BothTransports { path: PathBuf },
    #[error("{path}: `address` needs `{missing}` (the daemon is reached over mutual TLS)")]
    MissingTls {
        path: PathBuf,
        missing: &'static str,
    },
    #[error("{path}: `{key}` only applies with `address`")]
    TlsWithoutAddress { path: PathBuf, key: &'static str },
}

/// How to reach the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tls(TlsTarget),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// `host:port`.
    pub address: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The name the daemon's certificate must carry (default: the host of `address`).
    pub server_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub target: Target,
    /// Overrides the label the daemon reports.
    pub token_label: Option<String>,
}

impl Config {
    /// The configuration the environment selects.
    pub fn from_env() -> Result<Config, ConfigError> {
        if let Some(path) = std::env::var_os("IRONSEAL_PKCS11_CONF") {
            return Config::from_file(Path::new(&path));
        }
        let socket = std::env::var_os("IRONSEAL_PKCS11_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        Ok(Config {
            target: Target::Unix(socket),
            token_label: None,
        })
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut socket = None;
        let mut address = None;
        let mut ca_file = None;
        let mut cert_file = None;
        let mut key_file = None;
        let mut server_name = None;
        let mut token_label = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line: index + 1,
                });
            };
            let value = unquote(value.trim()).to_string();
            let slot = match key.trim() {
                "socket" => &mut socket,
                "address" => &mut address,
                "ca_file" => &mut ca_file,
                "cert_file" => &mut cert_file,
                "key_file" => &mut key_file,
                "server_name" => &mut server_name,
                "token_label" => &mut token_label,
                other => {
                    return Err(ConfigError::UnknownKey {
                        path: path.to_path_buf(),
                        line: index + 1,
                        key: other.to_string(),
                    })
                }
            };
            *slot = Some(value);
        }
        let path = path.to_path_buf();
        let target = match (socket, address) {
            (Some(_), Some(_)) => return Err(ConfigError::BothTransports { path }),
            (socket, None) => {
                for (key, value) in [
                    ("ca_file", &ca_file),
                    ("cert_file", &cert_file),
                    ("key_file", &key_file),
                    ("server_name", &server_name),
                ] {
                    if value.is_some() {
                        return Err(ConfigError::TlsWithoutAddress { path, key });
                    }
                }
                Target::Unix(socket.map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from))
            }
            (None, Some(address)) => {
                let need = |value: Option<String>, missing| {
                    value.map(PathBuf::from).ok_or(ConfigError::MissingTls {
                        path: path.clone(),
                        missing,
                    })
                };
                let ca_file = need(ca_file, "ca_file")?;
                let cert_file = need(cert_file, "cert_file")?;
                let key_file = need(key_file, "key_file")?;
                let server_name = server_name.unwrap_or_else(|| host_of(&address).to_string());
                Target::Tls(TlsTarget {
                    address,
                    ca_file,
                    cert_file,
                    key_file,
                    server_name,
                })
            }
        };
        Ok(Config {
            target,
            token_label,
        })
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.conf"), text)
    }

    #[test]
    fn a_socket_file_with_comments_parses() {
        let config =
            parse("# the appliance\nsocket = /tmp/x.sock\ntoken_label = \"HSM one\"\n").unwrap();
        assert_eq!(config.target, Target::Unix(PathBuf::from("/tmp/x.sock")));
        assert_eq!(config.token_label.as_deref(), Some("HSM one"));
    }

    #[test]
    fn tls_takes_its_server_name_from_the_address() {
        let config = parse(
            "address = hsm.example:7443\nca_file = ca.pem\ncert_file = c.pem\nkey_file = k.pem\n",
        )
        .unwrap();
        let Target::Tls(tls) = config.target else {
            panic!("expected TLS");
        };
        assert_eq!(tls.server_name, "hsm.example");
        assert_eq!(host_of("[::1]:7443"), "::1");
    }

    #[test]
    fn unknown_keys_and_half_tls_are_refused() {
        assert!(matches!(
            parse("sockett = /x"),
            Err(ConfigError::UnknownKey { line: 1, .. })
        ));
        assert!(matches!(
            parse("address = h:1\nca_file = a"),
            Err(ConfigError::MissingTls {
                missing: "cert_file",
                ..
            })
        ));
        assert!(matches!(
            parse("socket = /x\naddress = h:1"),
            Err(ConfigError::BothTransports { .. })
        ));
        assert!(matches!(parse("socket"), Err(ConfigError::Syntax { .. })));
    }
}
