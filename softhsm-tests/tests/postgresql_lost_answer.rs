//! A PostgreSQL group commit is one call on the wire; when the connection drops with
//! that call in flight, the backend must still answer for each batch exactly what
//! happened. A proxy between the backend and the server cuts the one connection that
//! carries a marked key: once after the server answered the call (it landed: the answer
//! is rebuilt from the node's counter and the outcome stored beside it), once before the
//! server saw it (it did not land: the group runs again, and is applied once).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use engine::storage::postgresql::{PostgresBackend, PostgresConfig};
use engine::storage::{Backend, Batch, Conflict};
use softhsm_tests::postgres::{Postgres, PASSWORD, USER};

/// Where a proxied connection carrying the marker is cut.
#[derive(Clone, Copy)]
enum Cut {
    /// Before the server sees the message.
    Request,
    /// When the server's first answer after it comes back.
    Answer,
}

/// A loopback TCP proxy to the server that cuts, once, the connection whose client
/// sends `marker`.
struct Proxy {
    port: u16,
    cuts: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(server: u16, marker: &'static [u8], cut: Cut) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let counted = cuts.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", server)) else {
                    continue;
                };
                let doomed = Arc::new(AtomicBool::new(false));
                let (c_in, c_out) = (client.try_clone().unwrap(), client);
                let (s_in, s_out) = (upstream.try_clone().unwrap(), upstream);
                let (armed, doomed_up, cuts) = (armed.clone(), doomed.clone(), counted.clone());
                let (c_close, s_close) = (c_out.try_clone().unwrap(), s_out.try_clone().unwrap());
                thread::spawn(move || {
                    pump(c_in, s_out, |chunk| {
                        let marked = chunk.windows(marker.len()).any(|w| w == marker);
                        if !(marked && armed.swap(false, Ordering::SeqCst)) {
                            return true;
                        }
                        match cut {
                            Cut::Request => {
                                cuts.fetch_add(1, Ordering::SeqCst);
                                false
                            }
                            Cut::Answer => {
                                doomed_up.store(true, Ordering::SeqCst);
                                true
                            }
                        }
                    });
                    let _ = c_close.shutdown(Shutdown::Both);
                });
                let cuts = counted.clone();
                thread::spawn(move || {
                    pump(s_in, c_out, |_| {
                        if doomed.load(Ordering::SeqCst) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return false;
                        }
                        true
                    });
                    let _ = s_close.shutdown(Shutdown::Both);
                });
            }
        });
        Proxy { port, cuts }
    }

    fn config(&self, table: &str) -> PostgresConfig {
        PostgresConfig {
            connection_url: format!(
                "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
                self.port
            ),
            table: Some(table.to_string()),
            tls_ca_file: None,
        }
    }
}

/// Copies `from` to `to` while `pass` lets each chunk through; then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream, mut pass: impl FnMut(&[u8]) -> bool) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || !pass(&buf[..n]) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A group of two batches: one writes `key`, the other's condition fails.
fn group(key: &str) -> [Batch; 2] {
    let mut writes = Batch::new();
    writes.check(key, None).put(key, b"once".to_vec());
    let mut refused = Batch::new();
    refused
        .check("never-written", Some(b"x".to_vec()))
        .put("refused", b"x".to_vec());
    [writes, refused]
}

fn expected() -> Vec<Result<(), Conflict>> {
    vec![
        Ok(()),
        Err(Conflict {
            key: "never-written".into(),
        }),
    ]
}

#[test]
fn a_call_whose_answer_is_lost_answers_from_the_counter() {
    let pg = Postgres::start();
    let proxy = Proxy::start(pg.port, b"marked-answer-lost", Cut::Answer);
    let backend = PostgresBackend::open(&proxy.config("answer_lost")).unwrap();
    assert_eq!(
        backend.apply(&group("marked-answer-lost")).unwrap(),
        expected()
    );
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the answer was cut");
    assert_eq!(
        backend.get("marked-answer-lost").unwrap(),
        Some(b"once".to_vec())
    );
    assert_eq!(backend.get("refused").unwrap(), None);
    // Later calls go on from the counter the lost one set.
    let mut next = Batch::new();
    next.check("marked-answer-lost", Some(b"once".to_vec()))
        .put("marked-answer-lost", b"twice".to_vec());
    assert_eq!(backend.apply(&[next]).unwrap(), vec![Ok(())]);
}

#[test]
fn a_call_cut_before_the_server_saw_it_runs_again_once() {
    let pg = Postgres::start();
    let proxy = Proxy::start(pg.port, b"marked-request-lost", Cut::Request);
    let backend = PostgresBackend::open(&proxy.config("request_lost")).unwrap();
    // Applied once: run twice, the batch's own condition (absent) would fail.
    assert_eq!(
        backend.apply(&group("marked-request-lost")).unwrap(),
        expected()
    );
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the request was cut");
    assert_eq!(
        backend.get("marked-request-lost").unwrap(),
        Some(b"once".to_vec())
    );
    assert_eq!(backend.get("refused").unwrap(), None);
}
