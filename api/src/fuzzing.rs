//! What the fuzz targets in `fuzz/` drive: an appliance on in-memory storage, reached
//! through each door's own decoding (the `/v1` and `/api/v1` request parsers and the
//! PKCS#11 frame reader) without a socket. Compiled only with `--cfg fuzzing`, which
//! `cargo fuzz` sets, so no other build sees it.

use std::sync::Arc;

use bytes::Bytes;
use engine::storage::{MemoryBackend, Storage};
use engine::Core;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method};
use serde_json::Value;

use crate::kms::ApiRequest;
use crate::pkcs11::dispatch::{dispatch, Peer};
use crate::request::{parse_query, VaultRequest};

/// An in-memory appliance and the runtime its operations run on.
pub struct Appliance {
    runtime: tokio::runtime::Runtime,
    core: Arc<Core>,
    root_token: String,
    /// Hex, as `sys/init` answers them.
    unseal_keys: Vec<String>,
}

/// A door's answer: its status and JSON body.
pub type Answer = (u16, Value);

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("fuzzing: no tokio runtime: {e}"),
    }
}

impl Appliance {
    /// Initialised and unsealed as `server -dev` makes it: kv v2 at `secret/`, transit at
    /// `transit/`, and a root token.
    pub fn dev() -> Self {
        let runtime = runtime();
        let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
        let init = match runtime.block_on(core.dev_setup(None)) {
            Ok(init) => init,
            Err(e) => panic!("fuzzing: dev setup failed: {e}"),
        };
        Appliance {
            runtime,
            core,
            root_token: init.root_token.to_string(),
            unseal_keys: init
                .keys
                .iter()
                .map(|k| hex::encode(k.as_bytes()))
                .collect(),
        }
    }

    /// Initialised through `sys/init` with `shares` unseal keys of which `threshold`
    /// unseal, and left sealed.
    pub fn sealed(shares: u8, threshold: u8) -> Self {
        let mut appliance = Appliance {
            runtime: runtime(),
            core: Core::new(Storage::new(Arc::new(MemoryBackend::new()))),
            root_token: String::new(),
            unseal_keys: Vec::new(),
        };
        let body = serde_json::json!({"secret_shares": shares, "secret_threshold": threshold});
        let (status, init) = appliance.v1(b"PUT", "sys/init", "", body.to_string().as_bytes());
        if status != 200 {
            panic!("fuzzing: sys/init answered {status}: {init}");
        }
        appliance.root_token = init["root_token"].as_str().unwrap_or_default().to_string();
        appliance.unseal_keys = init["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        appliance
    }

    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    pub fn unseal_keys(&self) -> &[String] {
        &self.unseal_keys
    }

    pub fn is_sealed(&self) -> bool {
        self.core.is_sealed()
    }

    /// A `/v1` request, from its method, its path below `/v1/` with an optional query,
    /// its token and its body bytes, as the HTTP door reads them.
    pub fn v1(&self, method: &[u8], path_and_query: &str, token: &str, body: &[u8]) -> Answer {
        let Ok(method) = Method::from_bytes(method) else {
            return (405, Value::Null);
        };
        let (path, query) = split_query(path_and_query);
        let headers = token_headers(token);
        let req = match VaultRequest::parse(method, path, query, &headers, body_bytes(body)) {
            Ok(req) => req,
            Err(e) => return (e.status.as_u16(), e.body_json()),
        };
        match self.runtime.block_on(crate::vault::handle(&self.core, req)) {
            Ok(reply) => (reply.status.as_u16(), reply.body.unwrap_or(Value::Null)),
            Err(e) => (e.status.as_u16(), e.body_json()),
        }
    }

    /// A `/api/v1` request, as [`Appliance::v1`] takes it.
    pub fn api_v1(&self, method: &[u8], path_and_query: &str, token: &str, body: &[u8]) -> Answer {
        let Ok(method) = Method::from_bytes(method) else {
            return (405, Value::Null);
        };
        let (path, query) = split_query(path_and_query);
        let headers = token_headers(token);
        let query = parse_query(query);
        let body = body_bytes(body);
        let req = match ApiRequest::parse(method, path, query, &headers, &body) {
            Ok(req) => req,
            Err(p) => return (p.status.as_u16(), p.body()),
        };
        match self.runtime.block_on(crate::kms::handle(&self.core, req)) {
            Ok(reply) => (reply.status.as_u16(), reply.body.unwrap_or(Value::Null)),
            Err(p) => (p.status.as_u16(), p.body()),
        }
    }

    /// A PKCS#11 call (read from its frame with `pkcs11_wire::frame::read`, as the
    /// listener reads one) answered by the daemon's dispatcher.
    pub fn pkcs11(&self, call: pkcs11_wire::Call) -> pkcs11_wire::Reply {
        let peer = Peer {
            uid: Some(0),
            remote: None,
            instance: [7; 16],
        };
        self.runtime.block_on(dispatch(&self.core, &peer, call))
    }
}

fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

fn token_headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(token) {
        headers.insert("x-vault-token", value);
    }
    headers
}

fn body_bytes(body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(body)
}
