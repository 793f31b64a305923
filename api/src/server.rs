//! The listener: plain HTTP or TLS (rustls), HTTP/1.1 and HTTP/2, every request through
//! `route`, which turns the HTTP request into a `VaultRequest` and errors into Vault's
//! error body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use engine::Core;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;
use crate::request::VaultRequest;
use crate::response::{json_response, HttpResponse};
use crate::MAX_BODY;

pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

fn error_response(e: &ApiError) -> HttpResponse {
    json_response(e.status, Some(&e.body_json()))
}

async fn route(core: Arc<Core>, req: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        let resp = api_v1_route(&core, &parts, body, rest).await;
        return finish(&method, &path, started, resp);
    }
    let response = match path.strip_prefix("/v1/") {
        None => error_response(&ApiError::new(StatusCode::NOT_FOUND, "404 page not found")),
        Some(rest) => {
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let status = if e
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
                        "http: request body too large"
                    } else {
                        "failed to read request body"
                    };
                    return finish(
                        &method,
                        &path,
                        started,
                        error_response(&ApiError::new(status, msg)),
                    );
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
                    crate::v1::handle(&core, req).await
                }
                Err(e) => Err(e),
            };
            match reply {
                Ok(r) => json_response(r.status, if head { None } else { r.body.as_ref() }),
                Err(e) => error_response(&e),
            }
        }
    };
    finish(&method, &path, started, response)
}

/// `/api/v1/`: the key API, answering problem objects on errors.
async fn api_v1_route(
    core: &Arc<Core>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    rest: &str,
) -> HttpResponse {
    use crate::api_v1::{ApiRequest, Problem};
    let problem = |p: Problem| problem_response(&p);
    let body = match Limited::new(body, crate::api_v1::MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return problem(
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        format!("the request body exceeds {} bytes", crate::api_v1::MAX_BODY),
                    )
                } else {
                    Problem::bad("MALFORMED_REQUEST", "failed to read the request body")
                },
            )
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
    match crate::api_v1::handle(core, req).await {
        Ok(r) => json_response(r.status, r.body.as_ref()),
        Err(p) => problem(p),
    }
}

fn problem_response(p: &crate::api_v1::Problem) -> HttpResponse {
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

/// Serves until the listener fails; each connection runs on its own task.
pub async fn serve(core: Arc<Core>, listener: Listener) -> std::io::Result<()> {
    let acceptor = listener.tls.map(TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.tcp.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Running out of file descriptors must not stop the server for good.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer);
                let core = core.clone();
                async move { Ok::<_, Infallible>(route(core, req).await) }
            });
            let builder = Builder::new(TokioExecutor::new());
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(e) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

pub fn local_addr(l: &Listener) -> std::io::Result<SocketAddr> {
    l.tcp.local_addr()
}
