//! Seal migration (`bao operator unseal -migrate`): the keyring moves from the seal this
//! data dir uses to the one the configuration names, Shamir → hardware or hardware →
//! Shamir. Both open the keyring with the old root, then make one staged switch: the
//! keyring rewrapped by the new root, the recovery key and the new seal configuration,
//! committed in one storage transaction, so a crash leaves the old seal or the new one.

use std::sync::Arc;

use hsm_bridge::{BridgeError, RootOfTrust, SealKind, ShamirRoot};

use super::pcr_policy::create_hardware_root;
use super::{open_existing, SealConfig, RECOVERY_KEY_PATH, SEAL_CONFIG_PATH};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::storage::Batch;

/// What the new seal keeps as the recovery key.
enum RecoveryKey<'a> {
    /// A hardware seal: the operator keys' combined key, wrapped by the new root.
    Wrapped(&'a [u8]),
    /// Shamir: the operator keys are the unseal keys, there is no recovery key.
    None,
}

impl Core {
    /// Completes a pending migration with the operator keys combined in `combined`: the
    /// unseal keys when leaving Shamir, the recovery keys when leaving a hardware seal.
    /// Returns the new root, with the keyring open under it; on failure the appliance
    /// stays sealed under the old seal.
    pub(super) async fn migrate(
        &self,
        config: &SealConfig,
        combined: ShamirRoot,
    ) -> Result<Arc<dyn RootOfTrust>> {
        let migrated = match config.kind()? {
            SealKind::Shamir => self.migrate_to_hardware(config, combined).await,
            _ => self.migrate_to_shamir(config, combined).await,
        };
        if migrated.is_err() {
            self.barrier.seal();
        }
        migrated
    }

    /// Shamir → hardware: the unseal keys open the keyring, which is rewrapped by the new
    /// hardware root; the Shamir key becomes the recovery key (the same key shares now
    /// serve as recovery keys).
    async fn migrate_to_hardware(
        &self,
        config: &SealConfig,
        combined: ShamirRoot,
    ) -> Result<Arc<dyn RootOfTrust>> {
        self.barrier.unseal(&combined).map_err(|e| match e {
            EngineError::Seal(BridgeError::WrongRootKey) => EngineError::bad(
                "the unseal keys do not open this appliance: migration progress was reset",
            ),
            other => other,
        })?;
        let device = self.hardware()?.clone();
        let kind = device.kind();
        let (hw, policy_key) = create_hardware_root(device, combined.key_bytes()).await?;
        let new_config = SealConfig::hardware(kind, config.secret_shares, config.secret_threshold);
        self.switch_seal(
            hw.as_ref(),
            RecoveryKey::Wrapped(combined.key_bytes()),
            config,
            &new_config,
        )
        .await?;
        if let Err(e) = self
            .store_policy_key(policy_key.as_ref().map(|k| k.as_slice()))
            .await
        {
            // The seal works without it until the PCRs change; `reseal` makes a new one.
            tracing::warn!(error = %e, "could not store the seal policy key");
        }
        tracing::info!(from = "shamir", to = %kind, "seal migration complete: the unseal keys are now recovery keys");
        Ok(hw)
    }

    /// Hardware → Shamir: the recovery keys are checked against the old hardware seal,
    /// which opens the keyring; the keyring is rewrapped by the recovery key, which
    /// becomes the Shamir root key (the recovery keys are now unseal keys).
    async fn migrate_to_shamir(
        &self,
        config: &SealConfig,
        combined: ShamirRoot,
    ) -> Result<Arc<dyn RootOfTrust>> {
        let previous = self
            .seals
            .previous
            .clone()
            .ok_or_else(|| EngineError::bad("no previous seal is configured"))?;
        let kind = previous.kind();
        let old = open_existing(previous).await?;
        self.check_recovery_key(old.as_ref(), &combined)?;
        self.barrier.unseal(old.as_ref())?;
        // Keys generated in the HSM exist only wrapped by its root key: leaving the HSM
        // would strand them, so refuse rather than lose them.
        let stranded = self.keys.hsm_bound()?;
        if !stranded.is_empty() {
            return Err(EngineError::bad(format!(
                "{} managed key(s) are held by the HSM ({}): migrating away from the {kind} seal would make them unusable; destroy them first or keep the seal",
                stranded.len(),
                stranded.join(", ")
            )));
        }
        let new_config = SealConfig::shamir(config.recovery_shares, config.recovery_threshold);
        self.switch_seal(&combined, RecoveryKey::None, config, &new_config)
            .await?;
        tracing::info!(from = %kind, to = "shamir", "seal migration complete: the recovery keys are now unseal keys");
        Ok(Arc::new(combined))
    }

    /// The staged switch both migrations end with; the keyring must be open.
    async fn switch_seal(
        &self,
        to: &dyn RootOfTrust,
        recovery: RecoveryKey<'_>,
        current: &SealConfig,
        config: &SealConfig,
    ) -> Result<()> {
        let mut batch = Batch::new();
        self.expect_seal_config(current, &mut batch)?;
        self.barrier.rewrap_keyring_into(to, &mut batch)?;
        match recovery {
            RecoveryKey::Wrapped(key) => {
                batch.put(
                    RECOVERY_KEY_PATH,
                    to.wrap(RECOVERY_KEY_PATH.as_bytes(), key)?,
                );
            }
            RecoveryKey::None => {
                batch.delete(RECOVERY_KEY_PATH);
            }
        }
        batch.put(SEAL_CONFIG_PATH, config.encode()?);
        crate::failpoint::crash_at("seal-migrate:commit");
        self.commit_seal_change(batch).await?;
        crate::failpoint::crash_at("seal-migrate:committed");
        Ok(())
    }
}
