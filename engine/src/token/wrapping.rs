//! Response wrapping, as Vault does it: a response is kept under the barrier for a new
//! single-use token (Vault keeps it in that token's cubbyhole), and whoever holds the
//! token gets the response once. The record dies with its token: when it is unwrapped,
//! rewrapped, revoked, or expired and tidied away.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{now, TokenEntry, TokenKind, TokenStore, ACCESSOR_PREFIX, ID_PREFIX};
use crate::barrier::BarrierBatch;
use crate::error::{EngineError, Result};

/// A wrapping token's record, by the token's store key.
pub(super) const WRAPPED_PREFIX: &str = "sys/token/wrapped/";

/// What a wrapping token holds.
#[derive(Serialize, Deserialize)]
pub struct Wrapped {
    /// The response as the client would have received it, JSON text.
    pub response: String,
    pub creation_ttl: u64,
    /// RFC 3339.
    pub creation_time: String,
    /// The request whose response this is (through rewraps, the first one).
    pub creation_path: String,
}

/// What stands in the answer for a wrapped response: Vault's `wrap_info`.
pub struct WrapInfo {
    pub token: Zeroizing<String>,
    pub accessor: String,
    pub ttl: u64,
    pub creation_time: String,
    pub creation_path: String,
    /// The accessor of what the response carries (a token, an AppRole secret-id), "" if
    /// none.
    pub wrapped_accessor: String,
}

impl TokenStore {
    /// Wraps `response`, the answer to a request on `path`, for `ttl` seconds (capped by
    /// the token TTLs in force).
    pub async fn wrap(
        &self,
        response: String,
        path: &str,
        ttl: u64,
        wrapped_accessor: String,
    ) -> Result<WrapInfo> {
        let _w = self.write_lock.lock().await;
        let mut batch = self.barrier.batch()?;
        let (key, info) = self.wrap_into(&mut batch, response, path, ttl, wrapped_accessor)?;
        let committed = self.barrier.commit(batch).await;
        self.entries.invalidate(&key);
        committed?;
        Ok(info)
    }

    /// Hands out what `token` wraps and revokes it: it serves once.
    pub async fn unwrap(&self, token: &str) -> Result<Wrapped> {
        let _w = self.write_lock.lock().await;
        let (key, wrapped) = self.wrapped_by(token)?;
        self.revoke_tree_locked(&key).await?;
        Ok(wrapped)
    }

    /// What `token` wraps, leaving it valid (for `sys/wrapping/lookup`).
    pub fn lookup_wrapped(&self, token: &str) -> Result<Wrapped> {
        self.wrapped_by(token).map(|(_, wrapped)| wrapped)
    }

    /// Moves what `token` wraps to a new wrapping token, in one commit: the old token is
    /// gone and the new one holds the response. Its TTL is the original one, or `ttl` if
    /// shorter, as Vault's rewrap takes the lesser of the two.
    pub async fn rewrap(&self, token: &str, ttl: Option<u64>) -> Result<WrapInfo> {
        let _w = self.write_lock.lock().await;
        let (old, wrapped) = self.wrapped_by(token)?;
        let ttl = ttl.map_or(wrapped.creation_ttl, |t| t.min(wrapped.creation_ttl));
        let mut batch = self.barrier.batch()?;
        // A wrapping token is an orphan that cannot create tokens: it has no children.
        self.delete_entry_into(&old, &mut batch)?;
        let (_, info) = self.wrap_into(
            &mut batch,
            wrapped.response,
            &wrapped.creation_path,
            ttl,
            String::new(),
        )?;
        let committed = self.barrier.commit(batch).await;
        self.entries.clear();
        self.verified.clear();
        committed?;
        Ok(info)
    }

    fn wrap_into(
        &self,
        batch: &mut BarrierBatch,
        response: String,
        path: &str,
        ttl: u64,
        wrapped_accessor: String,
    ) -> Result<(String, WrapInfo)> {
        let ttl = ttl.min(self.effective_ttls().max_lease_ttl).max(1);
        let created = time::OffsetDateTime::now_utc();
        let creation_time = created
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(EngineError::internal)?;
        let entry = TokenEntry::wrapping(path, ttl, now());
        let id = uuid::Uuid::new_v4().to_string();
        let token = self
            .unsealed()?
            .signer
            .mint(&id, &entry.policies, &entry.scopes)?;
        let key = self.key_for(TokenKind::Biscuit, &id)?;
        let wrapped = Wrapped {
            response,
            creation_ttl: ttl,
            creation_time: creation_time.clone(),
            creation_path: path.to_string(),
        };
        batch.put_json(&format!("{ID_PREFIX}{key}"), &entry)?;
        batch.put(
            &format!("{ACCESSOR_PREFIX}{}", entry.accessor),
            key.as_bytes(),
        )?;
        batch.put_json(&format!("{WRAPPED_PREFIX}{key}"), &wrapped)?;
        let info = WrapInfo {
            token,
            accessor: entry.accessor,
            ttl,
            creation_time,
            creation_path: wrapped.creation_path,
            wrapped_accessor,
        };
        Ok((key, info))
    }

    /// The store key and record of a live wrapping token. Anything else, an attenuation
    /// of one included, is Vault's "not valid or does not exist".
    fn wrapped_by(&self, token: &str) -> Result<(String, Wrapped)> {
        let (v, entry) = self.resolve_verified(token).map_err(|e| match e {
            EngineError::Unauthenticated => EngineError::InvalidWrappingToken,
            e => e,
        })?;
        if !entry.is_wrapping() || v.revocation_id().is_some() {
            return Err(EngineError::InvalidWrappingToken);
        }
        let wrapped: Wrapped = self
            .barrier
            .get_json(&format!("{WRAPPED_PREFIX}{}", v.key))?
            .ok_or(EngineError::InvalidWrappingToken)?;
        Ok((v.key.clone(), wrapped))
    }
}
