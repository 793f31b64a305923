use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{acl, caps, no_data};
use crate::policy::rule::parse_duration;
use crate::policy::{validate_name, Acl, Capabilities, Operation, Policy, PolicyError};

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse("p", text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn several_path_blocks_and_an_optional_name() {
    let p = parse(
        r#"
        name = "app"
        # comments in every HCL style
        // are fine
        /* too */
        path "secret/data/app/*" { capabilities = ["read", "list"] }
        path "secret/metadata/app/*" {
            capabilities = [
                "list",
            ]
        }
        "#,
    )
    .unwrap();
    assert_eq!(p.name, "p");
    assert!(p.raw.contains("name = \"app\""));
    assert_eq!(p.rules.len(), 2);
    assert_eq!(p.rules[0].pattern, "secret/data/app/*");
    assert_eq!(
        p.rules[0].capabilities,
        Capabilities::READ.union(Capabilities::LIST)
    );
    assert!(!p.templated);
    assert!(parse("").unwrap().rules.is_empty());
}

#[test]
fn an_unknown_capability_is_named() {
    let e = parse(r#"path "secret/*" { capabilities = ["read", "reed"] }"#).unwrap_err();
    assert_eq!(
        e,
        PolicyError::UnknownCapability {
            path: Some("secret/*".into()),
            capability: "reed".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "failed to parse policy: path \"secret/*\": invalid capability \"reed\" (expected \
         create, read, update, patch, delete, list, sudo or deny)"
    );
    // Policies cannot grant root; Vault has no such capability either.
    assert!(err(r#"path "a" { capabilities = ["root"] }"#).contains("\"root\""));
}

#[test]
fn the_deprecated_policy_shorthand() {
    use Capabilities as C;
    let rule = |s: &str| {
        parse(&format!(r#"path "a/*" {{ policy = "{s}" }}"#)).map(|p| p.rules[0].capabilities)
    };
    let write = C::CREATE
        .union(C::READ)
        .union(C::UPDATE)
        .union(C::DELETE)
        .union(C::LIST);
    assert_eq!(rule("read"), Ok(C::READ.union(C::LIST)));
    assert_eq!(rule("write"), Ok(write));
    assert_eq!(rule("sudo"), Ok(write.union(C::SUDO)));
    assert_eq!(rule("deny"), Ok(C::DENY));
    assert!(!rule("write").unwrap().contains(C::PATCH));
    assert!(rule("admin")
        .unwrap_err()
        .to_string()
        .contains("invalid policy \"admin\""));
    // The shorthand adds to an explicit list, except deny, which replaces it.
    let p = parse(
        r#"
        path "a" {
            policy = "read"
            capabilities = ["update"]
        }
        path "b" {
            policy = "deny"
            capabilities = ["update"]
        }
        "#,
    )
    .unwrap();
    assert_eq!(
        p.rules[0].capabilities,
        C::READ.union(C::LIST).union(C::UPDATE)
    );
    assert_eq!(p.rules[1].capabilities, C::DENY);
}

#[test]
fn a_path_block_needs_capabilities_or_a_policy() {
    assert_eq!(
        err(r#"path "secret/*" { allowed_parameters = { "a" = [] } }"#),
        "failed to parse policy: path \"secret/*\": no capabilities: add capabilities = \
         [\"read\", ...] to the path block"
    );
    assert!(err(r#"path "secret/*" {}"#).contains("no capabilities"));
    // An explicit empty list is a rule granting nothing, as in Vault.
    let p = parse(r#"path "secret/x" { capabilities = [] }"#).unwrap();
    assert!(p.rules[0].capabilities.is_empty());
}

#[test]
fn parameter_and_wrapping_constraints_are_kept() {
    let text = r#"
        path "secret/foo" {
            capabilities = ["create"]
            allowed_parameters = {
                "Bar" = ["zip", "zap"]
                "*"   = []
            }
            denied_parameters {
                salt = [1, true]
            }
            required_parameters = ["bar"]
            min_wrapping_ttl = "1m"
            max_wrapping_ttl = 3600
        }
        "#;
    let p = parse(text).unwrap();
    let r = &p.rules[0];
    let allowed = r.allowed_parameters.as_ref().unwrap();
    assert_eq!(allowed["bar"], vec![json!("zip"), json!("zap")]);
    assert!(allowed["*"].is_empty());
    assert_eq!(
        r.denied_parameters.as_ref().unwrap()["salt"],
        vec![json!(1), json!(true)]
    );
    assert_eq!(r.required_parameters, vec!["bar".to_string()]);
    assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(60)));
    assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(3600)));
    assert!(err(r#"path "a" {
            capabilities = ["read"]
            min_wrapping_ttl = "1h"
            max_wrapping_ttl = "1m"
        }"#)
    .contains("max_wrapping_ttl cannot be less than min_wrapping_ttl"));
    assert!(err(r#"path "a" {
            capabilities = ["read"]
            min_wrapping_ttl = "soon"
        }"#)
    .contains("error parsing min_wrapping_ttl"));
}

/// Per-path MFA, control groups and event subscriptions do not exist here: a policy
/// asking for them is refused rather than loaded without them.
#[test]
fn constraints_the_appliance_cannot_enforce_are_refused() {
    for (key, body, why) in [
        ("mfa_methods", r#"mfa_methods = ["totp"]"#, "MFA"),
        (
            "subscribe_event_types",
            r#"subscribe_event_types = ["kv*"]"#,
            "event",
        ),
        (
            "control_group",
            r#"control_group {
                ttl = "4h"
                factor "approvers" {
                    identity {
                        group_names = ["managers"]
                        approvals = 1
                    }
                }
            }"#,
            "control groups",
        ),
    ] {
        let text = format!("path \"secret/*\" {{\n capabilities = [\"read\"]\n {body}\n }}");
        let e = err(&text);
        assert!(
            e.starts_with(&format!(
                "failed to parse policy: path \"secret/*\": {key} cannot be enforced: "
            )),
            "{key}: {e}"
        );
        assert!(e.contains(why), "{key}: {e}");
        // Loaded from storage (written before they were refused), the rule grants nothing.
        let stored = Policy::load("p", &text).unwrap();
        let a = Acl::new(&[Arc::new(stored)]);
        assert!(!a.allows("secret/x", Operation::Read, &no_data()), "{key}");
    }
    // Vault's "no constraint" spellings are harmless and load.
    let p = parse(
        r#"
        path "secret/*" {
            capabilities = ["read"]
            comment = "who asked for this"
            min_wrapping_ttl = 0
            max_wrapping_ttl = ""
            mfa_methods = []
            subscribe_event_types = []
        }
        "#,
    )
    .unwrap();
    assert_eq!(p.rules[0].capabilities, Capabilities::READ);
    assert!(acl(&[&p.raw]).allows("secret/x", Operation::Read, &no_data()));
}

#[test]
fn unknown_keys_and_blocks_are_refused() {
    assert_eq!(
        err(r#"path "a" { capabilitiez = ["read"] }"#),
        "failed to parse policy: path \"a\": invalid key \"capabilitiez\""
    );
    assert!(err(r#"pathz "a" { capabilities = ["read"] }"#).contains("invalid key \"pathz\""));
    assert!(err(r#"policy = "read""#).contains("invalid key \"policy\""));
    assert!(err(r#"path "a" "b" { capabilities = ["read"] }"#).contains("exactly one path"));
    assert!(err(r#"path { capabilities = ["read"] }"#).contains("exactly one path"));
    assert!(err(r#"path "a" { capabilities = "read" + "list" }"#).contains("literal"));
    assert!(err(r#"path "a" { capabilities = [var.cap] }"#).contains("literal"));
    assert!(err(r#"path "a" { capabilities = [1] }"#).contains("list of strings"));
    assert!(err(r#"path "a" { policy = ["read"] }"#).contains("policy must be a string"));
}

#[test]
fn a_lone_capability_string_is_a_list_as_in_hcl1() {
    let p = parse(r#"path "a" { capabilities = "read" }"#).unwrap();
    assert_eq!(p.rules[0].capabilities, Capabilities::READ);
}

#[test]
fn syntax_errors_give_the_line() {
    let e = parse("path \"a\" {\n  capabilities = [\"read\"\n}\n").unwrap_err();
    let PolicyError::Syntax { line, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(line, 3);
    let msg = e.to_string();
    assert!(
        msg.starts_with("failed to parse policy: line 3, column "),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    assert!(matches!(
        parse("path \"a\" {"),
        Err(PolicyError::Syntax { line: 1, .. })
    ));
}

#[test]
fn wildcards_that_cannot_mean_what_they_say_are_refused() {
    assert!(err(r#"path "secret/*/config" { capabilities = ["read"] }"#)
        .contains("only a wildcard as the last character"));
    assert!(err(r#"path "**" { capabilities = ["read"] }"#).contains("last character"));
    assert!(err(r#"path "secret/+*" { capabilities = ["read"] }"#).contains("'+*' is forbidden"));
    assert!(
        err(r#"path "secret/{{identity.entity.id" { capabilities = ["read"] }"#)
            .contains("templating")
    );
}

#[test]
fn identity_templated_paths_grant_nothing() {
    let p = parse(
        r#"
        path "secret/{{identity.entity.id}}/*" { capabilities = ["read"] }
        path "secret/shared" { capabilities = ["read"] }
        "#,
    )
    .unwrap();
    assert!(p.templated);
    assert_eq!(p.rules.len(), 1);
    // They are still checked.
    assert!(
        err(r#"path "secret/{{identity.entity.id}}" { capabilities = ["reed"] }"#).contains("reed")
    );
}

#[test]
fn a_leading_slash_in_a_pattern_is_dropped() {
    let p = parse(r#"path "/secret/*" { capabilities = ["read"] }"#).unwrap();
    assert_eq!(p.rules[0].pattern, "secret/*");
}

#[test]
fn the_json_form() {
    let p = parse(
        r#"{
            "name": "j",
            "path": {
                "secret/*": {"capabilities": ["read"]},
                "secret/admin": {"policy": "deny"}
            }
        }"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 2);
    let a = acl(&[&p.raw]);
    assert!(a.allows("secret/x", Operation::Read, &no_data()));
    assert_eq!(caps(&a, "secret/admin"), vec!["deny"]);
    // HCL1's list form, which allows a pattern twice.
    let p = parse(
        r#"{"path": [
            {"kv/*": {"capabilities": ["read"]}},
            {"kv/*": {"capabilities": ["list"]}}
        ]}"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 2);
    assert_eq!(caps(&acl(&[&p.raw]), "kv/x"), vec!["read", "list"]);
    assert!(matches!(
        parse("{\n\"path\": {\n\"a\": {\"capabilities\": [\"read\"]\n}"),
        Err(PolicyError::Syntax { line: 4, .. })
    ));
    assert!(err(r#"{"paths": {}}"#).contains("invalid key \"paths\""));
    assert!(err(r#"{"path": {"a": {"capabilities": ["nope"]}}}"#).contains("\"nope\""));
    assert!(err(r#"{"path": {"a": {"capabilitys": ["read"]}}}"#).contains("invalid key"));
    assert!(err(r#"{"path": "a"}"#).contains("maps each path"));
}

#[test]
fn durations_as_vault_reads_them() {
    let d = |v: serde_json::Value| parse_duration(&v);
    assert_eq!(d(json!(90)), Ok(Duration::from_secs(90)));
    assert_eq!(d(json!(1.5)), Ok(Duration::from_millis(1500)));
    assert_eq!(d(json!("90")), Ok(Duration::from_secs(90)));
    assert_eq!(d(json!("")), Ok(Duration::ZERO));
    assert_eq!(d(json!("2d")), Ok(Duration::from_secs(2 * 86_400)));
    assert_eq!(d(json!("1h30m")), Ok(Duration::from_secs(5400)));
    assert_eq!(d(json!("1.5h")), Ok(Duration::from_secs(5400)));
    assert_eq!(d(json!("300ms")), Ok(Duration::from_millis(300)));
    assert_eq!(d(json!("10s")), Ok(Duration::from_secs(10)));
    for bad in [
        json!("-1h"),
        json!("1x"),
        json!("h"),
        json!("+"),
        json!(-1),
        json!(true),
    ] {
        assert!(d(bad.clone()).is_err(), "{bad}");
    }
    assert!(d(json!("99999999999999999999999h")).is_err());
}

#[test]
fn policy_names() {
    for ok in [
        "default",
        "app-read",
        "team_a.kv",
        "ops@eu",
        "team/app",
        "a1",
    ] {
        assert_eq!(validate_name(ok), Ok(()), "{ok}");
    }
    assert_eq!(
        validate_name("root"),
        Err(PolicyError::Immutable("root".into()))
    );
    assert_eq!(
        validate_name("root").unwrap_err().to_string(),
        "cannot update \"root\" policy"
    );
    assert!(validate_name("Admin")
        .unwrap_err()
        .to_string()
        .contains("lowercase"));
    let long = "a".repeat(129);
    for bad in [
        "",
        "a b",
        "a//b",
        "/a",
        "a/",
        "../x",
        "a/./b",
        "é",
        long.as_str(),
    ] {
        assert!(
            matches!(validate_name(bad), Err(PolicyError::BadName { .. })),
            "{bad}"
        );
    }
}
