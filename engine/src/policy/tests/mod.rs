use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Acl, Policy};

mod acl;
mod parameters;
mod parse;

/// The parameters of a request that carries none.
fn no_data() -> Map<String, Value> {
    Map::new()
}

/// The ACL of one policy per text, named p0, p1, ...
fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Arc::new(Policy::parse(&format!("p{i}"), t).unwrap()))
        .collect();
    Acl::new(&policies)
}

fn caps(a: &Acl, path: &str) -> Vec<&'static str> {
    a.capabilities(path).names()
}
