//! TCP with mutual TLS: the daemon's certificate, and a client certificate issued by the
//! configured CA from every peer. No client certificate, no connection.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::tls::{certified_key, required_client_verifier, TlsError};

/// A rustls server configuration (TLS 1.3: the library is ours, nothing older needs
/// serving) that requires a client certificate chaining to `client_ca`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = certified_key(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = required_client_verifier(client_ca, provider.clone())?;
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
