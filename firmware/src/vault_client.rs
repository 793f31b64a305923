//! The one HTTP client of the CLI sub-commands that talk to a running appliance
//! (`ironseal operator ...`, `ironseal audit verify -device=...`).
//!
//! It is reached like the `bao` CLI: the address from `VAULT_ADDR` (or `BAO_ADDR`), the
//! token from `VAULT_TOKEN` (or `BAO_TOKEN`) and, for HTTPS, the CA certificate from
//! `VAULT_CACERT` (or `BAO_CACERT`); a command's own flags take precedence. hyper does
//! the HTTP, so nothing here parses a response or de-chunks a body by hand.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Where the `bao` CLI looks when `VAULT_ADDR` is unset.
const DEFAULT_ADDR: &str = "https://127.0.0.1:8200";
/// Covers the TCP connect and, separately, the TLS handshake: an address that drops
/// packets must not hang the operator's shell.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A reseal on a slow TPM or a verify of a large audit file takes a while, but not this.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// The answers are small JSON documents; a larger one is not from the appliance.
const MAX_BODY: usize = 64 << 20;

#[derive(Debug)]
pub enum Error {
    /// The request did not get an answer (configuration, connection, TLS, timeout), or the
    /// answer was not what the appliance sends.
    Failed(String),
    /// The appliance answered outside 2xx; `message` joins Vault's `errors`.
    Status { status: u16, message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(m) => f.write_str(m),
            Error::Status { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

impl From<String> for Error {
    fn from(m: String) -> Self {
        Error::Failed(m)
    }
}

pub struct Client {
    address: String,
    token: String,
    ca_cert: Option<String>,
}

impl Client {
    /// `address` and `ca_cert` are the command's flags, if it has them; `token_needs` says
    /// what the token must allow, for the message when there is none.
    pub fn from_env(
        address: Option<&str>,
        ca_cert: Option<&str>,
        token_needs: &str,
    ) -> Result<Self, String> {
        let address = address
            .map(String::from)
            .or_else(|| env(&["VAULT_ADDR", "BAO_ADDR"]))
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let token = env(&["VAULT_TOKEN", "BAO_TOKEN"])
            .ok_or_else(|| format!("no token: set VAULT_TOKEN to a token with {token_needs}"))?;
        let ca_cert = ca_cert
            .map(String::from)
            .or_else(|| env(&["VAULT_CACERT", "BAO_CACERT"]));
        Ok(Client {
            address,
            token,
            ca_cert,
        })
    }

    /// One JSON request to `/v1/<path>`, blocking the caller (the CLI has no runtime of its
    /// own). Returns the status and the JSON body (`null` when empty) of a 2xx answer.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start: {e}"))?;
        let (status, raw) = runtime.block_on(self.exchange(method, path, body))?;
        let value = if raw.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&raw)
        };
        match value {
            Ok(value) if (200..300).contains(&status) => Ok((status, value)),
            Err(_) if (200..300).contains(&status) => Err(Error::Failed(format!(
                "HTTP {status}: the answer is not JSON"
            ))),
            Ok(value) => Err(Error::Status {
                status,
                message: value["errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
            }),
            // A proxy's error page, say: its text is the best explanation there is.
            Err(_) => Err(Error::Status {
                status,
                message: String::from_utf8_lossy(&raw).trim().to_string(),
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes), String> {
        let addr = &self.address;
        let target = Target::parse(addr)?;
        let request = Request::builder()
            .method(method)
            .uri(format!("/v1/{}", path.trim_start_matches('/')))
            .header(HOST, &target.authority)
            .header("X-Vault-Token", &self.token)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| format!("request for {path:?}: {e}"))?;
        let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                format!(
                    "cannot reach {addr}: no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        if !target.tls {
            return send(TokioIo::new(tcp), request, addr).await;
        }
        let connector = self.tls_connector(addr)?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| format!("{:?} is not a valid server name", target.host))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                format!(
                    "TLS with {addr}: no handshake within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        send(TokioIo::new(tls), request, addr).await
    }

    fn tls_connector(&self, addr: &str) -> Result<tokio_rustls::TlsConnector, String> {
        let ca = self.ca_cert.as_deref().ok_or_else(|| {
            format!("{addr} is https: set VAULT_CACERT to the appliance's CA certificate")
        })?;
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {ca}: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{ca}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{ca}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("{ca} holds no PEM certificate"));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// Sends one request on a fresh HTTP/1.1 connection and reads the whole answer.
async fn send<T>(io: T, request: Request<Full<Bytes>>, addr: &str) -> Result<(u16, Bytes), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| format!("talking to {addr}: {e}");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(failed)?;
    // The connection future moves the bytes; it runs beside the request until the
    // answer is read, and is dropped (closing the socket) with the runtime.
    let driver = tokio::spawn(connection);
    let answer = tokio::time::timeout(RESPONSE_TIMEOUT, async {
        let response = sender.send_request(request).await.map_err(failed)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {addr}: {e}"))?
            .to_bytes();
        Ok((status, body))
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "{addr}: no answer within {} s",
            RESPONSE_TIMEOUT.as_secs()
        ))
    });
    driver.abort();
    answer
}

/// The parts of `scheme://host[:port]` a connection needs.
struct Target {
    tls: bool,
    /// For the `Host` header, as written in the address.
    authority: String,
    /// Without IPv6 brackets, for connecting and for the TLS server name.
    host: String,
    port: u16,
}

impl Target {
    fn parse(address: &str) -> Result<Self, String> {
        let shape =
            || format!("address {address:?} must be http://HOST[:PORT] or https://HOST[:PORT]");
        let uri: Uri = address.parse().map_err(|_| shape())?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(shape()),
        };
        // Vault's API lives at the root; a path or query here would be silently dropped.
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return Err(shape());
        }
        let authority = uri.authority().ok_or_else(shape)?;
        if authority.as_str().contains('@') {
            return Err(shape());
        }
        Ok(Target {
            tls,
            authority: authority.as_str().to_string(),
            host: authority.host().trim_matches(['[', ']']).to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn addresses() {
        let t = Target::parse("https://127.0.0.1:8200/").expect("valid");
        assert!(t.tls);
        assert_eq!(
            (t.authority.as_str(), t.host.as_str(), t.port),
            ("127.0.0.1:8200", "127.0.0.1", 8200)
        );
        let t = Target::parse("http://[::1]").expect("valid");
        assert!(!t.tls);
        assert_eq!(
            (t.authority.as_str(), t.host.as_str(), t.port),
            ("[::1]", "::1", 80)
        );
        let t = Target::parse("https://vault.example").expect("valid");
        assert_eq!(t.port, 443);
        for bad in [
            "127.0.0.1:8200",
            "ftp://host",
            "https://host/vault",
            "https://u@host",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
