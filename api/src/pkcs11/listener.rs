//! The PKCS#11 listener: a Unix socket (peers admitted by uid) and TCP with mutual TLS,
//! carrying wire frames to [`dispatch`] and its replies back.
//!
//! A connection opens with a `Hello` within [`HELLO_DEADLINE`], is answered a `Welcome`,
//! then carries calls and replies in order until the library closes it. Libraries keep
//! idle connections in a pool, so there is no idle timeout; the number of connections is
//! bounded instead, in all and per peer (uid, or IP address over TCP). A frame that
//! cannot be read closes its connection: after it, nothing on the stream can be trusted
//! to start a frame.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::Core;
use pkcs11_wire::frame::{self, FrameError};
use pkcs11_wire::{ck, Call, Hello, Op, Reply, TokenInfo, Welcome, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use super::dispatch::{dispatch, forget_instance, token_info, Peer};
use super::login_limit::{LoginLimiter, Outcome, PeerKey};
use super::pins::PinNames;
use super::socket::{self, BoundSocket, SocketError};
use crate::budget::BodyBudget;

/// How long a new connection has to finish its TLS handshake and send its `Hello`.
pub const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// How long the rest of a frame may take once its first byte has arrived.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(30);
/// How long a reply's write may take before the connection is given up.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// Connections served at once. Each costs a file descriptor and a task; with the HTTP
/// listener's 512 this stays inside the usual soft limit of 1024 descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Connections one peer may hold: a library pools about one per application thread.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 64;
/// Frame bodies held at once across connections: a frame may announce up to
/// [`frame::MAX_FRAME`] before any of it is read, so the total is bounded too.
const FRAME_BYTES_IN_FLIGHT: usize = 64 << 20;

/// What the listener allows and answers.
#[derive(Debug, Clone)]
pub struct Options {
    /// The token's label (`C_GetTokenInfo`), if not the default.
    pub token_label: Option<String>,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    /// Names an application may give as its PIN for a token.
    pub pins: PinNames,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token_label: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            pins: PinNames::default(),
        }
    }
}

/// The bound sockets, ready for [`serve`]. The socket file goes when this is dropped.
pub struct Pkcs11Listener {
    unix: Option<(BoundSocket, Vec<u32>)>,
    tcp: Option<(TcpListener, TlsAcceptor)>,
    options: Options,
}

impl Pkcs11Listener {
    pub fn new(options: Options) -> Self {
        Pkcs11Listener {
            unix: None,
            tcp: None,
            options,
        }
    }

    /// Listens on the Unix socket `path`, admitting peers whose uid is in `allowed_uids`.
    pub fn with_socket(mut self, path: &Path, allowed_uids: Vec<u32>) -> Result<Self, SocketError> {
        self.unix = Some((socket::bind(path, socket::own_uid())?, allowed_uids));
        Ok(self)
    }

    /// Listens on `address` with mutual TLS (see [`super::tls::server_config`]).
    pub async fn with_tcp(
        mut self,
        address: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<Self> {
        let tcp = TcpListener::bind(address).await?;
        self.tcp = Some((tcp, TlsAcceptor::from(tls)));
        Ok(self)
    }

    pub fn socket_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(s, _)| s.path())
    }

    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|(t, _)| t.local_addr().ok())
    }
}

/// Serves until dropped; each connection runs on its own task, so a long operation
/// holds up only its own connection.
pub async fn serve(core: Arc<Core>, listener: Pkcs11Listener) {
    let shared = Arc::new(Shared {
        core,
        token_label: listener.options.token_label.clone(),
        pins: listener.options.pins.clone(),
        slots: Arc::new(Semaphore::new(listener.options.max_connections)),
        per_peer: Mutex::new(HashMap::new()),
        max_per_peer: listener.options.max_connections_per_peer,
        instances: Mutex::new(HashMap::new()),
        logins: LoginLimiter::default(),
        frames: BodyBudget::new(FRAME_BYTES_IN_FLIGHT),
    });
    let unix = async {
        match &listener.unix {
            Some((socket, allowed)) => accept_unix(&shared, socket, allowed).await,
            None => std::future::pending().await,
        }
    };
    let tcp = async {
        match &listener.tcp {
            Some((tcp, acceptor)) => accept_tcp(&shared, tcp, acceptor).await,
            None => std::future::pending().await,
        }
    };
    tokio::join!(unix, tcp);
}

async fn accept_unix(shared: &Arc<Shared>, socket: &BoundSocket, allowed: &[u32]) {
    loop {
        let stream = match socket.listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Running out of file descriptors must not stop the listener for good.
                tracing::warn!(error = %e, "PKCS#11 accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "PKCS#11 connection closed: its peer's credentials cannot be read");
                continue;
            }
        };
        if !socket::admitted(cred.uid(), allowed) {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "PKCS#11 connection refused: uid not in allowed_uids"
            );
            continue;
        }
        let who = Who::Uid(cred.uid());
        let Some(admission) = shared.admit(who) else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            converse(&shared, stream, who, PeerKey::Uid(cred.uid())).await;
            drop(admission);
        });
    }
}

async fn accept_tcp(shared: &Arc<Shared>, tcp: &TcpListener, acceptor: &TlsAcceptor) {
    loop {
        let (stream, addr) = match tcp.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "PKCS#11 accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let who = Who::Tcp(addr);
        let Some(admission) = shared.admit(who) else {
            continue;
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HELLO_DEADLINE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(peer = %who, error = %e, "PKCS#11 connection refused: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(peer = %who, "PKCS#11 connection closed: TLS handshake timed out");
                    return;
                }
            };
            // The verifier has required a certificate; without one there is no handshake.
            let Some(id) = super::tls::client_identity(tls.get_ref().1) else {
                tracing::warn!(peer = %who, "PKCS#11 connection refused: no client certificate");
                return;
            };
            converse(&shared, tls, who, PeerKey::Certificate(id)).await;
            drop(admission);
        });
    }
}

/// The peer as the listener knows it before its `Hello`.
#[derive(Clone, Copy)]
enum Who {
    Uid(u32),
    Tcp(SocketAddr),
}

impl Who {
    fn slot_key(self) -> SlotKey {
        match self {
            Who::Uid(uid) => SlotKey::Uid(uid),
            Who::Tcp(addr) => SlotKey::Ip(addr.ip()),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Uid(uid) => write!(f, "uid {uid}"),
            Who::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SlotKey {
    Uid(u32),
    Ip(IpAddr),
}

/// What every connection shares.
struct Shared {
    core: Arc<Core>,
    token_label: Option<String>,
    pins: PinNames,
    slots: Arc<Semaphore>,
    per_peer: Mutex<HashMap<SlotKey, usize>>,
    max_per_peer: usize,
    /// Open connections per library instance.
    instances: Mutex<HashMap<[u8; 16], usize>>,
    logins: LoginLimiter,
    frames: BodyBudget,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters only: nothing a panicking holder could leave half-changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection's place under both limits; given back when dropped.
struct Admission {
    shared: Arc<Shared>,
    key: SlotKey,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_peer = lock(&self.shared.per_peer);
        if let Some(n) = per_peer.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.key);
            }
        }
    }
}

/// A connection's share of its library instance: the instance's session objects go when
/// the last one closes.
struct Membership<'a> {
    shared: &'a Shared,
    instance: [u8; 16],
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let mut instances = lock(&self.shared.instances);
        if let Some(n) = instances.get_mut(&self.instance) {
            *n -= 1;
            if *n == 0 {
                instances.remove(&self.instance);
                // Under the lock: a connection of the same instance opening now waits,
                // so it never sees its new session objects forgotten.
                forget_instance(&self.shared.core, &self.instance);
            }
        }
    }
}

impl Shared {
    /// A place for a new connection of `who`, or None (logged) past a limit.
    fn admit(self: &Arc<Self>, who: Who) -> Option<Admission> {
        let key = who.slot_key();
        let mut per_peer = lock(&self.per_peer);
        let held = per_peer.get(&key).copied().unwrap_or(0);
        if held >= self.max_per_peer {
            tracing::warn!(peer = %who, max_connections_per_peer = self.max_per_peer, "PKCS#11 connection refused: the peer holds too many");
            return None;
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %who, "PKCS#11 connection refused: max_connections reached");
            return None;
        };
        per_peer.insert(key, held + 1);
        Some(Admission {
            shared: self.clone(),
            key,
            _slot: slot,
        })
    }

    fn join(&self, instance: [u8; 16]) -> Membership<'_> {
        *lock(&self.instances).entry(instance).or_insert(0) += 1;
        Membership {
            shared: self,
            instance,
        }
    }

    fn token_info(&self) -> TokenInfo {
        self.labelled(token_info(&self.core))
    }

    fn labelled(&self, mut info: TokenInfo) -> TokenInfo {
        if let Some(label) = &self.token_label {
            info.label.clone_from(label);
        }
        info
    }

    /// One call's reply, through the login limiter.
    async fn answer(&self, peer: &Peer, key: &PeerKey, mut call: Call) -> Reply {
        call.pin = call.pin.map(|pin| self.pins.resolve(pin));
        let login = matches!(call.op, Op::Login { .. });
        let token = matches!(call.op, Op::TokenInfo);
        let with_pin = call.pin.is_some();
        let reply = if login {
            let attempt = match self.logins.begin_login(key, Instant::now()) {
                Ok(a) => a,
                Err(wait) => return locked_out(ck::CKR_PIN_INCORRECT, wait),
            };
            let reply = dispatch(&self.core, peer, call).await;
            let outcome = match &reply {
                Reply::Ok => Outcome::Accepted,
                other => pin_verdict(other),
            };
            attempt.finish(outcome, Instant::now());
            reply
        } else if with_pin {
            if let Err(wait) = self.logins.check(key, Instant::now()) {
                return locked_out(ck::CKR_USER_NOT_LOGGED_IN, wait);
            }
            let reply = dispatch(&self.core, peer, call).await;
            if pin_verdict(&reply) == Outcome::Refused {
                self.logins.record(key, Outcome::Refused, Instant::now());
            }
            reply
        } else {
            dispatch(&self.core, peer, call).await
        };
        match reply {
            Reply::Token(info) if token => Reply::Token(self.labelled(info)),
            other => other,
        }
    }
}

/// Whether a reply says the PIN was wrong.
fn pin_verdict(reply: &Reply) -> Outcome {
    match reply {
        Reply::Error { rv, .. }
            if *rv == ck::CKR_PIN_INCORRECT || *rv == ck::CKR_USER_NOT_LOGGED_IN =>
        {
            Outcome::Refused
        }
        _ => Outcome::Other,
    }
}

fn locked_out(rv: ck::CK_RV, wait: Duration) -> Reply {
    Reply::Error {
        rv,
        message: format!(
            "too many failed logins from this peer: retry in {} s",
            wait.as_secs().max(1)
        ),
    }
}

/// One connection, from its `Hello` to its close.
async fn converse<S>(shared: &Shared, mut stream: S, who: Who, key: PeerKey)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = match tokio::time::timeout(
        HELLO_DEADLINE,
        read_frame::<Hello, _>(&mut stream, &shared.frames),
    )
    .await
    {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::info!(peer = %who, error = %e, "PKCS#11 connection closed: no valid Hello");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %who, "PKCS#11 connection closed: no Hello within {HELLO_DEADLINE:?}");
            return;
        }
    };
    if hello.version != PROTOCOL_VERSION {
        tracing::info!(peer = %who, library = %hello.library, version = hello.version, "PKCS#11 connection refused: another protocol version");
        let refusal = Reply::Error {
            rv: ck::CKR_DEVICE_ERROR,
            message: format!(
                "the library speaks protocol version {}, this daemon speaks version {PROTOCOL_VERSION}: install the library of the daemon's release",
                hello.version
            ),
        };
        let _ = send(&mut stream, &refusal).await;
        return;
    }
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        token: shared.token_info(),
    };
    if let Err(e) = send(&mut stream, &Reply::Welcome(welcome)).await {
        tracing::debug!(peer = %who, error = %e, "PKCS#11 connection lost before its Welcome");
        return;
    }
    tracing::debug!(peer = %who, library = %hello.library, "PKCS#11 library connected");
    let peer = Peer {
        uid: match who {
            Who::Uid(uid) => Some(uid),
            Who::Tcp(_) => None,
        },
        remote: match who {
            Who::Uid(_) => None,
            Who::Tcp(addr) => Some(addr.ip()),
        },
        instance: hello.instance,
    };
    let _member = shared.join(hello.instance);
    loop {
        let call = match read_frame::<Call, _>(&mut stream, &shared.frames).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::info!(peer = %who, error = %e, "PKCS#11 connection closed: unreadable frame");
                return;
            }
        };
        let reply = shared.answer(&peer, &key, call).await;
        if let Err(e) = send(&mut stream, &reply).await {
            tracing::debug!(peer = %who, error = %e, "PKCS#11 connection lost while replying");
            return;
        }
    }
}

/// The next frame, or None when the peer closed the connection between frames. The body
/// is allocated only once its announced length has passed [`frame::MAX_FRAME`] and the
/// listener's budget for frames in flight.
async fn read_frame<T, S>(stream: &mut S, budget: &BodyBudget) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    S: AsyncRead + Unpin,
{
    let mut prefix = [0u8; 4];
    if stream.read(&mut prefix[..1]).await? == 0 {
        return Ok(None);
    }
    let rest = async {
        stream.read_exact(&mut prefix[1..]).await?;
        let len = frame::body_len(prefix)?;
        let mut share = budget.share();
        if !share.cover(len) {
            return Err(FrameError::Io(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the frames being received fill the listener's budget",
            )));
        }
        // Calls carry PINs and plaintext.
        let mut body = Zeroizing::new(vec![0u8; len]);
        stream.read_exact(&mut body).await?;
        frame::decode(&body)
    };
    match tokio::time::timeout(FRAME_DEADLINE, rest).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(FrameError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the frame did not arrive in time",
        ))),
    }
}

/// Writes one frame. A reply too large for a frame becomes an error reply.
async fn send<T, S>(stream: &mut S, value: &T) -> io::Result<()>
where
    T: Serialize,
    S: AsyncWrite + Unpin,
{
    let bytes = match frame::encode(value) {
        Ok(b) => Zeroizing::new(b),
        Err(e) => {
            tracing::warn!(error = %e, "PKCS#11 reply not sent");
            let fallback = Reply::Error {
                rv: ck::CKR_DEVICE_MEMORY,
                message: format!("the reply exceeds the frame limit: {e}"),
            };
            Zeroizing::new(frame::encode(&fallback).map_err(io::Error::other)?)
        }
    };
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(WRITE_DEADLINE, write)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer does not read its replies",
            )
        })?
}

#[cfg(test)]
mod tests;
