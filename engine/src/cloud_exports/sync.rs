//! One sync of one job: the provider call with everything it needs, its audit entry, and
//! the outcome recorded on the export and in the outbox. Requests that wait for their
//! sync run it through [`run_inline`]; the worker through [`attempt`] and [`finish`].

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use super::material::BoundaryMaterial;
use super::outbox::{self, Job, MAX_ATTEMPTS};
use super::provider::{ExportedKey, ProviderRef, SyncError, SyncRequest};
use super::records::{self, ExportRecord, SyncState};
use super::{credentials, Claim, SYNC_DEADLINE};
use crate::core::Core;
use crate::error::Result;
use crate::managed_keys::KeyError;

/// What a sync came to.
pub(crate) type Outcome = std::result::Result<ProviderRef, SyncError>;

/// How a failure is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Retryable failures wait in the outbox with backoff, up to [`MAX_ATTEMPTS`].
    Worker,
    /// An export's creation whose caller hears the failure: nothing is kept, not even
    /// the credentials this request saved.
    InlineCreate { saved: Option<uuid::Uuid> },
    /// A manual sync whose caller hears the failure: recorded, not retried.
    InlineManual,
}

/// What a request that waited for its sync learned.
pub(crate) enum Inline {
    Done(Outcome),
    /// Not finished by the deadline: the sync goes on and records its outcome itself.
    Pending,
}

const GONE: &str = "the export was deleted";

/// Runs `job`'s provider call (the export shows `RUNNING` meanwhile) and audits it.
/// `one_time`: credentials the caller gave for this sync only, instead of saved ones.
pub(crate) async fn attempt(
    core: &Arc<Core>,
    job: &Job,
    one_time: Option<&Zeroizing<String>>,
) -> Outcome {
    let record = match mark_running(core, job).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(SyncError::permanent(GONE)),
        Err(e) => return Err(SyncError::retryable(e.public_message())),
    };
    let outcome = call(core, job, &record, one_time).await;
    crate::failpoint::crash_at("outbox:called");
    let mut entry = json!({
        "provider": record.provider.as_str(),
        "keyId": job.key_id,
        "exportId": job.export_id,
        "version": job.version,
        "reason": job.reason.as_str(),
        "attempt": job.attempts + 1,
        "operator": job.operator,
    });
    match &outcome {
        Ok(r) => {
            entry["result"] = "ok".into();
            entry["providerKeyId"] = r.key_id.clone().into();
            entry["providerKeyVersion"] = r.key_version.clone().into();
        }
        Err(e) => {
            entry["result"] = "error".into();
            entry["error"] = e.message.clone().into();
            entry["retryable"] = e.retryable.into();
        }
    }
    core.audit.event("cloud-export-sync", entry);
    outcome
}

async fn mark_running(core: &Core, job: &Job) -> Result<Option<ExportRecord>> {
    core.barrier
        .transact(|tx| {
            let mut all = records::read_in(tx, &job.key_id)?;
            let Some(record) = all.iter_mut().find(|r| r.id == job.export_id) else {
                return Ok(None);
            };
            record.sync_state = SyncState::Running;
            let record = record.clone();
            records::write_in(tx, &job.key_id, &all)?;
            Ok(Some(record))
        })
        .await
}

fn permanent(e: impl Into<crate::error::EngineError>) -> SyncError {
    SyncError::permanent(e.into().public_message())
}

async fn call(
    core: &Arc<Core>,
    job: &Job,
    record: &ExportRecord,
    one_time: Option<&Zeroizing<String>>,
) -> Outcome {
    let providers = core.exports.providers().ok_or_else(|| {
        SyncError::permanent("this appliance has no cloud provider clients configured")
    })?;
    let saved;
    let credentials = match (one_time, record.vault_secret_id) {
        (Some(given), _) => given,
        (None, Some(id)) => {
            saved = credentials::get(&core.barrier, &id)
                .map_err(|e| SyncError::retryable(e.public_message()))?
                .ok_or_else(|| {
                    SyncError::permanent(
                        "the export's saved credentials are gone: create the export again",
                    )
                })?;
            &saved
        }
        (None, None) => {
            return Err(permanent(KeyError::NoSavedCredentials(
                record.id.to_string(),
            )))
        }
    };
    let key = core.keys.get(&job.key_id).map_err(permanent)?;
    let version = key.version(job.version).map_err(permanent)?.clone();
    let root = core
        .root()
        .map_err(|e| SyncError::retryable(e.public_message()))?;
    let loaded = core.keys.load(&key, &version).map_err(permanent)?;
    let material = BoundaryMaterial::new(root, key.algorithm, loaded, key.allow_unwrapped_export);
    let exported = ExportedKey {
        key_id: key.id,
        name: key.name.clone(),
        algorithm: key.algorithm,
        usage: key.usage,
        version: version.version,
        public_key_der: version
            .public_key
            .clone()
            .filter(|_| key.algorithm.is_asymmetric()),
        allow_unwrapped_export: key.allow_unwrapped_export,
    };
    let previous = record.provider_ref();
    let request = SyncRequest {
        export_id: record.id,
        provider: record.provider,
        metadata: &record.provider_metadata,
        credentials,
        key: &exported,
        material: &material,
        previous: previous.as_ref(),
    };
    match tokio::time::timeout(SYNC_DEADLINE, providers.sync(request)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(SyncError::retryable(format!(
            "{} did not answer within {} s",
            record.provider.as_str(),
            SYNC_DEADLINE.as_secs()
        ))),
    }
}

/// Records `outcome` on the export and settles `job` in the outbox, in one transaction.
pub(crate) async fn finish(core: &Core, job: &Job, outcome: &Outcome, mode: Finish) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    core.barrier
        .transact(|tx| {
            outbox::delete_in(tx, &job.id);
            let mut all = records::read_in(tx, &job.key_id)?;
            let Some(index) = all.iter().position(|r| r.id == job.export_id) else {
                return Ok(());
            };
            let record = &mut all[index];
            match (outcome, mode) {
                (Ok(at), _) => {
                    record.sync_state = SyncState::Ok;
                    record.last_sync_at = Some(now);
                    record.last_sync_error = None;
                    record.provider_key_id = Some(at.key_id.clone());
                    record.provider_key_version = at.key_version.clone();
                }
                (Err(_), Finish::InlineCreate { saved }) => {
                    all.remove(index);
                    if let Some(id) = saved {
                        credentials::delete_in(tx, &id);
                    }
                }
                (Err(e), Finish::InlineManual) => {
                    record.sync_state = SyncState::Failed;
                    record.last_sync_error = Some(e.message.clone());
                }
                (Err(e), Finish::Worker) => {
                    record.last_sync_error = Some(e.message.clone());
                    let failures = job.attempts + 1;
                    if e.retryable && failures < MAX_ATTEMPTS {
                        let retry = Job {
                            attempts: failures,
                            not_before: now + outbox::backoff(failures),
                            ..job.clone()
                        };
                        outbox::put_in(tx, &retry)?;
                        record.sync_state = SyncState::Pending;
                    } else {
                        record.sync_state = SyncState::Failed;
                    }
                }
            }
            records::write_in(tx, &job.key_id, &all)
        })
        .await
}

/// Runs `job` for a request that waits for it, up to the deadline. The sync itself runs
/// in its own task, so a caller that stops waiting (or goes away) does not cut a
/// provider call short: the task then records the outcome as the worker would.
pub(crate) async fn run_inline(
    core: &Arc<Core>,
    job: Job,
    claim: Claim,
    one_time: Option<Zeroizing<String>>,
    mode: Finish,
) -> Result<Inline> {
    let (sender, mut receiver) = oneshot::channel::<(Outcome, Claim)>();
    let task_core = core.clone();
    let task_job = job.clone();
    tokio::spawn(async move {
        let outcome = attempt(&task_core, &task_job, one_time.as_ref()).await;
        if let Err((outcome, claim)) = sender.send((outcome, claim)) {
            if let Err(e) = finish(&task_core, &task_job, &outcome, Finish::Worker).await {
                tracing::warn!(export_id = %task_job.export_id, error = %e, "recording a cloud sync failed");
            }
            drop(claim);
        }
    });
    let received = tokio::select! {
        r = &mut receiver => r.ok(),
        _ = tokio::time::sleep(core.exports.wait()) => {
            // Whatever arrived before the close is ours to record; after it, the task's.
            receiver.close();
            receiver.try_recv().ok()
        }
    };
    let Some((outcome, claim)) = received else {
        return Ok(Inline::Pending);
    };
    finish(core, &job, &outcome, mode).await?;
    drop(claim);
    Ok(Inline::Done(outcome))
}
