//! TLS for the listener: configured PEM files, or a CA and server certificate the
//! appliance makes for itself on first start and keeps in its data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use thiserror::Error;

pub use rustls::ServerConfig;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

/// The generated certificate set: the CA clients trust, and the server's own.
pub struct GeneratedTls {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Makes a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and any
/// extra names, unless they already exist in `dir`.
pub fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<GeneratedTls, TlsError> {
    let out = GeneratedTls {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
    };
    if out.ca_pem.exists() && out.cert_pem.exists() && out.key_pem.exists() {
        return Ok(out);
    }
    fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ironseal appliance CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra_names.iter().cloned());
    let key = rcgen::KeyPair::generate().map_err(gen)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(gen)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ironseal");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(gen)?;

    write_private(&out.key_pem, key.serialize_pem().as_bytes())?;
    write_private(&out.cert_pem, cert.pem().as_bytes())?;
    write_private(&out.ca_pem, ca_cert.pem().as_bytes())?;
    Ok(out)
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, for the start-up log.
pub fn fingerprint(pem_path: &Path) -> Result<String, TlsError> {
    let pem = read(pem_path)?;
    let cert = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .and_then(|c| c.ok())
        .ok_or_else(|| TlsError::Pem {
            path: pem_path.to_path_buf(),
            what: "certificate",
        })?;
    let digest = Sha256::digest(cert.as_ref());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// A rustls server configuration from PEM files, offering HTTP/2 and HTTP/1.1.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(cert_path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        });
    }
    let key_pem = read(key_path)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Pem {
            path: key_path.to_path_buf(),
            what: "private key",
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
