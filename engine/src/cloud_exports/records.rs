//! Export records as stored and shown: one JSON document per key,
//! `cloud/exports/<keyId>`, holding that key's exports, so that a rotation reads them all
//! inside its own transaction.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::provider::{Provider, ProviderRef};
use crate::barrier::{Barrier, BarrierTx};
use crate::error::Result;
use crate::managed_keys::KeyError;

const PREFIX: &str = "cloud/exports/";

/// Where an export's last sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// A sync is queued (the initial export, a rotation, a retry after a failure).
    Pending,
    /// A provider call is in flight.
    Running,
    /// The last sync succeeded.
    Ok,
    /// The last sync failed and nothing will retry it without a manual sync or a
    /// rotation.
    Failed,
}

/// An export: a managed key linked to one provider destination. Serialised as the API
/// shows it (the seed's fields); never holds the credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub id: uuid::Uuid,
    pub crypto_key_id: uuid::Uuid,
    pub provider: Provider,
    pub auto_sync_enabled: bool,
    /// The saved credentials (`cloud/credentials/<id>`); None when they were used for
    /// the initial export only.
    pub vault_secret_id: Option<uuid::Uuid>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_sync_at: Option<OffsetDateTime>,
    pub last_sync_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub exported_by: String,
    /// As the provider's `validate` left it: the documented defaults filled in.
    pub provider_metadata: Map<String, Value>,
    pub sync_state: SyncState,
    pub provider_key_id: Option<String>,
    pub provider_key_version: Option<String>,
}

impl ExportRecord {
    /// Where the last successful sync left the key at the provider.
    pub fn provider_ref(&self) -> Option<ProviderRef> {
        self.provider_key_id.as_ref().map(|key_id| ProviderRef {
            key_id: key_id.clone(),
            key_version: self.provider_key_version.clone(),
        })
    }
}

/// `create` parameters, decoded by the door.
pub struct CreateExport {
    pub provider: Provider,
    pub provider_metadata: Map<String, Value>,
    /// The credentials object, as JSON text: used for this export and, with
    /// `save_credentials`, saved for the syncs to come.
    pub credentials: Option<Zeroizing<String>>,
    /// Credentials saved by an earlier export.
    pub vault_secret_id: Option<uuid::Uuid>,
    pub auto_sync_enabled: bool,
    pub save_credentials: bool,
}

pub(crate) fn path(key_id: &uuid::Uuid) -> String {
    format!("{PREFIX}{key_id}")
}

/// The ids of the keys that have exports.
pub(crate) fn keys_with_exports(barrier: &Barrier) -> Result<Vec<uuid::Uuid>> {
    Ok(barrier
        .list(PREFIX)?
        .iter()
        .filter_map(|id| uuid::Uuid::parse_str(id).ok())
        .collect())
}

/// A key's exports, outside a transaction (a listing never waits on anything else).
pub(crate) fn read(barrier: &Barrier, key_id: &uuid::Uuid) -> Result<Vec<ExportRecord>> {
    Ok(barrier.get_json(&path(key_id))?.unwrap_or_default())
}

/// A key's exports, as a condition of the transaction's commit.
pub(crate) fn read_in(tx: &mut BarrierTx<'_>, key_id: &uuid::Uuid) -> Result<Vec<ExportRecord>> {
    Ok(tx.get_json(&path(key_id))?.unwrap_or_default())
}

pub(crate) fn write_in(
    tx: &mut BarrierTx<'_>,
    key_id: &uuid::Uuid,
    records: &[ExportRecord],
) -> Result<()> {
    if records.is_empty() {
        tx.delete(&path(key_id));
    } else {
        tx.put_json(&path(key_id), &records)?;
    }
    Ok(())
}

/// The export `export_id` of key `key_id` among `records`.
pub(crate) fn find<'r>(
    records: &'r mut [ExportRecord],
    key_id: &uuid::Uuid,
    export_id: &uuid::Uuid,
) -> Result<&'r mut ExportRecord, KeyError> {
    records
        .iter_mut()
        .find(|r| r.id == *export_id)
        .ok_or_else(|| KeyError::ExportNotFound {
            key: key_id.to_string(),
            export: export_id.to_string(),
        })
}
