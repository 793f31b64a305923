//! The listener: plain HTTP or TLS (rustls), HTTP/1.1 and HTTP/2, every request through
//! `route`, which turns the HTTP request into a `VaultRequest` and errors into Vault's
//! error body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::auth::cert::PeerChain;
use engine::Core;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::budget::{BodyBudget, BodyShare};
use crate::conn::{Activity, Verdict, Watched};
use crate::console::Console;
use crate::error::ApiError;
use crate::limits::{Limits, MAX_CONCURRENT_STREAMS, MAX_HEADER_BYTES, MAX_REFUSALS_IN_FLIGHT};
use crate::request::VaultRequest;
use crate::response::{json_response, HttpResponse};

pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    /// Serve the web console at `/ui` (the config's `ui`).
    pub ui: bool,
    /// The SHA-256 fingerprint of the certificate the listener serves (None: no TLS),
    /// shown by the console.
    pub tls_cert_sha256: Option<String>,
}

fn error_response(e: &ApiError) -> HttpResponse {
    json_response(e.status, Some(&e.body_json()))
}

/// A connection's place under `max_connections`, shared by the connection and every
/// handler detached from it at `max_request_duration`: the place is free only when all
/// of them are done, so the cap bounds detached work too.
type Slot = Arc<OwnedSemaphorePermit>;

async fn route(
    core: Arc<Core>,
    limits: &Limits,
    budget: &BodyBudget,
    console: Option<&Console>,
    req: Request<Incoming>,
) -> HttpResponse {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = answer_one(core.clone(), limits, budget, console, req, started).await;
    crate::metrics::record(
        &core,
        &method,
        &path,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn answer_one(
    core: Arc<Core>,
    limits: &Limits,
    budget: &BodyBudget,
    console: Option<&Console>,
    req: Request<Incoming>,
    started: Instant,
) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let resp = match console {
        Some(console) if crate::console::is_console_path(&path) => {
            let door = crate::console::Door {
                core: &core,
                limits,
                budget,
            };
            crate::console::handle(console, door, parts, body).await
        }
        _ => dispatch(&core, limits, budget, parts, body).await,
    };
    finish(&method, &path, started, resp)
}

/// `/v1/` and `/api/v1/`: what clients call directly and the console forwards.
pub(crate) async fn dispatch(
    core: &Arc<Core>,
    limits: &Limits,
    budget: &BodyBudget,
    parts: hyper::http::request::Parts,
    body: Incoming,
) -> HttpResponse {
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return kms_route(core, limits, budget, &parts, body, rest).await;
    }
    match path.strip_prefix("/v1/") {
        None => error_response(&ApiError::new(StatusCode::NOT_FOUND, "404 page not found")),
        Some(rest) => {
            // The share is held until the answer is made, the body's bytes with it.
            let (body, _share) = match read_body(
                &parts.headers,
                body,
                limits.max_request_size,
                limits.read_timeout,
                budget,
            )
            .await
            {
                Ok(b) => b,
                Err(e) => {
                    return closing(error_response(&ApiError::new(
                        e.status(),
                        e.vault_message(),
                    )));
                }
            };
            let head = method == hyper::Method::HEAD;
            let reply = match VaultRequest::parse(
                method.clone(),
                rest,
                parts.uri.query(),
                &parts.headers,
                body,
            ) {
                Ok(mut req) => {
                    req.remote_address = parts.extensions.get::<SocketAddr>().map(|a| a.ip());
                    req.peer_chain = parts.extensions.get::<PeerChain>().cloned();
                    if req.path.trim_end_matches('/') == "sys/metrics" {
                        return crate::vault::sys::metrics::metrics(
                            core,
                            &req,
                            accepts_prometheus(&parts.headers),
                            limits.unauthenticated_metrics_access,
                            limits.prometheus_enabled,
                        )
                        .await;
                    }
                    crate::vault::handle(core, req).await
                }
                Err(e) => Err(e),
            };
            match reply {
                Ok(r) => json_response(r.status, if head { None } else { r.body.as_ref() }),
                Err(e) => error_response(&e),
            }
        }
    }
}

/// Vault's reading of the Accept header for `sys/metrics`: OpenMetrics, or Prometheus's
/// own schema name, asks for the text format.
fn accepts_prometheus(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.starts_with("application/openmetrics-text") || v.contains("prometheus/telemetry")
        })
}

/// Why a request body was not read.
pub(crate) enum BodyError {
    TooLarge(usize),
    Timeout,
    Read,
    /// `max_request_bytes_in_flight` is taken by other requests.
    Busy,
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read => StatusCode::BAD_REQUEST,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn vault_message(&self) -> String {
        match self {
            // Go's http.MaxBytesReader says this, and Vault passes it on.
            BodyError::TooLarge(_) => "http: request body too large".into(),
            BodyError::Timeout => "the request body did not arrive within http_read_timeout".into(),
            BodyError::Read => "failed to read request body".into(),
            BodyError::Busy => BUSY.into(),
        }
    }
}

const BUSY: &str = "server is busy: the request bodies being received have reached max_request_bytes_in_flight; retry later";

/// The whole body, refused at once when its Content-Length is over `max` (before a
/// byte of it is read), and cut off when it grows past `max` or takes too long. Its
/// bytes are taken from `budget` before they are read (from the Content-Length, or
/// chunk by chunk without one); the share comes back with the body and is given back
/// when dropped.
pub(crate) async fn read_body(
    headers: &hyper::HeaderMap,
    body: Incoming,
    max: usize,
    timeout: Option<Duration>,
    budget: &BodyBudget,
) -> Result<(Bytes, BodyShare), BodyError> {
    let mut share = budget.share();
    if let Some(len) = headers.get(hyper::header::CONTENT_LENGTH) {
        // hyper has already refused a Content-Length that is not a number.
        let len = len.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = len {
            if len > max as u64 {
                return Err(BodyError::TooLarge(max));
            }
            // At most `max`, which fits a usize.
            if !share.cover(len as usize) {
                return Err(BodyError::Busy);
            }
        }
    }
    let collect = async {
        let mut body = Limited::new(body, max);
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    BodyError::TooLarge(max)
                } else {
                    BodyError::Read
                }
            })?;
            if let Ok(data) = frame.into_data() {
                if !share.cover(buf.len() + data.len()) {
                    return Err(BodyError::Busy);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    let collected = match timeout {
        Some(t) => tokio::time::timeout(t, collect)
            .await
            .map_err(|_| BodyError::Timeout)?,
        None => collect.await,
    };
    collected.map(|b| (b, share))
}

/// An answer after which the connection closes: the rest of the request body was not
/// read, so the next bytes on it are not a request head.
fn closing(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    resp
}

/// `/api/v1/`: the key API, answering problem objects on errors.
async fn kms_route(
    core: &Arc<Core>,
    limits: &Limits,
    budget: &BodyBudget,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    rest: &str,
) -> HttpResponse {
    use crate::kms::{ApiRequest, Problem};
    let problem = |p: Problem| problem_response(&p);
    let max = crate::kms::MAX_BODY.min(limits.max_request_size);
    let (body, _share) =
        match read_body(&parts.headers, body, max, limits.read_timeout, budget).await {
            Ok(b) => b,
            Err(e) => {
                return closing(problem(match e {
                    BodyError::TooLarge(max) => Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        format!("the request body exceeds {max} bytes"),
                    ),
                    BodyError::Timeout => Problem::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "REQUEST_TIMEOUT",
                        "the request body did not arrive within http_read_timeout",
                    ),
                    BodyError::Read => {
                        Problem::bad("MALFORMED_REQUEST", "failed to read the request body")
                    }
                    BodyError::Busy => {
                        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "SERVER_BUSY", BUSY)
                    }
                }))
            }
        };
    let query = crate::request::parse_query(parts.uri.query());
    let req = match ApiRequest::parse(parts.method.clone(), rest, query, &parts.headers, &body) {
        Ok(mut r) => {
            r.remote_address = parts.extensions.get::<SocketAddr>().map(|a| a.ip());
            r
        }
        Err(p) => return problem(p),
    };
    match crate::kms::handle(core, req).await {
        Ok(r) => json_response(r.status, r.body.as_ref()),
        Err(p) => problem(p),
    }
}

fn problem_response(p: &crate::kms::Problem) -> HttpResponse {
    let mut resp = json_response(p.status, Some(&p.body()));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/problem+json"),
    );
    resp
}

fn finish(
    method: &hyper::Method,
    path: &str,
    started: Instant,
    resp: HttpResponse,
) -> HttpResponse {
    // Paths and status only: bodies and headers may hold secrets and tokens.
    tracing::debug!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Serves until the listener fails; each connection runs on its own task, watched by
/// the listener's timeouts, and at most `limits.max_connections` at once.
pub async fn serve(core: Arc<Core>, listener: Listener) -> std::io::Result<()> {
    let limits = Arc::new(listener.limits);
    let acceptor = listener.tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let budget = BodyBudget::new(limits.max_request_bytes_in_flight);
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let builder = Arc::new(http_builder());
    let console = if listener.ui {
        Some(Arc::new(Console::new(
            listener.tcp.local_addr()?,
            acceptor.is_some(),
            listener.tls_cert_sha256,
        )))
    } else {
        None
    };
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Running out of file descriptors must not stop the server for good.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let limits = limits.clone();
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Per connection at debug: a flood must not become a flood of log lines.
            tracing::debug!(peer = %peer, max_connections = limits.max_connections, "connection refused: too many open connections");
            // Past the cap: a short 503 while refusals are cheap, else close at once.
            match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        refuse(stream, peer, acceptor, &builder, &limits).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        let core = core.clone();
        let budget = budget.clone();
        let console = console.clone();
        tokio::spawn(async move {
            let conn = Conn {
                core,
                limits,
                budget,
                console,
                slot: Arc::new(slot),
            };
            serve_one(conn, stream, peer, acceptor, &builder).await;
        });
    }
}

fn http_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The connection watchdog (conn.rs) times the head; hyper's timer would also
        // cut idle kept-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    builder
}

/// What every request on one connection shares.
#[derive(Clone)]
struct Conn {
    core: Arc<Core>,
    limits: Arc<Limits>,
    budget: BodyBudget,
    console: Option<Arc<Console>>,
    slot: Slot,
}

async fn serve_one(
    conn: Conn,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    builder: &Builder<TokioExecutor>,
) {
    let limits = conn.limits.clone();
    let activity = Activity::new();
    let io = Watched::new(stream, activity.clone(), limits.write_timeout);
    // Each request carries the chain its connection's handshake received, so the cert
    // auth method sees what the client proved and nothing a header could claim.
    let service = |chain: Option<PeerChain>| {
        let activity = activity.clone();
        let conn = conn.clone();
        service_fn(move |mut req: Request<Incoming>| {
            let guard = activity.begin(req.version() == hyper::Version::HTTP_2);
            req.extensions_mut().insert(peer);
            if let Some(chain) = &chain {
                req.extensions_mut().insert(chain.clone());
            }
            let conn = conn.clone();
            async move {
                let resp = answer(conn, req).await;
                drop(guard);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    match acceptor {
        Some(acceptor) => {
            let tls =
                match tokio::time::timeout(limits.handshake_timeout(), acceptor.accept(io)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
            let chain = tls.get_ref().1.peer_certificates().and_then(|certs| {
                PeerChain::new(certs.iter().map(|c| c.as_ref().to_vec()).collect())
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service(chain));
            watch(conn, &activity, &limits, peer).await
        }
        None => {
            let conn = builder.serve_connection(TokioIo::new(io), service(None));
            watch(conn, &activity, &limits, peer).await
        }
    }
}

/// Drives a connection until it ends, or closes it when its head or idle time runs out.
async fn watch<I, S>(
    conn: hyper_util::server::conn::auto::Connection<'_, I, S, TokioExecutor>,
    activity: &Activity,
    limits: &Limits,
    peer: SocketAddr,
) where
    S: hyper::service::Service<Request<Incoming>, Response = HttpResponse>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    loop {
        let wake = match activity.check(limits) {
            Verdict::Wait(at) => at,
            Verdict::HeaderTimeout => {
                tracing::debug!(peer = %peer, "closing: request head not received within http_read_header_timeout");
                return;
            }
            Verdict::Idle => {
                tracing::debug!(peer = %peer, "closing: idle past http_idle_timeout");
                // HTTP/2 gets a GOAWAY; HTTP/1 closes at once. Either way, not for long.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.handshake_timeout(), conn.as_mut()).await;
                return;
            }
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = sleep => {}
            _ = activity.changed() => {}
        }
    }
}

/// Answers every request on a connection past the cap with a 503 and closes it.
async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    builder: &Builder<TokioExecutor>,
    limits: &Limits,
) {
    let max = limits.max_connections;
    let service = service_fn(move |_req: Request<Incoming>| async move {
        let mut resp = error_response(&ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many open connections: this server serves at most {max} at once (listener max_connections); retry later"),
        ));
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        Ok::<_, Infallible>(resp)
    });
    let budget = limits.handshake_timeout();
    let _ = tokio::time::timeout(budget, async {
        match acceptor {
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                }
            }
            None => {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
    })
    .await;
    tracing::trace!(peer = %peer, "refused connection closed");
}

/// Routes a request under `max_request_duration`.
async fn answer(conn: Conn, req: Request<Incoming>) -> HttpResponse {
    let Conn {
        core,
        limits,
        budget,
        console,
        slot,
    } = conn;
    let Some(max) = limits.max_request_duration else {
        return route(core, &limits, &budget, console.as_deref(), req).await;
    };
    let path = req.uri().path().to_string();
    let handler = async move { route(core, &limits, &budget, console.as_deref(), req).await };
    within(max, slot, &path, handler).await
}

/// Runs `handler` for at most `max`. At the deadline the client gets a 503 and the
/// handler moves to a task of its own to finish there: cancelling it at an arbitrary
/// await could leave a multi-step operation half done. The task keeps the connection's
/// `slot` (and the handler its body's share of the budget) until it ends, so clients
/// that reconnect cannot pile up detached handlers past `max_connections`. (It runs
/// inline until the deadline, so the common case costs no task.)
async fn within<F>(max: Duration, slot: Slot, path: &str, handler: F) -> HttpResponse
where
    F: std::future::Future<Output = HttpResponse> + Send + 'static,
{
    let mut handler = Box::pin(handler);
    match tokio::time::timeout(max, &mut handler).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(path = %path, "request exceeded max_request_duration");
            tokio::spawn(async move {
                handler.await;
                drop(slot);
            });
            // The handler may still be reading the body: nothing more can follow on
            // this connection.
            closing(error_response(&ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request exceeded max_request_duration; it may still complete",
            )))
        }
    }
}

pub fn local_addr(l: &Listener) -> std::io::Result<SocketAddr> {
    l.tcp.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detached_handler_keeps_its_connection_slot_until_it_ends() {
        let slots = Arc::new(Semaphore::new(1));
        let slot: Slot = Arc::new(slots.clone().try_acquire_owned().unwrap());
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let handler = async move {
            let _ = finished.await;
            json_response(StatusCode::OK, None)
        };
        let resp = within(Duration::from_millis(10), slot, "/v1/x", handler).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        // The connection is gone (its own reference dropped with `within`'s), yet the
        // handler still runs: the slot stays taken.
        assert_eq!(slots.available_permits(), 0);
        finish.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while slots.available_permits() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the slot came back when the handler ended");
    }
}
