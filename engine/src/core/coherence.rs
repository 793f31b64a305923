//! What this node holds in memory beyond the stores' own caches, kept coherent with
//! what other nodes sharing the keyspace write: the storage backend raises the prefixes
//! they changed ([`crate::storage::Invalidations`]) and each holder takes the change up.
//! The barrier's plaintext cache, tokens, policies and transit keys subscribe where they
//! are built; what needs the core (the root key, or a table that is a plain field of
//! it) is taken up here.

use std::sync::Arc;

use crate::barrier::KEYRING_PATH;
use crate::core::Core;
use crate::storage::within;

/// Subscribes `core` to the invalidations of its storage.
pub(super) fn subscribe(core: &Arc<Core>) {
    core.storage
        .invalidations()
        .subscribe(core, |core, prefix| core.take_up(prefix));
}

/// Takes up one table another node changed.
type Reload<'a> = dyn Fn() -> crate::Result<()> + 'a;

/// Whether a change below `prefix` may have touched `key`.
fn touches(prefix: &str, key: &str) -> bool {
    within(prefix, key).is_some()
}

impl Core {
    /// Another node changed keys below `prefix`. Runs on the thread that heard of it;
    /// everything here is a storage read (and, for the keyring, one unwrap by the root).
    fn take_up(&self, prefix: &str) {
        // Read while sealed too (seal-status).
        if touches(prefix, crate::seal::SEAL_CONFIG_PATH) {
            self.seal_config_seen.clear();
        }
        // The barrier, not `is_sealed`: while post-unseal loads the tables, a change
        // another node makes to one already loaded must still be taken up.
        if self.barrier.is_sealed() {
            return;
        }
        if touches(prefix, KEYRING_PATH) {
            if let Some(root) = self.root.read().clone() {
                if let Err(e) = self.barrier.reload_keyring(root.as_ref()) {
                    // The old terms still open what they sealed; a rotation here retries
                    // the reload, and one that cannot (the root key was rotated on the
                    // other node) says so.
                    tracing::warn!(error = %e, "could not take up the keyring another node wrote");
                }
            }
        }
        let reloads: [(&str, &str, &Reload); 3] = [
            ("mount table", crate::mounts::MOUNTS_PATH, &|| {
                self.mounts.reload()
            }),
            ("auth table", crate::auth::TABLE_PATH, &|| {
                self.auth_mounts.reload()
            }),
            ("token mount TTLs", crate::token::MOUNT_CONFIG_PATH, &|| {
                self.tokens.reload_mount_ttls()
            }),
        ];
        for (what, key, reload) in reloads {
            if touches(prefix, key) {
                if let Err(e) = reload() {
                    tracing::warn!(what, error = %e, "could not take up what another node changed");
                }
            }
        }
        // An exact key: the heads other nodes record below a longer name are not it.
        if crate::audit::TABLE_PATH.starts_with(prefix) {
            if let Err(e) = self.audit.reload() {
                tracing::warn!(error = %e, "could not take up the audit devices another node changed");
            }
        }
        if touches(prefix, crate::managed_keys::META_PREFIX)
            || touches(prefix, crate::managed_keys::MATERIAL_PREFIX)
        {
            self.keys.clear();
        }
    }
}
