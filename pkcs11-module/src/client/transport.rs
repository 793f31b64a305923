//! One connection to the daemon: a Unix socket or TCP with mutual TLS, blocking, with
//! bounded waits so an unreachable or hung daemon is an error, never a hang.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pkcs11_wire::{frame, Hello, Reply, TokenInfo, Welcome, PROTOCOL_VERSION};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::config::{Target, TlsTarget};
use super::ClientError;
use crate::ffi::sys;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a reply may take: the daemon bounds each operation well below it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a new connection needs besides the target: built once per `C_Initialize`.
pub struct Dialer {
    target: Target,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    hello: Hello,
}

pub enum Stream {
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Dialer {
    pub fn new(target: Target, instance: [u8; 16]) -> Result<Dialer, ClientError> {
        let tls = match &target {
            Target::Unix(_) => None,
            Target::Tls(tls) => Some(tls_config(tls)?),
        };
        Ok(Dialer {
            target,
            tls,
            hello: Hello {
                version: PROTOCOL_VERSION,
                instance,
                library: env!("CARGO_PKG_VERSION").to_string(),
            },
        })
    }

    /// A connection the daemon has welcomed, and the token facts it sent.
    pub fn dial(&self) -> Result<(Stream, TokenInfo), ClientError> {
        let mut stream = match (&self.target, &self.tls) {
            (Target::Unix(path), _) => Stream::Unix(connect_unix(path)?),
            (Target::Tls(target), Some((config, name))) => {
                let tcp = connect_tcp(&target.address)?;
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
            (Target::Tls(_), None) => {
                return Err(ClientError::Tls("TLS is not configured".to_string()))
            }
        };
        // The TLS handshake and the greeting get the connect timeout, calls the longer
        // reply timeout.
        stream
            .set_timeouts(CONNECT_TIMEOUT)
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        // Nothing the application asked for is on this connection yet: a failure here
        // is the daemon being unreachable.
        frame::write(&mut stream, &self.hello).map_err(ClientError::unreachable)?;
        let mut prefix = [0u8; 4];
        stream
            .read_exact(&mut prefix)
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let mut body =
            vec![0u8; frame::body_len(prefix).map_err(|e| ClientError::Protocol(e.to_string()))?];
        stream
            .read_exact(&mut body)
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let welcome: Welcome = match frame::decode::<Reply>(&body) {
            Ok(Reply::Welcome(welcome)) => welcome,
            Ok(Reply::Error { message, .. }) => return Err(ClientError::Refused(message)),
            Ok(other) => return Err(ClientError::Protocol(format!("answer to Hello: {other:?}"))),
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        if welcome.version != PROTOCOL_VERSION {
            return Err(ClientError::Refused(format!(
                "the daemon speaks protocol {}, this library {PROTOCOL_VERSION}",
                welcome.version
            )));
        }
        stream
            .set_timeouts(REPLY_TIMEOUT)
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Ok((stream, welcome.token))
    }
}

fn connect_unix(path: &Path) -> Result<UnixStream, ClientError> {
    sys::connect_unix(path, CONNECT_TIMEOUT)
        .map_err(|e| ClientError::Unreachable(format!("{}: {e}", path.display())))
}

fn connect_tcp(address: &str) -> Result<TcpStream, ClientError> {
    let addrs = address
        .to_socket_addrs()
        .map_err(|e| ClientError::Unreachable(format!("{address}: {e}")))?;
    let mut last = format!("{address}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| ClientError::Unreachable(e.to_string()))?;
                return Ok(stream);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(ClientError::Unreachable(last))
}

fn tls_config(
    target: &TlsTarget,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>), ClientError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))
    };
    let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, ClientError> {
        let pem = read(path)?;
        let certs = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Tls(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ClientError::Tls(format!(
                "{}: no PEM certificate",
                path.display()
            )));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&target.ca_file)? {
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("{}: {e}", target.ca_file.display())))?;
    }
    let chain = certs(&target.cert_file)?;
    let key_pem = zeroize::Zeroizing::new(read(&target.key_file)?);
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| ClientError::Tls(format!("{}: {e}", target.key_file.display())))?
        .ok_or_else(|| {
            ClientError::Tls(format!("{}: no PEM private key", target.key_file.display()))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| ClientError::Tls(format!("server name {}: {e}", target.server_name)))?;
    Ok((Arc::new(config), name))
}

impl Stream {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.sock.as_fd(),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            Stream::Tls(s) => {
                s.sock.set_read_timeout(Some(timeout))?;
                s.sock.set_write_timeout(Some(timeout))
            }
        }
    }

    /// Whether the daemon closed this idle connection (it restarted, or timed us out):
    /// anything readable on a connection with no call outstanding means it is unusable.
    pub fn is_stale(&mut self) -> bool {
        if let Stream::Tls(tls) = self {
            // Records rustls already took off the socket (a close_notify that came with
            // the last reply) are no longer visible on it.
            match tls.conn.process_new_packets() {
                Ok(state) if !state.peer_has_closed() && state.plaintext_bytes_to_read() == 0 => {}
                _ => return true,
            }
        }
        sys::readable_or_closed(self.fd())
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            // A plain write to a socket the daemon closed raises SIGPIPE in the host
            // process; the library must answer an error instead. (TcpStream already
            // sends with MSG_NOSIGNAL.)
            Stream::Unix(s) => sys::send_nosignal(s.as_fd(), buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(_) => Ok(()),
            Stream::Tls(s) => s.flush(),
        }
    }
}
