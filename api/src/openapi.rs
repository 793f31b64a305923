//! The published API document, `openapi.json` beside this crate: OpenAPI 3.1 for `/v1`
//! (Vault's paths this appliance serves, the secrets engines at the dev server's mounts,
//! the auth methods at their default paths)
//! and `/api/v1`. Written, not generated (the routers are `match`es, not a table); the
//! tests here and in `kms` hold it to the routers, and `softhsm-tests/tests/openapi.rs`
//! runs Schemathesis with it against a daemon.

use std::sync::LazyLock;

use serde_json::Value;

const TEXT: &str = include_str!("../openapi.json");

/// Parsed once. The tests below parse it too, so a document that does not parse fails
/// them rather than a request.
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(TEXT).unwrap_or(Value::Null));

pub(crate) fn document() -> &'static Value {
    &DOCUMENT
}

/// One documented operation.
#[cfg(test)]
pub(crate) struct Operation {
    /// The path as documented, `{name}` for each parameter.
    pub path: String,
    /// Lower case, as OpenAPI names it.
    pub method: String,
    pub id: String,
    /// Vault's LIST, asked for with `?list=true`.
    pub list: bool,
    /// A value for each path parameter: the first of its `enum`, or one of its type.
    samples: Vec<(String, String)>,
}

#[cfg(test)]
impl Operation {
    /// The path below `prefix` with every parameter filled in.
    pub fn sample_path(&self) -> String {
        let mut path = self.path.clone();
        for (name, value) in &self.samples {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let prefix = if path.starts_with("/api/v1/") {
            "/api/v1/"
        } else {
            "/v1/"
        };
        path.trim_start_matches(prefix).to_string()
    }
}

#[cfg(test)]
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The documented operations on paths starting with `prefix`.
#[cfg(test)]
pub(crate) fn operations(prefix: &str) -> Vec<Operation> {
    let mut out = Vec::new();
    let Some(paths) = document()["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with(prefix)) {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let samples = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    let schema = &p["schema"];
                    let value = match (&schema["enum"][0], schema["format"].as_str()) {
                        (Value::String(v), _) => v.clone(),
                        (_, Some("uuid")) => "0b7e2c9e-4c1f-4d3e-9a7b-2f1e0c9d8a7b".into(),
                        _ if schema["type"] == "integer" => "1".into(),
                        _ => "x".into(),
                    };
                    (p["name"].as_str().unwrap_or_default().to_string(), value)
                })
                .collect();
            out.push(Operation {
                path: path.clone(),
                method: method.to_string(),
                id: op["operationId"].as_str().unwrap_or_default().to_string(),
                list: params
                    .iter()
                    .any(|p| p["name"] == "list" && p["in"] == "query" && p["required"] == true),
                samples,
            });
        }
    }
    out
}

/// Whether the document has `method` (any case) on `path`.
#[cfg(test)]
pub(crate) fn documents(path: &str, method: &str) -> bool {
    document()["paths"][path]
        .get(method.to_ascii_lowercase())
        .is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::Arc;

    use engine::policy::Operation as Verb;
    use engine::storage::{MemoryBackend, Storage};
    use engine::Core;
    use serde_json::Map;

    use super::*;
    use crate::request::VaultRequest;

    #[test]
    fn the_document_parses_and_names_each_operation_once() {
        let parsed: Value = serde_json::from_str(TEXT).expect("openapi.json is JSON");
        assert_eq!(parsed["openapi"], "3.1.0");
        let ops = operations("/");
        assert!(ops.len() > 100, "{}", ops.len());
        let mut ids = BTreeSet::new();
        for op in &ops {
            assert!(
                !op.id.is_empty(),
                "{} {} has no operationId",
                op.method,
                op.path
            );
            assert!(ids.insert(op.id.clone()), "operationId {} twice", op.id);
            for param in op.path.split('/').filter(|s| s.starts_with('{')) {
                let name = param.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op.samples.iter().any(|(n, _)| n == name),
                    "{} declares no parameter {name}",
                    op.id
                );
            }
        }
    }

    /// Every documented `/v1` operation reaches a handler: nothing answers "no handler
    /// for route" or 405, on a dev server with its root token and an empty request.
    #[tokio::test]
    async fn every_documented_v1_operation_is_served() {
        for op in operations("/v1/") {
            if op.path == "/v1/sys/metrics" {
                // Served by the listener itself, before the `/v1` router (server.rs).
                continue;
            }
            let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
            let init = core.dev_setup(None).await.expect("dev setup");
            let request = |verb, path: String, body| VaultRequest {
                op: verb,
                path,
                query: HashMap::new(),
                body,
                token: init.root_token.to_string(),
                remote_address: None,
                wrap_ttl: None,
                peer_chain: None,
            };
            // Auth methods are documented at the paths `bao auth enable <type>` gives them.
            let method = op
                .path
                .strip_prefix("/v1/auth/")
                .and_then(|p| p.split('/').next());
            if let Some(method) = method.filter(|m| *m != "token") {
                let mut body = Map::new();
                body.insert("type".into(), method.into());
                let enable = request(Verb::Update, format!("sys/auth/{method}"), body);
                crate::vault::handle(&core, enable)
                    .await
                    .unwrap_or_else(|e| panic!("enabling {method}: {:?}", e.errors));
            }
            // As in OpenBao, a setting of a role that does not exist is no route at all.
            if op.path.starts_with("/v1/auth/approle/role/{role_name}/") {
                let role = request(Verb::Update, "auth/approle/role/x".into(), Map::new());
                crate::vault::handle(&core, role)
                    .await
                    .unwrap_or_else(|e| panic!("writing role x: {:?}", e.errors));
            }
            let verb = match op.method.as_str() {
                "get" if op.list => Verb::List,
                "get" => Verb::Read,
                "post" | "put" => Verb::Update,
                "patch" => Verb::Patch,
                _ => Verb::Delete,
            };
            let path = op.sample_path();
            let req = request(verb, path.clone(), Map::new());
            if let Err(e) = crate::vault::handle(&core, req).await {
                let unrouted = e.status.as_u16() == 405
                    || e.errors
                        .iter()
                        .any(|m| m.starts_with("no handler for route"));
                assert!(!unrouted, "{} ({verb:?} {path}): {:?}", op.id, e.errors);
            }
        }
    }

    /// Each `sys/` family the appliance serves (the metrics' list of them) has a
    /// documented path.
    #[test]
    fn every_sys_family_is_documented() {
        let paths: Vec<String> = operations("/v1/sys/").into_iter().map(|o| o.path).collect();
        for family in crate::metrics::SYS_FAMILIES {
            let prefix = format!("/v1/sys/{family}");
            assert!(
                paths
                    .iter()
                    .any(|p| p == &prefix || p.starts_with(&format!("{prefix}/"))),
                "sys/{family} is served but not documented"
            );
        }
    }
}
