//! One connection's clock: when its current request head started arriving, whether a
//! request is in flight, when the last one finished. hyper's own `header_read_timeout`
//! also runs while a kept-alive connection waits for its next request, which would make
//! the idle timeout the header timeout; Vault (Go's net/http) keeps them apart, so the
//! connection is watched here instead.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::limits::Limits;

const NONE: u64 = u64::MAX;

pub(crate) struct Activity {
    start: Instant,
    /// Milliseconds from `start` at which the current request head began; NONE when no
    /// head is being read.
    head_since: AtomicU64,
    /// Milliseconds from `start` at which the last request finished.
    last_done: AtomicU64,
    in_flight: AtomicUsize,
    /// Bytes arrived while a request was in flight: the next head is already coming.
    read_while_busy: AtomicBool,
    /// HTTP/2 frames (pings, settings) arrive between requests: no head timer there.
    h2: AtomicBool,
    changed: Notify,
}

/// What the watchdog found.
pub(crate) enum Verdict {
    /// Check again at this instant, or when the state changes.
    Wait(Option<Instant>),
    HeaderTimeout,
    Idle,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        // A new connection is reading its first head from the moment it is accepted.
        Arc::new(Activity {
            start: Instant::now(),
            head_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            read_while_busy: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            self.read_while_busy.store(true, Ordering::Release);
            return;
        }
        if self.h2.load(Ordering::Relaxed) {
            return;
        }
        if self
            .head_since
            .compare_exchange(NONE, self.now_ms(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request head is complete and its handler starts; the guard ends it.
    pub(crate) fn begin(self: &Arc<Self>, http2: bool) -> RequestGuard {
        if http2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        RequestGuard(self.clone())
    }

    fn end(&self) {
        let now = self.now_ms();
        self.last_done.store(now, Ordering::Release);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && self.read_while_busy.swap(false, Ordering::AcqRel)
            && !self.h2.load(Ordering::Relaxed)
        {
            // A pipelined or early next request: its head clock starts now.
            let _ =
                self.head_since
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
        self.changed.notify_one();
    }

    pub(crate) async fn changed(&self) {
        self.changed.notified().await
    }

    pub(crate) fn check(&self, limits: &Limits) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Wait(None);
        }
        let now = Instant::now();
        let head = self.head_since.load(Ordering::Acquire);
        if head != NONE {
            return match limits.read_header_timeout {
                Some(t) if now >= self.at(head) + t => Verdict::HeaderTimeout,
                Some(t) => Verdict::Wait(Some(self.at(head) + t)),
                // No header timeout: the idle timeout still bounds a silent client.
                None => self.idle(limits, head, now),
            };
        }
        self.idle(limits, self.last_done.load(Ordering::Acquire), now)
    }

    fn idle(&self, limits: &Limits, since: u64, now: Instant) -> Verdict {
        match limits.idle_timeout {
            Some(t) if now >= self.at(since) + t => Verdict::Idle,
            Some(t) => Verdict::Wait(Some(self.at(since) + t)),
            None => Verdict::Wait(None),
        }
    }
}

pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, reporting reads to the connection's clock and failing a write that makes
/// no progress within the write timeout.
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    write_timeout: Option<Duration>,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>, write_timeout: Option<Duration>) -> Self {
        Watched {
            inner,
            activity,
            write_timeout,
            write_stall: None,
        }
    }

    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(t) = self.write_timeout else {
            return Poll::Pending;
        };
        let sleep = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response within http_write_timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_outcome<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.write_stall = None;
                done
            }
        }
    }
}

use std::future::Future;

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_outcome(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_outcome(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_outcome(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.write_outcome(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn limits(header: Duration, idle: Duration) -> Limits {
        Limits {
            read_header_timeout: Some(header),
            idle_timeout: Some(idle),
            ..Limits::default()
        }
    }

    #[test]
    fn the_head_clock_runs_from_accept_and_from_the_next_requests_first_byte() {
        let a = Activity::new();
        let hour = Duration::from_secs(3600);
        // A fresh connection is reading its first head: the header timeout applies.
        assert!(matches!(
            a.check(&limits(Duration::ZERO, hour)),
            Verdict::HeaderTimeout
        ));
        // While a request runs, neither clock does.
        let guard = a.begin(false);
        assert!(matches!(
            a.check(&limits(Duration::ZERO, Duration::ZERO)),
            Verdict::Wait(None)
        ));
        drop(guard);
        // Between requests only the idle clock runs ...
        assert!(matches!(
            a.check(&limits(Duration::ZERO, hour)),
            Verdict::Wait(Some(_))
        ));
        assert!(matches!(
            a.check(&limits(hour, Duration::ZERO)),
            Verdict::Idle
        ));
        // ... until a byte of the next request arrives.
        a.on_read();
        assert!(matches!(
            a.check(&limits(Duration::ZERO, hour)),
            Verdict::HeaderTimeout
        ));
    }

    #[test]
    fn http2_connections_have_no_head_clock_between_requests() {
        let a = Activity::new();
        let hour = Duration::from_secs(3600);
        drop(a.begin(true));
        a.on_read();
        assert!(matches!(
            a.check(&limits(Duration::ZERO, hour)),
            Verdict::Wait(Some(_))
        ));
    }

    #[tokio::test]
    async fn a_write_the_peer_never_reads_fails_after_the_write_timeout() {
        let (near, _far) = tokio::io::duplex(64);
        let mut w = Watched::new(near, Activity::new(), Some(Duration::from_millis(50)));
        let err = w.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
