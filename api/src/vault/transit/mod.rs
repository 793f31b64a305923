//! Transit below its mount: one file per path family, as OpenBao's
//! `builtin/logical/transit` has (`path_keys.go`, `path_encrypt.go`, ...). Each handler
//! decodes its request into an engine operation and shapes Vault's answer from the
//! operation's typed outcome; ACL checks use the full request path, as Vault's do.

mod backup;
mod batch;
mod datakey;
mod encrypt;
mod export;
mod hash;
mod hmac;
mod import;
mod keys;
mod random;
mod results;
mod sign;
#[cfg(test)]
mod tests;
mod verify;

use std::sync::Arc;

use engine::mounts::MountRef;
use engine::ops::transit::{self as ops, Asked, Encoding};
use engine::ops::Access;
use engine::policy::Operation;
use engine::{Core, EngineError};
use serde_json::Value;

use self::batch::ciphertexts;
use self::results::{on_items, Failures};
use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::Reply;
use crate::vault::{refuse, unsupported_operation};

/// What a path and verb below a transit mount ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    KeyList,
    KeyRead(&'a str),
    KeyCreate(&'a str),
    KeyDelete(&'a str),
    KeyConfig(&'a str),
    KeyRotate(&'a str),
    KeyTrim(&'a str),
    KeyImport(&'a str),
    KeyImportVersion(&'a str),
    WrappingKey,
    Backup(&'a str),
    /// `restore` and `restore/:name`: what follows `restore/` ("" for none; a name
    /// holding `/` is refused, as Vault's key names hold none).
    Restore(&'a str),
    /// Vault's upsert: creates the key on first use.
    Encrypt(&'a str),
    /// Every failure to decrypt a well-formed ciphertext, an unknown key name included,
    /// answers 400 "Unable to decrypt the secret".
    Decrypt(&'a str),
    /// Ciphertexts re-encrypted under the latest (or a given) version; batch answers are
    /// 200 with per-item errors, as Vault's.
    Rewrap(&'a str),
    Datakey {
        kind: &'a str,
        name: &'a str,
    },
    Sign {
        name: &'a str,
        algorithm: Option<&'a str>,
    },
    Verify {
        name: &'a str,
        algorithm: Option<&'a str>,
    },
    Hmac {
        name: &'a str,
        algorithm: Option<&'a str>,
    },
    Random {
        first: Option<&'a str>,
        second: Option<&'a str>,
    },
    Hash {
        algorithm: Option<&'a str>,
    },
    Export {
        kind: &'a str,
        name: &'a str,
        version: Option<&'a str>,
    },
    /// A known path that does not take this verb.
    UnsupportedOperation,
    NoRoute,
}

fn endpoint(rest: &str, op: Operation) -> Endpoint<'_> {
    use Endpoint::*;
    use Operation::{List, Read, Update};
    let parts: Vec<&str> = rest.split('/').collect();
    let (endpoint, verb) = match parts.as_slice() {
        ["keys"] | ["keys", ""] => (KeyList, List),
        ["keys", name] => {
            return match op {
                Read => KeyRead(name),
                Update => KeyCreate(name),
                Operation::Delete => KeyDelete(name),
                _ => UnsupportedOperation,
            }
        }
        ["keys", name, "config"] => (KeyConfig(name), Update),
        ["keys", name, "rotate"] => (KeyRotate(name), Update),
        ["keys", name, "trim"] => (KeyTrim(name), Update),
        ["keys", name, "import"] => (KeyImport(name), Update),
        ["keys", name, "import_version"] => (KeyImportVersion(name), Update),
        ["wrapping_key"] => (WrappingKey, Read),
        ["backup", name] => (Backup(name), Read),
        ["restore", ..] => (Restore(rest.strip_prefix("restore/").unwrap_or("")), Update),
        ["encrypt", name] => (Encrypt(name), Update),
        ["decrypt", name] => (Decrypt(name), Update),
        ["rewrap", name] => (Rewrap(name), Update),
        ["datakey", kind, name] => (Datakey { kind, name }, Update),
        ["sign", name, algorithm @ ..] if algorithm.len() <= 1 => {
            let algorithm = algorithm.first().copied();
            (Sign { name, algorithm }, Update)
        }
        ["verify", name, algorithm @ ..] if algorithm.len() <= 1 => {
            let algorithm = algorithm.first().copied();
            (Verify { name, algorithm }, Update)
        }
        ["hmac", name, algorithm @ ..] if algorithm.len() <= 1 => {
            let algorithm = algorithm.first().copied();
            (Hmac { name, algorithm }, Update)
        }
        ["random", segments @ ..] if segments.len() <= 2 => {
            let first = segments.first().copied();
            let second = segments.get(1).copied();
            (Random { first, second }, Update)
        }
        ["hash", algorithm @ ..] if algorithm.len() <= 1 => {
            let algorithm = algorithm.first().copied();
            (Hash { algorithm }, Update)
        }
        ["export", kind, name, version @ ..] if version.len() <= 1 => {
            let version = version.first().copied();
            (
                Export {
                    kind,
                    name,
                    version,
                },
                Read,
            )
        }
        _ => return NoRoute,
    };
    if op == verb {
        endpoint
    } else {
        UnsupportedOperation
    }
}

pub async fn handle(
    core: &Arc<Core>,
    req: &VaultRequest,
    mount: MountRef,
    rest: &str,
) -> Result<Reply, ApiError> {
    use Endpoint::*;
    match endpoint(rest, req.op) {
        KeyList => keys::list(core, req, mount).await,
        KeyRead(name) => keys::read(core, req, mount, name).await,
        KeyCreate(name) => keys::create(core, req, mount, name).await,
        KeyDelete(name) => keys::delete(core, req, mount, name).await,
        KeyConfig(name) => keys::config(core, req, mount, name).await,
        KeyRotate(name) => keys::rotate(core, req, mount, name).await,
        KeyTrim(name) => keys::trim(core, req, mount, name).await,
        KeyImport(name) => import::import(core, req, mount, name).await,
        KeyImportVersion(name) => import::import_version(core, req, mount, name).await,
        WrappingKey => import::wrapping_key(core, req, mount).await,
        Backup(name) => backup::backup(core, req, mount, name).await,
        Restore(name) => backup::restore(core, req, mount, name).await,
        Encrypt(name) => encrypt::handle(core, req, mount, name).await,
        Decrypt(name) => {
            let request = ciphertexts(req).map(|items| Asked {
                what: ops::Decrypt,
                items,
            });
            on_items(core, req, mount, name, request, Failures::SetStatus).await
        }
        Rewrap(name) => {
            let request = ciphertexts(req).map(|items| Asked {
                what: ops::Rewrap,
                items,
            });
            on_items(core, req, mount, name, request, Failures::InEntries).await
        }
        Datakey { kind, name } => datakey::handle(core, req, mount, kind, name).await,
        Sign { name, algorithm } => {
            let request = sign::request(req, algorithm);
            on_items(core, req, mount, name, request, Failures::InEntries).await
        }
        Verify { name, algorithm } => {
            let request = verify::request(req, algorithm);
            on_items(core, req, mount, name, request, Failures::InEntries).await
        }
        Hmac { name, algorithm } => {
            let request = hmac::request(req, algorithm);
            on_items(core, req, mount, name, request, Failures::InEntries).await
        }
        Random { first, second } => random::handle(core, req, first, second).await,
        Hash { algorithm } => hash::handle(core, req, algorithm).await,
        Export {
            kind,
            name,
            version,
        } => export::handle(core, req, mount, kind, name, version).await,
        UnsupportedOperation => unsupported_operation(core, req).await,
        NoRoute => {
            let no_route = EngineError::NoRoute(req.path.clone());
            refuse(core, req, Access::Nobody, no_route).await
        }
    }
}

/// An integer field that may be negative (Vault answers negative versions with its own
/// messages rather than a type error).
fn i64_field(req: &VaultRequest, name: &str) -> Result<Option<i64>, ApiError> {
    let bad = || ApiError::bad(format!("field {name:?} must be an integer"));
    match req.field(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A string field, "" when absent.
fn string_or_empty(req: &VaultRequest, name: &str) -> Result<String, ApiError> {
    Ok(req.str_field(name)?.unwrap_or_default())
}

/// A non-empty string field, else `default`.
fn str_or(req: &VaultRequest, name: &str, default: &str) -> Result<String, ApiError> {
    Ok(req
        .str_field(name)?
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into()))
}

/// The encoding `format` names (`random` and `hash` show the name differently).
fn encoding(format: &str, shown: &str) -> Result<Encoding, ApiError> {
    Encoding::parse(format).ok_or_else(|| {
        ApiError::bad(format!(
            "unsupported encoding format {shown}; must be \"hex\" or \"base64\""
        ))
    })
}

/// Adds Vault's `warnings` to an answer when there are any.
fn with_warnings(mut reply: Reply, warnings: Vec<String>) -> Reply {
    if !warnings.is_empty() {
        if let Some(body) = reply.body.as_mut() {
            body["warnings"] = Value::from(warnings);
        }
    }
    reply
}
