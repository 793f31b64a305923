//! kv v2 at secret/ in dev mode: the command sequence of clever-kms.md, each output
//! checked, then the rest of the kv v2 surface (cas, patch, metadata, list).

use serde_json::{json, Value};
use std::time::Duration;

use softhsm_tests::{poll_until, reference_mode, Body, Daemon, Output};

const SECRET: &str = "identity_user_1";
const FULL: &str = "secret/data/identity_user_1";

/// `bao kv get -format=json` and the secret's `data` and `metadata` when it has a value.
fn get_json(d: &Daemon, version: Option<u32>) -> (Output, Option<(Value, Value)>) {
    let mut args = vec!["kv".to_string(), "get".into(), "-format=json".into()];
    if let Some(v) = version {
        args.push(format!("-version={v}"));
    }
    args.push("-mount=secret".into());
    args.push(SECRET.into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.bao(&argv);
    if !out.success() {
        return (out, None);
    }
    let v = out.json();
    let data = v["data"]["data"].clone();
    let meta = v["data"]["metadata"].clone();
    if data.is_null() {
        return (out, None);
    }
    (out, Some((data, meta)))
}

/// Asserts that a read finds the version with exactly `want` as its data.
#[track_caller]
fn assert_reads(d: &Daemon, version: Option<u32>, want: Value, want_version: u64) {
    let (out, got) = get_json(d, version);
    let (data, meta) = got.unwrap_or_else(|| panic!("expected a value: {out}"));
    assert_eq!(data, want, "{out}");
    assert_eq!(meta["version"], want_version, "{out}");
}

/// Asserts that a read of `version` (None: the current one) yields no value: either bao's
/// "No value found" (exit 2), or, as Vault answers for a deleted or destroyed version, the
/// metadata without data.
#[track_caller]
fn assert_no_value(d: &Daemon, version: Option<u32>) -> Output {
    let (out, got) = get_json(d, version);
    assert!(got.is_none(), "expected no value: {out}");
    if !out.success() {
        assert_eq!(out.status, 2, "{out}");
        assert!(
            out.stderr.contains(&format!("No value found at {FULL}")),
            "{out}"
        );
    }
    out
}

#[test]
fn clever_kms_kv_v2_sequence() {
    let d = Daemon::dev(&[]);
    let v1 = json!({"firstname": "John", "lastname": "Doe"});
    let v2 = json!({"firstname": "John", "lastname": "Doe", "phone": "666"});

    // vault kv put -mount=secret identity_user_1 firstname=John lastname=Doe
    let put = d
        .bao(&[
            "kv",
            "put",
            "-mount=secret",
            SECRET,
            "firstname=John",
            "lastname=Doe",
        ])
        .ok();
    assert!(put.stdout.contains("Secret Path"), "{put}");
    assert!(
        put.stdout.contains(FULL),
        "the v2 data path is shown: {put}"
    );
    assert_eq!(put.field("version").as_deref(), Some("1"), "{put}");
    assert_eq!(put.field("destroyed").as_deref(), Some("false"), "{put}");
    assert!(
        put.field("created_time").is_some_and(|t| !t.is_empty()),
        "{put}"
    );

    // vault kv get -mount=secret identity_user_1 (plain output, as in the transcript)
    let get = d.bao(&["kv", "get", "-mount=secret", SECRET]).ok();
    assert!(get.stdout.contains("Secret Path"), "{get}");
    assert!(get.stdout.contains("Data"), "{get}");
    assert_eq!(get.field("firstname").as_deref(), Some("John"), "{get}");
    assert_eq!(get.field("lastname").as_deref(), Some("Doe"), "{get}");
    assert_eq!(get.field("version").as_deref(), Some("1"), "{get}");
    assert_reads(&d, None, v1.clone(), 1);

    // Update: creates version 2.
    let put2 = d
        .bao(&[
            "kv",
            "put",
            "-mount=secret",
            SECRET,
            "firstname=John",
            "lastname=Doe",
            "phone=666",
        ])
        .ok();
    assert_eq!(put2.field("version").as_deref(), Some("2"), "{put2}");
    assert_reads(&d, None, v2.clone(), 2);
    // vault kv get -version=1 -mount=secret identity_user_1
    assert_reads(&d, Some(1), v1.clone(), 1);

    // vault kv delete -mount=secret identity_user_1: marks the latest version deleted.
    let del = d.bao(&["kv", "delete", "-mount=secret", SECRET]).ok();
    assert!(
        del.stdout
            .contains(&format!("Success! Data deleted (if it existed) at: {FULL}")),
        "{del}"
    );
    assert_no_value(&d, Some(2));

    if !reference_mode() {
        // clever-kms.md: "Now the remaining version is version 1". (Vault would show the
        // deleted version 2's metadata and no data here.)
        assert_reads(&d, None, v1.clone(), 1);

        // Deleting again makes the secret disappear from the get API.
        d.bao(&["kv", "delete", "-mount=secret", SECRET]).ok();
        let gone = d.bao(&["kv", "get", "-mount=secret", SECRET]);
        assert_eq!(gone.status, 2, "{gone}");
        assert!(
            gone.stderr.contains(&format!("No value found at {FULL}")),
            "clever-kms.md: `No value found at {FULL}`: {gone}"
        );
        assert_no_value(&d, Some(1));
    } else {
        // Vault deletes the latest version only: delete version 1 explicitly.
        d.bao(&["kv", "delete", "-mount=secret", "-versions=1", SECRET])
            .ok();
        assert_no_value(&d, Some(1));
    }

    // vault kv undelete -mount=secret -versions=2 identity_user_1
    let und = d
        .bao(&["kv", "undelete", "-mount=secret", "-versions=2", SECRET])
        .ok();
    assert!(
        und.stdout
            .contains("Success! Data written to: secret/undelete/identity_user_1"),
        "{und}"
    );
    // Only version 2 comes back.
    assert_no_value(&d, Some(1));
    assert_reads(&d, None, v2.clone(), 2);
    assert_reads(&d, Some(2), v2.clone(), 2);

    // vault kv destroy -mount=secret -versions=1 identity_user_1
    let des = d
        .bao(&["kv", "destroy", "-mount=secret", "-versions=1", SECRET])
        .ok();
    assert!(
        des.stdout
            .contains("Success! Data written to: secret/destroy/identity_user_1"),
        "{des}"
    );
    // vault kv undelete -mount=secret -versions=1 identity_user_1: accepted, no effect.
    d.bao(&["kv", "undelete", "-mount=secret", "-versions=1", SECRET])
        .ok();

    // Version 1 cannot be restored, version 2 is still readable.
    let one = assert_no_value(&d, Some(1));
    if one.success() {
        assert_eq!(one.json()["data"]["metadata"]["destroyed"], true, "{one}");
    }
    assert_reads(&d, Some(2), v2.clone(), 2);
    let plain = d
        .bao(&["kv", "get", "-mount=secret", "-version=2", SECRET])
        .ok();
    assert_eq!(plain.field("phone").as_deref(), Some("666"), "{plain}");

    // The metadata tells the same story.
    let meta = d
        .bao(&[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "-mount=secret",
            SECRET,
        ])
        .ok();
    let m = meta.json();
    assert_eq!(m["data"]["current_version"], 2, "{meta}");
    assert_eq!(m["data"]["versions"]["1"]["destroyed"], true, "{meta}");
    assert_eq!(m["data"]["versions"]["2"]["destroyed"], false, "{meta}");
    assert_eq!(m["data"]["versions"]["2"]["deletion_time"], "", "{meta}");
}

#[test]
fn path_syntax_without_mount_flag_works_too() {
    let d = Daemon::dev(&[]);
    d.bao(&["kv", "put", "secret/app/config", "color=blue"])
        .ok();
    let out = d
        .bao(&["kv", "get", "-field=color", "secret/app/config"])
        .ok();
    assert_eq!(out.stdout.trim(), "blue", "{out}");
    // The generic read of the data path returns the kv v2 envelope.
    let raw = d
        .bao(&["read", "-format=json", "secret/data/app/config"])
        .ok();
    assert_eq!(raw.json()["data"]["data"]["color"], "blue", "{raw}");
    assert_eq!(raw.json()["data"]["metadata"]["version"], 1, "{raw}");
}

#[test]
fn check_and_set() {
    let d = Daemon::dev(&[]);
    // cas=0: write only if the key does not exist.
    d.bao(&["kv", "put", "-cas=0", "-mount=secret", "cas", "a=1"])
        .ok();
    let again = d.bao(&["kv", "put", "-cas=0", "-mount=secret", "cas", "a=2"]);
    assert_eq!(again.status, 2, "cas=0 on an existing key fails: {again}");
    assert!(again.stderr.contains("Code: 400"), "{again}");
    // cas=N: write only if the current version is N.
    let stale = d.bao(&["kv", "put", "-cas=5", "-mount=secret", "cas", "a=3"]);
    assert_eq!(stale.status, 2, "{stale}");
    d.bao(&["kv", "put", "-cas=1", "-mount=secret", "cas", "a=4"])
        .ok();
    let out = d
        .bao(&["kv", "get", "-field=a", "-mount=secret", "cas"])
        .ok();
    assert_eq!(out.stdout.trim(), "4");

    // cas_required on the metadata makes cas mandatory.
    d.bao(&[
        "kv",
        "metadata",
        "put",
        "-cas-required=true",
        "-mount=secret",
        "cas",
    ])
    .ok();
    let no_cas = d.bao(&["kv", "put", "-mount=secret", "cas", "a=5"]);
    assert_eq!(no_cas.status, 2, "cas_required without cas fails: {no_cas}");
    d.bao(&["kv", "put", "-cas=2", "-mount=secret", "cas", "a=6"])
        .ok();
}

#[test]
fn patch_merges_into_the_latest_version() {
    let d = Daemon::dev(&[]);
    d.bao(&["kv", "put", "-mount=secret", "p", "a=1", "b=2"])
        .ok();
    let out = d
        .bao(&["kv", "patch", "-mount=secret", "p", "b=3", "c=4"])
        .ok();
    assert_eq!(out.field("version").as_deref(), Some("2"), "{out}");
    let got = d
        .bao(&["kv", "get", "-format=json", "-mount=secret", "p"])
        .ok();
    assert_eq!(
        got.json()["data"]["data"],
        json!({"a": "1", "b": "3", "c": "4"}),
        "{got}"
    );
    // Patching a missing secret is a 404.
    let missing = d.bao(&["kv", "patch", "-mount=secret", "nope", "a=1"]);
    assert_eq!(missing.status, 2, "{missing}");
}

#[test]
fn metadata_max_versions_custom_metadata_list_and_delete() {
    let d = Daemon::dev(&[]);
    for i in 1..=4 {
        d.bao(&["kv", "put", "-mount=secret", "team/a", &format!("n={i}")])
            .ok();
    }
    d.bao(&["kv", "put", "-mount=secret", "team/b", "n=1"]).ok();
    d.bao(&["kv", "put", "-mount=secret", "team/sub/c", "n=1"])
        .ok();

    d.bao(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=2",
        "-custom-metadata=owner=ops",
        "-mount=secret",
        "team/a",
    ])
    .ok();
    let metadata = || {
        d.bao(&[
            "kv",
            "metadata",
            "get",
            "-format=json",
            "-mount=secret",
            "team/a",
        ])
        .ok()
    };
    let m = metadata();
    let md = &m.json()["data"];
    assert_eq!(md["max_versions"], 2, "{m}");
    assert_eq!(md["custom_metadata"]["owner"], "ops", "{m}");
    assert_eq!(md["current_version"], 4, "{m}");
    // A fifth write keeps only the newest two versions.
    d.bao(&["kv", "put", "-mount=secret", "team/a", "n=5"]).ok();
    let m = metadata();
    let versions = m.json()["data"]["versions"].as_object().unwrap().clone();
    let mut keys: Vec<u64> = versions.keys().map(|k| k.parse().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, vec![4, 5], "{m}");
    assert_eq!(m.json()["data"]["oldest_version"], 4, "{m}");

    // kv list shows keys and folders.
    let list = d
        .bao(&["kv", "list", "-format=json", "-mount=secret", "team"])
        .ok();
    let mut names: Vec<String> =
        serde_json::from_str::<Vec<String>>(&list.stdout).unwrap_or_else(|e| panic!("{e}: {list}"));
    names.sort();
    assert_eq!(names, vec!["a", "b", "sub/"], "{list}");
    // The raw LIST answers {"data":{"keys":[...]}}.
    let raw = d.http(
        "LIST",
        "/v1/secret/metadata/team/",
        d.token.as_deref(),
        Body::None,
    );
    assert_eq!(raw.status, 200, "{raw}");
    assert!(raw.json()["data"]["keys"].is_array(), "{raw}");

    // metadata delete removes every version and the key.
    d.bao(&["kv", "metadata", "delete", "-mount=secret", "team/a"])
        .ok();
    let gone = d.bao(&["kv", "get", "-mount=secret", "team/a"]);
    assert_eq!(gone.status, 2, "{gone}");
    assert!(
        gone.stderr.contains("No value found at secret/data/team/a"),
        "{gone}"
    );
    let list = d
        .bao(&["kv", "list", "-format=json", "-mount=secret", "team"])
        .ok();
    assert!(!list.stdout.contains("\"a\""), "{list}");
}

#[test]
fn raw_api_shapes() {
    let d = Daemon::dev(&[]);
    let w = d.send_json(
        "POST",
        "/v1/secret/data/raw",
        r#"{"data":{"k":"v"},"options":{}}"#,
    );
    assert_eq!(w.status, 200, "{w}");
    let wj = w.json();
    assert_eq!(wj["data"]["version"], 1, "{w}");
    assert!(wj["data"]["created_time"].is_string(), "{w}");
    assert!(
        wj.get("request_id").is_some(),
        "Vault's response envelope: {w}"
    );

    let r = d.get("/v1/secret/data/raw?version=1");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["data"]["data"]["k"], "v", "{r}");

    // A secret that never existed: 404 with an empty errors list, as Vault answers.
    let missing = d.get("/v1/secret/data/never");
    assert_eq!(missing.status, 404, "{missing}");
    assert!(missing.json()["errors"].is_array(), "{missing}");

    // Authorization: Bearer works like X-Vault-Token.
    let token = d.token.clone().unwrap();
    let bearer = d
        .http_with(
            "GET",
            "/v1/secret/data/raw",
            Body::None,
            &["-H", &format!("Authorization: Bearer {token}")],
        )
        .unwrap();
    assert_eq!(bearer.status, 200, "{bearer}");

    // The mount table lists secret/ as kv version 2.
    let mounts = d.get("/v1/sys/mounts");
    assert_eq!(mounts.status, 200, "{mounts}");
    let m = mounts.json();
    let secret = m
        .get("secret/")
        .or_else(|| m["data"].get("secret/"))
        .unwrap_or_else(|| panic!("secret/ mounted: {mounts}"));
    assert_eq!(secret["type"], "kv", "{mounts}");
    assert_eq!(secret["options"]["version"], "2", "{mounts}");
}

#[test]
fn mounts_enable_tune_disable() {
    let d = Daemon::dev(&[]);
    d.bao(&["secrets", "enable", "-path=kv2", "-version=2", "kv"])
        .ok();
    let list = d.bao(&["secrets", "list", "-format=json"]).ok();
    assert_eq!(list.json()["kv2/"]["options"]["version"], "2", "{list}");
    // Vault upgrades a fresh kv v2 mount in the background: poll the first write.
    poll_until(Duration::from_secs(20), "the first write to kv2/", || {
        d.bao(&["kv", "put", "-mount=kv2", "x", "y=z"])
            .success()
            .then_some(())
    });
    let out = d.bao(&["kv", "get", "-field=y", "-mount=kv2", "x"]).ok();
    assert_eq!(out.stdout.trim(), "z");
    d.bao(&["secrets", "tune", "-description=tuned", "kv2/"])
        .ok();
    d.bao(&["secrets", "disable", "kv2/"]).ok();
    let gone = d.get("/v1/kv2/data/x");
    assert_eq!(gone.status, 404, "a disabled mount is gone: {gone}");
}
