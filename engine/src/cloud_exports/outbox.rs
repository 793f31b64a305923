//! The durable outbox of sync jobs, `cloud/outbox/<jobId>`. A rotation enqueues its jobs
//! in the transaction that commits the new version, so a crash cannot lose one; a job
//! leaves the outbox only once its outcome is recorded on the export, so a crash in the
//! middle of a provider call leaves it to be taken again after the restart.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::records::{self, SyncState};
use crate::barrier::{Barrier, BarrierTx};
use crate::error::Result;

const PREFIX: &str = "cloud/outbox/";

/// Attempts of a job whose failures are retryable; then it is recorded as failed.
pub const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// Why a job exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncReason {
    /// The export's creation.
    Initial,
    /// A rotation of a key with auto-sync exports.
    Rotation,
    /// `POST .../sync`.
    Manual,
}

impl SyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncReason::Initial => "initial",
            SyncReason::Rotation => "rotation",
            SyncReason::Manual => "manual",
        }
    }
}

/// One sync to run: a version of a key to one export's destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: uuid::Uuid,
    pub export_id: uuid::Uuid,
    pub key_id: uuid::Uuid,
    pub version: u32,
    pub reason: SyncReason,
    /// Failed attempts so far.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// Who caused the sync: the caller who exported, synced or rotated.
    pub operator: String,
}

impl Job {
    pub fn new(
        export_id: uuid::Uuid,
        key_id: uuid::Uuid,
        version: u32,
        reason: SyncReason,
        operator: &str,
    ) -> Self {
        Job {
            id: uuid::Uuid::new_v4(),
            export_id,
            key_id,
            version,
            reason,
            attempts: 0,
            not_before: OffsetDateTime::now_utc(),
            operator: operator.to_string(),
        }
    }
}

/// How long to wait after the `failures`-th failed attempt: 2 s, doubling, at most 5 min.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn path(id: &uuid::Uuid) -> String {
    format!("{PREFIX}{id}")
}

pub(crate) fn put_in(tx: &mut BarrierTx<'_>, job: &Job) -> Result<()> {
    tx.put_json(&path(&job.id), job)?;
    Ok(())
}

pub(crate) fn delete_in(tx: &mut BarrierTx<'_>, id: &uuid::Uuid) {
    tx.delete(&path(id));
}

/// How many jobs wait in the outbox.
pub(crate) fn depth(barrier: &Barrier) -> Result<usize> {
    Ok(barrier.list(PREFIX)?.len())
}

/// Every job in the outbox.
pub(crate) fn all(barrier: &Barrier) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for id in barrier.list(PREFIX)? {
        let Ok(id) = uuid::Uuid::parse_str(&id) else {
            continue;
        };
        if let Some(job) = barrier.get_json::<Job>(&path(&id))? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// Deletes, in the transaction, the jobs of the exports `matches` selects. The listing
/// is not a condition of the commit: a job enqueued meanwhile for an export that is gone
/// finds no record when it runs, and is dropped then.
pub(crate) fn delete_matching_in(
    tx: &mut BarrierTx<'_>,
    barrier: &Barrier,
    matches: impl Fn(&Job) -> bool,
) -> Result<()> {
    for job in all(barrier)? {
        if matches(&job) {
            delete_in(tx, &job.id);
        }
    }
    Ok(())
}

/// In a rotation's transaction: one job per export of `key_id` with auto-sync on and
/// saved credentials, for the new `version`; those exports show `PENDING`. Returns how
/// many were enqueued.
pub(crate) fn enqueue_rotation(
    tx: &mut BarrierTx<'_>,
    key_id: &uuid::Uuid,
    version: u32,
    operator: &str,
) -> Result<usize> {
    let mut exports = records::read_in(tx, key_id)?;
    let mut enqueued = 0;
    for record in exports
        .iter_mut()
        .filter(|r| r.auto_sync_enabled && r.vault_secret_id.is_some())
    {
        put_in(
            tx,
            &Job::new(record.id, *key_id, version, SyncReason::Rotation, operator),
        )?;
        record.sync_state = SyncState::Pending;
        enqueued += 1;
    }
    if enqueued > 0 {
        records::write_in(tx, key_id, &exports)?;
    }
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
