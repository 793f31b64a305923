//! Cloud exports (`/api/v1/keys/{keyId}/cloud-exports`): records linking a managed key to
//! a provider destination, the saved credentials, and the durable outbox of sync jobs a
//! rotation enqueues in its own storage transaction.

pub mod provider;

pub use provider::{
    CloudProviders, ExportMaterial, ExportedKey, Provider, ProviderRef, SyncError, SyncFuture,
    SyncRequest,
};
