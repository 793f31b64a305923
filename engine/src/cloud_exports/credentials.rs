//! Saved provider credentials: one JSON object per secret, `cloud/credentials/<id>`,
//! encrypted by the barrier like every stored value. Read only inside a sync, into
//! zeroized memory; several exports may name the same secret (`vaultSecretId`), so a
//! secret goes when the last export naming it does.

use zeroize::Zeroizing;

use super::records;
use crate::barrier::{Barrier, BarrierTx};
use crate::error::{EngineError, Result};

const PREFIX: &str = "cloud/credentials/";

fn path(id: &uuid::Uuid) -> String {
    format!("{PREFIX}{id}")
}

pub(crate) fn put_in(
    tx: &mut BarrierTx<'_>,
    id: &uuid::Uuid,
    credentials: &Zeroizing<String>,
) -> Result<()> {
    tx.put(&path(id), credentials.as_bytes())?;
    Ok(())
}

pub(crate) fn get(barrier: &Barrier, id: &uuid::Uuid) -> Result<Option<Zeroizing<String>>> {
    let Some(bytes) = barrier.get(&path(id))? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| EngineError::Corrupt(path(id)))?;
    Ok(Some(Zeroizing::new(text.to_string())))
}

/// Deletes secret `id` unless an export other than those in `leaving` still names it. Every key's
/// export document read here is a condition of the commit, so an export made meanwhile
/// with this secret keeps it.
pub(crate) fn release_in(
    tx: &mut BarrierTx<'_>,
    barrier: &Barrier,
    id: &uuid::Uuid,
    leaving: &[uuid::Uuid],
) -> Result<()> {
    for key_id in records::keys_with_exports(barrier)? {
        let named = records::read_in(tx, &key_id)?
            .iter()
            .any(|r| r.vault_secret_id == Some(*id) && !leaving.contains(&r.id));
        if named {
            return Ok(());
        }
    }
    tx.delete(&path(id));
    Ok(())
}

/// Deletes secret `id` outright: for one saved by a request whose export is not kept.
pub(crate) fn delete_in(tx: &mut BarrierTx<'_>, id: &uuid::Uuid) {
    tx.delete(&path(id));
}
