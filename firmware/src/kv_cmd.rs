//! `ironseal kv ...`: the secrets of a kv v2 mount of a running appliance, for people who
//! do not have the `bao` CLI, with the commands of Clever KMS's `clever kms`:
//!
//! ```text
//! ironseal kv                         list the secrets (also `ironseal kv list [PREFIX]`)
//! ironseal kv get NAME                print a secret
//! ironseal kv put NAME VALUE|K=V...   create a secret
//! ironseal kv patch NAME VALUE|K=V... update a secret (a new version, other fields kept)
//! ironseal kv destroy NAME            destroy a secret, every version and its metadata
//! ```
//!
//! A bare VALUE is the secret's field `value`; `K=V` pairs are fields. Reached like the
//! `bao` CLI: `VAULT_ADDR` (or `BAO_ADDR`, or `-address`), `VAULT_TOKEN` (or `BAO_TOKEN`),
//! and for HTTPS `VAULT_CACERT` (or `BAO_CACERT`, or `-ca-cert`); `-mount` names the
//! mount (default `secret`).

use std::process::ExitCode;

use hyper::Method;
use serde_json::{json, Map, Value};

use crate::cli::Flags;
use crate::vault_client::{Client, Error};

pub const USAGE: &str = "Usage: ironseal kv [<command> [args]] [flags]

Commands (a kv version 2 mount; VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT as for bao):
    list [PREFIX]               List the secrets (the default command)
    get NAME                    Print a secret: its value, or its fields as KEY=VALUE
    put NAME VALUE | K=V...     Create a secret; refused if it exists (use patch)
    patch NAME VALUE | K=V...   Update a secret: a new version with these fields changed
    destroy NAME                Destroy a secret: every version and its metadata

A bare VALUE is stored as the field \"value\".

Flags: -mount=PATH (default secret), -address=URL (VAULT_ADDR), -ca-cert=FILE (VAULT_CACERT)";

/// The field a bare value is stored in.
const VALUE_FIELD: &str = "value";

/// What went wrong, as the command prints it.
enum Failure {
    /// Bad arguments: the usage follows.
    Usage(String),
    NotFound(String),
    Other(String),
}

/// Splits positional arguments from flags (which may come anywhere, as with bao).
fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    args.iter()
        .cloned()
        .partition(|a| !a.starts_with('-') || a == "-")
}

pub fn run(args: &[String]) -> ExitCode {
    if args
        .first()
        .is_some_and(|a| matches!(a.as_str(), "-h" | "-help" | "--help" | "help"))
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (positional, flag_args) = split_args(args);
    let flags = match Flags::parse(&flag_args, &[], &["mount", "address", "ca-cert"]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let outcome = Client::from_env(
        flags.get("address"),
        flags.get("ca-cert"),
        "access to the kv mount",
    )
    .map_err(Failure::Other)
    .and_then(|client| {
        let kv = Kv {
            client,
            mount: flags.get("mount").unwrap_or("secret").trim_matches('/'),
        };
        kv.command(&positional)
    });
    match outcome {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(m)) => {
            eprintln!("{m}\n\n{USAGE}");
            ExitCode::from(1)
        }
        Err(Failure::NotFound(m)) | Err(Failure::Other(m)) => {
            eprintln!("Error: {m}");
            ExitCode::from(2)
        }
    }
}

struct Kv<'a> {
    client: Client,
    mount: &'a str,
}

impl Kv<'_> {
    fn command(&self, args: &[String]) -> Result<String, Failure> {
        let (command, rest) = match args.split_first() {
            None => ("list", &[][..]),
            Some((c, rest)) => (c.as_str(), rest),
        };
        match (command, rest) {
            ("list", []) => self.list(""),
            ("list", [prefix]) => self.list(prefix),
            ("get", [name]) => self.get(name),
            ("put", [name, fields @ ..]) if !fields.is_empty() => {
                self.put(name, parse_fields(fields)?)
            }
            ("patch", [name, fields @ ..]) if !fields.is_empty() => {
                self.patch(name, parse_fields(fields)?)
            }
            ("destroy", [name]) => self.destroy(name),
            ("list" | "get" | "put" | "patch" | "destroy", _) => {
                Err(Failure::Usage(format!("wrong arguments for \"{command}\"")))
            }
            (other, _) => Err(Failure::Usage(format!("unknown kv command {other:?}"))),
        }
    }

    fn path(&self, family: &str, name: &str) -> Result<String, Failure> {
        let name = name.trim_matches('/');
        if name.is_empty() {
            return Err(Failure::Usage("a secret name is required".into()));
        }
        Ok(format!("{}/{family}/{name}", self.mount))
    }

    /// One request; a 404 becomes [`Failure::NotFound`] naming `what`.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, Failure> {
        match self.client.request(method, path, body) {
            Ok((_, v)) => Ok(v),
            Err(Error::Status { status: 404, .. }) => {
                Err(Failure::NotFound(format!("Secret not found: {what}")))
            }
            Err(Error::Status { status, message }) => Err(Failure::Other(format!(
                "Request failed ({status}): {message}"
            ))),
            Err(Error::Failed(m)) => Err(Failure::Other(m)),
        }
    }

    fn list(&self, prefix: &str) -> Result<String, Failure> {
        let prefix = prefix.trim_matches('/');
        let path = if prefix.is_empty() {
            format!("{}/metadata/", self.mount)
        } else {
            format!("{}/metadata/{prefix}/", self.mount)
        };
        let list = Method::from_bytes(b"LIST").map_err(|e| Failure::Other(e.to_string()))?;
        let keys = match self.call(list, &path, None, prefix) {
            Ok(v) => v["data"]["keys"].as_array().cloned().unwrap_or_default(),
            // Vault answers an empty listing with 404.
            Err(Failure::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(keys
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The newest live version's fields and its version number.
    fn read(&self, name: &str) -> Result<(Map<String, Value>, u64), Failure> {
        let v = self.call(Method::GET, &self.path("data", name)?, None, name)?;
        let fields = v["data"]["data"].as_object().cloned().unwrap_or_default();
        let version = v["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        Ok((fields, version))
    }

    fn get(&self, name: &str) -> Result<String, Failure> {
        let (fields, _) = self.read(name)?;
        Ok(render(&fields))
    }

    fn write(&self, name: &str, fields: Map<String, Value>, cas: u64) -> Result<u64, Failure> {
        let body = json!({"options": {"cas": cas}, "data": fields});
        let v = self.call(Method::POST, &self.path("data", name)?, Some(&body), name)?;
        Ok(v["data"]["version"].as_u64().unwrap_or(0))
    }

    fn put(&self, name: &str, fields: Map<String, Value>) -> Result<String, Failure> {
        // cas 0: written only if the secret does not exist yet.
        match self.write(name, fields, 0) {
            Ok(version) => Ok(format!("Secret {name} created (version {version})")),
            Err(Failure::Other(m)) if m.contains("check-and-set") => Err(Failure::Other(format!(
                "Secret {name} already exists: use \"ironseal kv patch\" to update it"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Read, merge, write with check-and-set on the version read: a concurrent update
    /// makes this one fail rather than silently undo it.
    fn patch(&self, name: &str, changes: Map<String, Value>) -> Result<String, Failure> {
        let (mut fields, version) = self.read(name)?;
        fields.extend(changes);
        match self.write(name, fields, version) {
            Ok(version) => Ok(format!("Secret {name} updated (version {version})")),
            Err(Failure::Other(m)) if m.contains("check-and-set") => Err(Failure::Other(format!(
                "Secret {name} was changed meanwhile: run the patch again"
            ))),
            Err(e) => Err(e),
        }
    }

    fn destroy(&self, name: &str) -> Result<String, Failure> {
        let path = self.path("metadata", name)?;
        // Vault answers a delete of nothing with 204: say so rather than claim a destroy.
        self.call(Method::GET, &path, None, name)?;
        self.call(Method::DELETE, &path, None, name)?;
        Ok(format!("Secret {name} destroyed"))
    }
}

/// `VALUE` alone, or `K=V` pairs.
fn parse_fields(args: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut fields = Map::new();
    if let [value] = args {
        if !value.contains('=') {
            fields.insert(VALUE_FIELD.into(), Value::String(value.clone()));
            return Ok(fields);
        }
    }
    for arg in args {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                fields.insert(k.into(), Value::String(v.into()));
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "invalid field {arg:?}: expected KEY=VALUE, or one bare value"
                )))
            }
        }
    }
    Ok(fields)
}

/// A secret holding only `value` prints as that value, so scripts can capture it;
/// otherwise one `KEY=VALUE` line per field, sorted.
fn render(fields: &Map<String, Value>) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if fields.len() == 1 {
        if let Some(v) = fields.get(VALUE_FIELD) {
            return text(v);
        }
    }
    let mut lines: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    lines.sort();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_bare_value_is_the_value_field_and_pairs_are_fields() {
        let f = parse_fields(&args(&["s3cret"])).ok().unwrap();
        assert_eq!(f.get("value"), Some(&Value::from("s3cret")));
        assert_eq!(render(&f), "s3cret");
        let f = parse_fields(&args(&["user=jo", "pass=a=b"])).ok().unwrap();
        assert_eq!(render(&f), "pass=a=b\nuser=jo");
        assert!(parse_fields(&args(&["user=jo", "bare"])).is_err());
        assert!(parse_fields(&args(&["=x", "y=z"])).is_err());
    }

    #[test]
    fn flags_may_come_anywhere() {
        let (pos, flags) = split_args(&args(&["get", "-mount=kv", "name"]));
        assert_eq!(pos, args(&["get", "name"]));
        assert_eq!(flags, args(&["-mount=kv"]));
    }
}
