//! The HTTP ceiling for `bench/`: a hyper 1 server on loopback that answers every
//! request with the same fixed JSON-typed body and does no other work.
//!
//! Usage: `bare-hyper PORT [BODY_BYTES]` (BODY_BYTES defaults to 512). It serves plain
//! HTTP/1.1 with keep-alive (and HTTP/2 with prior knowledge, through hyper-util's auto
//! builder, the same connection builder the daemon uses) on a multi-thread tokio runtime
//! until it gets SIGINT or SIGTERM. Whatever a real daemon does for a request costs more
//! than this, so its requests/s on this machine bound what HTTP itself allows.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

fn usage() -> ExitCode {
    eprintln!("usage: bare-hyper PORT [BODY_BYTES]");
    ExitCode::from(2)
}

/// A body of exactly `size` bytes that is valid JSON when `size >= 12`, so a client
/// that looks at the content type sees what it would from a Vault-style server.
fn fixed_body(size: usize) -> Bytes {
    let prefix = b"{\"data\":\"";
    let suffix = b"\"}";
    if size < prefix.len() + suffix.len() {
        return Bytes::from(vec![b' '; size]);
    }
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(prefix);
    v.resize(size - suffix.len(), b'x');
    v.extend_from_slice(suffix);
    Bytes::from(v)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = match args.first().map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => return usage(),
    };
    let size: usize = match args.get(1).map(|s| s.parse()) {
        None => 512,
        Some(Ok(s)) => s,
        Some(Err(_)) => return usage(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bare-hyper: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(port, fixed_body(size))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-hyper: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(port: u16, body: Bytes) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "bare-hyper: listening on http://{} with a {}-byte body",
        listener.local_addr()?,
        body.len()
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off briefly, keep serving.
                    eprintln!("bare-hyper: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let body = body.clone();
                async move {
                    let mut resp = Response::new(Full::new(body));
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
