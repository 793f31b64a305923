//! TCP with mutual TLS: the daemon's certificate, and a client certificate issued by the
//! configured CA from every peer. No client certificate, no connection.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::tls::{certificates, certified_key, TlsError};

/// A rustls server configuration (TLS 1.3: the library is ours, nothing older needs
/// serving) that requires a client certificate chaining to `client_ca`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = certified_key(cert, key)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(client_ca)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("{}: {e}", client_ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The SHA-256 of the client certificate a verified connection presented: whom failed
/// logins are counted against.
pub fn client_identity(conn: &rustls::ServerConnection) -> Option<[u8; 32]> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| Sha256::digest(leaf.as_ref()).into())
}
