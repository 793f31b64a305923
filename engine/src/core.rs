//! The appliance's state machine: uninitialised → sealed ⇄ unsealed, and the one place
//! that decides whether a caller may act on a path.

use std::sync::Arc;

use hsm_bridge::{RootOfTrust, SealKind, ShamirRoot, UnsealShare};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::{Barrier, KeyStatus};
use crate::error::{EngineError, Result};
use crate::mounts::{MountConfig, Mounts};
use crate::policy::{Acl, Operation};
use crate::policy_store::PolicyStore;
use crate::storage::{Batch, Storage};
use crate::token::{Caller, CreateRequest, TokenStore};
use crate::transit::TransitSettings;

const SEAL_CONFIG_PATH: &str = "core/seal-config";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Stored in the clear: it must be readable while sealed, and holds nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

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
    pub version: String,
    pub build_date: String,
    pub migration: bool,
    pub recovery_seal: bool,
    pub storage_type: String,
}

pub struct InitResult {
    pub keys: Vec<UnsealShare>,
    pub root_token: Zeroizing<String>,
}

#[derive(Default)]
struct UnsealProgress {
    shares: Vec<UnsealShare>,
    nonce: String,
}

pub struct Core {
    storage: Arc<Storage>,
    barrier: Arc<Barrier>,
    pub tokens: TokenStore,
    pub mounts: Mounts,
    pub policies: PolicyStore,
    progress: Mutex<UnsealProgress>,
    root: RwLock<Option<Arc<dyn RootOfTrust>>>,
    /// Serialises init, unseal and seal against each other.
    lifecycle: tokio::sync::Mutex<()>,
}

/// Appliance-wide settings that are not stored: they come from the daemon's start-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub transit: TransitSettings,
}

impl Core {
    pub fn new(storage: Arc<Storage>) -> Arc<Self> {
        Self::with_settings(storage, Settings::default())
    }

    pub fn with_settings(storage: Arc<Storage>, settings: Settings) -> Arc<Self> {
        let barrier = Arc::new(Barrier::new(storage.clone()));
        Arc::new(Core {
            tokens: TokenStore::new(barrier.clone()),
            mounts: Mounts::new(barrier.clone(), settings.transit),
            policies: PolicyStore::new(barrier.clone()),
            storage,
            barrier,
            progress: Mutex::new(UnsealProgress::default()),
            root: RwLock::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    pub fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self.storage.get(SEAL_CONFIG_PATH)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| EngineError::Corrupt(SEAL_CONFIG_PATH.into())),
            None => Ok(None),
        }
    }

    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.seal_config()?.is_some())
    }

    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
    }

    pub fn seal_status(&self) -> Result<SealStatus> {
        let config = self.seal_config()?;
        let progress = self.progress.lock();
        let sealed = self.is_sealed();
        Ok(SealStatus {
            kind: config
                .as_ref()
                .map(|c| c.kind.clone())
                .unwrap_or_else(|| SealKind::Shamir.as_str().into()),
            initialized: config.is_some(),
            sealed,
            t: config.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
            n: config.as_ref().map(|c| c.secret_shares).unwrap_or(0),
            progress: if sealed { progress.shares.len() } else { 0 },
            nonce: if sealed {
                progress.nonce.clone()
            } else {
                String::new()
            },
            version: VERSION.into(),
            build_date: String::new(),
            migration: false,
            recovery_seal: false,
            storage_type: self.storage.kind().into(),
        })
    }

    /// Makes the root key and the first keyring, the root token and the built-in policy.
    /// The appliance is left sealed, as Vault leaves it after init.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitResult> {
        let _l = self.lifecycle.lock().await;
        if self.is_initialized()? {
            return Err(EngineError::AlreadyInitialized);
        }
        if shares == 0 || threshold == 0 || threshold > shares {
            return Err(EngineError::bad(
                "invalid seal configuration: threshold must be between 1 and the number of shares",
            ));
        }
        if shares > 1 && threshold < 2 {
            return Err(EngineError::bad(
                "invalid seal configuration: threshold must be greater than one for multiple shares",
            ));
        }
        let (root, keys) = ShamirRoot::generate(shares, threshold)?;
        self.barrier.initialize(&root).await?;
        let token = async {
            self.tokens.load().await?;
            self.policies.ensure_default().await?;
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
        .await;
        let issued = match token {
            Ok(t) => t,
            Err(e) => {
                self.seal_locked();
                return Err(e);
            }
        };
        // The seal configuration is written last: until it exists the appliance counts as
        // uninitialised, so an interrupted init can simply be run again.
        let config = SealConfig {
            kind: SealKind::Shamir.as_str().into(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        let mut batch = Batch::new();
        batch.put(
            SEAL_CONFIG_PATH,
            serde_json::to_vec(&config).map_err(EngineError::internal)?,
        );
        self.storage.commit(batch).await?;
        self.seal_locked();
        Ok(InitResult {
            keys,
            root_token: issued.token,
        })
    }

    /// Adds one unseal key. At the threshold the keys are combined; if they do not open
    /// the keyring, progress resets and the appliance stays sealed.
    pub async fn unseal(&self, share: Option<UnsealShare>, reset: bool) -> Result<SealStatus> {
        let _l = self.lifecycle.lock().await;
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        if reset {
            *self.progress.lock() = UnsealProgress::default();
            return self.seal_status();
        }
        if !self.is_sealed() {
            return self.seal_status();
        }
        let Some(share) = share else {
            return Err(EngineError::bad(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        };
        let ready = {
            let mut p = self.progress.lock();
            if p.shares.is_empty() {
                p.nonce = uuid::Uuid::new_v4().to_string();
            }
            if !p.shares.iter().any(|s| s.index() == share.index()) {
                p.shares.push(share);
            }
            if p.shares.len() >= config.secret_threshold as usize {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        let Some(progress) = ready else {
            return self.seal_status();
        };
        let root = ShamirRoot::combine(&progress.shares, config.secret_threshold)?;
        self.barrier.unseal(&root).map_err(|e| match e {
            EngineError::Seal(hsm_bridge::BridgeError::WrongRootKey) => EngineError::bad(
                "the unseal keys do not open this appliance: progress was reset, start again with the right keys",
            ),
            other => other,
        })?;
        if let Err(e) = self.post_unseal(Arc::new(root)).await {
            self.seal_locked();
            return Err(e);
        }
        tracing::info!("vault is unsealed");
        self.seal_status()
    }

    async fn post_unseal(&self, root: Arc<dyn RootOfTrust>) -> Result<()> {
        self.mounts.load()?;
        self.tokens.load().await?;
        self.policies.clear();
        *self.root.write() = Some(root);
        Ok(())
    }

    pub async fn seal(&self) {
        let _l = self.lifecycle.lock().await;
        self.seal_locked();
        tracing::info!("vault is sealed");
    }

    fn seal_locked(&self) {
        self.barrier.seal();
        self.tokens.clear();
        self.mounts.clear();
        self.policies.clear();
        self.root.write().take();
        *self.progress.lock() = UnsealProgress::default();
    }

    fn root(&self) -> Result<Arc<dyn RootOfTrust>> {
        self.root.read().clone().ok_or(EngineError::Sealed)
    }

    pub async fn rotate_keyring(&self) -> Result<KeyStatus> {
        let _l = self.lifecycle.lock().await;
        let root = self.root()?;
        self.barrier.rotate(root.as_ref()).await
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        self.barrier.key_status()
    }

    /// Periodic housekeeping while unsealed: reclaims expired tokens and runs the
    /// engines' periodic work (transit keys due for rotation). One part failing does
    /// not keep the others from running; the first error is returned.
    pub async fn tick(&self) -> Result<()> {
        if self.is_sealed() {
            return Ok(());
        }
        let mut first_error = None;
        match self.tokens.tidy().await {
            Ok(removed) if removed > 0 => tracing::info!(removed, "expired tokens revoked"),
            Ok(_) => {}
            Err(e) => first_error = Some(e),
        }
        for mount in self.mounts.list() {
            if let Err(e) = mount.backend.tick().await {
                tracing::warn!(mount = %mount.entry.path, error = %e, "periodic work failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checks a caller's token and ACL for `op` on `path`.
    pub async fn authorize(&self, token: &str, path: &str, op: Operation) -> Result<Caller> {
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let caller = self.tokens.authenticate(token, path, op).await?;
        let acl = self.policies.acl_for(&caller.entry.policies)?;
        if !acl.allows(path, op) {
            return Err(EngineError::PermissionDenied);
        }
        Ok(caller)
    }

    /// Checks a token without a path, for endpoints every valid token may call.
    pub async fn authenticate(&self, token: &str, path: &str, op: Operation) -> Result<Caller> {
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        self.tokens.authenticate(token, path, op).await
    }

    pub fn acl(&self, caller: &Caller) -> Result<Arc<Acl>> {
        self.policies.acl_for(&caller.entry.policies)
    }

    /// `vault server -dev`: one unseal key, unsealed, kv v2 at `secret/`, transit at
    /// `transit/`, and optionally a root token with a chosen id in place of the
    /// generated one.
    pub async fn dev_setup(&self, root_token_id: Option<String>) -> Result<InitResult> {
        let mut init = self.init(1, 1).await?;
        self.unseal(init.keys.first().cloned(), false).await?;
        self.mounts
            .mount(
                "secret",
                "kv-v2",
                "key/value secret storage".into(),
                Default::default(),
                MountConfig::default(),
            )
            .await?;
        self.mounts
            .mount(
                "transit",
                "transit",
                "encryption as a service".into(),
                Default::default(),
                MountConfig::default(),
            )
            .await?;
        if let Some(id) = root_token_id {
            let generated = self.tokens.lookup(&init.root_token)?;
            self.tokens.revoke(&generated.0).await?;
            let issued = self
                .tokens
                .create(
                    None,
                    CreateRequest {
                        id: Some(id),
                        policies: vec!["root".into()],
                        path: "auth/token/root".into(),
                        ..Default::default()
                    },
                )
                .await?;
            init.root_token = issued.token;
        }
        Ok(init)
    }
}
