//! Cloud-export operations (the key API's `/keys/{keyId}/cloud-exports`): create (with
//! its initial export), list, auto-sync on/off, manual sync, delete. `keys:read` lists,
//! `keys:write` does the rest; an attenuated token's checks see the key as for any
//! request on it.
//!
//! Errors come in the key API's order: the request's fields that do not depend on the
//! key, then the key (its id, its existence, the attenuation), then the rest.

use serde_json::{Map, Value};

use super::managed_keys::load;
use super::{Access, Context, Decoded, Op, Scope};
use crate::cloud_exports::sync::{run_inline, Finish, Inline};
use crate::cloud_exports::{
    credentials, records, CreateExport, ExportRecord, Job, SyncError, SyncReason, SyncState,
    POST_QUANTUM_NOT_EXPORTABLE,
};
use crate::error::{EngineError, Result};
use crate::managed_keys::{KeyError, KeyState, ManagedKey};

/// What a request that waits for its sync answers.
pub struct Synced {
    pub record: ExportRecord,
    /// False when the sync did not finish by the deadline: it goes on, and the record
    /// shows its progress (`syncState`).
    pub finished: bool,
}

/// Who the record and the audit entries name as the operator.
fn operator(cx: &Context<'_>) -> Result<String> {
    Ok(cx.caller()?.entry.display_name.clone())
}

fn parse_export_id(id: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        KeyError::invalid(
            "INVALID_EXPORT_ID",
            format!("{id:?} is not a cloud export id (a UUID)"),
        )
        .into()
    })
}

/// The export as stored now.
fn current(cx: &Context<'_>, key: &ManagedKey, export: &uuid::Uuid) -> Result<ExportRecord> {
    let mut all = records::read(&cx.core.barrier, &key.id)?;
    Ok(records::find(&mut all, &key.id, export)?.clone())
}

/// Whether a key may be exported at all: a classical algorithm, created exportable, not
/// on its way to destruction.
fn check_exportable(key: &ManagedKey) -> Result<()> {
    if key.algorithm.is_post_quantum() {
        return Err(
            KeyError::invalid("ALGORITHM_NOT_EXPORTABLE", POST_QUANTUM_NOT_EXPORTABLE).into(),
        );
    }
    if !key.exportable {
        return Err(KeyError::invalid(
            "KEY_NOT_EXPORTABLE",
            format!(
                "key {:?} was not created with \"exportable\": true; the flag is set at creation only, so that a key cannot be moved out later: create a new key with it to export",
                key.name
            ),
        )
        .into());
    }
    if key.state != KeyState::Enabled {
        return Err(KeyError::PendingDestruction(key.name.clone()).into());
    }
    Ok(())
}

/// A message from `CloudProviders::validate` as a problem: one naming a field of
/// `providerMetadata` or `credentials` (they start with the field's path, as
/// `cloud::fields::check_fields` writes them) is about that field; any other is the
/// provider refusing the key.
fn refused(message: String) -> EngineError {
    let code = if !(message.starts_with("providerMetadata") || message.starts_with("credentials")) {
        "ALGORITHM_NOT_EXPORTABLE"
    } else if message.contains("is not a field") {
        "UNKNOWN_FIELD"
    } else {
        "INVALID_FIELD"
    };
    KeyError::invalid(code, message).into()
}

/// A sync the caller waited for and that failed: the provider's failure (502), or the
/// boundary's refusal of every format the provider takes, which no retry mends.
fn failed(e: SyncError) -> EngineError {
    if e.boundary {
        KeyError::ExportFormatUnavailable(e.message).into()
    } else {
        KeyError::Provider(e.message).into()
    }
}

/// Creates an export and runs its initial export, waiting for it up to the deadline.
pub struct ExportCreate {
    pub key: String,
    pub request: Decoded<CreateExport>,
}

impl Op for ExportCreate {
    type Output = Synced;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<Synced> {
        let request = self.request?;
        let key = load(&cx, &self.key)?;
        check_exportable(&key)?;
        let core = cx.core;
        let (given, saved_id) =
            match (&request.credentials, request.vault_secret_id) {
                (Some(_), Some(_)) => {
                    return Err(KeyError::invalid(
                        "INVALID_FIELD",
                        "give either \"credentials\" or \"vaultSecretId\", not both",
                    )
                    .into())
                }
                (None, None) => return Err(KeyError::invalid(
                    "MISSING_FIELD",
                    "\"credentials\" (or the \"vaultSecretId\" of saved credentials) is required",
                )
                .into()),
                (Some(c), None) => (c.clone(), None),
                (None, Some(id)) => {
                    let saved = credentials::get(&core.barrier, &id)?.ok_or_else(|| {
                        KeyError::invalid(
                            "INVALID_FIELD",
                            format!("\"vaultSecretId\" {id} names no saved credentials"),
                        )
                    })?;
                    (saved, Some(id))
                }
            };
        if !request.save_credentials && saved_id.is_some() {
            return Err(KeyError::invalid(
                "INVALID_FIELD",
                "\"saveCredentials\": false is for credentials given with the request, not for a \"vaultSecretId\"",
            )
            .into());
        }
        if request.auto_sync_enabled && !request.save_credentials {
            return Err(KeyError::NoSavedCredentials("being created".into()).into());
        }
        let providers = core.exports.providers().ok_or_else(|| {
            KeyError::Provider("this appliance has no cloud provider clients configured".into())
        })?;
        let mut metadata = request.provider_metadata;
        {
            // Parsed for the check only, and dropped before anything waits.
            let credentials: Map<String, Value> = match serde_json::from_str(&given) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(KeyError::invalid(
                        "INVALID_FIELD",
                        "\"credentials\" must be an object",
                    )
                    .into())
                }
            };
            providers
                .validate(
                    request.provider,
                    &mut metadata,
                    Some(&credentials),
                    key.algorithm,
                    key.allow_unwrapped_export,
                )
                .map_err(refused)?;
        }
        let saving = request.save_credentials && saved_id.is_none();
        let operator = operator(&cx)?;
        let secret_id = match saved_id {
            Some(id) => Some(id),
            None if saving => Some(uuid::Uuid::new_v4()),
            None => None,
        };
        let record = ExportRecord {
            id: uuid::Uuid::new_v4(),
            crypto_key_id: key.id,
            provider: request.provider,
            auto_sync_enabled: request.auto_sync_enabled,
            vault_secret_id: secret_id,
            last_sync_at: None,
            last_sync_error: None,
            exported_at: time::OffsetDateTime::now_utc(),
            exported_by: operator.clone(),
            provider_metadata: metadata,
            sync_state: SyncState::Pending,
            provider_key_id: None,
            provider_key_version: None,
        };
        let job = Job::new(
            record.id,
            key.id,
            key.primary_version,
            SyncReason::Initial,
            &operator,
        );
        let claim = core
            .exports
            .claim(record.id)
            .ok_or_else(|| KeyError::SyncInProgress(record.id.to_string()))?;
        core.barrier
            .transact(|tx| {
                let mut all = records::read_in(tx, &key.id)?;
                all.push(record.clone());
                records::write_in(tx, &key.id, &all)?;
                if let (true, Some(id)) = (saving, secret_id) {
                    credentials::put_in(tx, &id, &given)?;
                }
                crate::cloud_exports::outbox::put_in(tx, &job)
            })
            .await?;
        let one_time = (!request.save_credentials).then(|| given.clone());
        let mode = Finish::InlineCreate {
            saved: secret_id.filter(|_| saving),
        };
        let finished = match run_inline(core, job, claim, one_time, mode).await? {
            Inline::Done(Err(e)) => return Err(failed(e)),
            Inline::Done(Ok(_)) => true,
            Inline::Pending => false,
        };
        Ok(Synced {
            record: current(&cx, &key, &record.id)?,
            finished,
        })
    }
}

/// A key's exports, as stored: never waits on a provider.
pub struct ExportList {
    pub key: String,
}

impl Op for ExportList {
    type Output = Vec<ExportRecord>;

    fn access(&self) -> Access {
        Access::Scope(Scope::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<Vec<ExportRecord>> {
        let key = load(&cx, &self.key)?;
        records::read(&cx.core.barrier, &key.id)
    }
}

/// Turns an export's auto-sync on or off; on needs saved credentials.
pub struct ExportAutoSync {
    pub key: String,
    pub export: String,
    pub enabled: Decoded<bool>,
}

impl Op for ExportAutoSync {
    type Output = ExportRecord;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<ExportRecord> {
        let enabled = self.enabled?;
        let key = load(&cx, &self.key)?;
        let export = parse_export_id(&self.export)?;
        cx.core
            .barrier
            .transact(|tx| {
                let mut all = records::read_in(tx, &key.id)?;
                let record = records::find(&mut all, &key.id, &export)?;
                if enabled && record.vault_secret_id.is_none() {
                    return Err(KeyError::NoSavedCredentials(export.to_string()).into());
                }
                record.auto_sync_enabled = enabled;
                let record = record.clone();
                records::write_in(tx, &key.id, &all)?;
                Ok(record)
            })
            .await
    }
}

/// Pushes the key's primary version to the export's destination now, waiting for it up
/// to the deadline.
pub struct ExportSync {
    pub key: String,
    pub export: String,
    /// The body, which takes no field.
    pub body: Decoded<()>,
}

impl Op for ExportSync {
    type Output = Synced;

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<Synced> {
        self.body?;
        let key = load(&cx, &self.key)?;
        let export = parse_export_id(&self.export)?;
        let record = current(&cx, &key, &export)?;
        check_exportable(&key)?;
        if record.vault_secret_id.is_none() {
            return Err(KeyError::NoSavedCredentials(export.to_string()).into());
        }
        let core = cx.core;
        let claim = core
            .exports
            .claim(export)
            .ok_or_else(|| KeyError::SyncInProgress(export.to_string()))?;
        let job = Job::new(
            export,
            key.id,
            key.primary_version,
            SyncReason::Manual,
            &operator(&cx)?,
        );
        core.barrier
            .transact(|tx| {
                let mut all = records::read_in(tx, &key.id)?;
                records::find(&mut all, &key.id, &export)?.sync_state = SyncState::Pending;
                records::write_in(tx, &key.id, &all)?;
                crate::cloud_exports::outbox::put_in(tx, &job)
            })
            .await?;
        let finished = match run_inline(core, job, claim, None, Finish::InlineManual).await? {
            Inline::Done(Err(e)) => return Err(failed(e)),
            Inline::Done(Ok(_)) => true,
            Inline::Pending => false,
        };
        Ok(Synced {
            record: current(&cx, &key, &export)?,
            finished,
        })
    }
}

/// Deletes an export, its jobs, and its saved credentials unless another export names
/// them. What was exported stays at the provider.
pub struct ExportDelete {
    pub key: String,
    pub export: String,
}

impl Op for ExportDelete {
    type Output = ();

    fn access(&self) -> Access {
        Access::Scope(Scope::Write)
    }

    async fn run(self, cx: Context<'_>) -> Result<()> {
        let key = load(&cx, &self.key)?;
        let export = parse_export_id(&self.export)?;
        let barrier = &cx.core.barrier;
        barrier
            .transact(|tx| {
                let mut all = records::read_in(tx, &key.id)?;
                let record = records::find(&mut all, &key.id, &export)?.clone();
                all.retain(|r| r.id != export);
                records::write_in(tx, &key.id, &all)?;
                if let Some(secret) = record.vault_secret_id {
                    credentials::release_in(tx, barrier, &secret, &[export])?;
                }
                crate::cloud_exports::outbox::delete_matching_in(tx, barrier, |job| {
                    job.export_id == export
                })
            })
            .await?;
        tracing::info!(key_id = %key.id, export_id = %export, "cloud export deleted");
        Ok(())
    }
}
