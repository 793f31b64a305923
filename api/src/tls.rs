//! TLS for the listener: configured PEM files, or a CA and server certificate the
//! appliance makes for itself on first start and keeps in its data directory. The CA's
//! key is not kept: whoever read it could mint certificates for any host that clients
//! trusting this CA would accept.

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
    /// A new CA replaced the one clients trusted (the names changed).
    pub ca_replaced: bool,
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

/// The names every generated server certificate carries.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Makes a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and the
/// listener's `tls_san` names, unless they already exist in `dir`. The CA's key signs
/// the server certificate and is dropped, so when the names change a new CA is made
/// with the new certificate (`ca_replaced`; the caller says so with its fingerprint).
/// A CA key kept by an earlier version is deleted.
pub fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<GeneratedTls, TlsError> {
    let mut out = GeneratedTls {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
        ca_replaced: false,
    };
    let old_ca_key = dir.join("ca-key.pem");
    match fs::remove_file(&old_ca_key) {
        Ok(()) => {
            tracing::info!(path = %old_ca_key.display(), "deleted the CA key kept by an earlier version")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TlsError::Write {
                path: old_ca_key,
                source,
            })
        }
    }
    let sans_file = dir.join("sans");
    let mut names: Vec<String> = LOCAL_NAMES.iter().map(|s| s.to_string()).collect();
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let recorded = fs::read_to_string(&sans_file)
        .ok()
        .map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
        // Certificates from before `tls_san` named only the local names.
        .unwrap_or_else(|| LOCAL_NAMES.iter().map(|s| s.to_string()).collect());
    let have_leaf = out.cert_pem.exists() && out.key_pem.exists();
    if out.ca_pem.exists() && have_leaf && recorded == names {
        return Ok(out);
    }
    crate::private_dir::create_private_dir(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    out.ca_replaced = out.ca_pem.exists();
    let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate().map_err(gen)?;
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(gen)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ironseal");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(gen)?;

    // The CA last: a crash before it leaves the old CA with a leaf it did not sign,
    // which the next start sees as not matching the recorded names and makes again.
    write_private(&sans_file, b"")?;
    write_private(&out.key_pem, key.serialize_pem().as_bytes())?;
    write_private(&out.cert_pem, cert.pem().as_bytes())?;
    write_private(&out.ca_pem, ca_cert.pem().as_bytes())?;
    write_private(&sans_file, (names.join("\n") + "\n").as_bytes())?;
    Ok(out)
}

fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ironseal appliance CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    Ok(params)
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

/// The TLS versions the listener offers (`tls_min_version`, `tls_max_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Vault's spelling: `tls12`, `tls13`. `tls10` and `tls11` are not offered by rustls.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tls12" => Some(TlsVersion::Tls12),
            "tls13" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// The certificates of a PEM file, refused when it holds none.
pub(crate) fn certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// A certificate chain and its private key, from PEM files.
pub(crate) fn certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    TlsError,
> {
    let certs = certificates(cert_path)?;
    let key_pem = read(key_path)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Pem {
            path: key_path.to_path_buf(),
            what: "private key",
        })?;
    Ok((certs, key))
}

/// Which client certificates the API listener asks for, as Vault's `tcp` listener
/// decides from `tls_require_and_verify_client_cert`, `tls_client_ca_file` and
/// `tls_disable_client_certs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientCerts {
    /// Asked for, not required, and passed to the request unverified: the cert auth
    /// method verifies the chain against the certificates it trusts (Vault's default).
    #[default]
    Requested,
    /// Required, and verified against the CAs of this file during the handshake: a
    /// client without a certificate from them gets no connection.
    Required(PathBuf),
    /// Not asked for.
    Disabled,
}

/// A verifier admitting only client certificates that chain to the CAs in `client_ca`:
/// the API listener's `tls_require_and_verify_client_cert` and the PKCS#11 listener's
/// mutual TLS alike.
pub(crate) fn required_client_verifier(
    client_ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(client_ca)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("{}: {e}", client_ca.display())))?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// Go's `tls.RequestClientCert`: asks every client for a certificate, accepts one from
/// any issuer (or none) and checks only that the client holds its key. Whom the chain
/// proves is decided at login, by the certificates the cert auth method trusts.
#[derive(Debug)]
struct RequestedClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for RequestedClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server configuration from PEM files, offering HTTP/2 and HTTP/1.1 over the
/// TLS versions from `min` to `max`, asking for client certificates as `client` says.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
    min: TlsVersion,
    max: TlsVersion,
    client: &ClientCerts,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    if min > max {
        return Err(TlsError::Config(
            "tls_min_version is above tls_max_version".into(),
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();
    let (certs, key) = certified_key(cert_path, key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client {
        ClientCerts::Disabled => builder.with_no_client_auth(),
        ClientCerts::Requested => {
            builder.with_client_cert_verifier(Arc::new(RequestedClientCert {
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        ClientCerts::Required(ca) => {
            builder.with_client_cert_verifier(required_client_verifier(ca, provider.clone())?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
