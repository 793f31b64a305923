//! Cloud exports (`/api/v1/keys/{keyId}/cloud-exports`): records linking a managed key to
//! a provider destination, the saved credentials, and the durable outbox of sync jobs a
//! rotation enqueues in its own storage transaction.
//!
//! Storage (under the barrier): `cloud/exports/<keyId>` (that key's records),
//! `cloud/credentials/<id>` (a credentials object), `cloud/outbox/<jobId>` (a sync job).
//!
//! A sync runs either inline, for a request that waits for it (an export's creation, a
//! manual sync), or from the worker ([`worker::CloudSync`]) for the outbox's due jobs. One
//! in-process claim per export keeps the two from running the same export at once.

pub mod credentials;
pub(crate) mod material;
pub mod outbox;
pub mod provider;
pub mod records;
pub(crate) mod sync;
#[cfg(test)]
mod tests;
pub(crate) mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

pub use outbox::{Job, SyncReason, MAX_ATTEMPTS};
pub use provider::{
    CloudProviders, ExportMaterial, ExportedKey, Provider, ProviderRef, SyncError, SyncFuture,
    SyncRequest,
};
pub use records::{CreateExport, ExportRecord, SyncState};

/// Why post-quantum keys are never exported, in the words the product documents.
pub const POST_QUANTUM_NOT_EXPORTABLE: &str = "Post-quantum algorithms (ML-KEM, ML-DSA) cannot be exported because cloud KMS providers do not yet support them.";

/// The longest a provider call may take, and a request waits for its sync.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(60);

/// Syncs the worker runs at once.
const MAX_IN_FLIGHT: usize = 4;

/// The provider clients and the exports being synced in this process.
pub struct CloudExports {
    providers: RwLock<Option<Arc<dyn CloudProviders>>>,
    claims: Arc<Mutex<HashSet<uuid::Uuid>>>,
    /// How long a request waits for its sync (the deadline, but for tests).
    wait: RwLock<Duration>,
}

impl Default for CloudExports {
    fn default() -> Self {
        CloudExports {
            providers: RwLock::new(None),
            claims: Arc::default(),
            wait: RwLock::new(SYNC_DEADLINE),
        }
    }
}

/// An export this process is syncing; released when dropped.
pub(crate) struct Claim {
    claims: Arc<Mutex<HashSet<uuid::Uuid>>>,
    export: uuid::Uuid,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.export);
    }
}

impl CloudExports {
    pub(crate) fn set_providers(&self, providers: Arc<dyn CloudProviders>) {
        *self.providers.write() = Some(providers);
    }

    pub(crate) fn providers(&self) -> Option<Arc<dyn CloudProviders>> {
        self.providers.read().clone()
    }

    /// Claims `export` for one sync, unless a sync of it is running here already.
    pub(crate) fn claim(&self, export: uuid::Uuid) -> Option<Claim> {
        self.claims.lock().insert(export).then(|| Claim {
            claims: self.claims.clone(),
            export,
        })
    }

    fn in_flight(&self) -> usize {
        self.claims.lock().len()
    }

    /// How long a request waits for its sync before it answers that the sync goes on.
    pub(crate) fn wait(&self) -> Duration {
        *self.wait.read()
    }

    #[cfg(test)]
    pub(crate) fn set_wait(&self, wait: Duration) {
        *self.wait.write() = wait;
    }
}

/// In a key's destruction transaction: its export records, the saved credentials no
/// other export names, and its jobs.
pub(crate) fn remove_key_in(
    tx: &mut crate::barrier::BarrierTx<'_>,
    barrier: &crate::barrier::Barrier,
    key_id: &uuid::Uuid,
) -> crate::error::Result<()> {
    let leaving = records::read_in(tx, key_id)?;
    records::write_in(tx, key_id, &[])?;
    let ids: Vec<uuid::Uuid> = leaving.iter().map(|r| r.id).collect();
    let secrets: HashSet<uuid::Uuid> = leaving.iter().filter_map(|r| r.vault_secret_id).collect();
    for secret in &secrets {
        credentials::release_in(tx, barrier, secret, &ids)?;
    }
    outbox::delete_matching_in(tx, barrier, |job| job.key_id == *key_id)
}
