//! The outbox worker: a periodic task that starts the due jobs, a few at a time, each in
//! its own task, so that a slow provider holds up neither the other periodic work nor
//! the reactor.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;

use super::outbox;
use super::sync::{attempt, finish, Finish};
use super::MAX_IN_FLIGHT;
use crate::core::Core;
use crate::error::Result;
use crate::periodic::{PeriodicTask, TaskFuture};

pub(crate) struct CloudSync {
    /// The core that owns this task (a strong reference would keep it alive forever).
    pub(crate) core: Weak<Core>,
}

impl PeriodicTask for CloudSync {
    fn name(&self) -> &'static str {
        "cloud-export-sync"
    }

    fn interval(&self) -> Duration {
        Duration::ZERO
    }

    fn run<'a>(&'a self, _core: &'a Core) -> TaskFuture<'a> {
        Box::pin(async move {
            if let Some(core) = self.core.upgrade() {
                start_due(&core)?;
            }
            Ok(())
        })
    }
}

/// Starts the due jobs no sync of this process holds; returns how many. Each export's
/// jobs run one at a time in version order, so a retried older version cannot land at
/// the provider after a newer one.
pub(crate) fn start_due(core: &Arc<Core>) -> Result<usize> {
    if core.exports.providers().is_none() {
        return Ok(0);
    }
    let mut jobs = outbox::all(&core.barrier)?;
    jobs.sort_by_key(|j| (j.version, j.not_before));
    let now = OffsetDateTime::now_utc();
    let mut first_of_export = HashSet::new();
    let mut started = 0;
    for job in jobs {
        if !first_of_export.insert(job.export_id) || job.not_before > now {
            continue;
        }
        if core.exports.in_flight() >= MAX_IN_FLIGHT {
            break;
        }
        let Some(claim) = core.exports.claim(job.export_id) else {
            continue;
        };
        let core = core.clone();
        tokio::spawn(async move {
            let outcome = attempt(&core, &job, None).await;
            if let Err(e) = finish(&core, &job, &outcome, Finish::Worker).await {
                tracing::warn!(export_id = %job.export_id, error = %e, "recording a cloud sync failed");
            }
            drop(claim);
        });
        started += 1;
    }
    Ok(started)
}
