//! `sys/init`: the root key, the first keyring, the root token and the built-in policy.
//! Every step before the seal configuration is written can be run again, so an init cut
//! short by a crash, a power cut or a device error is simply run again.

use std::sync::Arc;

use hsm_bridge::{RootOfTrust, ShamirRoot, UnsealShare};
use zeroize::Zeroizing;

use super::pcr_policy::{create_hardware_root, PCR_POLICY_KEY_PATH};
use super::{SealConfig, RECOVERY_KEY_PATH, SEAL_CONFIG_PATH};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::lease::{Acquired, Lease};
use crate::storage::Batch;
use crate::token::CreateRequest;

/// What the steps of init write before the seal configuration (prefixes): all of it is
/// discarded when an init is run again after an interrupted one.
const INIT_WRITES: &[&str] = &[
    crate::barrier::KEYRING_PATH,
    RECOVERY_KEY_PATH,
    PCR_POLICY_KEY_PATH,
    "sys/token/",
    "sys/policy/",
];

/// How long a node initialising a shared keyspace keeps others from starting their own
/// init without renewing its lease: it renews it while init runs, however long the
/// hardware seal's key takes, so this is how soon an init that died frees the keyspace.
pub(crate) const INIT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub struct InitResult {
    /// Unseal keys (Shamir seal).
    pub keys: Vec<UnsealShare>,
    /// Recovery keys (hardware seal).
    pub recovery_keys: Vec<UnsealShare>,
    pub recovery_threshold: u8,
    pub root_token: Zeroizing<String>,
}

/// `sys/init` parameters, in Vault's names.
#[derive(Debug, Clone, Copy)]
pub struct InitRequest {
    pub secret_shares: u8,
    pub secret_threshold: u8,
    pub recovery_shares: u8,
    pub recovery_threshold: u8,
}

impl Core {
    /// Makes the root key and the first keyring, the root token and the built-in policy.
    /// With Shamir the appliance is left sealed, as Vault leaves it after init; with a
    /// hardware seal it unseals itself and the answer carries recovery keys.
    pub(crate) async fn init(&self, shares: u8, threshold: u8) -> Result<InitResult> {
        self.init_with(InitRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            recovery_shares: shares,
            recovery_threshold: threshold,
        })
        .await
    }

    pub(crate) async fn init_with(&self, req: InitRequest) -> Result<InitResult> {
        let hardware = self.seals.device.clone();
        let (shares, threshold) = if hardware.is_some() {
            (req.recovery_shares, req.recovery_threshold)
        } else {
            (req.secret_shares, req.secret_threshold)
        };
        let what = if hardware.is_some() {
            "recovery"
        } else {
            "seal"
        };
        let _l = self.lifecycle.lock().await;
        if self.is_initialized()? {
            return Err(EngineError::AlreadyInitialized);
        }
        // Of nodes sharing the keyspace, one initialises it: another that tried at the
        // same time would discard its half-written keyring as an interrupted init.
        let lease = Lease::new(self.storage.clone(), "init", &self.node_id, INIT_LEASE_TTL);
        if let Acquired::HeldBy(h) = lease.acquire().await? {
            tracing::info!(node = %h.holder, "another node is initialising the shared storage");
            return Err(EngineError::AlreadyInitialized);
        }
        let renewal = lease.keep_renewed();
        let result = self.init_leased(hardware, shares, threshold, what).await;
        drop(renewal);
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the init lease; it expires by itself");
        }
        result
    }

    async fn init_leased(
        &self,
        hardware: Option<Arc<dyn hsm_bridge::SealDevice>>,
        shares: u8,
        threshold: u8,
        what: &str,
    ) -> Result<InitResult> {
        // Another node may have finished between the first check and the lease.
        if self.is_initialized()? {
            return Err(EngineError::AlreadyInitialized);
        }
        if shares == 0 || threshold == 0 || threshold > shares {
            return Err(EngineError::bad(format!(
                "invalid {what} configuration: threshold must be between 1 and the number of shares"
            )));
        }
        if shares > 1 && threshold < 2 {
            return Err(EngineError::bad(format!(
                "invalid {what} configuration: threshold must be greater than one for multiple shares"
            )));
        }
        // Every step before the seal configuration can be run again: an init that was
        // interrupted (crash, power cut, device error) left only what the steps below
        // overwrite, and the appliance still counts as uninitialised.
        self.seal_locked();
        self.discard_interrupted_init().await?;
        let (shamir, keys) = ShamirRoot::generate(shares, threshold)?;
        let (root, policy_key): (Arc<dyn RootOfTrust>, _) = match &hardware {
            // Finds the root key a killed init made, or makes it (see the backends).
            Some(device) => create_hardware_root(device.clone(), shamir.key_bytes()).await?,
            None => (Arc::new(ShamirRoot::combine(&keys, threshold)?), None),
        };
        crate::failpoint::crash_at("init:root-key");
        let under_barrier = async {
            let issued = self.init_under_barrier(root.as_ref()).await?;
            self.store_policy_key(policy_key.as_ref().map(|k| k.as_slice()))
                .await?;
            Ok::<_, EngineError>(issued)
        };
        let issued = match under_barrier.await {
            Ok(t) => t,
            Err(e) => {
                self.seal_locked();
                return Err(e);
            }
        };
        crate::failpoint::crash_at("init:root-token");
        let config = match &hardware {
            Some(device) => SealConfig::hardware(device.kind(), shares, threshold),
            None => SealConfig::shamir(shares, threshold),
        };
        let finished = async {
            if hardware.is_some() {
                let mut batch = Batch::new();
                batch.put(
                    RECOVERY_KEY_PATH,
                    root.wrap(RECOVERY_KEY_PATH.as_bytes(), shamir.key_bytes())?,
                );
                self.storage.commit(batch).await?;
                crate::failpoint::crash_at("init:recovery-key");
            }
            // The seal configuration is written last: until it exists the appliance
            // counts as uninitialised, so an interrupted init can simply be run again.
            // Conditional: should a slow init have outlived its lease, the node that took
            // it over and finished first keeps its seal.
            let mut batch = Batch::new();
            batch
                .check(SEAL_CONFIG_PATH, None)
                .put(SEAL_CONFIG_PATH, config.encode()?);
            self.storage.commit(batch).await?;
            crate::failpoint::crash_at("init:seal-config");
            Ok::<(), EngineError>(())
        }
        .await;
        // Sealed whatever happened: a failed init must not leave the keyring open.
        self.seal_locked();
        finished?;
        let result = if hardware.is_some() {
            // Auto-unseal, as Vault does right after init with an auto seal.
            if let Err(e) = self.auto_unseal_locked().await {
                tracing::warn!(error = %e, "initialised, but the hardware seal did not unseal yet");
            }
            self.wake.notify_one();
            InitResult {
                keys: Vec::new(),
                recovery_keys: keys,
                recovery_threshold: threshold,
                root_token: issued.token,
            }
        } else {
            InitResult {
                keys,
                recovery_keys: Vec::new(),
                recovery_threshold: 0,
                root_token: issued.token,
            }
        };
        Ok(result)
    }

    /// The init steps under the barrier: a new keyring, the token store's salt and
    /// signing key, the default policy and the root token.
    async fn init_under_barrier(
        &self,
        root: &dyn RootOfTrust,
    ) -> Result<crate::token::IssuedToken> {
        self.barrier.initialize(root).await?;
        crate::failpoint::crash_at("init:keyring");
        self.tokens.load().await?;
        crate::failpoint::crash_at("init:token-store");
        self.policies.ensure_default().await?;
        crate::failpoint::crash_at("init:default-policy");
        self.tokens
            .create(
                None,
                CreateRequest {
                    policies: vec!["root".into()],
                    path: "auth/token/root".into(),
                    ..Default::default()
                },
            )
            .await
    }

    /// Removes what an interrupted init left, so a retry starts clean: its keyring was
    /// wrapped by a root key whose unseal keys were never handed out (or by the HSM key
    /// the retry reuses, but under a keyring the retry replaces), so nothing under it can
    /// be read again, and a root token nobody received must not stay valid. Anything
    /// else in storage was not written by init: refuse rather than destroy it.
    async fn discard_interrupted_init(&self) -> Result<()> {
        let mut leftover = Vec::new();
        for key in self.storage.list("")? {
            if key.starts_with(crate::lease::PREFIX) {
                continue;
            }
            if INIT_WRITES.iter().any(|p| key.starts_with(p)) {
                leftover.push(key);
            } else {
                return Err(EngineError::bad(format!(
                    "storage holds data ({key}) but no seal configuration: this is not an interrupted init; point the appliance at an empty data dir, or restore {SEAL_CONFIG_PATH} from a backup"
                )));
            }
        }
        if leftover.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            entries = leftover.len(),
            "an earlier init was interrupted before it wrote the seal configuration: discarding what it left and starting again"
        );
        let mut batch = Batch::new();
        for key in leftover {
            batch.delete(key);
        }
        self.storage.commit(batch).await?;
        Ok(())
    }
}
