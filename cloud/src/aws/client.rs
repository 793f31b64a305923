//! The SDK client for one sync: the export's region and endpoint, its credentials, and no
//! retries of the SDK's own (the engine's outbox retries with backoff, so one failed call
//! is one recorded failure, not a burst against a struggling endpoint).

use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_kms::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use engine::cloud_exports::SyncError;

/// How long a TCP connection (and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one KMS call may take; the engine bounds the whole sync as well.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The credentials object as the export saved it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// The HTTPS client of exports without `caCertPem`: rustls (ring) over the system store.
pub(super) fn default_https_client() -> SharedHttpClient {
    rustls_client(None)
}

fn rustls_client(context: Option<TlsContext>) -> SharedHttpClient {
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match context {
        Some(context) => builder.tls_context(context).build_https(),
        None => builder.build_https(),
    }
}

/// An HTTPS client that trusts `ca_cert_pem` besides the system store.
fn https_client_trusting(ca_cert_pem: &str) -> Result<SharedHttpClient, SyncError> {
    check_ca_cert_pem(ca_cert_pem).map_err(SyncError::permanent)?;
    let trust = TrustStore::default().with_pem_certificate(ca_cert_pem.as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| SyncError::permanent(format!("providerMetadata.caCertPem: {e}")))?;
    Ok(rustls_client(Some(context)))
}

/// Checks what the HTTPS client would otherwise panic on: `caCertPem` holds at least one
/// certificate and each one is usable as a trust anchor.
pub(super) fn check_ca_cert_pem(pem: &str) -> Result<(), String> {
    let mut certs = 0;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let cert = cert.map_err(|_| "providerMetadata.caCertPem is not PEM-encoded".to_owned())?;
        roots.add(cert).map_err(|e| {
            format!(
                "providerMetadata.caCertPem holds a certificate that cannot be a trust anchor: {e}"
            )
        })?;
        certs += 1;
    }
    if certs == 0 {
        return Err("providerMetadata.caCertPem holds no CERTIFICATE block".into());
    }
    Ok(())
}

/// The default endpoint of `region`: AWS's public KMS endpoint there.
pub(super) fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://kms.{region}.{suffix}")
}

/// The client for one sync, from the validated metadata and the saved credentials.
pub(super) fn kms_client(
    default_http: &SharedHttpClient,
    metadata: &Map<String, Value>,
    credentials: &Zeroizing<String>,
) -> Result<Client, SyncError> {
    let text = |name: &str| metadata.get(name).and_then(Value::as_str);
    let region = text("region")
        .ok_or_else(|| SyncError::permanent("providerMetadata.region is required"))?;
    let endpoint = text("endpoint")
        .map(str::to_owned)
        .unwrap_or_else(|| default_endpoint(region));
    let http = match text("caCertPem") {
        Some(pem) => https_client_trusting(pem)?,
        None => default_http.clone(),
    };
    // serde's messages may quote a value: say which fields are expected instead.
    let saved: SavedCredentials = serde_json::from_str(credentials).map_err(|_| {
        SyncError::permanent(
            "the saved credentials are not an object with accessKeyId, secretAccessKey and \
             optionally sessionToken",
        )
    })?;
    let credentials = Credentials::new(
        saved.access_key_id,
        saved.secret_access_key,
        saved.session_token,
        None,
        "ironseal-export",
    );
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(CALL_TIMEOUT)
                .build(),
        )
        .build();
    Ok(Client::from_conf(config))
}
