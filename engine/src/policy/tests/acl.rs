use std::sync::Arc;

use super::{acl, caps, no_data};
use crate::policy::{Acl, Capabilities, Operation, Policy, DEFAULT_POLICY};

const ALL_OPS: [Operation; 6] = [
    Operation::Create,
    Operation::Read,
    Operation::Update,
    Operation::Patch,
    Operation::Delete,
    Operation::List,
];

/// Which of `winner` and `loser` (patterns, in either order and in one or two policies)
/// governs `path`: the winner grants `update`, the loser `read`.
fn assert_wins(winner: &str, loser: &str, path: &str) {
    let w = format!(r#"path "{winner}" {{ capabilities = ["update"] }}"#);
    let l = format!(r#"path "{loser}" {{ capabilities = ["read"] }}"#);
    for texts in [
        vec![format!("{w}\n{l}")],
        vec![format!("{l}\n{w}")],
        vec![w.clone(), l.clone()],
        vec![l.clone(), w.clone()],
    ] {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = acl(&texts);
        assert_eq!(
            caps(&a, path),
            vec!["update"],
            "{winner:?} should govern {path:?} over {loser:?}"
        );
    }
}

#[test]
fn a_pattern_without_wildcards_matches_exactly() {
    let a = acl(&[r#"path "secret/data/app" { capabilities = ["read"] }"#]);
    assert_eq!(caps(&a, "secret/data/app"), vec!["read"]);
    assert!(caps(&a, "secret/data/app/x").is_empty());
    assert!(caps(&a, "secret/data/ap").is_empty());
    assert!(caps(&a, "secret/data/apps").is_empty());
}

#[test]
fn a_trailing_glob_is_a_prefix_match() {
    let a = acl(&[r#"path "secret/data/app*" { capabilities = ["read", "list"] }"#]);
    for p in [
        "secret/data/app",
        "secret/data/apple",
        "secret/data/app/x/y",
    ] {
        assert_eq!(caps(&a, p), vec!["read", "list"], "{p}");
    }
    assert!(caps(&a, "secret/data/ap").is_empty());
    let a = acl(&[r#"path "*" { capabilities = ["read"] }"#]);
    assert!(a.allows("anything/at/all", Operation::Read, &no_data()));
}

#[test]
fn plus_matches_exactly_one_segment() {
    let a = acl(&[r#"
        path "secret/+/config" { capabilities = ["read"] }
        path "kv/+/app/*" { capabilities = ["list"] }
        path "+/leading" { capabilities = ["update"] }
    "#]);
    assert_eq!(caps(&a, "secret/team/config"), vec!["read"]);
    assert!(caps(&a, "secret/config").is_empty());
    assert!(caps(&a, "secret/a/b/config").is_empty());
    assert!(caps(&a, "secret/team/config/more").is_empty());
    assert_eq!(caps(&a, "kv/x/app/"), vec!["list"]);
    assert_eq!(caps(&a, "kv/x/app/deep/er"), vec!["list"]);
    assert!(caps(&a, "kv/x/app").is_empty());
    assert_eq!(caps(&a, "any/leading"), vec!["update"]);
    // Vault lets '+' take an empty segment too.
    assert_eq!(caps(&a, "secret//config"), vec!["read"]);
}

#[test]
fn plus_inside_a_segment_is_literal() {
    let a = acl(&[r#"path "lang/c++" { capabilities = ["read"] }"#]);
    assert_eq!(caps(&a, "lang/c++"), vec!["read"]);
    assert!(caps(&a, "lang/cxx").is_empty());
}

#[test]
fn an_exact_match_always_wins() {
    assert_wins("secret/foo", "secret/foo*", "secret/foo");
    assert_wins("secret/foo", "secret/+", "secret/foo");
    assert_wins("secret/foo", "*", "secret/foo");
    // Even a deny on a broader pattern does not reach an exact rule.
    let a = acl(&[r#"
        path "secret/*" { capabilities = ["deny"] }
        path "secret/open" { capabilities = ["read"] }
    "#]);
    assert!(a.allows("secret/open", Operation::Read, &no_data()));
    assert!(!a.allows("secret/closed", Operation::Read, &no_data()));
}

#[test]
fn priority_a_later_first_wildcard_wins() {
    assert_wins("secret/data/*", "secret/*", "secret/data/x");
    assert_wins("foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz");
    // A glob after a '+' position beats the '+'.
    assert_wins("foo/a*", "foo/+", "foo/ab");
    // Position beats every later criterion: here more '+' segments and a glob.
    assert_wins("foo/bar/+/+/*", "foo/+/bar/baz/qux", "foo/bar/bar/baz/qux");
    // The broader rule still governs what the narrower one does not match.
    let a = acl(&[r#"
        path "secret/*" { capabilities = ["read"] }
        path "secret/data/*" { capabilities = ["update"] }
    "#]);
    assert_eq!(caps(&a, "secret/other"), vec!["read"]);
}

#[test]
fn priority_not_ending_in_a_glob_wins() {
    assert_wins("foo/+/bar", "foo/+/ba*", "foo/x/bar");
    assert_wins("foo/+", "foo/*", "foo/x");
    let a = acl(&[r#"
        path "foo/+" { capabilities = ["update"] }
        path "foo/*" { capabilities = ["read"] }
    "#]);
    assert_eq!(caps(&a, "foo/x/y"), vec!["read"]);
}

#[test]
fn priority_fewer_plus_segments_win() {
    assert_wins("foo/+/bar/baz", "foo/+/+/baz", "foo/a/bar/baz");
    assert_wins("foo/+/bar/*", "foo/+/+/*", "foo/a/bar/baz");
}

#[test]
fn priority_the_longer_pattern_wins() {
    assert_wins("foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/baz");
    assert_wins("secret/ab*", "secret/a*", "secret/abc");
}

#[test]
fn priority_the_lexicographically_greater_pattern_wins() {
    assert_wins("foo/+/b/+", "foo/+/+/c", "foo/a/b/c");
    assert_wins("+/a/+", "+/+/b", "x/a/b");
    assert_wins("+/a/+/b*", "+/+/a/b*", "q/a/a/bc");
}

#[test]
fn deny_in_the_governing_rule_means_nothing() {
    let a = acl(&[r#"path "secret/*" { capabilities = ["read", "sudo", "deny"] }"#]);
    assert_eq!(caps(&a, "secret/x"), vec!["deny"]);
    for op in ALL_OPS {
        assert!(!a.allows("secret/x", op, &no_data()), "{op:?}");
    }
    assert!(!a.has_sudo("secret/x"));
}

#[test]
fn deny_from_any_policy_on_the_same_pattern_wins() {
    let a = acl(&[
        r#"path "kv/*" { capabilities = ["read", "list", "sudo"] }"#,
        r#"path "kv/*" { capabilities = ["deny"] }"#,
        r#"path "kv/*" { capabilities = ["update"] }"#,
    ]);
    assert_eq!(caps(&a, "kv/x"), vec!["deny"]);
    assert!(!a.allows("kv/x", Operation::Read, &no_data()));
    assert!(!a.has_sudo("kv/x"));
}

#[test]
fn deny_on_a_broader_pattern_does_not_reach_a_more_specific_one() {
    let a = acl(&[
        r#"path "secret/*" { capabilities = ["deny"] }"#,
        r#"path "secret/app/*" { capabilities = ["read"] }"#,
    ]);
    assert!(a.allows("secret/app/x", Operation::Read, &no_data()));
    assert!(!a.allows("secret/other", Operation::Read, &no_data()));
    let a = acl(&[r#"
        path "secret/*" { capabilities = ["read", "sudo"] }
        path "secret/locked" { capabilities = ["deny"] }
    "#]);
    assert!(a.has_sudo("secret/x"));
    assert!(!a.has_sudo("secret/locked"));
    assert!(!a.allows("secret/locked", Operation::Read, &no_data()));
}

#[test]
fn the_same_pattern_in_several_policies_unions_capabilities() {
    let a = acl(&[
        r#"path "kv/*" { capabilities = ["read"] }"#,
        r#"path "kv/*" { capabilities = ["list"] }"#,
        r#"path "kv/*" { capabilities = ["sudo"] }"#,
        r#"path "kv/exact" { capabilities = ["create"] }"#,
        r#"path "kv/exact" { capabilities = ["patch"] }"#,
    ]);
    assert_eq!(caps(&a, "kv/x"), vec!["sudo", "read", "list"]);
    assert!(a.has_sudo("kv/x"));
    assert_eq!(caps(&a, "kv/exact"), vec!["create", "patch"]);
    assert!(a.allows("kv/exact", Operation::Patch, &no_data()));
    // A glob and an exact pattern with the same stem are different rules.
    let a = acl(&[
        r#"path "kv/a" { capabilities = ["read"] }"#,
        r#"path "kv/a*" { capabilities = ["list"] }"#,
    ]);
    assert_eq!(caps(&a, "kv/a"), vec!["read"]);
    assert_eq!(caps(&a, "kv/ab"), vec!["list"]);
}

#[test]
fn only_the_governing_rule_counts() {
    // Vault does not add a broader rule's capabilities to a more specific one.
    let a = acl(&[
        r#"path "kv/*" { capabilities = ["read"] }"#,
        r#"path "kv/app/*" { capabilities = ["list"] }"#,
    ]);
    assert_eq!(caps(&a, "kv/app/x"), vec!["list"]);
    assert!(!a.allows("kv/app/x", Operation::Read, &no_data()));
    // An explicitly empty rule governs too, and grants nothing.
    let a = acl(&[r#"
        path "kv/*" { capabilities = ["read"] }
        path "kv/hidden" { capabilities = [] }
    "#]);
    assert!(caps(&a, "kv/hidden").is_empty());
    assert!(!a.allows("kv/hidden", Operation::Read, &no_data()));
}

#[test]
fn list_requests_fall_back_to_the_path_without_its_trailing_slash() {
    let a = acl(&[r#"
        path "secret/metadata/app" { capabilities = ["list", "read"] }
        path "kv/+/dir" { capabilities = ["list", "read"] }
    "#]);
    assert!(a.allows("secret/metadata/app/", Operation::List, &no_data()));
    assert!(!a.allows("secret/metadata/app/", Operation::Read, &no_data()));
    assert!(a.allows("kv/x/dir/", Operation::List, &no_data()));
    assert!(!a.allows("kv/x/dir/", Operation::Read, &no_data()));
    // sys/capabilities answers as for a list request, as Vault's does.
    assert_eq!(caps(&a, "secret/metadata/app/"), vec!["read", "list"]);
    assert!(!a.has_sudo("secret/metadata/app/"));
}

#[test]
fn leading_slashes_on_request_paths_are_ignored() {
    let a = acl(&[r#"path "/secret/x" { capabilities = ["read"] }"#]);
    assert!(a.allows("/secret/x", Operation::Read, &no_data()));
    assert!(a.allows("secret/x", Operation::Read, &no_data()));
}

#[test]
fn capabilities_map_to_operations() {
    let a = acl(&[r#"
        path "c" { capabilities = ["create"] }
        path "r" { capabilities = ["read"] }
        path "u" { capabilities = ["update"] }
        path "p" { capabilities = ["patch"] }
        path "d" { capabilities = ["delete"] }
        path "l" { capabilities = ["list"] }
        path "s" { capabilities = ["sudo"] }
    "#]);
    for (path, op) in ["c", "r", "u", "p", "d", "l"].into_iter().zip(ALL_OPS) {
        for other in ALL_OPS {
            assert_eq!(
                a.allows(path, other, &no_data()),
                other == op,
                "{path} {other:?}"
            );
        }
        assert!(!a.has_sudo(path));
    }
    assert!(a.has_sudo("s"));
    assert!(ALL_OPS.iter().all(|op| !a.allows("s", *op, &no_data())));
}

#[test]
fn root_grants_everything() {
    let r = Acl::root();
    assert!(r.is_root());
    assert_eq!(r.capabilities("anything").names(), vec!["root"]);
    assert!(ALL_OPS
        .iter()
        .all(|op| r.allows("sys/seal", *op, &no_data())));
    assert!(r.has_sudo("sys/seal"));
    let named = Acl::new(&[Arc::new(Policy::parse("root", "").unwrap())]);
    assert!(named.is_root());
}

#[test]
fn no_policies_grant_nothing() {
    let a = Acl::new(&[]);
    assert!(!a.is_root());
    assert!(a.capabilities("secret/x").is_empty());
    assert!(ALL_OPS
        .iter()
        .all(|op| !a.allows("secret/x", *op, &no_data())));
    assert!(!a.has_sudo("secret/x"));
}

#[test]
fn the_default_policy() {
    let p = Policy::parse("default", DEFAULT_POLICY).unwrap();
    assert!(p.templated);
    let a = Acl::new(&[Arc::new(p)]);
    assert!(a.allows("auth/token/lookup-self", Operation::Read, &no_data()));
    assert!(!a.allows("auth/token/lookup-self", Operation::Update, &no_data()));
    assert!(a.allows("auth/token/renew-self", Operation::Update, &no_data()));
    assert!(a.allows("auth/token/revoke-self", Operation::Update, &no_data()));
    assert!(a.allows("sys/capabilities-self", Operation::Update, &no_data()));
    assert!(a.allows("sys/internal/ui/resultant-acl", Operation::Read, &no_data()));
    assert!(a.allows("sys/leases/renew", Operation::Update, &no_data()));
    assert!(a.allows("cubbyhole/mine", Operation::Create, &no_data()));
    assert!(!a.allows("cubbyhole/mine", Operation::Patch, &no_data()));
    assert!(a.allows("sys/wrapping/unwrap", Operation::Update, &no_data()));
    assert!(a.allows("sys/tools/hash/sha2-256", Operation::Update, &no_data()));
    assert!(a.allows(
        "identity/oidc/provider/p/authorize",
        Operation::Read,
        &no_data()
    ));
    assert!(!a.allows(
        "identity/entity/id/{{identity.entity.id}}",
        Operation::Read,
        &no_data()
    ));
    assert!(!a.allows("secret/data/x", Operation::Read, &no_data()));
    assert!(!a.allows("auth/token/create", Operation::Update, &no_data()));
    assert!(!a.has_sudo("auth/token/lookup-self"));
}

#[test]
fn capability_sets() {
    use Capabilities as C;
    let rl = C::READ.union(C::LIST);
    assert!(rl.contains(C::READ) && rl.contains(C::LIST) && !rl.contains(C::UPDATE));
    assert!(C::NONE.is_empty() && !rl.is_empty());
    assert!(rl.allows(Operation::List) && !rl.allows(Operation::Update));
    assert!(!rl.union(C::DENY).allows(Operation::Read));
    assert!(C::ROOT.allows(Operation::Delete));
    assert_eq!(rl.union(C::DENY).names(), vec!["deny"]);
    assert_eq!(C::ROOT.union(C::READ).names(), vec!["root"]);
    let all = [
        C::CREATE,
        C::READ,
        C::UPDATE,
        C::PATCH,
        C::DELETE,
        C::LIST,
        C::SUDO,
    ]
    .into_iter()
    .fold(C::NONE, C::union);
    assert_eq!(
        all.names(),
        vec!["sudo", "read", "list", "update", "delete", "create", "patch"]
    );
    let names: Vec<String> = all.names().into_iter().map(String::from).collect();
    assert_eq!(C::from_names(&names), Ok(all));
    assert!(C::SUDO.has_sudo() && !C::SUDO.union(C::DENY).has_sudo() && C::ROOT.has_sudo());
}

/// Vault's wrapping bounds: with one set, an unwrapped request is refused; across
/// policies the lesser minimum and the lesser maximum apply, and a merged range that is
/// empty refuses everything.
#[test]
fn wrapping_ttl_bounds() {
    use std::time::Duration;
    let wrapped = |a: &Acl, secs: Option<u64>| {
        a.allows_wrapped(
            "secret/x",
            Operation::Read,
            &no_data(),
            secs.map(Duration::from_secs),
        )
    };
    let a = acl(&[r#"path "secret/*" {
        capabilities = ["read"]
        min_wrapping_ttl = "1m"
        max_wrapping_ttl = "1h"
    }"#]);
    assert!(!a.allows("secret/x", Operation::Read, &no_data()));
    assert!(!wrapped(&a, None));
    assert!(!wrapped(&a, Some(59)));
    assert!(wrapped(&a, Some(60)));
    assert!(wrapped(&a, Some(3600)));
    assert!(!wrapped(&a, Some(3601)));

    let max_only = acl(&[r#"path "secret/*" {
            capabilities = ["read"]
            max_wrapping_ttl = 300
        }"#]);
    assert!(!wrapped(&max_only, None));
    assert!(wrapped(&max_only, Some(1)));

    let merged = acl(&[
        r#"path "secret/*" {
            capabilities = ["read"]
            min_wrapping_ttl = "10m"
        }"#,
        r#"path "secret/*" {
            capabilities = ["read"]
            max_wrapping_ttl = "5m"
            min_wrapping_ttl = "2m"
        }"#,
    ]);
    assert!(wrapped(&merged, Some(120)));
    assert!(!wrapped(&merged, Some(119)));
    assert!(!wrapped(&merged, Some(301)));

    let empty = acl(&[
        r#"path "secret/*" {
            capabilities = ["read"]
            min_wrapping_ttl = "10m"
        }"#,
        r#"path "secret/*" {
            capabilities = ["read"]
            max_wrapping_ttl = "5m"
        }"#,
    ]);
    assert!(!wrapped(&empty, Some(300)));
    assert!(!wrapped(&empty, Some(600)));

    let root = Acl::root();
    assert!(root.allows("secret/x", Operation::Read, &no_data()));
}
