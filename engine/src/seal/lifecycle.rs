//! Seal state as callers see it (`sys/seal-status`), and the way back to sealed:
//! `sys/seal`, shutdown, and what every failed unseal or init falls back to.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hsm_bridge::{RootOfTrust, UnsealShare};
use serde::Serialize;

use super::report::SealErrorReport;
use super::SealConfig;
use crate::core::{Core, API_VERSION, VERSION};
use crate::error::Result;

/// `sys/seal-status`, in Vault's field names.
#[derive(Debug, Clone, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
    pub nonce: String,
    /// The OpenBao API level ([`API_VERSION`]).
    pub version: String,
    pub ironseal_version: String,
    pub build_date: String,
    pub migration: bool,
    pub recovery_seal: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_seal_type: Option<String>,
    pub storage_type: String,
    /// Why a hardware seal has not unsealed the appliance, as a fixed category
    /// (`hsm_pin_incorrect`, `hsm_unreachable`, `device_mismatch`, ...): seal-status is
    /// unauthenticated, so the details are in the log and in `seal_error_detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal_error: Option<String>,
    /// The current seal error, or else the last one seen, in full: only for callers
    /// holding `sudo` on `sys/seal-status` (see [`Core::seal_status_detailed`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal_error_detail: Option<SealErrorReport>,
}

/// The unseal keys collected so far, until the threshold is reached.
#[derive(Default)]
pub(crate) struct UnsealProgress {
    pub(super) shares: Vec<UnsealShare>,
    pub(super) nonce: String,
}

impl Core {
    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.known_seal_config()?.is_some())
    }

    /// Unsealed once everything under the barrier is loaded, as Vault reports it: the
    /// barrier opens first, and until `post_unseal` has loaded the token store (and set
    /// the root of trust, its last step) a token lookup would still answer `Sealed`.
    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed() || self.root.read().is_none()
    }

    pub fn seal_status(&self) -> Result<SealStatus> {
        let config = self.known_seal_config()?;
        let progress = self.progress.lock();
        let sealed = self.is_sealed();
        let kind = match &config {
            Some(c) => c.kind()?,
            None => self.configured_seal(),
        };
        let recovery = kind.is_hardware();
        let migration = match &config {
            Some(c) => sealed && self.migration_pending(c)?,
            None => false,
        };
        let (t, n) = match &config {
            Some(c) if recovery => (c.recovery_threshold, c.recovery_shares),
            Some(c) => (c.secret_threshold, c.secret_shares),
            None => (0, 0),
        };
        Ok(SealStatus {
            kind: kind.as_str().into(),
            initialized: config.is_some(),
            sealed,
            t,
            n,
            progress: if sealed { progress.shares.len() } else { 0 },
            nonce: if sealed {
                progress.nonce.clone()
            } else {
                String::new()
            },
            version: API_VERSION.into(),
            ironseal_version: VERSION.into(),
            build_date: String::new(),
            migration,
            recovery_seal: recovery,
            recovery_seal_type: recovery.then(|| "shamir".into()),
            storage_type: self.storage.kind().into(),
            seal_error: self
                .current_seal_error(config.as_ref())?
                .map(|r| r.category.into()),
            seal_error_detail: None,
        })
    }

    fn current_seal_error(&self, config: Option<&SealConfig>) -> Result<Option<SealErrorReport>> {
        if !self.is_sealed() {
            return Ok(None);
        }
        if let Some(current) = self.seal_error.lock().clone() {
            return Ok(Some(current));
        }
        Ok(match config {
            Some(c) => self
                .seal_mismatch(c)?
                .map(|why| self.seal_report("seal_config_mismatch", why)),
            None => None,
        })
    }

    /// `sys/seal-status` for an operator whose token holds `sudo` on it: adds the full
    /// current seal error, or else the last one seen (the appliance is unsealed when a
    /// token can be checked, so this is usually what kept it sealed before).
    pub(crate) fn seal_status_detailed(&self) -> Result<SealStatus> {
        let mut status = self.seal_status()?;
        let config = self.known_seal_config()?;
        status.seal_error_detail = match self.current_seal_error(config.as_ref())? {
            Some(current) => Some(current),
            None => self.last_seal_error.lock().clone(),
        };
        Ok(status)
    }

    pub(super) fn set_seal_error(&self, e: Option<SealErrorReport>) {
        if let Some(report) = &e {
            *self.last_seal_error.lock() = Some(report.clone());
        }
        *self.seal_error.lock() = e;
    }

    /// A seal error about this appliance's configured device.
    pub(super) fn seal_report(&self, category: &'static str, message: String) -> SealErrorReport {
        let device = self.seals.device.as_ref().map(|d| d.describe());
        SealErrorReport::new(category, message, device)
    }

    /// Loads what lives under the barrier once it is open, and keeps `root` for
    /// operations inside the hardware boundary.
    pub(super) async fn post_unseal(&self, root: Arc<dyn RootOfTrust>) -> Result<()> {
        self.mounts.load()?;
        self.auth_mounts.load()?;
        self.tokens.load().await?;
        self.audit.load().await?;
        self.policies.clear();
        *self.root.write() = Some(root);
        Ok(())
    }

    pub(crate) async fn seal(&self) {
        let _l = self.lifecycle.lock().await;
        self.seal_locked();
        self.release_periodic_lease().await;
        if self.seals.device.is_some() {
            self.manually_sealed.store(true, Ordering::Relaxed);
        }
        tracing::info!("vault is sealed");
    }

    /// Seals on shutdown: drops every key, without marking the seal manual.
    pub async fn shutdown(&self) {
        let _l = self.lifecycle.lock().await;
        self.seal_locked();
        self.release_periodic_lease().await;
    }

    pub(super) fn seal_locked(&self) {
        self.times_sealed.fetch_add(1, Ordering::Relaxed);
        self.barrier.seal();
        self.audit.clear();
        self.tokens.clear();
        self.mounts.clear();
        self.auth_mounts.clear();
        self.policies.clear();
        self.keys.clear();
        self.root.write().take();
        *self.progress.lock() = UnsealProgress::default();
        *self.generate_root.lock() = None;
        *self.rotations.lock() = Default::default();
    }
}
