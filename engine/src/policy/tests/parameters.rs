//! `allowed_parameters`, `denied_parameters` and `required_parameters`: the examples of
//! OpenBao's "Policies" page and the tables of its `acl_test.go` (`TestACL_AllowOperation`,
//! `TestACL_ValuePermissions`, `TestACL_PolicyMerge`), checked through `Acl::allows`.

use serde_json::{json, Map, Value};

use super::{acl, no_data};
use crate::policy::permissions::{glob_match, ParameterMap, Permissions};
use crate::policy::{Acl, Operation, Policy};

/// The operations whose parameters Vault checks.
const CHECKED: [Operation; 4] = [
    Operation::Read,
    Operation::Create,
    Operation::Update,
    Operation::Patch,
];

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("request data must be an object, not {other}"),
    }
}

/// Asserts `allowed` for each `(path, data, allowed)` case, for create and update as
/// acl_test.go does.
fn check(a: &Acl, cases: &[(&str, Value, bool)]) {
    for (path, d, allowed) in cases {
        for op in [Operation::Create, Operation::Update] {
            assert_eq!(
                a.allows(path, op, &data(d.clone())),
                *allowed,
                "{op:?} {path} {d}"
            );
        }
    }
}

#[test]
fn globbed_strings_match_as_in_vault() {
    for (pattern, value, matches) in [
        ("foo-*", "foo-bar", true),
        ("foo-*", "foo-", true),
        ("foo-*", "bar-foo-", false),
        ("*-foo", "bar-foo", true),
        ("*-foo", "bar-foo-", false),
        ("*mid*", "amidb", true),
        ("*mid*", "mi", false),
        ("**", "", true),
        // One character: no wildcard, even `*` alone.
        ("*", "*", true),
        ("*", "anything", false),
        // A `*` inside is literal.
        ("a*b", "a*b", true),
        ("a*b", "axb", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
    ] {
        assert_eq!(glob_match(pattern, value), matches, "{pattern:?} {value:?}");
    }
}

/// The examples of the "Parameter constraints" section of OpenBao's policy docs.
#[test]
fn the_documented_examples() {
    let a = acl(&[r#"
        path "secret/profile" {
            capabilities = ["create"]
            required_parameters = ["name", "id"]
        }
        path "auth/userpass/users/*" {
            capabilities = ["update"]
            allowed_parameters = {
                "password" = []
            }
        }
        path "transit/keys/*" {
            capabilities = ["create", "update"]
            allowed_parameters = {
                "auto_rotate_period" = ["8h", "24h", "5d"]
            }
        }
        path "secret/foo" {
            capabilities = ["create"]
            allowed_parameters = {
                "bar" = ["zip", "zap"]
                "*"   = []
            }
        }
        path "auth/token/roles/*" {
            capabilities = ["create", "update"]
            denied_parameters = {
                "allowed_policies" = ["admin"]
            }
        }
        path "transit/denied/*" {
            capabilities = ["create", "update"]
            denied_parameters = {
                "*" = []
            }
        }
        path "secret/glob" {
            capabilities = ["create"]
            allowed_parameters = {
                "bar" = ["foo-*"]
            }
        }
        path "secret/nostore" {
            capabilities = ["create"]
            required_parameters = ["no_store"]
            denied_parameters = {
                "no_store" = [false, "false"]
            }
        }
    "#]);
    let create = |path: &str, d: Value| a.allows(path, Operation::Create, &data(d));
    let update = |path: &str, d: Value| a.allows(path, Operation::Update, &data(d));

    assert!(create("secret/profile", json!({"name": "n", "id": "1"})));
    assert!(create(
        "secret/profile",
        json!({"name": "n", "id": "1", "x": 1})
    ));
    assert!(!create("secret/profile", json!({"name": "n"})));
    assert!(!create("secret/profile", json!({})));

    assert!(update(
        "auth/userpass/users/bob",
        json!({"password": "anything"})
    ));
    assert!(!update(
        "auth/userpass/users/bob",
        json!({"password": "p", "token_ttl": "1h"})
    ));

    for period in ["8h", "24h", "5d"] {
        assert!(create(
            "transit/keys/k",
            json!({ "auto_rotate_period": period })
        ));
    }
    assert!(!create(
        "transit/keys/k",
        json!({"auto_rotate_period": "1h"})
    ));
    assert!(!create("transit/keys/k", json!({"exportable": true})));
    // A request without parameters meets any allowed list.
    assert!(create("transit/keys/k", json!({})));

    assert!(create("secret/foo", json!({"bar": "zip", "other": "x"})));
    assert!(create("secret/foo", json!({"bar": "zap"})));
    assert!(!create("secret/foo", json!({"bar": "zop", "other": "x"})));
    assert!(create("secret/foo", json!({"anything": ["at", "all"]})));

    assert!(update(
        "auth/token/roles/r",
        json!({"allowed_policies": "dev"})
    ));
    assert!(!update(
        "auth/token/roles/r",
        json!({"allowed_policies": "admin"})
    ));

    assert!(!create("transit/denied/k", json!({"type": "rsa-2048"})));
    assert!(create("transit/denied/k", json!({})));

    assert!(create("secret/glob", json!({"bar": "foo-1"})));
    assert!(!create("secret/glob", json!({"bar": "bar-foo-1"})));
    assert!(!create("secret/glob", json!({"baz": "foo-1"})));

    // The "default values" limitation, and its fix with required_parameters.
    assert!(!create(
        "secret/nostore",
        json!({"no_store": false, "value": "v"})
    ));
    assert!(!create(
        "secret/nostore",
        json!({"no_store": "false", "value": "v"})
    ));
    assert!(create(
        "secret/nostore",
        json!({"no_store": true, "value": "v"})
    ));
    assert!(!create("secret/nostore", json!({"value": "v"})));
}

/// `permissionsPolicy` and the cases of `TestACL_AllowOperation` that do not involve
/// response wrapping (which is refused here; see parse.rs), each parameter set to "".
#[test]
fn acl_test_allow_operation() {
    let a = acl(&[r#"
        name = "dev"
        path "dev/*" {
            policy = "write"
            allowed_parameters = { "zip" = [] }
        }
        path "foo/bar" {
            policy = "write"
            denied_parameters = { "zap" = [] }
        }
        path "broken/phone" {
            policy = "write"
            allowed_parameters = { "steve" = [] }
            denied_parameters = { "steve" = [] }
        }
        path "hello/world" {
            policy = "write"
            allowed_parameters = { "*" = [] }
            denied_parameters = { "*" = [] }
        }
        path "tree/fort" {
            policy = "write"
            allowed_parameters = { "*" = [] }
            denied_parameters = { "foo" = [] }
        }
        path "fruit/apple" {
            policy = "write"
            allowed_parameters = { "pear" = [] }
            denied_parameters = { "*" = [] }
        }
        path "cold/weather" {
            policy = "write"
            allowed_parameters = {}
            denied_parameters = {}
        }
        path "var/aws" {
            policy = "write"
            allowed_parameters = { "*" = [] }
            denied_parameters = {
                "soft" = []
                "warm" = []
                "kitty" = []
            }
        }
        path "var/req" {
            policy = "write"
            required_parameters = ["foo"]
        }
    "#]);
    let params =
        |names: &[&str]| Value::Object(names.iter().map(|n| (n.to_string(), json!(""))).collect());
    check(
        &a,
        &[
            ("dev/ops", params(&["zip"]), true),
            ("foo/bar", params(&["zap"]), false),
            ("foo/bar", params(&["zip"]), true),
            ("broken/phone", params(&["steve"]), false),
            ("hello/world", params(&["one"]), false),
            ("tree/fort", params(&["one"]), true),
            ("tree/fort", params(&["foo"]), false),
            ("fruit/apple", params(&["pear"]), false),
            ("fruit/apple", params(&["one"]), false),
            ("cold/weather", params(&["four"]), true),
            ("var/aws", params(&["cold", "warm", "kitty"]), false),
            ("var/req", params(&["cold", "warm", "kitty"]), false),
            ("var/req", params(&["cold", "warm", "kitty", "foo"]), true),
        ],
    );
}

/// `valuePermissionsPolicy` and every case of `TestACL_ValuePermissions`.
#[test]
fn acl_test_value_permissions() {
    let a = acl(&[r#"
        name = "op"
        path "dev/*" {
            policy = "write"
            allowed_parameters = { "allow" = ["good"] }
        }
        path "foo/bar" {
            policy = "write"
            denied_parameters = { "deny" = ["bad*"] }
        }
        path "foo/baz" {
            policy = "write"
            allowed_parameters = { "ALLOW" = ["good"] }
            denied_parameters = { "dEny" = ["bad"] }
        }
        path "fizz/buzz" {
            policy = "write"
            allowed_parameters = {
                "allow_multi" = ["good", "good1", "good2", "*good3"]
                "allow" = ["good"]
            }
            denied_parameters = { "deny_multi" = ["bad", "bad1", "bad2"] }
        }
        path "test/types" {
            policy = "write"
            allowed_parameters = {
                "map" = [{"good" = "one"}]
                "int" = [1, 2]
                "bool" = [false]
            }
            denied_parameters = {}
        }
        path "test/star" {
            policy = "write"
            allowed_parameters = {
                "*" = []
                "foo" = []
                "bar" = [false]
            }
            denied_parameters = {}
        }
    "#]);
    check(
        &a,
        &[
            ("dev/ops", json!({"allow": "good"}), true),
            ("dev/ops", json!({"allow": "bad"}), false),
            ("foo/bar", json!({"deny": "bad"}), false),
            ("foo/bar", json!({"deny": "bad glob"}), false),
            ("foo/bar", json!({"deny": "good"}), true),
            ("foo/bar", json!({"allow": "good"}), true),
            ("foo/bar", json!({"deny": null}), true),
            ("foo/bar", json!({"allow": null}), true),
            ("foo/baz", json!({"aLLow": "good"}), true),
            ("foo/baz", json!({"deny": "bad"}), false),
            ("foo/baz", json!({"deny": "good"}), false),
            ("foo/baz", json!({"allow": "good", "deny": "bad"}), false),
            ("foo/baz", json!({"deny": "good", "allow": "bad"}), false),
            ("foo/baz", json!({"deNy": "bad", "allow": "good"}), false),
            ("foo/baz", json!({"aLLow": "bad"}), false),
            ("foo/baz", json!({"Neither": "bad"}), false),
            ("foo/baz", json!({"allow": null}), false),
            ("fizz/buzz", json!({"allow_multi": "good"}), true),
            ("fizz/buzz", json!({"allow_multi": "good1"}), true),
            ("fizz/buzz", json!({"allow_multi": "good2"}), true),
            ("fizz/buzz", json!({"allow_multi": "glob good2"}), false),
            ("fizz/buzz", json!({"allow_multi": "glob good3"}), true),
            ("fizz/buzz", json!({"allow_multi": "bad"}), false),
            (
                "fizz/buzz",
                json!({"allow_multi": "good1", "allow": "good"}),
                true,
            ),
            ("fizz/buzz", json!({"deny_multi": "bad2"}), false),
            (
                "fizz/buzz",
                json!({"deny_multi": "good", "allow_multi": "good2"}),
                false,
            ),
            ("test/types", json!({"map": {"good": "one"}}), true),
            ("test/types", json!({"map": {"bad": "one"}}), false),
            ("test/types", json!({"int": 1}), true),
            ("test/types", json!({"int": 3}), false),
            ("test/types", json!({"bool": false}), true),
            ("test/types", json!({"bool": true}), false),
            ("test/star", json!({"anything": true}), true),
            ("test/star", json!({"foo": true}), true),
            ("test/star", json!({"bar": false}), true),
            ("test/star", json!({"bar": true}), false),
        ],
    );
}

/// Where this differs from Vault on purpose: a listed value and a request value of
/// another JSON type compare by their text, since the handlers read `"true"` and `true`
/// (or `"1"` and `1`) alike and a strict comparison would let a caller step around a
/// denied value by changing its type.
#[test]
fn values_compare_across_json_types_by_their_text() {
    let a = acl(&[r#"
        path "transit/keys/*" {
            capabilities = ["create", "update"]
            denied_parameters = { "exportable" = ["true"], "key_size" = [1024] }
        }
        path "allow/*" {
            capabilities = ["create", "update"]
            allowed_parameters = { "n" = [1, "2"], "flag" = [false] }
        }
    "#]);
    check(
        &a,
        &[
            ("transit/keys/k", json!({"exportable": true}), false),
            ("transit/keys/k", json!({"exportable": "true"}), false),
            ("transit/keys/k", json!({"exportable": false}), true),
            ("transit/keys/k", json!({"key_size": "1024"}), false),
            ("transit/keys/k", json!({"key_size": 1024}), false),
            ("transit/keys/k", json!({"key_size": 1024.0}), false),
            ("transit/keys/k", json!({"key_size": 2048}), true),
            ("allow/x", json!({"n": "1"}), true),
            ("allow/x", json!({"n": 2}), true),
            ("allow/x", json!({"n": 3}), false),
            ("allow/x", json!({"flag": "false"}), true),
            ("allow/x", json!({"flag": "true"}), false),
            // Lists and maps compare whole.
            ("allow/x", json!({"n": [1]}), false),
        ],
    );
}

/// Denied values are matched against every reading a handler could give the request
/// value (its boolean meaning, the items of a comma-separated string or of an array), so
/// another spelling cannot step around them; allowed values stay strict, so a spelling
/// that is not listed is refused.
#[test]
fn denied_values_match_every_reading_allowed_values_stay_strict() {
    let a = acl(&[r#"
        path "transit/keys/*" {
            capabilities = ["create", "update"]
            denied_parameters = { "exportable" = ["true"], "derived" = [true], "type" = ["rsa*"] }
        }
        path "allow/*" {
            capabilities = ["create", "update"]
            allowed_parameters = { "flag" = [false], "type" = ["aes*"], "n" = [1] }
        }
    "#]);
    let mut cases = Vec::new();
    for name in ["exportable", "derived"] {
        for (value, allowed) in [
            (json!("1"), false),
            (json!("t"), false),
            (json!("T"), false),
            (json!("TRUE"), false),
            (json!("True"), false),
            (json!(1), false),
            (json!(2), false),
            (json!(-1), false),
            (json!(0.5), false),
            (json!(["false", "true"]), false),
            (json!(["1"]), false),
            (json!("false,true"), false),
            (json!("0"), true),
            (json!("f"), true),
            (json!(""), true),
            (json!(0), true),
            (json!(0.0), true),
            (json!(["false"]), true),
        ] {
            cases.push(("transit/keys/k", json!({ name: value }), allowed));
        }
    }
    cases.extend([
        ("transit/keys/k", json!({"type": "a,b"}), true),
        (
            "transit/keys/k",
            json!({"type": "aes256-gcm96,rsa-2048"}),
            false,
        ),
        (
            "transit/keys/k",
            json!({"type": ["aes256-gcm96", "rsa-2048"]}),
            false,
        ),
        ("transit/keys/k", json!({"type": " rsa-4096 "}), true),
        ("transit/keys/k", json!({"type": "aes, rsa-4096"}), false),
        ("allow/x", json!({"flag": false}), true),
        ("allow/x", json!({"flag": "false"}), true),
        ("allow/x", json!({"flag": "0"}), false),
        ("allow/x", json!({"flag": "f"}), false),
        ("allow/x", json!({"flag": 0}), false),
        ("allow/x", json!({"flag": ""}), false),
        ("allow/x", json!({"n": 1}), true),
        ("allow/x", json!({"n": "1"}), true),
        ("allow/x", json!({"n": true}), false),
        ("allow/x", json!({"n": "t"}), false),
        ("allow/x", json!({"type": "aes128-gcm96"}), true),
        (
            "allow/x",
            json!({"type": "aes128-gcm96,aes256-gcm96"}),
            true,
        ),
        ("allow/x", json!({"type": "aes128-gcm96,rsa-2048"}), false),
        ("allow/x", json!({"type": "a,b"}), false),
        ("allow/x", json!({"type": ["aes128-gcm96"]}), false),
    ]);
    check(&a, &cases);
}

/// The handlers' boolean reading and the ACL's are one function.
#[test]
fn boolean_spellings_are_read_once() {
    use crate::request_values::{bool_from_json, bool_from_text};
    for t in ["true", "1", "t", "T", "TRUE", "True"] {
        assert_eq!(bool_from_text(t), Some(true), "{t:?}");
    }
    for f in ["false", "0", "f", "F", "FALSE", "False", ""] {
        assert_eq!(bool_from_text(f), Some(false), "{f:?}");
    }
    for other in ["yes", "tRUE", " true", "2"] {
        assert_eq!(bool_from_text(other), None, "{other:?}");
    }
    assert_eq!(bool_from_json(&json!(2)), Some(true));
    assert_eq!(bool_from_json(&json!(0)), Some(false));
    assert_eq!(bool_from_json(&json!(null)), None);
    assert_eq!(bool_from_json(&json!(["true"])), None);
}

/// `mergingPolicies` and `TestACL_PolicyMerge`: the permissions each pattern ends with.
#[test]
fn acl_test_policy_merge() {
    let text = r#"
        name = "ops"
        path "foo/bar" {
            policy = "write"
            denied_parameters = { "baz" = [] }
            required_parameters = ["baz"]
        }
        path "foo/bar" {
            policy = "write"
            denied_parameters = { "zip" = [] }
        }
        path "hello/universe" {
            policy = "write"
            allowed_parameters = { "foo" = [] }
            required_parameters = ["foo"]
        }
        path "hello/universe" {
            policy = "write"
            allowed_parameters = { "bar" = [] }
            required_parameters = ["bar"]
        }
        path "allow/all" {
            policy = "write"
            allowed_parameters = {
                "test" = []
                "test1" = ["foo"]
            }
        }
        path "allow/all" {
            policy = "write"
            allowed_parameters = { "*" = [] }
        }
        path "allow/all1" {
            policy = "write"
            allowed_parameters = { "*" = [] }
        }
        path "allow/all1" {
            policy = "write"
            allowed_parameters = {
                "test" = []
                "test1" = ["foo"]
            }
        }
        path "deny/all" {
            policy = "write"
            denied_parameters = { "test" = [] }
        }
        path "deny/all" {
            policy = "write"
            denied_parameters = { "*" = [] }
        }
        path "deny/all1" {
            policy = "write"
            denied_parameters = { "*" = [] }
        }
        path "deny/all1" {
            policy = "write"
            denied_parameters = { "test" = [] }
        }
        path "value/merge" {
            policy = "write"
            allowed_parameters = { "test" = [1, 2] }
            denied_parameters = { "test" = [1, 2] }
        }
        path "value/merge" {
            policy = "write"
            allowed_parameters = { "test" = [3, 4] }
            denied_parameters = { "test" = [3, 4] }
        }
        path "value/empty" {
            policy = "write"
            allowed_parameters = { "empty" = [] }
            denied_parameters = { "empty" = [1] }
        }
        path "value/empty" {
            policy = "write"
            allowed_parameters = { "empty" = [1] }
            denied_parameters = { "empty" = [] }
        }
    "#;
    let policy = Policy::parse("ops", text).unwrap();
    let merged = |pattern: &str| {
        let mut rules = policy.rules.iter().filter(|r| r.pattern == pattern);
        let mut p = Permissions::from_rule(rules.next().unwrap());
        rules.for_each(|r| p.merge(r));
        p
    };
    let map = |v: Value| -> ParameterMap { serde_json::from_value(v).unwrap() };
    let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (pattern, allowed, denied, required) in [
        (
            "foo/bar",
            json!({}),
            json!({"zip": [], "baz": []}),
            strings(&["baz"]),
        ),
        (
            "hello/universe",
            json!({"foo": [], "bar": []}),
            json!({}),
            strings(&["foo", "bar"]),
        ),
        (
            "allow/all",
            json!({"*": [], "test": [], "test1": ["foo"]}),
            json!({}),
            vec![],
        ),
        (
            "allow/all1",
            json!({"*": [], "test": [], "test1": ["foo"]}),
            json!({}),
            vec![],
        ),
        ("deny/all", json!({}), json!({"*": [], "test": []}), vec![]),
        ("deny/all1", json!({}), json!({"*": [], "test": []}), vec![]),
        (
            "value/merge",
            json!({"test": [3, 4, 1, 2]}),
            json!({"test": [3, 4, 1, 2]}),
            vec![],
        ),
        (
            "value/empty",
            json!({"empty": []}),
            json!({"empty": []}),
            vec![],
        ),
    ] {
        let p = merged(pattern);
        assert_eq!(p.allowed, map(allowed), "{pattern} allowed");
        assert_eq!(p.denied, map(denied), "{pattern} denied");
        assert_eq!(p.required, required, "{pattern} required");
    }

    // And what the merged rules admit.
    let a = acl(&[text]);
    check(
        &a,
        &[
            ("foo/bar", json!({"baz": "x"}), false),
            ("foo/bar", json!({"zip": "x", "baz": "x"}), false),
            ("foo/bar", json!({}), false),
            ("hello/universe", json!({"foo": 1, "bar": 2}), true),
            ("hello/universe", json!({"foo": 1}), false),
            (
                "hello/universe",
                json!({"foo": 1, "bar": 2, "baz": 3}),
                false,
            ),
            ("allow/all", json!({"test1": "bar"}), false),
            ("allow/all", json!({"test1": "foo", "other": 1}), true),
            ("deny/all", json!({"other": 1}), false),
            ("deny/all", json!({}), true),
            ("value/merge", json!({"test": 3}), false),
            ("value/merge", json!({"test": 5}), false),
            ("value/empty", json!({"empty": 7}), false),
        ],
    );
}

/// The same pattern in two policies merges as in one; `deny` from either wins and drops
/// the constraints; a policy without constraints does not lift another's.
#[test]
fn merging_across_policies() {
    let restricted = r#"path "transit/keys/*" {
        capabilities = ["create", "update"]
        denied_parameters = { "exportable" = [] }
    }"#;
    let plain = r#"path "transit/keys/*" { capabilities = ["create", "update", "read"] }"#;
    let allowing = r#"path "transit/keys/*" {
        capabilities = ["create", "update"]
        allowed_parameters = { "type" = ["aes*"], "exportable" = [] }
    }"#;
    let deny = r#"path "transit/keys/*" {
        capabilities = ["deny"]
        allowed_parameters = { "type" = [] }
    }"#;
    for texts in [[restricted, plain], [plain, restricted]] {
        let a = acl(&texts);
        check(
            &a,
            &[
                ("transit/keys/k", json!({"exportable": true}), false),
                ("transit/keys/k", json!({"type": "rsa-2048"}), true),
            ],
        );
        assert!(a.allows("transit/keys/k", Operation::Read, &no_data()));
    }
    for texts in [[restricted, allowing], [allowing, restricted]] {
        let a = acl(&texts);
        check(
            &a,
            &[
                // Denied still wins over allowed.
                ("transit/keys/k", json!({"exportable": false}), false),
                ("transit/keys/k", json!({"type": "aes128-gcm96"}), true),
                ("transit/keys/k", json!({"type": "rsa-2048"}), false),
                ("transit/keys/k", json!({"derived": true}), false),
            ],
        );
    }
    for texts in [[restricted, deny], [deny, restricted]] {
        let a = acl(&texts);
        for op in CHECKED {
            assert!(!a.allows("transit/keys/k", op, &no_data()), "{op:?}");
        }
    }
    // A more specific pattern governs alone: the parent's constraints do not apply.
    let a = acl(&[
        restricted,
        r#"path "transit/keys/free" { capabilities = ["create", "update"] }"#,
    ]);
    check(
        &a,
        &[
            ("transit/keys/free", json!({"exportable": true}), true),
            ("transit/keys/other", json!({"exportable": true}), false),
        ],
    );
}

/// Vault checks parameters on read, create, update and patch only; `sudo` does not skip
/// the check and root does.
#[test]
fn which_operations_are_checked() {
    let a = acl(&[r#"path "secret/*" {
        capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]
        denied_parameters = { "*" = [] }
        required_parameters = ["version"]
    }"#]);
    let d = data(json!({"x": "1"}));
    for op in CHECKED {
        assert!(!a.allows("secret/a", op, &d), "{op:?}");
        assert!(!a.allows("secret/a", op, &no_data()), "{op:?}");
    }
    for op in [Operation::Delete, Operation::List] {
        assert!(a.allows("secret/a", op, &d), "{op:?}");
        assert!(a.allows("secret/a", op, &no_data()), "{op:?}");
    }
    // Only the required name itself, lowercased, satisfies required_parameters.
    let a = acl(&[r#"path "secret/*" {
        capabilities = ["read"]
        required_parameters = ["Version"]
    }"#]);
    assert!(a.allows("secret/a", Operation::Read, &data(json!({"version": "1"}))));
    assert!(!a.allows("secret/a", Operation::Read, &data(json!({"Version": "1"}))));
    assert!(Acl::root().allows("secret/a", Operation::Update, &d));
}

/// `"*"` means any parameter whatever its list holds, so values there are refused rather
/// than silently dropped.
#[test]
fn a_star_parameter_takes_only_an_empty_list() {
    for key in ["allowed_parameters", "denied_parameters"] {
        let text = format!(
            r#"path "secret/*" {{
                capabilities = ["update"]
                {key} = {{ "*" = ["x"] }}
            }}"#
        );
        let e = Policy::parse("p", &text).unwrap_err().to_string();
        assert!(e.contains(&format!("{key} cannot be enforced")), "{e}");
        assert!(e.contains("takes only []"), "{e}");
    }
}
