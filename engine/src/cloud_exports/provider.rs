//! What the engine asks of a cloud provider, and what it hands over: the boundary between
//! the HTTP-free engine (records, outbox, worker) and the provider clients in the `cloud`
//! crate, which implements [`CloudProviders`] and is wired in by the firmware.
//!
//! A provider cannot take part in a storage transaction, so every [`CloudProviders::sync`]
//! is idempotent: the provider-side key or version is tagged with the appliance key id and
//! version, and a sync looks for it before creating or importing anything. A job that
//! runs twice (a crash between the provider's answer and the outbox commit) leaves one
//! version at the provider, not two.

use std::future::Future;
use std::pin::Pin;

use hsm_bridge::WrapMechanism;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::managed_keys::{Algorithm, Usage};

/// The providers the seed names, spelled as the API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    AzureKeyVault,
    AwsKms,
    GcpKms,
    ScalewayKms,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::AzureKeyVault,
        Provider::AwsKms,
        Provider::GcpKms,
        Provider::ScalewayKms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::AzureKeyVault => "AzureKeyVault",
            Provider::AwsKms => "AwsKms",
            Provider::GcpKms => "GcpKms",
            Provider::ScalewayKms => "ScalewayKms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The key version a sync carries to the provider.
#[derive(Debug, Clone)]
pub struct ExportedKey {
    pub key_id: uuid::Uuid,
    /// The appliance key's name: the provider-side name when `keyName` is not given.
    pub name: String,
    pub algorithm: Algorithm,
    /// What the key does (an RSA key signs or decrypts): the provider-side key gets the
    /// same usage.
    pub usage: Usage,
    pub version: u32,
    /// DER SubjectPublicKeyInfo of an asymmetric version.
    pub public_key_der: Option<Vec<u8>>,
    /// Set at creation only: the AES material may leave unwrapped over TLS (Scaleway).
    pub allow_unwrapped_export: bool,
}

/// The key material of one version, reachable only through the boundary that holds it:
/// an HSM wraps inside the device (`RootOfTrust::export_wrap`), a software seal in
/// zeroized memory (`hsm_bridge::byok`). Calls block (they may reach a device): a
/// provider client runs them with `tokio::task::spawn_blocking` or on the engine's
/// compute pool, never on a reactor thread.
pub trait ExportMaterial: Send + Sync {
    /// Whether this boundary produces `mechanism`'s format correctly for this key; `Err`
    /// names the missing or faulty mechanism.
    fn supports(&self, mechanism: WrapMechanism) -> Result<(), String>;

    /// The key wrapped under the provider's RSA public key (DER SubjectPublicKeyInfo),
    /// in `mechanism`'s format (see `hsm_bridge::byok`).
    fn wrap(&self, wrapping_public_der: &[u8], mechanism: WrapMechanism)
        -> Result<Vec<u8>, String>;

    /// The AES key's bytes, for a provider whose import takes them over TLS only
    /// (Scaleway). Refused unless the key was created with `allowUnwrappedExport`.
    fn unwrapped(&self) -> Result<Zeroizing<Vec<u8>>, String>;
}

/// Where the last successful sync left the key at the provider, so the next one finds it
/// (an AWS key id and alias target, an Azure key name, a GCP crypto key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRef {
    /// The provider's id of the key (AWS key ARN, Azure key id URL, GCP crypto key name,
    /// Scaleway key id).
    pub key_id: String,
    /// The provider's id of the version, where it has versions.
    pub key_version: Option<String>,
}

/// One sync: a version of a key to one provider destination.
pub struct SyncRequest<'a> {
    pub export_id: uuid::Uuid,
    pub provider: Provider,
    /// The export's `providerMetadata`, as validated by [`CloudProviders::validate`].
    pub metadata: &'a Map<String, Value>,
    /// The saved credentials (a JSON object), decrypted for this call only.
    pub credentials: &'a Zeroizing<String>,
    pub key: &'a ExportedKey,
    pub material: &'a dyn ExportMaterial,
    /// The last successful sync of this export, if any.
    pub previous: Option<&'a ProviderRef>,
}

/// Why a sync failed. `message` is shown verbatim as `lastSyncError`: the provider's own
/// words where it answered (`AccessDeniedException: ...`, `ForbiddenByRbac ...`), never a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub message: String,
    /// Whether trying again later may succeed without anyone changing anything (a
    /// network error, a 5xx, throttling). Permission and validation errors are not: the
    /// worker records them and waits for a manual sync.
    pub retryable: bool,
    /// The key's boundary cannot produce any format the provider imports (its start-up
    /// self-test refused them): not the provider's fault, and nothing left the boundary.
    pub boundary: bool,
}

impl SyncError {
    pub fn permanent(message: impl Into<String>) -> Self {
        SyncError {
            message: message.into(),
            retryable: false,
            boundary: false,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        SyncError {
            message: message.into(),
            retryable: true,
            boundary: false,
        }
    }

    /// The boundary holding the key refused every format the provider takes; `message`
    /// names the mechanisms and why.
    pub fn boundary(message: impl Into<String>) -> Self {
        SyncError {
            message: message.into(),
            retryable: false,
            boundary: true,
        }
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub type SyncFuture<'a> = Pin<Box<dyn Future<Output = Result<ProviderRef, SyncError>> + Send + 'a>>;

/// The provider clients, as the firmware wires them in (`cloud::Providers`).
pub trait CloudProviders: Send + Sync {
    /// Checks an export's request before anything is stored: `metadata` and `credentials`
    /// (when given) hold every required field of `provider` and nothing else, locations
    /// are HTTPS (plain HTTP only to loopback), and the provider imports keys of
    /// `algorithm` (with `allow_unwrapped_export` where the provider takes unwrapped
    /// material). Fills in the documented defaults (`vaultUrl`, `endpoint`, ...) so the
    /// stored metadata says where the key went. `Err` is a message naming the field.
    fn validate(
        &self,
        provider: Provider,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        allow_unwrapped_export: bool,
    ) -> Result<(), String>;

    /// Pushes one key version to the provider, idempotently (see the module docs).
    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a>;
}
