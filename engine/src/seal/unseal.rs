//! `sys/unseal`: unseal keys (Shamir) or recovery keys (hardware seal) collected up to
//! the threshold; and auto-unseal, which keeps a hardware-sealed appliance open while the
//! device answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hsm_bridge::{BridgeError, RootOfTrust, SealKind, ShamirRoot};

pub use hsm_bridge::UnsealShare;

use super::{open_existing, SealStatus, UnsealProgress};
use crate::core::Core;
use crate::error::{EngineError, Result};

/// First and longest pause between auto-unseal attempts while the hardware is away.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One call to `sys/unseal`.
pub enum UnsealStep {
    /// One more unseal key (or recovery key, with a hardware seal).
    Share(UnsealShare),
    /// Discards the keys collected so far.
    Reset,
}

/// Whether an unseal completes a pending seal migration (`bao operator unseal -migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    None,
    Migrate,
}

impl Migration {
    /// From the `migrate` field of `sys/unseal`.
    pub fn from_flag(migrate: bool) -> Self {
        if migrate {
            Migration::Migrate
        } else {
            Migration::None
        }
    }
}

impl Core {
    /// Adds one unseal key (or, with a hardware seal, recovery key), or starts over. At
    /// the threshold the keys are combined; if they do not open the keyring, progress
    /// resets and the appliance stays sealed.
    pub(crate) async fn unseal(&self, step: UnsealStep) -> Result<SealStatus> {
        self.unseal_with(step, Migration::None).await
    }

    /// [`Core::unseal`], completing a pending seal migration with [`Migration::Migrate`].
    pub(crate) async fn unseal_with(
        &self,
        step: UnsealStep,
        migration: Migration,
    ) -> Result<SealStatus> {
        let _l = self.lifecycle.lock().await;
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        let share = match step {
            UnsealStep::Reset => {
                *self.progress.lock() = UnsealProgress::default();
                return self.seal_status();
            }
            UnsealStep::Share(share) => share,
        };
        if !self.is_sealed() {
            return self.seal_status();
        }
        let pending = self.migration_pending(&config)?;
        let migrate = migration == Migration::Migrate;
        if pending && !migrate {
            return Err(EngineError::bad(
                "seal migration is pending: unseal with the -migrate flag (bao operator unseal -migrate)",
            ));
        }
        if migrate && !pending {
            return Err(EngineError::bad(
                "no seal migration is pending: the configured seal is the one this data dir uses",
            ));
        }
        if let Some(why) = self.seal_mismatch(&config)? {
            return Err(EngineError::bad(why));
        }
        let threshold = config.key_threshold();
        let ready = {
            let mut p = self.progress.lock();
            if p.shares.is_empty() {
                p.nonce = uuid::Uuid::new_v4().to_string();
            }
            if !p.shares.iter().any(|s| s.index() == share.index()) {
                p.shares.push(share);
            }
            if p.shares.len() >= threshold as usize {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        let Some(progress) = ready else {
            return self.seal_status();
        };
        let combined = ShamirRoot::combine(&progress.shares, threshold)?;
        let stored = config.kind()?;
        let wrong_keys = |e: EngineError| {
            match e {
            EngineError::Seal(BridgeError::WrongRootKey) => EngineError::bad(
                "the unseal keys do not open this appliance: progress was reset, start again with the right keys",
            ),
            other => other,
        }
        };
        let root: Arc<dyn RootOfTrust> = match (stored, pending) {
            (SealKind::Shamir, false) => {
                self.barrier.unseal(&combined).map_err(wrong_keys)?;
                Arc::new(combined)
            }
            (_, true) => self.migrate(&config, combined).await?,
            (_, false) => {
                // A hardware seal sealed by `sys/seal`, or one whose platform state the
                // device no longer accepts (TPM PCRs changed without authorisation):
                // recovery keys let it open again.
                let device = self.hardware()?.clone();
                let hw = device.open_with_recovery(combined.key_bytes())?;
                self.check_recovery_key(hw.as_ref(), &combined)?;
                self.barrier.unseal(hw.as_ref())?;
                hw
            }
        };
        if let Err(e) = self.post_unseal(root).await {
            self.seal_locked();
            return Err(e);
        }
        self.manually_sealed.store(false, Ordering::Relaxed);
        self.set_seal_error(None);
        tracing::info!("vault is unsealed");
        self.seal_status()
    }

    /// With a hardware seal: opens the device and the keyring. Caller holds `lifecycle`.
    pub(super) async fn auto_unseal_locked(&self) -> Result<()> {
        if !self.is_sealed() {
            return Ok(());
        }
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        if let Some(why) = self.seal_mismatch(&config)? {
            return Err(EngineError::bad(why));
        }
        if self.migration_pending(&config)? {
            return Err(EngineError::bad(
                "seal migration is pending: unseal with `bao operator unseal -migrate` and the unseal (or recovery) keys",
            ));
        }
        let root = open_existing(self.hardware()?.clone()).await?;
        self.barrier.unseal(root.as_ref())?;
        if let Err(e) = self.post_unseal(root).await {
            self.seal_locked();
            return Err(e);
        }
        Ok(())
    }

    /// True when the auto-unseal loop should try now.
    fn wants_auto_unseal(&self) -> bool {
        if self.seals.device.is_none()
            || !self.is_sealed()
            || self.manually_sealed.load(Ordering::Relaxed)
        {
            return false;
        }
        match self.seal_config() {
            Ok(Some(c)) => c.kind().is_ok_and(|k| k == self.configured_seal()),
            _ => false,
        }
    }

    /// Keeps a hardware-sealed appliance unsealed: at start, after init, and whenever the
    /// device comes back after being away. Retries with backoff, reporting why in
    /// seal-status and the log (once per distinct error).
    pub async fn run_auto_unseal(self: Arc<Self>) {
        if self.seals.device.is_none() {
            return;
        }
        let mut pause = RETRY_MIN;
        loop {
            if self.wants_auto_unseal() {
                let result = {
                    let _l = self.lifecycle.lock().await;
                    self.auto_unseal_locked().await
                };
                match result {
                    Ok(()) => {
                        if !self.is_sealed() {
                            let device = self.seals.device.as_ref().map(|d| d.describe());
                            tracing::info!(seal = %self.configured_seal(), device = ?device, "vault is unsealed (auto-unseal)");
                        }
                        self.set_seal_error(None);
                        pause = RETRY_MIN;
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let category = super::report::category(&e);
                        let changed = self
                            .seal_error
                            .lock()
                            .as_ref()
                            .is_none_or(|r| r.message != message);
                        let device = self.seals.device.as_ref().map(|d| d.describe());
                        if changed {
                            tracing::warn!(error = %message, category, device = ?device, retry_in = ?pause, "auto-unseal failed; retrying until the hardware answers");
                        } else {
                            tracing::debug!(error = %message, "auto-unseal still failing");
                        }
                        self.set_seal_error(Some(self.seal_report(category, message)));
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            } else {
                pause = RETRY_MIN;
                if let Ok(Some(c)) = self.seal_config() {
                    if let Ok(Some(why)) = self.seal_mismatch(&c) {
                        let changed = self
                            .seal_error
                            .lock()
                            .as_ref()
                            .is_none_or(|r| r.message != why);
                        if changed {
                            tracing::error!(error = %why, "cannot unseal");
                            self.set_seal_error(Some(
                                self.seal_report("seal_config_mismatch", why),
                            ));
                        }
                    }
                }
            }
            let wait = if self.is_sealed() {
                pause
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}
