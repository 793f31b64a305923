//! What Vault clients expect beyond kv v2's basics: kv version 1 mounts with the bao CLI,
//! kv v2 `subkeys`, namespaces refused with a clear error, a version string that hvac's
//! health and version checks accept; and `ironseal kv`, the appliance's own kv CLI, in
//! the transcripts of Clever KMS's `clever kms`.

use std::path::PathBuf;

use serde_json::json;

use softhsm_tests::tools::python;
use softhsm_tests::{ironseal_bin, reference_mode, Body, Daemon};

#[test]
fn kv_version_1_mounts_work_with_the_bao_cli() {
    let d = Daemon::dev(&[]);
    // `kv` without a version is version 1, as in Vault; -version=1 says so explicitly.
    d.bao(&["secrets", "enable", "-path=kv1", "kv"]).ok();
    d.bao(&["secrets", "enable", "-path=kv1b", "-version=1", "kv"])
        .ok();
    let mounts = d.bao(&["secrets", "list", "-format=json"]).ok().json();
    assert_eq!(mounts["kv1b/"]["options"]["version"], "1", "{mounts}");
    assert!(mounts["kv1/"]["options"]["version"].is_null(), "{mounts}");

    d.bao(&["kv", "put", "kv1/app/db", "user=jo", "pass=pw"])
        .ok();
    d.bao(&["kv", "put", "kv1/app/api", "key=k"]).ok();
    d.bao(&["kv", "put", "kv1/top", "a=1"]).ok();
    let get = d.bao(&["kv", "get", "-field=user", "kv1/app/db"]).ok();
    assert_eq!(get.stdout.trim(), "jo", "{get}");
    // A write replaces the entry: there are no versions.
    d.bao(&["kv", "put", "kv1/app/db", "user=al"]).ok();
    let v = d
        .bao(&["kv", "get", "-format=json", "kv1/app/db"])
        .ok()
        .json();
    assert_eq!(v["data"], json!({"user": "al"}), "{v}");
    let list = d.bao(&["kv", "list", "-format=json", "kv1/"]).ok().json();
    assert_eq!(list, json!(["app/", "top"]));
    let list = d
        .bao(&["kv", "list", "-format=json", "kv1/app"])
        .ok()
        .json();
    assert_eq!(list, json!(["api", "db"]));
    d.bao(&["kv", "delete", "kv1/app/db"]).ok();
    let gone = d.bao(&["kv", "get", "kv1/app/db"]);
    assert_eq!(gone.status, 2, "{gone}");
    assert!(
        gone.stderr.contains("No value found at kv1/app/db"),
        "{gone}"
    );
    // The raw API answers as Vault's: 404 on nothing, 204 on a write.
    let r = d.get("/v1/kv1/nothing");
    assert_eq!(r.status, 404, "{r}");
    let r = d.send_json("POST", "/v1/kv1b/x", r#"{"a":"b"}"#);
    assert_eq!(r.status, 204, "{r}");

    if !reference_mode() {
        // Upgrading in place is not implemented: refused, never half done.
        let up = d.bao(&["kv", "enable-versioning", "kv1/"]);
        assert!(!up.success(), "{up}");
        assert!(up.stderr.contains("not supported"), "{up}");
        let v = d.bao(&["kv", "get", "-field=key", "kv1/app/api"]).ok();
        assert_eq!(v.stdout.trim(), "k");
    }
}

#[test]
fn kv_v2_subkeys_show_the_structure_without_values() {
    let d = Daemon::dev(&[]);
    let body = json!({"data": {"a": "1", "b": {"c": "x", "d": {"e": "y"}}, "f": {}}});
    let r = d.send_json("POST", "/v1/secret/data/nested", &body.to_string());
    assert_eq!(r.status, 200, "{r}");
    let r = d.get("/v1/secret/subkeys/nested");
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    assert_eq!(
        v["data"]["subkeys"],
        json!({"a": null, "b": {"c": null, "d": {"e": null}}, "f": null}),
        "{r}"
    );
    assert_eq!(v["data"]["metadata"]["version"], 1, "{r}");
    assert!(!r.body.contains("\"x\""), "{r}");
    let r = d.get("/v1/secret/subkeys/nested?depth=1");
    assert_eq!(
        r.json()["data"]["subkeys"],
        json!({"a": null, "b": null, "f": null}),
        "{r}"
    );
    let r = d.get("/v1/secret/subkeys/absent");
    assert_eq!(r.status, 404, "{r}");
}

#[test]
fn namespaces_are_refused_with_a_clear_error() {
    if reference_mode() {
        // OpenBao has namespaces.
        return;
    }
    let d = Daemon::dev(&[]);
    d.kv_put_value("ns", "v");
    let out = d.bao(&["kv", "get", "-namespace=team-a", "-mount=secret", "ns"]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("namespaces"), "{out}");
    assert!(!out.stdout.contains("v\n"), "{out}");
    let r = d.http("LIST", "/v1/sys/namespaces", d.token.as_deref(), Body::None);
    assert_eq!(r.status, 400, "{r}");
    assert!(
        r.errors()[0].contains("namespaces are not supported"),
        "{r}"
    );
}

#[test]
fn hvac_health_and_version_checks_pass() {
    let d = Daemon::dev(&[]);
    d.kv_put_value("hv", "from-bao");
    const SCRIPT: &str = r#"
import json, os, sys
import hvac
c = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
assert c.is_authenticated()
health = c.sys.read_health_status(method="GET")
assert health["initialized"] and not health["sealed"], health
major, minor = (int(x) for x in health["version"].split("+")[0].split("-")[0].split(".")[:2])
assert (major, minor) >= (1, 10), health["version"]
status = c.sys.read_seal_status()
assert status["version"] == health["version"], status
secret = c.secrets.kv.v2.read_secret_version(path="hv", mount_point="secret", raise_on_deleted_version=True)
assert secret["data"]["data"]["value"] == "from-bao", secret
sub = c.adapter.get("/v1/secret/subkeys/hv")
assert sub["data"]["subkeys"] == {"value": None}, sub
print(json.dumps(health))
"#;
    let mut cmd = d.client_command(&python(), d.token.as_deref());
    let out = cmd.args(["-c", SCRIPT]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !reference_mode() {
        let health: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            health["ironseal_version"],
            env!("CARGO_PKG_VERSION"),
            "{health}"
        );
    }
}

/// The `ironseal` CLI, a client of the daemon under test, OpenBao too in reference mode
/// (then only when `IRONSEAL_BIN` names it).
fn ironseal_cli() -> Option<PathBuf> {
    if reference_mode() {
        return std::env::var_os("IRONSEAL_BIN").map(PathBuf::from);
    }
    Some(ironseal_bin())
}

/// `ironseal kv ARGS` against the daemon: exit code, stdout, stderr.
fn ironseal_kv(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let cli = ironseal_cli().expect("the ironseal CLI");
    let mut cmd = d.client_command(&cli, d.token.as_deref());
    let out = cmd.arg("kv").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ironseal_kv_follows_the_clever_kms_transcripts() {
    let Some(cli) = ironseal_cli() else {
        return;
    };
    let d = Daemon::dev(&[]);
    let ok = |args: &[&str]| {
        let (code, out, err) = ironseal_kv(&d, args);
        assert_eq!(code, 0, "ironseal kv {args:?}: {out}{err}");
        out
    };
    // `clever kms`: list (nothing yet).
    assert_eq!(ok(&[]), "");
    // `clever kms put mySecret myValue`
    assert_eq!(
        ok(&["put", "mySecret", "myValue"]),
        "Secret mySecret created (version 1)\n"
    );
    assert_eq!(ok(&["get", "mySecret"]), "myValue\n");
    assert_eq!(
        d.kv_get_value("mySecret"),
        "myValue",
        "bao sees the same secret"
    );
    // A second put would overwrite: refused, patch is for updates.
    let (code, _, err) = ironseal_kv(&d, &["put", "mySecret", "other"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "Error: Secret mySecret already exists: use \"ironseal kv patch\" to update it\n"
    );
    // `clever kms patch mySecret myNewValue`
    assert_eq!(
        ok(&["patch", "mySecret", "myNewValue"]),
        "Secret mySecret updated (version 2)\n"
    );
    assert_eq!(
        ok(&["patch", "mySecret", "user=jo"]),
        "Secret mySecret updated (version 3)\n"
    );
    assert_eq!(ok(&["get", "mySecret"]), "user=jo\nvalue=myNewValue\n");
    ok(&["put", "app/db", "pass=pw"]);
    assert_eq!(ok(&["list"]), "app/\nmySecret\n");
    assert_eq!(ok(&["list", "app"]), "db\n");
    // `clever kms destroy mySecret`
    assert_eq!(ok(&["destroy", "mySecret"]), "Secret mySecret destroyed\n");
    let (code, out, err) = ironseal_kv(&d, &["get", "mySecret"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err, "Error: Secret not found: mySecret\n");
    let (code, _, err) = ironseal_kv(&d, &["destroy", "mySecret"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "Error: Secret not found: mySecret\n")
    );
    let (code, _, err) = ironseal_kv(&d, &["patch", "nobody", "x"]);
    assert_eq!(
        (code, err.as_str()),
        (2, "Error: Secret not found: nobody\n")
    );

    // Usage errors and a token without access.
    let (code, _, err) = ironseal_kv(&d, &["get"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("wrong arguments for \"get\""), "{err}");
    let (code, _, err) = ironseal_kv(&d, &["frobnicate"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = ironseal_kv(&d, &["put", "k", "a=1", "bare"]);
    assert_eq!(code, 1, "{err}");
    let mut cmd = d.client_command(&cli, Some("not-a-token"));
    let out = cmd.args(["kv", "get", "app/db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: Request failed (403): permission denied\n"
    );
    // Another mount.
    d.bao(&["secrets", "enable", "-path=team", "kv-v2"]).ok();
    assert_eq!(
        ok(&["put", "-mount=team", "t", "v"]),
        "Secret t created (version 1)\n"
    );
    assert_eq!(ok(&["get", "t", "-mount=team"]), "v\n");
}
