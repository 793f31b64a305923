//! The appliance: its stores and engines behind one barrier, the seal that opens it
//! ([`crate::seal`]), the one place that decides whether a caller may act on a path
//! ([`auth`]), and the periodic work each subsystem registers ([`crate::periodic`]).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_bridge::{RootOfTrust, SealDevice};
use parking_lot::{Mutex, RwLock};

use crate::audit::AuditBroker;
use crate::auth::AuthMounts;
use crate::barrier::{Barrier, KeyStatus};
use crate::bounded_cache::BoundedCache;
use crate::cloud_exports::{CloudExports, CloudProviders};
use crate::error::{EngineError, Result};
use crate::lease::{Acquired, Lease};
use crate::managed_keys::KeyStore;
use crate::mounts::Mounts;
use crate::periodic::PeriodicTasks;
use crate::policy::store::PolicyStore;
use crate::seal::generate_root::Attempt;
use crate::seal::report::SealErrorReport;
use crate::seal::rotate::Rotations;
use crate::seal::{SealConfig, UnsealProgress};
use crate::storage::Storage;
use crate::token::TokenStore;
use crate::transit::TransitSettings;

mod auth;
#[cfg(test)]
mod cluster_tests;
mod coherence;
mod housekeeping;

/// Room for the one seal configuration.
const SEAL_CONFIG_CACHE_BYTES: usize = 4096;

/// How long the node running the periodic tasks holds their lease without renewing it:
/// the longest the tasks pause when that node dies without releasing it. It renews
/// every third of this at its ticks.
pub const PERIODIC_LEASE_TTL: Duration = Duration::from_secs(15);

/// The lease the node running the periodic tasks holds while it is unsealed.
pub const PERIODIC_LEASE: &str = "periodic";

/// Ironseal's own version, reported beside [`API_VERSION`] (`ironseal_version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The OpenBao release whose API this appliance implements, reported as `version` by
/// `sys/health` and `sys/seal-status`: clients gate features on that field with a
/// version comparison, and Ironseal's own 0.x would turn every such check off.
pub const API_VERSION: &str = "2.4.0";

/// The seals the configuration names: the active one, and the one being migrated away
/// from (Vault's `disabled = "true"` seal block).
#[derive(Clone, Default)]
pub struct Seals {
    pub device: Option<Arc<dyn SealDevice>>,
    pub previous: Option<Arc<dyn SealDevice>>,
}

/// Appliance-wide settings that are not stored: they come from the daemon's start-up.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub transit: TransitSettings,
    /// The server config's `default_lease_ttl` / `max_lease_ttl` (768h each by default).
    pub leases: crate::token::LeaseTtls,
    /// This node's lasting name among the nodes sharing a keyspace (the host name by
    /// default): what tells their audit files and chain heads apart across restarts.
    /// Unused on a store no other node opens; empty on a shared one: this run's id.
    pub node_name: String,
}

pub struct Core {
    pub(crate) storage: Arc<Storage>,
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) tokens: TokenStore,
    pub(crate) mounts: Mounts,
    /// Auth method mounts (`sys/auth`), beside the built-in token store.
    pub(crate) auth_mounts: AuthMounts,
    pub(crate) policies: PolicyStore,
    pub(crate) audit: AuditBroker,
    pub(crate) keys: KeyStore,
    pub(crate) exports: CloudExports,
    pub(crate) progress: Mutex<UnsealProgress>,
    /// Unseal attempts whose keys did not open the appliance, per source.
    pub(crate) unseal_throttle: crate::auth::LoginThrottle,
    pub(crate) root: RwLock<Option<Arc<dyn RootOfTrust>>>,
    /// Serialises init, unseal and seal against each other.
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
    pub(crate) seals: Seals,
    /// The stored seal configuration as last read (see `known_seal_config`).
    pub(crate) seal_config_seen: BoundedCache<SealConfig>,
    /// Why the hardware seal cannot unseal now, for seal-status.
    pub(crate) seal_error: Mutex<Option<SealErrorReport>>,
    /// The most recent seal error, kept after the appliance unseals, for operators.
    pub(crate) last_seal_error: Mutex<Option<SealErrorReport>>,
    /// Set by `sys/seal`: the auto-unseal loop leaves the appliance sealed until an
    /// operator unseals it with recovery keys or restarts it.
    pub(crate) manually_sealed: AtomicBool,
    /// How many times the appliance has sealed since start: what was granted while it
    /// was unsealed (a console session) ends when this moves.
    pub(crate) times_sealed: AtomicU64,
    /// Wakes the auto-unseal loop (after init, or a manual unseal attempt).
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) generate_root: Mutex<Option<Attempt>>,
    /// Key-share rotations in progress (`sys/rotate/root`, `sys/rotate/recovery`).
    pub(crate) rotations: Mutex<Rotations>,
    /// PKCS#11 session objects, per library instance; never stored.
    pub(crate) pkcs11_sessions: crate::pkcs11::session::SessionObjects,
    /// What `tick` runs: each subsystem's periodic work.
    periodic: PeriodicTasks,
    /// Names this node in the leases it takes; new at every start.
    pub(crate) node_id: String,
    /// Held by the one node of those sharing the keyspace that runs the periodic tasks.
    periodic_lease: Lease,
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
        let periodic = PeriodicTasks::default();
        let tokens = TokenStore::with_ttls(barrier.clone(), settings.leases);
        periodic.register(housekeeping::TokenExpiry);
        periodic.register(housekeeping::SecretIdTidy);
        let keys = KeyStore::new(barrier.clone());
        periodic.register(housekeeping::ManagedKeyDestruction);
        let mounts = Mounts::new(barrier.clone(), settings.transit);
        periodic.register(housekeeping::TransitAutoRotation);
        let node_id = uuid::Uuid::new_v4().to_string();
        let node_name = match (storage.shared(), settings.node_name) {
            (false, _) => String::new(),
            (true, name) if name.is_empty() => node_id.clone(),
            (true, name) => name,
        };
        let periodic_lease = Lease::new(
            storage.clone(),
            PERIODIC_LEASE,
            &node_id,
            PERIODIC_LEASE_TTL,
        );
        let core = Arc::new_cyclic(|core| {
            periodic.register(crate::cloud_exports::worker::CloudSync { core: core.clone() });
            Core {
                tokens,
                mounts,
                auth_mounts: AuthMounts::new(barrier.clone()),
                policies: PolicyStore::new(barrier.clone()),
                audit: AuditBroker::new(barrier.clone(), node_name),
                keys,
                exports: CloudExports::default(),
                storage,
                barrier,
                progress: Mutex::new(UnsealProgress::default()),
                unseal_throttle: crate::auth::LoginThrottle::for_unseal(),
                root: RwLock::new(None),
                lifecycle: tokio::sync::Mutex::new(()),
                seals,
                seal_config_seen: BoundedCache::new(SEAL_CONFIG_CACHE_BYTES),
                seal_error: Mutex::new(None),
                last_seal_error: Mutex::new(None),
                manually_sealed: AtomicBool::new(false),
                times_sealed: AtomicU64::new(0),
                wake: tokio::sync::Notify::new(),
                generate_root: Mutex::new(None),
                rotations: Mutex::new(Rotations::default()),
                pkcs11_sessions: Default::default(),
                periodic,
                node_id,
                periodic_lease,
            }
        });
        coherence::subscribe(&core);
        core
    }

    /// This node's id in the leases it takes.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The node running the periodic tasks, if one holds their lease now.
    pub fn periodic_runner(&self) -> Result<Option<String>> {
        Ok(self.periodic_lease.holder()?.map(|h| h.holder))
    }

    /// Lets another node take the periodic tasks over at once (on seal and shutdown).
    pub(crate) async fn release_periodic_lease(&self) {
        if let Err(e) = self.periodic_lease.release().await {
            tracing::warn!(error = %e, "could not release the periodic-task lease; another node takes it when it expires");
        }
    }

    /// Hands the engine the cloud provider clients (the firmware's `cloud::Providers`);
    /// without them, exports are refused and the outbox waits.
    pub fn set_cloud_providers(&self, providers: Arc<dyn CloudProviders>) {
        self.exports.set_providers(providers);
    }

    /// The open root of trust (for managed-key operations inside the boundary).
    pub(crate) fn root(&self) -> Result<Arc<dyn RootOfTrust>> {
        self.root.read().clone().ok_or(EngineError::Sealed)
    }

    pub(crate) async fn rotate_keyring(&self) -> Result<KeyStatus> {
        let _l = self.lifecycle.lock().await;
        let root = self.root()?;
        let status = self.barrier.rotate(root.as_ref()).await?;
        self.audit
            .event("keyring-rotate", serde_json::json!({"term": status.term}));
        Ok(status)
    }

    pub(crate) fn key_status(&self) -> Result<KeyStatus> {
        self.barrier.key_status()
    }

    /// Where subsystems register their periodic work.
    /// Reopens every audit device's file (after log rotation, on SIGHUP); the paths
    /// that could not be reopened.
    pub fn reopen_audit(&self) -> Vec<String> {
        self.audit.reopen()
    }

    pub fn periodic(&self) -> &PeriodicTasks {
        &self.periodic
    }

    /// Runs the periodic tasks that are due, while unsealed, on the one node of those
    /// sharing the keyspace that holds their lease (taking it when it is free). A task
    /// that fails is logged and does not keep the others from running.
    pub async fn tick(&self) {
        if self.is_sealed() {
            return;
        }
        match self.periodic_lease.acquire().await {
            Ok(Acquired::Held) => {}
            Ok(Acquired::HeldBy(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the periodic-task lease");
                return;
            }
        }
        self.periodic.run_due(self, Instant::now()).await;
    }
}
