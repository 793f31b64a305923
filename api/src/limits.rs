//! What the listener allows a client: how long it may take, how much it may send, how
//! many connections it may hold open. Defaults are Vault's where Vault has one.

use std::time::Duration;

/// Vault's `http_read_header_timeout` default.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Vault's `http_read_timeout` default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Vault's `http_idle_timeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Vault's `max_request_duration` default.
pub const DEFAULT_MAX_REQUEST_DURATION: Duration = Duration::from_secs(90);
/// Vault has no connection cap. Each connection costs a file descriptor and a task;
/// 512 stays well inside the usual soft limit of 1024 descriptors, leaving room for the
/// storage, audit and HSM files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Request bodies held at once across all connections (`max_request_bytes_in_flight`):
/// bodies are buffered before authentication, and 512 connections × 100 streams ×
/// 32 MiB would be far more than an appliance's locked memory.
pub const DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT: usize = 256 << 20;
/// Request headers, HTTP/1 and HTTP/2 alike. Vault tokens and Biscuit tokens are a few
/// hundred bytes; hyper's default read buffer (~400 KiB) let a client park that much
/// memory per connection before any check ran.
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Concurrent HTTP/2 streams per connection (Go's net/http default is 250).
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Connections past the cap that are still answered with a 503; past these too, new
/// connections are closed at once, so a flood cannot make refusals the new load.
pub const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// The listener's limits. A `None` timeout is off, as 0 is in Vault's configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From accept (or the first byte of the next request on a kept-alive connection) to
    /// the end of the request head. Also bounds the TLS handshake.
    pub read_header_timeout: Option<Duration>,
    /// From the end of the request head to the end of its body.
    pub read_timeout: Option<Duration>,
    /// How long a response write may make no progress before the connection is closed.
    pub write_timeout: Option<Duration>,
    /// How long a connection with no request in flight stays open.
    pub idle_timeout: Option<Duration>,
    /// The largest request body, checked against Content-Length before any of it is read.
    pub max_request_size: usize,
    /// How long a client waits for an answer; past it, a 503.
    pub max_request_duration: Option<Duration>,
    /// Concurrent connections served; more are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of request bodies held at once, across connections; past it, a 503.
    pub max_request_bytes_in_flight: usize,
    /// `sys/metrics` without a token, sealed or not (Vault's listener `telemetry`
    /// block's `unauthenticated_metrics_access`).
    pub unauthenticated_metrics_access: bool,
    /// `sys/metrics` in the Prometheus text format; off when the top-level `telemetry`
    /// block sets `prometheus_retention_time = 0`, as in Vault.
    pub prometheus_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: Some(DEFAULT_READ_HEADER_TIMEOUT),
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            write_timeout: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_request_size: crate::MAX_BODY,
            max_request_duration: Some(DEFAULT_MAX_REQUEST_DURATION),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_request_bytes_in_flight: DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
            unauthenticated_metrics_access: false,
            prometheus_enabled: true,
        }
    }
}

impl Limits {
    /// The TLS handshake gets the header budget: it is the first part of reading a request.
    pub fn handshake_timeout(&self) -> Duration {
        self.read_header_timeout
            .unwrap_or(DEFAULT_READ_HEADER_TIMEOUT)
    }
}
