//! The records, the outbox and the worker against a scripted provider: what a rotation
//! enqueues, how failures are retried and recorded, what the claim keeps apart, what
//! survives a restart, and what deletion removes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hsm_bridge::WrapMechanism;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::provider::{CloudProviders, Provider, ProviderRef, SyncError, SyncFuture, SyncRequest};
use super::records::{CreateExport, ExportRecord, SyncState};
use super::{outbox, worker, Job};
use crate::audit::DeviceConfig;
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::managed_keys::{Algorithm, CreateKey, ManagedKey};
use crate::ops::cloud_exports::{
    ExportAutoSync, ExportCreate, ExportDelete, ExportList, ExportSync, Synced,
};
use crate::ops::managed_keys::{KeyCreate, KeyRotate, KeyScheduleDestruction};
use crate::ops::{Audited, AuditedResponse, Op, Request};
use crate::policy::Operation;
use crate::seal::UnsealStep;
use crate::storage::{MemoryBackend, Storage};
use crate::token::CreateRequest;

const SECRET: &str = "s3cr3t-never-shown";

/// What the fake provider saw of one sync.
#[derive(Debug, Clone)]
struct Seen {
    export: uuid::Uuid,
    version: u32,
    credentials: String,
    previous: Option<ProviderRef>,
    wraps: bool,
}

/// A provider whose answers are scripted (`Ok` once the script is empty); with a gate,
/// each sync waits for a permit first.
#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<std::result::Result<(), SyncError>>>,
    seen: Mutex<Vec<Seen>>,
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn answering(answers: Vec<std::result::Result<(), SyncError>>) -> Arc<Self> {
        Arc::new(Fake {
            script: Mutex::new(answers.into()),
            ..Default::default()
        })
    }

    fn gated(gate: Arc<Semaphore>) -> Arc<Self> {
        Arc::new(Fake {
            gate: Some(gate),
            ..Default::default()
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl CloudProviders for Fake {
    fn validate(
        &self,
        _provider: Provider,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        _algorithm: Algorithm,
        _allow_unwrapped_export: bool,
    ) -> std::result::Result<(), String> {
        if let Some(unknown) = metadata.keys().find(|k| *k != "region") {
            return Err(format!(
                "providerMetadata.{unknown} is not a field this provider takes"
            ));
        }
        if credentials.is_some_and(|c| !c.contains_key("secretAccessKey")) {
            return Err("credentials.secretAccessKey is required".into());
        }
        metadata.insert("endpoint".into(), "https://kms.example".into());
        Ok(())
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                let _permit = gate.acquire().await;
            }
            self.seen.lock().push(Seen {
                export: request.export_id,
                version: request.key.version,
                credentials: request.credentials.to_string(),
                previous: request.previous.cloned(),
                wraps: request
                    .material
                    .supports(WrapMechanism::RsaAesKeyWrapSha256)
                    .is_ok(),
            });
            let answer = self.script.lock().pop_front().unwrap_or(Ok(()));
            answer.map(|()| ProviderRef {
                key_id: format!("arn:fake:{}", request.key.key_id),
                key_version: Some(request.key.version.to_string()),
            })
        })
    }
}

/// The test door: the typed outcome itself.
struct Raw<T>(Result<T>);

impl<T> Audited for Raw<T> {
    fn audited(&self) -> AuditedResponse<'_> {
        AuditedResponse {
            status: if self.0.is_ok() { 200 } else { 400 },
            body: None,
            error: None,
        }
    }
}

struct Appliance {
    core: Arc<Core>,
    storage: Arc<Storage>,
    root: String,
    unseal: crate::seal::UnsealShare,
    audit_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn appliance(fake: Arc<Fake>) -> Appliance {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let core = Core::new(storage.clone());
    let init = core.dev_setup(None).await.expect("dev setup");
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
    core.set_cloud_providers(fake);
    Appliance {
        core,
        storage,
        root: init.root_token.to_string(),
        unseal: init.keys[0].clone(),
        audit_log,
        _dir: dir,
    }
}

impl Appliance {
    async fn apply<O: Op>(&self, token: &str, op: O) -> Result<O::Output> {
        let params = Map::new();
        let req = Request {
            token,
            remote: None,
            path: "api/v1/keys",
            operation: Operation::Update,
            params: &params,
        };
        self.core.apply(&req, op, Raw).await.0
    }

    async fn key(&self, name: &str, algorithm: Algorithm, exportable: bool) -> ManagedKey {
        let op = KeyCreate {
            request: Ok(CreateKey {
                name: name.into(),
                algorithm,
                usage: None,
                labels: BTreeMap::new(),
                exportable,
                allow_unwrapped_export: false,
            }),
        };
        self.apply(&self.root, op).await.expect("create key")
    }

    async fn export(&self, key: &ManagedKey, auto_sync: bool) -> Result<Synced> {
        self.apply(&self.root, create(key, auto_sync, true)).await
    }

    async fn rotate(&self, key: &ManagedKey) -> ManagedKey {
        let op = KeyRotate {
            key: key.id.to_string(),
        };
        self.apply(&self.root, op).await.expect("rotate")
    }

    fn records(&self, key: &ManagedKey) -> Vec<ExportRecord> {
        super::records::read(&self.core.barrier, &key.id).expect("records")
    }

    fn record(&self, key: &ManagedKey) -> ExportRecord {
        let all = self.records(key);
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }

    fn jobs(&self) -> Vec<Job> {
        outbox::all(&self.core.barrier).expect("outbox")
    }

    fn credentials(&self) -> Vec<String> {
        self.core.barrier.list("cloud/credentials/").expect("list")
    }

    /// Makes every job due now, as if its backoff had passed.
    async fn make_due(&self) {
        for mut job in self.jobs() {
            job.not_before = time::OffsetDateTime::now_utc();
            self.core
                .barrier
                .transact(|tx| outbox::put_in(tx, &job))
                .await
                .expect("job");
        }
    }

    /// Runs the worker once and waits for the syncs it started.
    async fn drain(&self) -> usize {
        let started = worker::start_due(&self.core).expect("worker");
        self.idle().await;
        started
    }

    async fn idle(&self) {
        for _ in 0..500 {
            if self.core.exports.in_flight() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("syncs still running");
    }

    fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit_log).unwrap_or_default()
    }
}

fn create(key: &ManagedKey, auto_sync: bool, save: bool) -> ExportCreate {
    ExportCreate {
        key: key.id.to_string(),
        request: Ok(CreateExport {
            provider: Provider::AwsKms,
            provider_metadata: json!({"region": "eu-west-3"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            credentials: Some(Zeroizing::new(
                json!({"accessKeyId": "AKIA", "secretAccessKey": SECRET}).to_string(),
            )),
            vault_secret_id: None,
            auto_sync_enabled: auto_sync,
            save_credentials: save,
        }),
    }
}

fn code<T>(r: Result<T>) -> Option<&'static str> {
    match r {
        Err(EngineError::Key(k)) => Some(k.code()),
        _ => None,
    }
}

#[tokio::test]
async fn an_export_runs_inline_and_its_record_never_holds_the_credentials() {
    let fake = Fake::answering(vec![]);
    let a = appliance(fake.clone()).await;
    let key = a.key("signer", Algorithm::EcP256, true).await;
    let synced = a.export(&key, true).await.expect("export");
    assert!(synced.finished);
    let record = synced.record;
    assert_eq!(record.sync_state, SyncState::Ok);
    assert_eq!(record.crypto_key_id, key.id);
    assert_eq!(record.exported_by, "root");
    assert_eq!(record.provider_key_id, Some(format!("arn:fake:{}", key.id)));
    assert_eq!(record.provider_key_version.as_deref(), Some("1"));
    assert!(record.last_sync_at.is_some() && record.last_sync_error.is_none());
    assert_eq!(record.provider_metadata["endpoint"], "https://kms.example");
    let secret_id = record.vault_secret_id.expect("saved credentials");
    assert_eq!(a.credentials(), [secret_id.to_string()]);
    assert!(a.jobs().is_empty());

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].credentials.contains(SECRET) && seen[0].wraps);
    assert_eq!((seen[0].version, seen[0].previous.clone()), (1, None));

    let shown = serde_json::to_string(&a.records(&key)).expect("json");
    assert!(!shown.contains(SECRET), "{shown}");
    let audit = a.audit_text();
    assert!(audit.contains("cloud-export-sync"), "{audit}");
    assert!(audit.contains(&record.id.to_string()), "{audit}");
    assert!(!audit.contains(SECRET), "{audit}");

    // Listing needs keys:read only, creating keys:write.
    let reader = reader_token(&a.core).await;
    let listed = a
        .apply(
            &reader,
            ExportList {
                key: key.id.to_string(),
            },
        )
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(matches!(
        a.apply(&reader, create(&key, false, true)).await,
        Err(EngineError::MissingScope("keys:write"))
    ));
}

async fn reader_token(core: &Arc<Core>) -> String {
    core.tokens
        .create(
            None,
            CreateRequest {
                scopes: vec!["keys:read".into()],
                path: "auth/token/create".into(),
                ..Default::default()
            },
        )
        .await
        .expect("token")
        .token
        .to_string()
}

#[tokio::test]
async fn refusals_name_the_flag_the_field_or_the_missing_credentials() {
    let a = appliance(Fake::answering(vec![])).await;
    let plain = a.key("plain", Algorithm::EcP256, false).await;
    assert_eq!(
        code(a.export(&plain, false).await),
        Some("KEY_NOT_EXPORTABLE")
    );
    let pq = a.key("pq", Algorithm::MlDsa65, false).await;
    assert_eq!(
        code(a.export(&pq, false).await),
        Some("ALGORITHM_NOT_EXPORTABLE")
    );
    let refused = KeyCreate {
        request: Ok(CreateKey {
            name: "pq-exportable".into(),
            algorithm: Algorithm::MlKem768,
            usage: None,
            labels: BTreeMap::new(),
            exportable: true,
            allow_unwrapped_export: false,
        }),
    };
    assert_eq!(
        code(a.apply(&a.root, refused).await),
        Some("ALGORITHM_NOT_EXPORTABLE")
    );
    let unwrapped_ec = KeyCreate {
        request: Ok(CreateKey {
            name: "ec-unwrapped".into(),
            algorithm: Algorithm::EcP256,
            usage: None,
            labels: BTreeMap::new(),
            exportable: true,
            allow_unwrapped_export: true,
        }),
    };
    assert_eq!(
        code(a.apply(&a.root, unwrapped_ec).await),
        Some("INVALID_FIELD")
    );

    let key = a.key("k", Algorithm::Rsa2048, true).await;
    let mut bad = create(&key, false, true);
    if let Ok(r) = bad.request.as_mut() {
        r.provider_metadata.insert("color".into(), "blue".into());
    }
    assert_eq!(code(a.apply(&a.root, bad).await), Some("UNKNOWN_FIELD"));
    // Auto-sync needs saved credentials, at creation and later.
    assert_eq!(
        code(a.apply(&a.root, create(&key, true, false)).await),
        Some("NO_SAVED_CREDENTIALS")
    );
    let once = a
        .apply(&a.root, create(&key, false, false))
        .await
        .expect("one-time export");
    assert_eq!(once.record.vault_secret_id, None);
    assert!(a.credentials().is_empty());
    let enable = ExportAutoSync {
        key: key.id.to_string(),
        export: once.record.id.to_string(),
        enabled: Ok(true),
    };
    assert_eq!(
        code(a.apply(&a.root, enable).await),
        Some("NO_SAVED_CREDENTIALS")
    );
    let sync = ExportSync {
        key: key.id.to_string(),
        export: once.record.id.to_string(),
        body: Ok(()),
    };
    assert_eq!(
        code(a.apply(&a.root, sync).await),
        Some("NO_SAVED_CREDENTIALS")
    );
    let missing = ExportDelete {
        key: key.id.to_string(),
        export: uuid::Uuid::new_v4().to_string(),
    };
    assert_eq!(
        code(a.apply(&a.root, missing).await),
        Some("EXPORT_NOT_FOUND")
    );
}

#[tokio::test]
async fn a_failed_initial_export_keeps_nothing() {
    let denied = "AccessDeniedException: User: arn:aws:iam::1:user/x is not authorized to perform: kms:ImportKeyMaterial";
    let a = appliance(Fake::answering(vec![Err(SyncError::retryable(denied))])).await;
    let key = a.key("k", Algorithm::EcP256, true).await;
    match a.export(&key, true).await {
        Err(EngineError::Key(k)) => {
            assert_eq!(
                (k.code(), k.to_string()),
                ("PROVIDER_ERROR", denied.to_string())
            )
        }
        other => panic!("{:?}", other.map(|s| s.record)),
    }
    assert!(a.records(&key).is_empty());
    assert!(a.credentials().is_empty());
    assert!(a.jobs().is_empty());
    assert!(a.audit_text().contains("AccessDeniedException"));
}

#[tokio::test]
async fn a_rotation_enqueues_its_syncs_and_the_worker_runs_them() {
    let fake = Fake::answering(vec![]);
    let a = appliance(fake.clone()).await;
    let key = a.key("k", Algorithm::Rsa2048, true).await;
    let auto = a.export(&key, true).await.expect("export").record;
    let manual = a.export(&key, false).await.expect("export").record;
    let first_sync = a.record_by_id(&key, &auto.id).last_sync_at;

    a.rotate(&key).await;
    // Committed with the version: one job, for the auto-sync export only.
    let jobs = a.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0].export_id, jobs[0].version), (auto.id, 2));
    assert_eq!(jobs[0].reason, super::SyncReason::Rotation);
    assert_eq!(jobs[0].operator, "root");
    assert_eq!(
        a.record_by_id(&key, &auto.id).sync_state,
        SyncState::Pending
    );
    assert_eq!(a.record_by_id(&key, &manual.id).sync_state, SyncState::Ok);

    assert_eq!(a.drain().await, 1);
    let synced = a.record_by_id(&key, &auto.id);
    assert_eq!(synced.sync_state, SyncState::Ok);
    assert_eq!(synced.provider_key_version.as_deref(), Some("2"));
    assert!(synced.last_sync_at > first_sync);
    assert!(a.jobs().is_empty());
    let last = fake.seen().pop().expect("a sync");
    assert_eq!((last.export, last.version), (auto.id, 2));
    assert_eq!(
        last.previous.and_then(|p| p.key_version).as_deref(),
        Some("1")
    );
    assert_eq!(a.drain().await, 0);
}

impl Appliance {
    fn record_by_id(&self, key: &ManagedKey, id: &uuid::Uuid) -> ExportRecord {
        self.records(key)
            .into_iter()
            .find(|r| r.id == *id)
            .expect("record")
    }
}

#[tokio::test]
async fn retryable_failures_back_off_up_to_the_cap_and_permanent_ones_stop_at_once() {
    let fake = Fake::answering(vec![]);
    let a = appliance(fake.clone()).await;
    let key = a.key("k", Algorithm::EcP384, true).await;
    let export = a.export(&key, true).await.expect("export").record;
    let synced_at = a.record(&key).last_sync_at;

    fake.script.lock().extend(
        (0..outbox::MAX_ATTEMPTS).map(|n| Err(SyncError::retryable(format!("503 throttled #{n}")))),
    );
    a.rotate(&key).await;
    let before = time::OffsetDateTime::now_utc();
    assert_eq!(a.drain().await, 1);
    let job = a.jobs().pop().expect("the job waits for its retry");
    assert_eq!(job.attempts, 1);
    let wait = job.not_before - before;
    assert!(
        wait > time::Duration::seconds(1) && wait <= time::Duration::seconds(3),
        "{wait}"
    );
    let record = a.record(&key);
    assert_eq!(record.sync_state, SyncState::Pending);
    assert_eq!(record.last_sync_error.as_deref(), Some("503 throttled #0"));
    assert_eq!(record.last_sync_at, synced_at);
    // Not due yet: nothing runs.
    assert_eq!(a.drain().await, 0);

    for attempt in 2..=outbox::MAX_ATTEMPTS {
        a.make_due().await;
        assert_eq!(a.drain().await, 1, "attempt {attempt}");
    }
    assert!(a.jobs().is_empty());
    let record = a.record(&key);
    assert_eq!(record.sync_state, SyncState::Failed);
    assert_eq!(record.last_sync_error.as_deref(), Some("503 throttled #7"));
    assert_eq!(record.last_sync_at, synced_at);
    assert_eq!(fake.seen().len(), 1 + outbox::MAX_ATTEMPTS as usize);

    // A permanent failure is recorded at once and the job dropped.
    fake.script
        .lock()
        .push_back(Err(SyncError::permanent("PERMISSION_DENIED: no")));
    a.rotate(&key).await;
    assert_eq!(a.drain().await, 1);
    assert!(a.jobs().is_empty());
    let record = a.record(&key);
    assert_eq!(record.sync_state, SyncState::Failed);
    assert_eq!(
        record.last_sync_error.as_deref(),
        Some("PERMISSION_DENIED: no")
    );

    // A manual sync that succeeds clears the error and moves lastSyncAt.
    let sync = ExportSync {
        key: key.id.to_string(),
        export: export.id.to_string(),
        body: Ok(()),
    };
    let synced = a.apply(&a.root, sync).await.expect("sync");
    assert!(synced.finished);
    assert_eq!(synced.record.sync_state, SyncState::Ok);
    assert_eq!(synced.record.last_sync_error, None);
    assert!(synced.record.last_sync_at > synced_at);
    assert_eq!(synced.record.provider_key_version.as_deref(), Some("3"));

    // A manual sync that fails says so, and the record keeps the error.
    fake.script
        .lock()
        .push_back(Err(SyncError::retryable("ForbiddenByRbac")));
    let sync = ExportSync {
        key: key.id.to_string(),
        export: export.id.to_string(),
        body: Ok(()),
    };
    assert_eq!(code(a.apply(&a.root, sync).await), Some("PROVIDER_ERROR"));
    let record = a.record(&key);
    assert_eq!(record.sync_state, SyncState::Failed);
    assert_eq!(record.last_sync_error.as_deref(), Some("ForbiddenByRbac"));
    assert!(a.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_keeps_the_inline_sync_and_the_worker_apart() {
    let gate = Arc::new(Semaphore::new(1));
    let fake = Fake::gated(gate.clone());
    let a = Arc::new(appliance(fake.clone()).await);
    let key = a.key("k", Algorithm::EcP256, true).await;
    let export = a.export(&key, true).await.expect("export").record;
    gate.forget_permits(1);

    let manual = {
        let a = a.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let sync = ExportSync {
                key: key.id.to_string(),
                export: export.id.to_string(),
                body: Ok(()),
            };
            a.apply(&a.root, sync).await.map(|s| s.record.sync_state)
        })
    };
    for _ in 0..500 {
        if a.record(&key).sync_state == SyncState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.record(&key).sync_state, SyncState::Running);
    // The manual job is due in the outbox, but the worker leaves it to its claimant.
    assert_eq!(a.jobs().len(), 1);
    assert_eq!(worker::start_due(&a.core).expect("worker"), 0);
    let again = ExportSync {
        key: key.id.to_string(),
        export: export.id.to_string(),
        body: Ok(()),
    };
    assert_eq!(
        code(a.apply(&a.root, again).await),
        Some("SYNC_IN_PROGRESS")
    );

    gate.add_permits(1);
    assert_eq!(manual.await.expect("task").expect("sync"), SyncState::Ok);
    assert_eq!(fake.seen().len(), 2);
    assert!(a.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_past_the_deadline_answers_pending_and_finishes_by_itself() {
    let gate = Arc::new(Semaphore::new(0));
    let a = appliance(Fake::gated(gate.clone())).await;
    a.core.exports.set_wait(Duration::from_millis(200));
    let key = a.key("k", Algorithm::EcP256, true).await;
    let pending = a.export(&key, true).await.expect("export");
    assert!(!pending.finished);
    assert_eq!(pending.record.sync_state, SyncState::Running);
    gate.add_permits(1);
    a.idle().await;
    let record = a.record(&key);
    assert_eq!(record.sync_state, SyncState::Ok);
    assert!(a.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_a_crash_left_running_is_taken_again_after_a_restart() {
    let gate = Arc::new(Semaphore::new(1));
    let a = appliance(Fake::gated(gate.clone())).await;
    let key = a.key("k", Algorithm::EcP256, true).await;
    a.export(&key, true).await.expect("export");
    gate.forget_permits(1);
    a.rotate(&key).await;
    let _stuck = worker::start_due(&a.core).expect("worker");
    for _ in 0..500 {
        if a.record(&key).sync_state == SyncState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.record(&key).sync_state, SyncState::Running);

    // The process dies with the provider call in flight; a new one opens the storage.
    let fresh = Fake::answering(vec![]);
    let core = Core::new(a.storage.clone());
    core.unseal(UnsealStep::Share(a.unseal.clone()))
        .await
        .expect("unseal");
    core.set_cloud_providers(fresh.clone());
    let restarted = Appliance {
        core,
        storage: a.storage.clone(),
        root: a.root.clone(),
        unseal: a.unseal.clone(),
        audit_log: a.audit_log.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    assert_eq!(restarted.drain().await, 1);
    let record = restarted.record(&key);
    assert_eq!(record.sync_state, SyncState::Ok);
    assert_eq!(record.provider_key_version.as_deref(), Some("2"));
    assert!(restarted.jobs().is_empty());
    assert_eq!(fresh.seen().len(), 1);
}

#[tokio::test]
async fn deleting_an_export_or_its_key_removes_credentials_and_jobs() {
    let fake = Fake::answering(vec![]);
    let a = appliance(fake.clone()).await;
    let key = a.key("k", Algorithm::EcP256, true).await;
    let export = a.export(&key, true).await.expect("export").record;
    fake.script
        .lock()
        .push_back(Err(SyncError::retryable("connection refused")));
    a.rotate(&key).await;
    a.drain().await;
    assert_eq!(a.jobs().len(), 1);
    assert_eq!(a.credentials().len(), 1);
    let delete = ExportDelete {
        key: key.id.to_string(),
        export: export.id.to_string(),
    };
    a.apply(&a.root, delete).await.expect("delete");
    assert!(a.records(&key).is_empty());
    assert!(a.jobs().is_empty());
    assert!(a.credentials().is_empty());

    // Shared saved credentials stay while another export names them.
    let first = a.export(&key, true).await.expect("export").record;
    let secret = first.vault_secret_id;
    let reuse = ExportCreate {
        key: key.id.to_string(),
        request: Ok(CreateExport {
            provider: Provider::AwsKms,
            provider_metadata: Map::new(),
            credentials: None,
            vault_secret_id: secret,
            auto_sync_enabled: true,
            save_credentials: true,
        }),
    };
    let second = a.apply(&a.root, reuse).await.expect("reuse").record;
    assert_eq!(second.vault_secret_id, secret);
    let delete = ExportDelete {
        key: key.id.to_string(),
        export: first.id.to_string(),
    };
    a.apply(&a.root, delete).await.expect("delete");
    assert_eq!(a.credentials().len(), 1);

    // Destroying the key takes its exports, their credentials and jobs with it.
    fake.script
        .lock()
        .push_back(Err(SyncError::retryable("connection refused")));
    a.rotate(&key).await;
    a.drain().await;
    assert_eq!(a.jobs().len(), 1);
    let destroy = KeyScheduleDestruction {
        key: key.id.to_string(),
        pending_window_seconds: Ok(Some(1)),
    };
    a.apply(&a.root, destroy).await.expect("schedule");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let root = a.core.root().ok();
    let destroyed = a.core.keys.tidy(root).await.expect("tidy");
    assert_eq!(destroyed.len(), 1);
    assert!(a.records(&key).is_empty());
    assert!(a.jobs().is_empty());
    assert!(a.credentials().is_empty());
}
