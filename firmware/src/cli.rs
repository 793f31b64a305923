//! Vault-style flags: `-name=value`, `-name value`, `--name=value`, and bare `-flag` for
//! booleans, so scripts written for `vault server` work unchanged.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Flags {
    values: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("unexpected argument {0:?}")]
    Positional(String),
}

impl Flags {
    /// `booleans` may stand alone; `valued` need a value.
    pub fn parse(args: &[String], booleans: &[&str], valued: &[&str]) -> Result<Self, FlagError> {
        let mut values = HashMap::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(FlagError::Positional(arg.clone()));
            };
            let (name, inline) = match stripped.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (stripped.to_string(), None),
            };
            if booleans.contains(&name.as_str()) {
                values.insert(name, inline.unwrap_or_else(|| "true".into()));
            } else if valued.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| FlagError::MissingValue(name.clone()))?,
                };
                values.insert(name, v);
            } else {
                return Err(FlagError::Unknown(name));
            }
        }
        Ok(Flags { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false" && v != "0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_vault_style_flags() {
        let f = Flags::parse(
            &args(&[
                "-dev",
                "-dev-root-token-id=root",
                "--dev-listen-address",
                "127.0.0.1:1",
            ]),
            &["dev"],
            &["dev-root-token-id", "dev-listen-address"],
        )
        .unwrap();
        assert!(f.is_set("dev"));
        assert_eq!(f.get("dev-root-token-id"), Some("root"));
        assert_eq!(f.get("dev-listen-address"), Some("127.0.0.1:1"));
        assert!(Flags::parse(&args(&["-nope"]), &[], &[]).is_err());
        assert!(Flags::parse(&args(&["-config"]), &[], &["config"]).is_err());
    }
}
