//! `sys/appliance`: what the console's status page shows beyond `sys/seal-status`, the
//! storage backend's health above all. Ironseal's own path (Vault has none like it);
//! read with the ACL's `read` on it.

use std::time::Instant;

use crate::error::Result;
use crate::ops::{Access, Context, Op};
use crate::policy::Operation;
use crate::storage::ClusterSummary;

pub struct ApplianceRead;

/// The storage backend as a read of it just found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StorageHealth {
    #[serde(rename = "type")]
    pub kind: String,
    pub healthy: bool,
    /// How long the probe read took, in milliseconds.
    pub latency_ms: f64,
    /// What the probe read failed with, when it did.
    pub error: Option<String>,
    /// How long the last commit to the backend took, in milliseconds (none yet: null).
    pub last_commit_ms: Option<f64>,
    /// Whether other nodes may share the keyspace (a shared store).
    pub shared: bool,
}

/// Who this node is among those sharing the keyspace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    pub node_id: String,
    /// The node running the periodic tasks (token expiry, key destruction, ...), if
    /// one holds their lease now.
    pub periodic_runner: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplianceStatus {
    pub version: String,
    pub storage: StorageHealth,
    /// A clustered store's account of its cluster (FoundationDB's status); none for the
    /// others.
    pub replication: Option<ClusterSummary>,
    pub cluster: ClusterStatus,
}

impl Op for ApplianceRead {
    type Output = ApplianceStatus;

    fn access(&self) -> Access {
        Access::Acl(Operation::Read)
    }

    async fn run(self, cx: Context<'_>) -> Result<ApplianceStatus> {
        let storage = &cx.core.storage;
        let started = Instant::now();
        // The key every initialised appliance has, read from the backend itself.
        let probe = storage.get(crate::seal::SEAL_CONFIG_PATH);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let runner = match cx.core.periodic_runner() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the periodic-task lease");
                None
            }
        };
        Ok(ApplianceStatus {
            version: crate::core::VERSION.into(),
            storage: StorageHealth {
                kind: storage.kind().into(),
                healthy: probe.is_ok(),
                latency_ms: (latency_ms * 1000.0).round() / 1000.0,
                // The details (paths, OS errors) stay in the log.
                error: probe.err().map(|e| {
                    tracing::warn!(error = %e, "the storage probe of sys/appliance failed");
                    "the storage backend could not be read: see the daemon's log".to_string()
                }),
                last_commit_ms: storage
                    .figures()
                    .last_commit
                    .map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0),
                shared: storage.shared(),
            },
            replication: match storage.cluster_status() {
                Ok(summary) => summary,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the storage cluster's status");
                    Some(ClusterSummary {
                        error: Some(
                            "the cluster's status could not be read: see the daemon's log".into(),
                        ),
                        ..Default::default()
                    })
                }
            },
            cluster: ClusterStatus {
                node_id: cx.core.node_id().to_string(),
                periodic_runner: runner,
            },
        })
    }
}
