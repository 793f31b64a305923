//! The entry point without HTTP: which (token, policy, operation) runs, and the two
//! audit lines every one of them leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::kv::{KvRead, KvWrite};
use super::{Access, Audited, AuditedResponse, Op, Refuse, Request};
use crate::audit::DeviceConfig;
use crate::core::Core;
use crate::error::{EngineError, ErrorKind, Result};
use crate::mounts::MountRef;
use crate::policy::Operation;
use crate::storage::{MemoryBackend, Storage};
use crate::token::CreateRequest;

/// The test door: the outcome's kind, and a status for the audit line.
struct Outcome(std::result::Result<Value, ErrorKind>);

impl Audited for Outcome {
    fn audited(&self) -> AuditedResponse<'_> {
        match &self.0 {
            Ok(v) => AuditedResponse {
                status: 200,
                body: Some(v),
                error: None,
            },
            Err(kind) => AuditedResponse {
                status: 400,
                body: None,
                error: Some(format!("{kind:?}").into()),
            },
        }
    }
}

struct Appliance {
    core: Arc<Core>,
    root: String,
    audit_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const POLICIES: &[(&str, &str)] = &[
    (
        "reader",
        r#"path "secret/data/*" { capabilities = ["read"] }"#,
    ),
    (
        "creator",
        r#"path "secret/data/*" { capabilities = ["create"] }"#,
    ),
    (
        "updater",
        r#"path "secret/data/*" { capabilities = ["update"] }"#,
    ),
    (
        "no-version",
        r#"path "secret/data/*" {
             capabilities = ["read"]
             denied_parameters = { "version" = [] }
           }"#,
    ),
    (
        "sudoer",
        r#"path "sys/raw" { capabilities = ["update", "sudo"] }"#,
    ),
    (
        "raw-no-sudo",
        r#"path "sys/raw" { capabilities = ["update"] }"#,
    ),
];

async fn appliance() -> Appliance {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let init = core.dev_setup(None).await.expect("dev setup");
    for (name, hcl) in POLICIES {
        core.policies.put(name, hcl).await.expect("policy");
    }
    let audit_log = dir.path().join("audit.log");
    core.audit
        .enable(DeviceConfig {
            path: "file".into(),
            kind: "file".into(),
            description: String::new(),
            options: BTreeMap::from([(
                "file_path".into(),
                audit_log.to_string_lossy().into_owned(),
            )]),
            local: false,
        })
        .await
        .expect("audit device");
    Appliance {
        core,
        root: init.root_token.to_string(),
        audit_log,
        _dir: dir,
    }
}

impl Appliance {
    async fn token(&self, policy: &str) -> String {
        let issued = self
            .core
            .tokens
            .create(
                None,
                CreateRequest {
                    policies: vec![policy.into()],
                    no_default_policy: true,
                    path: "auth/token/create".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("token");
        issued.token.to_string()
    }

    fn secret(&self) -> MountRef {
        self.core
            .route("secret/data/x")
            .expect("secret/ is mounted")
            .0
    }

    async fn apply<O: Op>(
        &self,
        token: &str,
        path: &str,
        verb: Operation,
        params: &Map<String, Value>,
        op: O,
    ) -> std::result::Result<Value, ErrorKind>
    where
        O::Output: Send,
    {
        let req = Request {
            token,
            remote: None,
            path,
            operation: verb,
            params,
        };
        self.core
            .apply(&req, op, |r: Result<O::Output>| {
                Outcome(r.map(|_| json!({"ran": true})).map_err(|e| e.kind()))
            })
            .await
            .0
    }

    /// The audit lines written so far.
    fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["type"] == "request" || l["type"] == "response")
            .collect()
    }

    async fn write(&self, token: &str, path: &str) -> std::result::Result<Value, ErrorKind> {
        let op = KvWrite {
            mount: self.secret(),
            path: path.trim_start_matches("secret/data/").into(),
            data: Ok(Map::from_iter([("k".to_string(), json!("v"))])),
            cas: Ok(None),
        };
        self.apply(token, path, Operation::Update, &Map::new(), op)
            .await
    }

    async fn read(
        &self,
        token: &str,
        path: &str,
        params: &Map<String, Value>,
    ) -> std::result::Result<Value, ErrorKind> {
        let op = KvRead {
            mount: self.secret(),
            path: path.trim_start_matches("secret/data/").into(),
            version: Ok(None),
        };
        self.apply(token, path, Operation::Read, params, op).await
    }
}

#[tokio::test]
async fn acl_decides_and_both_audit_lines_are_written() {
    let a = appliance().await;
    a.write(&a.root, "secret/data/existing")
        .await
        .expect("root writes");
    let reader = a.token("reader").await;
    let creator = a.token("creator").await;
    let updater = a.token("updater").await;
    let no_version = a.token("no-version").await;
    let versioned = Map::from_iter([("version".to_string(), json!(1))]);
    let forbidden = Err(ErrorKind::Forbidden);
    let ran = Ok(json!({"ran": true}));

    // (what, outcome, the path the audit lines name)
    let mut cases = Vec::new();
    let r = a.read(&reader, "secret/data/existing", &Map::new()).await;
    cases.push(("reader reads", r, ran.clone(), "secret/data/existing"));
    let r = a.write(&reader, "secret/data/existing").await;
    cases.push((
        "reader writes",
        r,
        forbidden.clone(),
        "secret/data/existing",
    ));
    // Vault's existence check: create on a new path, update on an existing one.
    let r = a.write(&creator, "secret/data/new").await;
    cases.push(("creator creates", r, ran.clone(), "secret/data/new"));
    let r = a.write(&creator, "secret/data/existing").await;
    cases.push((
        "creator updates",
        r,
        forbidden.clone(),
        "secret/data/existing",
    ));
    let r = a.write(&updater, "secret/data/other-new").await;
    cases.push((
        "updater creates",
        r,
        forbidden.clone(),
        "secret/data/other-new",
    ));
    let r = a.write(&updater, "secret/data/existing").await;
    cases.push(("updater updates", r, ran.clone(), "secret/data/existing"));
    // Parameter constraints apply to the operation's parameters.
    let r = a
        .read(&no_version, "secret/data/existing", &Map::new())
        .await;
    cases.push(("no-version reads", r, ran.clone(), "secret/data/existing"));
    let r = a
        .read(&no_version, "secret/data/existing", &versioned)
        .await;
    cases.push((
        "no-version reads a version",
        r,
        forbidden.clone(),
        "secret/data/existing",
    ));
    let r = a
        .read("not-a-token", "secret/data/existing", &Map::new())
        .await;
    cases.push((
        "unknown token",
        r,
        Err(ErrorKind::Unauthenticated),
        "secret/data/existing",
    ));

    for (what, got, want, _) in &cases {
        assert_eq!(got, want, "{what}");
    }
    let lines = a.audit_lines();
    // The root write above, then two lines per case, in order.
    assert_eq!(lines.len(), 2 + 2 * cases.len(), "{lines:#?}");
    for (i, (what, got, _, path)) in cases.iter().enumerate() {
        let request = &lines[2 + 2 * i];
        let response = &lines[3 + 2 * i];
        assert_eq!(request["type"], "request", "{what}");
        assert_eq!(response["type"], "response", "{what}");
        assert_eq!(request["request"]["path"], *path, "{what}");
        assert_eq!(
            request["request"]["id"], response["request"]["id"],
            "{what}"
        );
        match got {
            Ok(_) => {
                assert_eq!(response["response"]["status"], 200, "{what}");
                assert_eq!(response["error"], "", "{what}");
            }
            Err(kind) => assert_eq!(response["error"], format!("{kind:?}"), "{what}"),
        }
    }
    // A token that resolves to nothing is marked denied on its request line already.
    let unknown = &lines[lines.len() - 2];
    assert_eq!(unknown["error"], "permission denied");
    assert!(unknown.get("auth").is_none());
    // Nothing the forbidden writers tried was written.
    assert_eq!(
        a.read(&a.root, "secret/data/other-new", &Map::new()).await,
        Err(ErrorKind::NotFound)
    );
}

#[tokio::test]
async fn sudo_paths_need_sudo() {
    let a = appliance().await;
    let refuse = || Refuse {
        access: Access::AclSudo(Operation::Update),
        error: EngineError::UnsupportedOperation,
    };
    let params = Map::new();
    let sudoer = a.token("sudoer").await;
    let no_sudo = a.token("raw-no-sudo").await;
    // Authorised: the operation runs (and answers its own error).
    assert_eq!(
        a.apply(&sudoer, "sys/raw", Operation::Update, &params, refuse())
            .await,
        Err(ErrorKind::InvalidInput)
    );
    assert_eq!(
        a.apply(&no_sudo, "sys/raw", Operation::Update, &params, refuse())
            .await,
        Err(ErrorKind::Forbidden)
    );
}

#[tokio::test]
async fn sealed_refuses_before_anything_and_public_needs_no_token() {
    struct Public;
    impl Op for Public {
        type Output = ();
        fn access(&self) -> Access {
            Access::Public
        }
        async fn run(self, _cx: super::Context<'_>) -> Result<()> {
            Ok(())
        }
    }
    let a = appliance().await;
    let before = a.audit_lines().len();
    assert_eq!(
        a.apply("", "sys/health", Operation::Read, &Map::new(), Public)
            .await,
        Ok(json!({"ran": true}))
    );
    assert_eq!(
        a.audit_lines().len(),
        before,
        "public operations are not audited"
    );
    let read = KvRead {
        mount: a.secret(),
        path: "existing".into(),
        version: Ok(None),
    };
    a.core.seal().await;
    assert_eq!(
        a.apply(
            &a.root,
            "secret/data/existing",
            Operation::Read,
            &Map::new(),
            read
        )
        .await,
        Err(ErrorKind::Sealed)
    );
    assert_eq!(
        a.apply("", "sys/health", Operation::Read, &Map::new(), Public)
            .await,
        Ok(json!({"ran": true}))
    );
}

#[tokio::test]
async fn reading_the_audit_log_back_needs_sudo_and_shows_the_latest_first() {
    use crate::audit::entries::{EntryQuery, Outcome as Logged};
    use crate::ops::sys::audit::AuditEntries;

    let a = appliance().await;
    a.write(&a.root, "secret/data/first").await.expect("write");
    a.write(&a.root, "secret/data/second").await.expect("write");
    let reader = a.token("reader").await;
    let _ = a.write(&reader, "secret/data/refused").await;

    let path = "api/v1/audit/entries";
    let entries = |limit| AuditEntries {
        query: Ok(EntryQuery {
            limit,
            ..Default::default()
        }),
    };
    for token in [reader.as_str(), &a.token("sudoer").await] {
        assert_eq!(
            a.apply(token, path, Operation::Read, &Map::new(), entries(10))
                .await,
            Err(ErrorKind::Forbidden),
            "a token without sudo on {path}"
        );
    }
    a.apply(&a.root, path, Operation::Read, &Map::new(), entries(10))
        .await
        .expect("root reads the log back");

    let query = EntryQuery {
        path: Some("secret/data/".into()),
        kind: Some("response".into()),
        limit: 3,
        ..Default::default()
    };
    let got = a.core.audit.entries(query).await.expect("entries");
    // This door answers every refusal 400: the outcome is an error, not a success.
    let seen: Vec<_> = got
        .iter()
        .map(|e| {
            (
                e.line["request"]["path"].clone(),
                e.outcome == Logged::Success,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("secret/data/refused"), false),
            (json!("secret/data/second"), true),
            (json!("secret/data/first"), true),
        ]
    );
    let unknown = EntryQuery {
        device: Some("nope".into()),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(
        a.core
            .audit
            .entries(unknown)
            .await
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(ErrorKind::InvalidInput)
    );
}
