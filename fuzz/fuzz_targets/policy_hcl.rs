//! ACL policies as `sys/policies/acl` receives them (HCL or its JSON form), and the ACL
//! built from one that parses, asked about a few paths.
#![no_main]

use std::sync::Arc;

use engine::policy::{Acl, Operation, Policy};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const PATHS: &[&str] = &[
    "secret/data/app",
    "transit/encrypt/k",
    "sys/policies/acl/x",
    "",
];
const OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Update,
    Operation::List,
    Operation::Delete,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A stored policy loads with less checking than a written one: both must hold.
    let _ = Policy::load("fuzz", text);
    let Ok(policy) = Policy::parse("fuzz", text) else {
        return;
    };
    let acl = Acl::new(&[Arc::new(policy)]);
    let mut params = Map::new();
    params.insert("key".into(), Value::String("value".into()));
    for path in PATHS {
        let _ = acl.capabilities(path);
        let _ = acl.has_sudo(path);
        for op in OPERATIONS {
            let _ = acl.allows(path, *op, &params);
        }
    }
});
