//! Auth methods as mounts: `bao auth enable/list/tune/disable`, AppRole and userpass
//! logins driven by the bao CLI and by hvac, the tokens they issue (policies, TTL caps,
//! use counts, CIDR bindings, revoked with their mount), token roles, and the throttle
//! of failed logins.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use softhsm_tests::tools::{python, run_ok};
use softhsm_tests::{poll_until, reference_mode, Body, Daemon, HttpResponse};

const APP_READ: &str = r#"path "secret/data/app/*" { capabilities = ["read"] }"#;

/// A dev daemon with a secret at secret/app/db and the app-read policy.
fn setup() -> Daemon {
    let d = Daemon::dev(&[]);
    d.kv_put_value("app/db", "hunter2");
    d.bao_policy_write("app-read", APP_READ);
    d
}

fn read_secret(d: &Daemon, token: &str) -> HttpResponse {
    d.http("GET", "/v1/secret/data/app/db", Some(token), Body::None)
}

fn post(d: &Daemon, token: Option<&str>, path: &str, body: &Value) -> HttpResponse {
    d.http("POST", path, token, Body::Json(&body.to_string()))
}

fn root(d: &Daemon) -> &str {
    d.token.as_deref().unwrap()
}

/// `bao write -format=json ARGS`, as root; the answer.
fn write(d: &Daemon, args: &[&str]) -> Value {
    let mut argv = vec!["write", "-format=json"];
    argv.extend_from_slice(args);
    d.bao(&argv).ok().json()
}

/// An approle role `app` with `fields`, its role id and a new secret id.
fn approle(d: &Daemon, fields: &[&str]) -> (String, String) {
    let out = d.bao(&["auth", "list", "-format=json"]).ok();
    if out.json().get("approle/").is_none() {
        d.bao(&["auth", "enable", "approle"]).ok();
    }
    let mut args = vec!["write", "auth/approle/role/app"];
    args.extend_from_slice(fields);
    d.bao(&args).ok();
    let role_id = d
        .bao(&["read", "-field=role_id", "auth/approle/role/app/role-id"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let secret = write(d, &["-f", "auth/approle/role/app/secret-id"]);
    let secret_id = secret["data"]["secret_id"].as_str().unwrap().to_string();
    (role_id, secret_id)
}

fn approle_login(d: &Daemon, role_id: &str, secret_id: &str) -> HttpResponse {
    post(
        d,
        None,
        "/v1/auth/approle/login",
        &json!({"role_id": role_id, "secret_id": secret_id}),
    )
}

fn token_of(r: &HttpResponse) -> String {
    assert_eq!(r.status, 200, "{r}");
    r.json()["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_token: {r}"))
        .to_string()
}

fn lookup_self(d: &Daemon, token: &str) -> Value {
    let r = d.http("GET", "/v1/auth/token/lookup-self", Some(token), Body::None);
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"].clone()
}

#[test]
fn auth_enable_list_tune_and_disable_with_the_cli() {
    let d = Daemon::dev(&[]);
    d.bao(&["auth", "enable", "-description=machines", "approle"])
        .ok();
    d.bao(&["auth", "enable", "-path=people", "userpass"]).ok();
    let list = d.bao(&["auth", "list", "-format=json"]).ok().json();
    assert_eq!(list["approle/"]["type"], "approle", "{list}");
    assert_eq!(list["approle/"]["description"], "machines", "{list}");
    assert_eq!(list["people/"]["type"], "userpass", "{list}");
    assert_eq!(list["token/"]["type"], "token", "{list}");
    let accessor = list["approle/"]["accessor"].as_str().unwrap();
    assert!(accessor.starts_with("auth_approle_"), "{list}");

    // Enabling twice at a path, an unknown type, and the token store's path are refused.
    let again = d.bao(&["auth", "enable", "approle"]);
    assert_eq!(again.status, 2, "{again}");
    assert!(again.stderr.contains("path is already in use"), "{again}");
    let r = post(
        &d,
        Some(root(&d)),
        "/v1/sys/auth/nope",
        &json!({"type": "no-such-method"}),
    );
    assert_eq!(r.status, 400, "{r}");
    assert!(
        r.errors().iter().any(|e| e.contains("no-such-method")),
        "{r}"
    );

    // Tune: the mount's TTLs.
    d.bao(&[
        "auth",
        "tune",
        "-default-lease-ttl=20m",
        "-max-lease-ttl=1h",
        "approle/",
    ])
    .ok();
    let tune = d
        .bao(&["read", "-format=json", "sys/auth/approle/tune"])
        .ok()
        .json();
    assert_eq!(tune["data"]["default_lease_ttl"], 1200, "{tune}");
    assert_eq!(tune["data"]["max_lease_ttl"], 3600, "{tune}");

    // A token without sudo cannot enable a method.
    d.bao_policy_write(
        "mounter",
        r#"path "sys/auth/*" { capabilities = ["create", "update", "read", "delete"] }"#,
    );
    let (weak, _) = d.bao_token_create(None, &["-policy=mounter"]);
    let r = post(
        &d,
        Some(&weak),
        "/v1/sys/auth/other",
        &json!({"type": "approle"}),
    );
    r.assert_error(403, "permission denied");

    d.bao(&["auth", "disable", "people"]).ok();
    let list = d.bao(&["auth", "list", "-format=json"]).ok().json();
    assert!(list.get("people/").is_none(), "{list}");
}

#[test]
fn approle_login_reads_a_secret_with_the_cli() {
    let d = setup();
    let (role_id, secret_id) = approle(
        &d,
        &[
            "token_policies=app-read",
            "token_ttl=1h",
            "token_max_ttl=2h",
            "secret_id_ttl=10m",
            "secret_id_num_uses=5",
        ],
    );
    let role = d
        .bao(&["read", "-format=json", "auth/approle/role/app"])
        .ok()
        .json();
    assert_eq!(
        role["data"]["token_policies"],
        json!(["app-read"]),
        "{role}"
    );
    assert_eq!(role["data"]["secret_id_num_uses"], 5, "{role}");
    assert_eq!(role["data"]["token_max_ttl"], 7200, "{role}");

    let login = d
        .bao_as(
            None,
            &[
                "write",
                "-format=json",
                "auth/approle/login",
                &format!("role_id={role_id}"),
                &format!("secret_id={secret_id}"),
            ],
        )
        .ok()
        .json();
    let auth = &login["auth"];
    let token = auth["client_token"].as_str().unwrap();
    assert!(
        auth["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "app-read"),
        "{login}"
    );
    assert_eq!(auth["metadata"]["role_name"], "app", "{login}");
    assert_eq!(auth["renewable"], true, "{login}");
    let lease = auth["lease_duration"].as_u64().unwrap();
    assert!((3500..=3600).contains(&lease), "{login}");

    let r = read_secret(&d, token);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["data"]["value"], "hunter2", "{r}");
    let out = d
        .bao_as(
            Some(token),
            &["kv", "get", "-mount=secret", "-field=value", "app/db"],
        )
        .ok();
    assert_eq!(out.stdout.trim(), "hunter2", "{out}");
    // The policy's limits hold.
    d.http("GET", "/v1/sys/mounts", Some(token), Body::None)
        .assert_error(403, "permission denied");
    let me = lookup_self(&d, token);
    assert_eq!(me["orphan"], true, "{me}");
    assert_eq!(me["path"], "auth/approle/login", "{me}");

    // The secret id has a use less; lookup by value and by accessor, list, destroy.
    let found = write(
        &d,
        &[
            "auth/approle/role/app/secret-id/lookup",
            &format!("secret_id={secret_id}"),
        ],
    );
    assert_eq!(found["data"]["secret_id_num_uses"], 4, "{found}");
    let accessor = found["data"]["secret_id_accessor"]
        .as_str()
        .unwrap()
        .to_string();
    let by_accessor = write(
        &d,
        &[
            "auth/approle/role/app/secret-id-accessor/lookup",
            &format!("secret_id_accessor={accessor}"),
        ],
    );
    assert_eq!(
        by_accessor["data"]["secret_id_num_uses"], 4,
        "{by_accessor}"
    );
    let listed = d
        .bao(&["list", "-format=json", "auth/approle/role/app/secret-id"])
        .ok()
        .json();
    assert_eq!(listed, json!([accessor]), "{listed}");
    d.bao(&[
        "write",
        "auth/approle/role/app/secret-id-accessor/destroy",
        &format!("secret_id_accessor={accessor}"),
    ])
    .ok();
    approle_login(&d, &role_id, &secret_id).assert_error(400, "invalid role or secret ID");
    // Nor does a wrong secret id or role id log in.
    approle_login(&d, &role_id, "not-the-secret").assert_error(400, "invalid role or secret ID");
    approle_login(&d, "not-a-role-id", &secret_id).assert_error(400, "invalid role or secret ID");
}

/// hvac, as applications use it: role, role id, secret id, login, kv read.
#[test]
fn approle_with_hvac() {
    let d = setup();
    d.bao(&["auth", "enable", "approle"]).ok();
    let script = r#"
import json, os, sys, hvac
admin = hvac.Client(url=os.environ["ADDR"], token=os.environ["ROOT"])
admin.auth.approle.create_or_update_approle("app", token_policies=["app-read"], token_ttl="20m")
role_id = admin.auth.approle.read_role_id("app")["data"]["role_id"]
secret = admin.auth.approle.generate_secret_id("app")["data"]
app = hvac.Client(url=os.environ["ADDR"])
login = app.auth.approle.login(role_id=role_id, secret_id=secret["secret_id"])
value = app.secrets.kv.v2.read_secret_version(path="app/db", mount_point="secret", raise_on_deleted_version=True)
try:
    app.auth.approle.login(role_id=role_id, secret_id="wrong")
    wrong = "accepted"
except hvac.exceptions.InvalidRequest as e:
    wrong = str(e)
print(json.dumps({"auth": login["auth"], "value": value["data"]["data"]["value"], "wrong": wrong}))
"#;
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .env("ADDR", &d.addr)
            .env("ROOT", root(&d)),
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["value"], "hunter2", "{v}");
    assert!(v["auth"]["lease_duration"].as_u64().unwrap() <= 1200, "{v}");
    assert!(
        v["wrong"]
            .as_str()
            .unwrap()
            .contains("invalid role or secret ID"),
        "{v}"
    );
}

#[test]
fn approle_tokens_are_capped_use_limited_and_cidr_bound() {
    let d = setup();
    // The mount's maximum caps the role's TTL.
    d.bao(&["auth", "enable", "approle"]).ok();
    d.bao(&["auth", "tune", "-max-lease-ttl=30m", "approle/"])
        .ok();
    let (role_id, secret_id) = approle(&d, &["token_policies=app-read", "token_ttl=1h"]);
    let login = approle_login(&d, &role_id, &secret_id);
    let token = token_of(&login);
    let lease = login.json()["auth"]["lease_duration"].as_u64().unwrap();
    assert!((1700..=1800).contains(&lease), "{login}");
    // Renewing cannot pass the mount's maximum either.
    let r = post(
        &d,
        Some(&token),
        "/v1/auth/token/renew-self",
        &json!({"increment": "2h"}),
    );
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.json()["auth"]["lease_duration"].as_u64().unwrap() <= 1800,
        "{r}"
    );

    // The role's token_max_ttl caps renewals below the mount's.
    d.bao(&[
        "write",
        "auth/approle/role/app",
        "token_ttl=5m",
        "token_max_ttl=10m",
    ])
    .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let token = token_of(&approle_login(
        &d,
        &role_id,
        secret["data"]["secret_id"].as_str().unwrap(),
    ));
    let r = post(
        &d,
        Some(&token),
        "/v1/auth/token/renew-self",
        &json!({"increment": "1h"}),
    );
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.json()["auth"]["lease_duration"].as_u64().unwrap() <= 600,
        "{r}"
    );

    // token_num_uses: two requests, then the token is gone.
    d.bao(&["write", "auth/approle/role/app", "token_num_uses=2"])
        .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let token = token_of(&approle_login(
        &d,
        &role_id,
        secret["data"]["secret_id"].as_str().unwrap(),
    ));
    assert_eq!(read_secret(&d, &token).status, 200);
    assert_eq!(read_secret(&d, &token).status, 200);
    read_secret(&d, &token).assert_error(403, "permission denied");

    // token_bound_cidrs: the login works, the token does not from outside the block.
    d.bao(&[
        "write",
        "auth/approle/role/app",
        "token_num_uses=0",
        "token_bound_cidrs=10.0.0.0/8",
    ])
    .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let token = token_of(&approle_login(
        &d,
        &role_id,
        secret["data"]["secret_id"].as_str().unwrap(),
    ));
    read_secret(&d, &token).assert_error(403, "permission denied");
    d.bao(&[
        "write",
        "auth/approle/role/app",
        "token_bound_cidrs=127.0.0.1/32",
    ])
    .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let token = token_of(&approle_login(
        &d,
        &role_id,
        secret["data"]["secret_id"].as_str().unwrap(),
    ));
    assert_eq!(read_secret(&d, &token).status, 200);

    // secret_id_bound_cidrs: the login itself is refused from outside the block.
    d.bao(&[
        "write",
        "auth/approle/role/app",
        "secret_id_bound_cidrs=10.0.0.0/8",
    ])
    .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let r = approle_login(&d, &role_id, secret["data"]["secret_id"].as_str().unwrap());
    r.assert_error(400, "unauthorized by CIDR restrictions");

    // secret_id_num_uses: one login per secret id.
    d.bao(&[
        "write",
        "auth/approle/role/app",
        "secret_id_bound_cidrs=",
        "secret_id_num_uses=1",
    ])
    .ok();
    let secret = write(&d, &["-f", "auth/approle/role/app/secret-id"]);
    let id = secret["data"]["secret_id"].as_str().unwrap();
    token_of(&approle_login(&d, &role_id, id));
    approle_login(&d, &role_id, id).assert_error(400, "invalid role or secret ID");
}

#[test]
fn disabling_a_method_revokes_the_tokens_it_issued() {
    let d = setup();
    let (role_id, secret_id) = approle(&d, &["token_policies=app-read"]);
    let token = token_of(&approle_login(&d, &role_id, &secret_id));
    let (other, _) = d.bao_token_create(None, &["-policy=app-read"]);
    assert_eq!(read_secret(&d, &token).status, 200);

    d.bao(&["auth", "disable", "approle"]).ok();
    read_secret(&d, &token).assert_error(403, "permission denied");
    // A token from the token store lives on.
    assert_eq!(read_secret(&d, &other).status, 200);
    // The method's data went with it: enabled again, the role is gone.
    d.bao(&["auth", "enable", "approle"]).ok();
    let r = d.http(
        "GET",
        "/v1/auth/approle/role/app",
        Some(root(&d)),
        Body::None,
    );
    assert_eq!(r.status, 404, "{r}");
}

#[test]
fn userpass_login_with_the_cli_and_hvac() {
    let d = setup();
    d.bao(&["auth", "enable", "userpass"]).ok();
    d.bao(&[
        "write",
        "auth/userpass/users/alice",
        "password=correct horse",
        "token_policies=app-read",
        "token_ttl=30m",
    ])
    .ok();
    let user = d
        .bao(&["read", "-format=json", "auth/userpass/users/alice"])
        .ok()
        .json();
    assert_eq!(
        user["data"]["token_policies"],
        json!(["app-read"]),
        "{user}"
    );
    assert!(user["data"].get("password").is_none(), "{user}");

    let login = d
        .bao_as(
            None,
            &[
                "login",
                "-no-store",
                "-format=json",
                "-method=userpass",
                "username=alice",
                "password=correct horse",
            ],
        )
        .ok()
        .json();
    let token = login["auth"]["client_token"].as_str().unwrap();
    assert_eq!(login["auth"]["metadata"]["username"], "alice", "{login}");
    assert!(
        login["auth"]["lease_duration"].as_u64().unwrap() <= 1800,
        "{login}"
    );
    assert_eq!(read_secret(&d, token).status, 200);
    assert_eq!(lookup_self(&d, token)["display_name"], "userpass-alice");

    let wrong = post(
        &d,
        None,
        "/v1/auth/userpass/login/alice",
        &json!({"password": "wrong"}),
    );
    wrong.assert_error(400, "invalid username or password");
    let nobody = post(
        &d,
        None,
        "/v1/auth/userpass/login/bob",
        &json!({"password": "wrong"}),
    );
    nobody.assert_error(400, "invalid username or password");

    // The password can be changed; the old one stops working.
    d.bao(&[
        "write",
        "auth/userpass/users/alice/password",
        "password=battery staple",
    ])
    .ok();
    let script = r#"
import json, os, hvac
c = hvac.Client(url=os.environ["ADDR"])
login = c.auth.userpass.login(username="alice", password="battery staple")
value = c.secrets.kv.v2.read_secret_version(path="app/db", mount_point="secret", raise_on_deleted_version=True)
try:
    c.auth.userpass.login(username="alice", password="correct horse")
    old = "accepted"
except hvac.exceptions.InvalidRequest as e:
    old = str(e)
print(json.dumps({"policies": login["auth"]["policies"], "value": value["data"]["data"]["value"], "old": old}))
"#;
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .env("ADDR", &d.addr),
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["value"], "hunter2", "{v}");
    assert!(
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "app-read"),
        "{v}"
    );
    assert!(
        v["old"]
            .as_str()
            .unwrap()
            .contains("invalid username or password"),
        "{v}"
    );
}

#[test]
fn token_roles_shape_the_tokens_they_create() {
    let d = setup();
    d.bao_policy_write("admin", r#"path "*" { capabilities = ["read"] }"#);
    d.bao(&[
        "write",
        "auth/token/roles/app",
        "allowed_policies=app-read",
        "disallowed_policies=admin",
        "orphan=true",
        "token_period=1h",
    ])
    .ok();
    let role = d
        .bao(&["read", "-format=json", "auth/token/roles/app"])
        .ok()
        .json();
    assert_eq!(
        role["data"]["allowed_policies"],
        json!(["app-read"]),
        "{role}"
    );
    assert_eq!(role["data"]["orphan"], true, "{role}");
    assert_eq!(role["data"]["token_period"], 3600, "{role}");
    let roles = d
        .bao(&["list", "-format=json", "auth/token/roles"])
        .ok()
        .json();
    assert_eq!(roles, json!(["app"]), "{roles}");

    let (token, created) = d.bao_token_create(None, &["-role=app"]);
    let policies = created["auth"]["policies"].clone();
    assert_eq!(policies, json!(["app-read", "default"]), "{created}");
    assert_eq!(created["auth"]["orphan"], true, "{created}");
    let me = lookup_self(&d, &token);
    assert_eq!(me["path"], "auth/token/create/app", "{me}");
    // The role's period sets the token's TTL.
    assert_eq!(me["creation_ttl"], 3600, "{me}");
    assert_eq!(read_secret(&d, &token).status, 200);

    // Outside the role's policies: refused.
    let out = d.bao(&["token", "create", "-role=app", "-policy=admin"]);
    assert_eq!(out.status, 2, "{out}");
    let r = post(&d, Some(root(&d)), "/v1/auth/token/create/nope", &json!({}));
    r.assert_error(400, "unknown role");

    // A token whose policy grants create/app may use the role without sudo.
    d.bao_policy_write(
        "role-user",
        r#"path "auth/token/create/app" { capabilities = ["update"] }"#,
    );
    let (user, _) = d.bao_token_create(None, &["-policy=role-user"]);
    let (child, _) = d.bao_token_create(Some(&user), &["-role=app"]);
    assert_eq!(read_secret(&d, &child).status, 200);
}

#[test]
fn token_store_privileges_as_vault_has_them() {
    let d = setup();
    // create-orphan: any token whose policy grants it.
    d.bao_policy_write(
        "orphaner",
        r#"path "auth/token/create-orphan" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update"] }"#,
    );
    let (orphaner, _) = d.bao_token_create(None, &["-policy=orphaner", "-policy=app-read"]);
    let r = post(
        &d,
        Some(&orphaner),
        "/v1/auth/token/create-orphan",
        &json!({"policies": ["app-read"]}),
    );
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["auth"]["orphan"], true, "{r}");
    // A periodic token needs sudo; so does no_parent on create.
    let r = post(
        &d,
        Some(&orphaner),
        "/v1/auth/token/create",
        &json!({"period": "1h"}),
    );
    r.assert_error(
        400,
        "root or sudo privileges required to create periodic token",
    );
    let r = post(
        &d,
        Some(&orphaner),
        "/v1/auth/token/create",
        &json!({"no_parent": true}),
    );
    r.assert_error(
        400,
        "root or sudo privileges required to create orphan token",
    );

    // LIST auth/token/accessors: sudo.
    let listed = d
        .bao(&["list", "-format=json", "auth/token/accessors"])
        .ok()
        .json();
    let me = lookup_self(&d, &orphaner);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == &me["accessor"]),
        "{listed}"
    );
    d.bao_policy_write(
        "lister",
        r#"path "auth/token/accessors" { capabilities = ["list"] }"#,
    );
    let (lister, _) = d.bao_token_create(None, &["-policy=lister"]);
    d.http(
        "LIST",
        "/v1/auth/token/accessors",
        Some(&lister),
        Body::None,
    )
    .assert_error(403, "permission denied");
    d.bao_policy_write(
        "lister",
        r#"path "auth/token/accessors" { capabilities = ["list", "sudo"] }"#,
    );
    let r = d.http(
        "LIST",
        "/v1/auth/token/accessors",
        Some(&lister),
        Body::None,
    );
    assert_eq!(r.status, 200, "{r}");
}

/// Ironseal's throttle of failed logins (OpenBao has none by default): after two free
/// failures each one locks the user and source for longer; a locked attempt is answered
/// 429 without its password being checked, the right one included.
#[test]
fn failed_logins_lock_out_for_longer_each_time() {
    if reference_mode() {
        return;
    }
    let d = setup();
    d.bao(&["auth", "enable", "userpass"]).ok();
    d.bao(&["write", "auth/userpass/users/alice", "password=right"])
        .ok();
    let attempt = |password: &str| {
        post(
            &d,
            None,
            "/v1/auth/userpass/login/alice",
            &json!({"password": password}),
        )
    };
    for _ in 0..3 {
        attempt("wrong").assert_error(400, "invalid username or password");
    }
    let locked = attempt("right");
    locked.assert_error(429, "too many failed login attempts");
    let retry = |r: &HttpResponse| -> u64 {
        let e = r.errors().join(" ");
        e.split("retry in ")
            .nth(1)
            .and_then(|s| s.trim_end_matches('s').parse().ok())
            .unwrap_or_else(|| panic!("no retry delay: {r}"))
    };
    let first = retry(&locked);
    // Another user, or the same user from the token store's side, is not locked.
    assert_eq!(read_secret(&d, root(&d)).status, 200);

    // Once the lock is over, one more failure locks for longer.
    let started = std::time::Instant::now();
    poll_until(Duration::from_secs(30), "the first lock to end", || {
        (attempt("wrong").status == 400).then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the lock did not hold"
    );
    let locked = attempt("right");
    locked.assert_error(429, "too many failed login attempts");
    assert!(retry(&locked) > first, "{locked}");

    // AppRole locks per source after wrong secret ids in the same way.
    let (role_id, secret_id) = approle(&d, &["token_policies=app-read"]);
    for _ in 0..3 {
        approle_login(&d, &role_id, "wrong").assert_error(400, "invalid role or secret ID");
    }
    approle_login(&d, &role_id, &secret_id).assert_error(429, "too many failed login attempts");
}

#[test]
fn a_wrapped_secret_id_is_unwrapped_once_and_logs_in() {
    let d = setup();
    let (role_id, _) = approle(&d, &["token_policies=app-read"]);
    let wrapped = write(
        &d,
        &["-wrap-ttl=60s", "-f", "auth/approle/role/app/secret-id"],
    );
    let info = &wrapped["wrap_info"];
    assert_eq!(info["ttl"], 60, "{wrapped}");
    assert_eq!(
        info["creation_path"], "auth/approle/role/app/secret-id",
        "{wrapped}"
    );
    assert!(
        info["wrapped_accessor"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{wrapped}"
    );
    assert!(
        wrapped["data"].is_null(),
        "the secret id must not be in the clear: {wrapped}"
    );
    let wrapping_token = info["token"].as_str().unwrap();

    // Unwrapped by the holder of the wrapping token alone, as Vault Agent does.
    let unwrapped = d
        .bao_as(Some(wrapping_token), &["unwrap", "-format=json"])
        .ok()
        .json();
    let secret_id = unwrapped["data"]["secret_id"].as_str().unwrap();
    assert_eq!(
        unwrapped["data"]["secret_id_accessor"], info["wrapped_accessor"],
        "{unwrapped}"
    );
    let token = token_of(&approle_login(&d, &role_id, secret_id));
    assert_eq!(read_secret(&d, &token).status, 200);

    let again = d.bao_as(Some(wrapping_token), &["unwrap", "-format=json"]);
    assert!(!again.success(), "a second unwrap must fail: {again}");
}

fn renew_self(d: &Daemon, token: &str) -> HttpResponse {
    post(d, Some(token), "/v1/auth/token/renew-self", &json!({}))
}

/// A login token renews only as its method allows now (OpenBao's `pathLoginRenew`):
/// AppRole and JWT while the role exists, with the role's TTLs as they are now; userpass
/// while the user exists with unchanged policies. A refusal is OpenBao's 500; a deleted
/// user's token is left as it is, answered 204.
#[test]
fn login_tokens_renew_only_as_their_method_allows_now() {
    let d = setup();
    let (role_id, secret_id) = approle(&d, &["token_policies=app-read", "token_ttl=10m"]);
    let token = token_of(&approle_login(&d, &role_id, &secret_id));
    d.bao(&["write", "auth/approle/role/app/token-ttl", "token_ttl=5m"])
        .ok();
    let r = renew_self(&d, &token);
    assert_eq!(r.status, 200, "{r}");
    let lease = r.json()["auth"]["lease_duration"].as_u64().unwrap();
    assert!((295..=300).contains(&lease), "{r}");
    // AppRole does not hold the token to the role's policies.
    d.bao(&[
        "write",
        "auth/approle/role/app/policies",
        "token_policies=other",
    ])
    .ok();
    let r = renew_self(&d, &token);
    assert_eq!(r.status, 200, "{r}");
    assert!(
        r.json()["auth"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "app-read"),
        "{r}"
    );
    d.bao(&["delete", "auth/approle/role/app"]).ok();
    renew_self(&d, &token).assert_error(500, "role \"app\" does not exist during renewal");
    let by_root = post(
        &d,
        Some(root(&d)),
        "/v1/auth/token/renew",
        &json!({ "token": token }),
    );
    by_root.assert_error(500, "role \"app\" does not exist during renewal");

    d.bao(&["auth", "enable", "userpass"]).ok();
    d.bao(&[
        "write",
        "auth/userpass/users/alice",
        "password=pw",
        "token_policies=app-read",
        "token_ttl=10m",
    ])
    .ok();
    let login = post(
        &d,
        None,
        "/v1/auth/userpass/login/alice",
        &json!({"password": "pw"}),
    );
    let token = token_of(&login);
    d.bao(&[
        "write",
        "auth/userpass/users/alice/policies",
        "token_policies=other",
    ])
    .ok();
    renew_self(&d, &token).assert_error(500, "policies have changed, not renewing");
    d.bao(&[
        "write",
        "auth/userpass/users/alice",
        "token_policies=app-read",
        "token_ttl=4m",
    ])
    .ok();
    let r = renew_self(&d, &token);
    assert_eq!(r.status, 200, "{r}");
    let lease = r.json()["auth"]["lease_duration"].as_u64().unwrap();
    assert!((235..=240).contains(&lease), "{r}");
    d.bao(&["delete", "auth/userpass/users/alice"]).ok();
    let r = renew_self(&d, &token);
    assert_eq!(r.status, 204, "{r}");
    assert_eq!(read_secret(&d, &token).status, 200);
}

/// Each role setting has a path of its own (`role/<name>/token-ttl`, ...): read, updated
/// and reset to its default alone, with OpenBao's answers for a missing field or role.
#[test]
fn approle_role_settings_have_paths_of_their_own() {
    let d = setup();
    approle(
        &d,
        &[
            "token_policies=app-read",
            "token_ttl=10m",
            "secret_id_bound_cidrs=10.0.0.0/8",
        ],
    );
    let field = |sub: &str| -> Value {
        let r = d.get(&format!("/v1/auth/approle/role/app/{sub}"));
        assert_eq!(r.status, 200, "{sub}: {r}");
        r.json()["data"].clone()
    };
    assert_eq!(field("policies")["token_policies"], json!(["app-read"]));
    assert_eq!(field("token-ttl")["token_ttl"], 600);
    assert_eq!(field("token-max-ttl")["token_max_ttl"], 0);
    assert_eq!(
        field("secret-id-bound-cidrs")["secret_id_bound_cidrs"],
        json!(["10.0.0.0/8"])
    );
    assert_eq!(field("local-secret-ids")["local_secret_ids"], false);

    for (sub, arg) in [
        ("token-max-ttl", "token_max_ttl=1h"),
        ("token-ttl", "token_ttl=20m"),
        ("secret-id-ttl", "secret_id_ttl=15m"),
        ("secret-id-num-uses", "secret_id_num_uses=3"),
        ("token-num-uses", "token_num_uses=7"),
        ("period", "token_period=30m"),
        ("policies", "token_policies=app-read,other"),
        ("token-bound-cidrs", "token_bound_cidrs=127.0.0.0/16"),
        ("secret-id-bound-cidrs", "secret_id_bound_cidrs=127.0.0.0/8"),
    ] {
        d.bao(&["write", &format!("auth/approle/role/app/{sub}"), arg])
            .ok();
    }
    let role = d
        .bao(&["read", "-format=json", "auth/approle/role/app"])
        .ok()
        .json();
    let data = &role["data"];
    assert_eq!(data["token_max_ttl"], 3600, "{role}");
    assert_eq!(data["token_ttl"], 1200, "{role}");
    assert_eq!(data["secret_id_ttl"], 900, "{role}");
    assert_eq!(data["secret_id_num_uses"], 3, "{role}");
    assert_eq!(data["token_num_uses"], 7, "{role}");
    assert_eq!(data["token_period"], 1800, "{role}");
    assert_eq!(
        data["token_policies"],
        json!(["app-read", "other"]),
        "{role}"
    );
    assert_eq!(data["token_bound_cidrs"], json!(["127.0.0.0/16"]), "{role}");
    assert_eq!(
        data["secret_id_bound_cidrs"],
        json!(["127.0.0.0/8"]),
        "{role}"
    );
    assert_eq!(field("period")["token_period"], 1800);
    assert_eq!(field("token-num-uses")["token_num_uses"], 7);

    // A delete resets the setting to its default.
    for sub in [
        "token-ttl",
        "policies",
        "token-num-uses",
        "secret-id-num-uses",
    ] {
        let r = d.http(
            "DELETE",
            &format!("/v1/auth/approle/role/app/{sub}"),
            Some(root(&d)),
            Body::None,
        );
        assert_eq!(r.status, 204, "{sub}: {r}");
    }
    assert_eq!(field("token-ttl")["token_ttl"], 0);
    assert_eq!(field("policies")["token_policies"], json!([]));
    assert_eq!(field("token-num-uses")["token_num_uses"], 0);
    assert_eq!(field("secret-id-num-uses")["secret_id_num_uses"], 0);

    // The setting is required, and the TTLs keep their order.
    let write = |sub: &str, body: Value| {
        post(
            &d,
            Some(root(&d)),
            &format!("/v1/auth/approle/role/app/{sub}"),
            &body,
        )
    };
    write("token-ttl", json!({})).assert_error(400, "missing token_ttl");
    write("period", json!({})).assert_error(400, "missing period");
    assert_eq!(write("token-ttl", json!({"token_ttl": "20m"})).status, 204);
    write("token-ttl", json!({"token_ttl": "2h"}))
        .assert_error(400, "token_ttl should not be greater than token_max_ttl");
    write("token-max-ttl", json!({"token_max_ttl": "1m"})).assert_error(
        400,
        "token_max_ttl should be greater than or equal to token_ttl",
    );
    assert_eq!(write("local-secret-ids", json!({})).status, 405);

    // A role that does not exist: nothing to read or update, nothing to delete.
    let r = d.get("/v1/auth/approle/role/nope/token-ttl");
    assert_eq!(r.status, 404, "{r}");
    let r = post(
        &d,
        Some(root(&d)),
        "/v1/auth/approle/role/nope/token-ttl",
        &json!({"token_ttl": "1m"}),
    );
    assert_eq!(r.status, 404, "{r}");
    let r = d.http(
        "DELETE",
        "/v1/auth/approle/role/nope/token-ttl",
        Some(root(&d)),
        Body::None,
    );
    assert_eq!(r.status, 204, "{r}");

    // OpenBao 2.x answers 404 for `bind-secret-id` whatever the role (its route is
    // shadowed); the appliance serves it as the AppRole source defines it.
    if !reference_mode() {
        assert_eq!(field("bind-secret-id")["bind_secret_id"], true);
        d.bao(&[
            "write",
            "auth/approle/role/app/bind-secret-id",
            "bind_secret_id=false",
        ])
        .ok();
        assert_eq!(field("bind-secret-id")["bind_secret_id"], false);
    }
}

/// `tidy/secret-id` removes expired secret ids with their accessors (202, as OpenBao,
/// whose tidy runs in the background: polled); live ones stay.
#[test]
fn tidy_removes_expired_secret_ids_and_their_accessors() {
    let d = setup();
    approle(&d, &["token_policies=app-read"]);
    let generate = |args: &[&str]| -> String {
        let mut argv = vec!["-f", "auth/approle/role/app/secret-id"];
        argv.extend_from_slice(args);
        write(&d, &argv)["data"]["secret_id_accessor"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let lookup = |accessor: &str| {
        post(
            &d,
            Some(root(&d)),
            "/v1/auth/approle/role/app/secret-id-accessor/lookup",
            &json!({ "secret_id_accessor": accessor }),
        )
    };
    let lasting = generate(&[]);
    // Long enough that a loaded machine still looks it up before it expires.
    let expiring = generate(&["ttl=10s"]);
    assert_eq!(lookup(&expiring).status, 200);
    let expires = lookup(&expiring).json()["data"]["expiration_time"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(expires, "0001-01-01T00:00:00Z");

    let tidy = || {
        post(
            &d,
            Some(root(&d)),
            "/v1/auth/approle/tidy/secret-id",
            &json!({}),
        )
    };
    let r = tidy();
    assert_eq!(r.status, 202, "{r}");
    // (OpenBao answers 200 while a tidy is still running.)
    poll_until(
        Duration::from_secs(60),
        "the expired secret id tidied",
        || {
            let r = tidy();
            assert!(r.status == 202 || r.status == 200, "{r}");
            (lookup(&expiring).status == 404).then_some(())
        },
    );
    let r = lookup(&lasting);
    assert_eq!(r.status, 200, "{r}");
    let r = d.http(
        "GET",
        "/v1/auth/approle/tidy/secret-id",
        Some(root(&d)),
        Body::None,
    );
    assert_eq!(r.status, 405, "{r}");
}
