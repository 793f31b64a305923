//! The appliance's state machine: uninitialised → sealed ⇄ unsealed, and the one place
//! that decides whether a caller may act on a path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hsm_bridge::{
    BridgeError, OpenMode, RootOfTrust, SealDevice, SealKind, ShamirRoot, UnsealShare,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::AuditBroker;
use crate::barrier::{Barrier, KeyStatus};
use crate::error::{EngineError, Result};
use crate::mounts::{MountConfig, Mounts};
use crate::policy::{Acl, Operation};
use crate::policy::store::PolicyStore;
use crate::seal_report::SealErrorReport;
use crate::storage::{Batch, Storage};
use crate::token::{Caller, CreateRequest, TokenStore};
use crate::transit::TransitSettings;

mod seal_policy;

const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// With a hardware seal: the recovery key, wrapped by the hardware root key. Recovery
/// keys are checked against it; they cannot open the keyring themselves.
const RECOVERY_KEY_PATH: &str = "core/recovery-key";
/// What the steps of init write before the seal configuration (prefixes): all of it is
/// discarded when an init is run again after an interrupted one.
const INIT_WRITES: &[&str] = &[
    crate::barrier::KEYRING_PATH,
    RECOVERY_KEY_PATH,
    seal_policy::SEAL_POLICY_KEY_PATH,
    "sys/token/",
    "sys/policy/",
];
/// First and longest pause between auto-unseal attempts while the hardware is away.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Stored in the clear: it must be readable while sealed, and holds nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    /// With a hardware seal: how many recovery keys were made and how many it takes.
    #[serde(default)]
    pub recovery_shares: u8,
    #[serde(default)]
    pub recovery_threshold: u8,
}

impl SealConfig {
    fn kind(&self) -> Result<SealKind> {
        SealKind::parse(&self.kind).ok_or_else(|| EngineError::Corrupt(SEAL_CONFIG_PATH.into()))
    }

    /// How many keys `sys/unseal` and generate-root collect: recovery keys with a
    /// hardware seal, unseal keys with Shamir.
    fn key_threshold(&self) -> u8 {
        if self.recovery_threshold > 0 {
            self.recovery_threshold
        } else {
            self.secret_threshold
        }
    }
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

/// The seals the configuration names: the active one, and the one being migrated away
/// from (Vault's `disabled = "true"` seal block).
#[derive(Clone, Default)]
pub struct Seals {
    pub device: Option<Arc<dyn SealDevice>>,
    pub previous: Option<Arc<dyn SealDevice>>,
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
    pub audit: AuditBroker,
    pub keys: crate::managed_keys::KeyStore,
    progress: Mutex<UnsealProgress>,
    root: RwLock<Option<Arc<dyn RootOfTrust>>>,
    /// Serialises init, unseal and seal against each other.
    lifecycle: tokio::sync::Mutex<()>,
    seals: Seals,
    /// Why the hardware seal cannot unseal now, for seal-status.
    seal_error: Mutex<Option<SealErrorReport>>,
    /// The most recent seal error, kept after the appliance unseals, for operators.
    last_seal_error: Mutex<Option<SealErrorReport>>,
    /// Set by `sys/seal`: the auto-unseal loop leaves the appliance sealed until an
    /// operator unseals it with recovery keys or restarts it.
    manually_sealed: AtomicBool,
    /// Wakes the auto-unseal loop (after init, or a manual unseal attempt).
    wake: tokio::sync::Notify,
    pub(crate) generate_root: Mutex<Option<crate::generate_root::Attempt>>,
    /// When `tick` last reclaimed expired tokens.
    last_token_tidy: Mutex<Option<std::time::Instant>>,
}

/// How often `tick` reclaims expired tokens; managed-key destructions and the engines'
/// periodic work run on every tick.
const TOKEN_TIDY_PERIOD: Duration = Duration::from_secs(30);

/// Appliance-wide settings that are not stored: they come from the daemon's start-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub transit: TransitSettings,
    /// The server config's `default_lease_ttl` / `max_lease_ttl` (768h each by default).
    pub leases: crate::token::LeaseTtls,
}

impl Core {
    pub fn new(storage: Arc<Storage>) -> Arc<Self> {
        Self::with(storage, Seals::default(), Settings::default())
    }

    /// A core whose root key lives in `seals.device` (None: Shamir).
    pub fn with_seals(storage: Arc<Storage>, seals: Seals) -> Arc<Self> {
        Self::with(storage, seals, Settings::default())
    }

    pub fn with_settings(storage: Arc<Storage>, settings: Settings) -> Arc<Self> {
        Self::with(storage, Seals::default(), settings)
    }

    pub fn with(storage: Arc<Storage>, seals: Seals, settings: Settings) -> Arc<Self> {
        let barrier = Arc::new(Barrier::new(storage.clone()));
        Arc::new(Core {
            tokens: TokenStore::with_ttls(barrier.clone(), settings.leases),
            mounts: Mounts::new(barrier.clone(), settings.transit),
            policies: PolicyStore::new(barrier.clone()),
            audit: AuditBroker::new(barrier.clone()),
            keys: crate::managed_keys::KeyStore::new(barrier.clone()),
            storage,
            barrier,
            progress: Mutex::new(UnsealProgress::default()),
            root: RwLock::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            seals,
            seal_error: Mutex::new(None),
            last_seal_error: Mutex::new(None),
            manually_sealed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            generate_root: Mutex::new(None),
            last_token_tidy: Mutex::new(None),
        })
    }

    /// The kind of seal the configuration makes active.
    pub fn configured_seal(&self) -> SealKind {
        self.seals
            .device
            .as_ref()
            .map(|d| d.kind())
            .unwrap_or(SealKind::Shamir)
    }

    /// Whether the stored seal differs from the configured one in a way `-migrate`
    /// resolves: Shamir to a hardware seal, or a hardware seal (now `disabled`) to Shamir.
    fn migration_pending(&self, config: &SealConfig) -> Result<bool> {
        let stored = config.kind()?;
        let configured = self.configured_seal();
        Ok(match (stored, configured) {
            (SealKind::Shamir, c) if c.is_hardware() => true,
            (s, SealKind::Shamir) if s.is_hardware() => {
                self.seals.previous.as_ref().is_some_and(|p| p.kind() == s)
            }
            _ => false,
        })
    }

    /// Why the stored seal and the configuration cannot work together, if they cannot.
    fn seal_mismatch(&self, config: &SealConfig) -> Result<Option<String>> {
        let stored = config.kind()?;
        let configured = self.configured_seal();
        if stored == configured || self.migration_pending(config)? {
            return Ok(None);
        }
        Ok(Some(if configured == SealKind::Shamir {
            format!(
                "this data dir is sealed by the {stored} seal but the config has no seal \"{stored}\" block: add it back, or add it with disabled = \"true\" to migrate to Shamir"
            )
        } else {
            format!(
                "this data dir is sealed by the {stored} seal but the config names seal \"{configured}\": migrate through Shamir first"
            )
        }))
    }

    fn hardware(&self) -> Result<&Arc<dyn SealDevice>> {
        self.seals
            .device
            .as_ref()
            .ok_or_else(|| EngineError::bad("no hardware seal is configured"))
    }

    /// Opens the configured hardware seal, off the async threads when possible.
    fn open_device(device: &Arc<dyn SealDevice>, mode: OpenMode) -> Result<Arc<dyn RootOfTrust>> {
        Ok(device.open(mode)?)
    }

    fn set_seal_error(&self, e: Option<SealErrorReport>) {
        if let Some(report) = &e {
            *self.last_seal_error.lock() = Some(report.clone());
        }
        *self.seal_error.lock() = e;
    }

    /// A seal error about this appliance's configured device.
    fn seal_report(&self, category: &'static str, message: String) -> SealErrorReport {
        let device = self.seals.device.as_ref().map(|d| d.describe());
        SealErrorReport::new(category, message, device)
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
            version: VERSION.into(),
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
    pub fn seal_status_detailed(&self) -> Result<SealStatus> {
        let mut status = self.seal_status()?;
        let config = self.seal_config()?;
        status.seal_error_detail = match self.current_seal_error(config.as_ref())? {
            Some(current) => Some(current),
            None => self.last_seal_error.lock().clone(),
        };
        Ok(status)
    }

    /// Makes the root key and the first keyring, the root token and the built-in policy.
    /// With Shamir the appliance is left sealed, as Vault leaves it after init; with a
    /// hardware seal it unseals itself and the answer carries recovery keys.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitResult> {
        self.init_with(InitRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            recovery_shares: shares,
            recovery_threshold: threshold,
        })
        .await
    }

    pub async fn init_with(&self, req: InitRequest) -> Result<InitResult> {
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
            Some(device) => Self::create_hardware_root(device.clone(), shamir.key_bytes()).await?,
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
            Some(device) => SealConfig {
                kind: device.kind().as_str().into(),
                secret_shares: 1,
                secret_threshold: 1,
                recovery_shares: shares,
                recovery_threshold: threshold,
            },
            None => SealConfig {
                kind: SealKind::Shamir.as_str().into(),
                secret_shares: shares,
                secret_threshold: threshold,
                recovery_shares: 0,
                recovery_threshold: 0,
            },
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
            let mut batch = Batch::new();
            batch.put(
                SEAL_CONFIG_PATH,
                serde_json::to_vec(&config).map_err(EngineError::internal)?,
            );
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

    /// With a hardware seal: opens the device and the keyring. Caller holds `lifecycle`.
    async fn auto_unseal_locked(&self) -> Result<()> {
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
        let device = self.hardware()?.clone();
        let root =
            tokio::task::spawn_blocking(move || Self::open_device(&device, OpenMode::Existing))
                .await
                .map_err(EngineError::internal)??;
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
                        let category = crate::seal_report::category(&e);
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

    /// Adds one unseal key (or, with a hardware seal, recovery key). At the threshold the
    /// keys are combined; if they do not open the keyring, progress resets and the
    /// appliance stays sealed. With `migrate`, completes a pending seal migration.
    pub async fn unseal(&self, share: Option<UnsealShare>, reset: bool) -> Result<SealStatus> {
        self.unseal_with(share, reset, false).await
    }

    pub async fn unseal_with(
        &self,
        share: Option<UnsealShare>,
        reset: bool,
        migrate: bool,
    ) -> Result<SealStatus> {
        let _l = self.lifecycle.lock().await;
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        if reset {
            *self.progress.lock() = UnsealProgress::default();
            return self.seal_status();
        }
        if !self.is_sealed() {
            return self.seal_status();
        }
        let pending = self.migration_pending(&config)?;
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
        let Some(share) = share else {
            return Err(EngineError::bad(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        };
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
            (SealKind::Shamir, true) => self.migrate_to_hardware(&config, combined).await?,
            (_, true) => self.migrate_to_shamir(&config, combined).await?,
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

    /// Checks recovery keys against the recovery key stored under the hardware root.
    fn check_recovery_key(&self, hw: &dyn RootOfTrust, combined: &ShamirRoot) -> Result<()> {
        let blob = self
            .storage
            .get(RECOVERY_KEY_PATH)?
            .ok_or_else(|| EngineError::Corrupt(RECOVERY_KEY_PATH.into()))?;
        let stored = hw.unwrap(RECOVERY_KEY_PATH.as_bytes(), &blob)?;
        if !constant_time_eq(&stored, combined.key_bytes()) {
            return Err(EngineError::bad(
                "the recovery keys do not match this appliance: progress was reset, start again with the right keys",
            ));
        }
        Ok(())
    }

    /// Shamir → hardware: the unseal keys open the keyring, which is rewrapped by the new
    /// hardware root; the Shamir key becomes the recovery key (the same key shares now
    /// serve as recovery keys). One storage transaction switches everything.
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
        let (hw, policy_key) = match Self::create_hardware_root(device, combined.key_bytes()).await
        {
            Ok(created) => created,
            Err(e) => {
                self.barrier.seal();
                return Err(e);
            }
        };
        let new_config = SealConfig {
            kind: kind.as_str().into(),
            secret_shares: 1,
            secret_threshold: 1,
            recovery_shares: config.secret_shares,
            recovery_threshold: config.secret_threshold,
        };
        let mut batch = Batch::new();
        let staged = self
            .barrier
            .rewrap_keyring_into(hw.as_ref(), &mut batch)
            .and_then(|_| {
                batch.put(
                    RECOVERY_KEY_PATH,
                    hw.wrap(RECOVERY_KEY_PATH.as_bytes(), combined.key_bytes())?,
                );
                batch.put(
                    SEAL_CONFIG_PATH,
                    serde_json::to_vec(&new_config).map_err(EngineError::internal)?,
                );
                Ok(())
            });
        if let Err(e) = staged {
            self.barrier.seal();
            return Err(e);
        }
        if let Err(e) = self.storage.commit(batch).await {
            self.barrier.seal();
            return Err(e.into());
        }
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
        let old =
            tokio::task::spawn_blocking(move || Self::open_device(&previous, OpenMode::Existing))
                .await
                .map_err(EngineError::internal)??;
        self.check_recovery_key(old.as_ref(), &combined)?;
        self.barrier.unseal(old.as_ref())?;
        // Keys generated in the HSM exist only wrapped by its root key: leaving the HSM
        // would strand them, so refuse rather than lose them.
        let stranded = match self.keys.hsm_bound() {
            Ok(names) => names,
            Err(e) => {
                self.barrier.seal();
                return Err(e);
            }
        };
        if !stranded.is_empty() {
            self.barrier.seal();
            return Err(EngineError::bad(format!(
                "{} managed key(s) are held by the HSM ({}): migrating away from the {kind} seal would make them unusable; destroy them first or keep the seal",
                stranded.len(),
                stranded.join(", ")
            )));
        }
        let new_config = SealConfig {
            kind: SealKind::Shamir.as_str().into(),
            secret_shares: config.recovery_shares,
            secret_threshold: config.recovery_threshold,
            recovery_shares: 0,
            recovery_threshold: 0,
        };
        let mut batch = Batch::new();
        let staged = self
            .barrier
            .rewrap_keyring_into(&combined, &mut batch)
            .and_then(|_| {
                batch.delete(RECOVERY_KEY_PATH);
                batch.put(
                    SEAL_CONFIG_PATH,
                    serde_json::to_vec(&new_config).map_err(EngineError::internal)?,
                );
                Ok(())
            });
        if let Err(e) = staged {
            self.barrier.seal();
            return Err(e);
        }
        if let Err(e) = self.storage.commit(batch).await {
            self.barrier.seal();
            return Err(e.into());
        }
        tracing::info!(from = %kind, to = "shamir", "seal migration complete: the recovery keys are now unseal keys");
        Ok(Arc::new(combined))
    }

    /// Checks a full set of unseal keys (Shamir) or recovery keys (hardware seal) for
    /// generate-root; the appliance must be unsealed.
    pub(crate) fn verify_operator_keys(&self, shares: &[UnsealShare]) -> Result<()> {
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        let combined = ShamirRoot::combine(shares, config.key_threshold())?;
        let root = self.root()?;
        match config.kind()? {
            SealKind::Shamir => {
                let blob = self
                    .storage
                    .get(crate::barrier::KEYRING_PATH)?
                    .ok_or(EngineError::NotInitialized)?;
                combined
                    .unwrap(crate::barrier::KEYRING_PATH.as_bytes(), &blob)
                    .map(|_| ())
                    .map_err(|_| {
                        EngineError::bad(
                            "the unseal keys do not match this appliance: progress was reset",
                        )
                    })
            }
            _ => self.check_recovery_key(root.as_ref(), &combined),
        }
    }

    pub(crate) fn key_threshold(&self) -> Result<u8> {
        Ok(self
            .seal_config()?
            .ok_or(EngineError::NotInitialized)?
            .key_threshold())
    }

    async fn post_unseal(&self, root: Arc<dyn RootOfTrust>) -> Result<()> {
        self.mounts.load()?;
        self.tokens.load().await?;
        self.audit.load().await?;
        self.policies.clear();
        *self.root.write() = Some(root);
        Ok(())
    }

    pub async fn seal(&self) {
        let _l = self.lifecycle.lock().await;
        self.seal_locked();
        if self.seals.device.is_some() {
            self.manually_sealed.store(true, Ordering::Relaxed);
        }
        tracing::info!("vault is sealed");
    }

    /// Seals on shutdown: drops every key, without marking the seal manual.
    pub async fn shutdown(&self) {
        let _l = self.lifecycle.lock().await;
        self.seal_locked();
    }

    fn seal_locked(&self) {
        self.barrier.seal();
        self.audit.clear();
        self.tokens.clear();
        self.mounts.clear();
        self.policies.clear();
        self.keys.clear();
        self.root.write().take();
        *self.progress.lock() = UnsealProgress::default();
        *self.generate_root.lock() = None;
    }

    /// The open root of trust (for managed-key operations inside the boundary).
    pub fn root(&self) -> Result<Arc<dyn RootOfTrust>> {
        self.root.read().clone().ok_or(EngineError::Sealed)
    }

    pub async fn rotate_keyring(&self) -> Result<KeyStatus> {
        let _l = self.lifecycle.lock().await;
        let root = self.root()?;
        let status = self.barrier.rotate(root.as_ref()).await?;
        self.audit
            .event("keyring-rotate", serde_json::json!({"term": status.term}));
        Ok(status)
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        self.barrier.key_status()
    }

    /// Periodic housekeeping while unsealed: reclaims expired tokens (every 30 s),
    /// destroys managed keys whose pending window has passed, and runs the engines'
    /// periodic work (transit keys due for rotation). One part failing does not keep the
    /// others from running; the first error is returned.
    pub async fn tick(&self) -> Result<()> {
        if self.is_sealed() {
            return Ok(());
        }
        let mut first_error = None;
        let tokens_due = {
            let mut last = self.last_token_tidy.lock();
            let due = last.is_none_or(|t| t.elapsed() >= TOKEN_TIDY_PERIOD);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if tokens_due {
            match self.tokens.tidy().await {
                Ok(removed) if removed > 0 => tracing::info!(removed, "expired tokens revoked"),
                Ok(_) => {}
                Err(e) => first_error = Some(e),
            }
        }
        let root = self.root.read().clone();
        match self.keys.tidy(root).await {
            Ok(destroyed) => {
                for (id, name) in destroyed {
                    self.audit
                        .event("key-destroyed", serde_json::json!({"id": id, "name": name}));
                }
            }
            Err(crate::managed_keys::KeyError::Engine(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => tracing::warn!(error = %e, "managed key housekeeping failed"),
        }
        for mount in self.mounts.list() {
            match mount.backend.tick().await {
                Ok(rotated) => {
                    for (key, version) in rotated {
                        self.audit.event(
                            "transit-key-rotated",
                            serde_json::json!({"mount": mount.entry.path, "key": key, "version": version}),
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(mount = %mount.entry.path, error = %e, "periodic work failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checks a caller's token and ACL for `op` on `path`, `data` being the parameters the
    /// request carries (its body, or the query of a read), which the ACL's
    /// `allowed/denied/required_parameters` constrain.
    pub async fn authorize(
        &self,
        token: &str,
        path: &str,
        op: Operation,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Caller> {
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let caller = self.tokens.authenticate(token, path, op).await?;
        let acl = self.policies.acl_for(&caller.entry.policies)?;
        if !acl.allows(path, op, data) {
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

    pub(crate) async fn create_root_token(&self, id: String) -> Result<Zeroizing<String>> {
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
        Ok(issued.token)
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
