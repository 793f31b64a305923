//! Cloud KMS provider clients for managed-key exports and auto-sync: one module per
//! provider (AWS KMS, Azure Key Vault, GCP Cloud KMS, Scaleway Key Manager), each speaking
//! the provider's real import protocol and authentication against a configurable
//! endpoint. The engine decides what to export and when; the wrapped bytes come from the
//! boundary that holds the key (`engine::cloud_exports::ExportMaterial`); this crate knows
//! how each provider wants them and how to talk to it.

#![forbid(unsafe_code)]

mod aws;
mod azure;
mod boundary;
mod fields;
mod gcp;
mod http;
mod scaleway;

use engine::cloud_exports::{CloudProviders, Provider, SyncFuture, SyncRequest};
use engine::managed_keys::Algorithm;
use serde_json::{Map, Value};

/// What each provider module implements; [`Providers`] dispatches to them.
trait ProviderClient: Send + Sync {
    /// See [`CloudProviders::validate`].
    fn validate(
        &self,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        allow_unwrapped_export: bool,
    ) -> Result<(), String>;

    /// See [`CloudProviders::sync`].
    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a>;
}

/// The four provider clients, as the firmware hands them to the engine.
pub struct Providers {
    aws: aws::Aws,
    azure: azure::Azure,
    gcp: gcp::Gcp,
    scaleway: scaleway::Scaleway,
}

impl Providers {
    pub fn new() -> Self {
        Providers {
            aws: aws::Aws::new(),
            azure: azure::Azure::new(),
            gcp: gcp::Gcp::new(),
            scaleway: scaleway::Scaleway::new(),
        }
    }

    fn client(&self, provider: Provider) -> &dyn ProviderClient {
        match provider {
            Provider::AwsKms => &self.aws,
            Provider::AzureKeyVault => &self.azure,
            Provider::GcpKms => &self.gcp,
            Provider::ScalewayKms => &self.scaleway,
        }
    }
}

impl Default for Providers {
    fn default() -> Self {
        Self::new()
    }
}

impl CloudProviders for Providers {
    fn validate(
        &self,
        provider: Provider,
        metadata: &mut Map<String, Value>,
        credentials: Option<&Map<String, Value>>,
        algorithm: Algorithm,
        allow_unwrapped_export: bool,
    ) -> Result<(), String> {
        self.client(provider)
            .validate(metadata, credentials, algorithm, allow_unwrapped_export)
    }

    fn sync<'a>(&'a self, request: SyncRequest<'a>) -> SyncFuture<'a> {
        self.client(request.provider).sync(request)
    }
}
