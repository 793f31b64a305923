//! The socket calls std does not offer for Unix streams.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// `send(2)` with `MSG_NOSIGNAL`: a closed peer is an `EPIPE` error, not a SIGPIPE that
/// would kill the application.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a valid slice for its length and `fd` is an open socket borrowed
    // for the duration of the call.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent.unsigned_abs())
}

/// Whether an idle connection has something to read (end of stream, a reset, or bytes
/// nobody asked for): on a connection with no call in flight, each means it is unusable.
pub fn readable_or_closed(fd: BorrowedFd<'_>) -> bool {
    let mut byte = 0u8;
    // SAFETY: one writable byte at `&mut byte`; `fd` is an open socket borrowed for the
    // call; MSG_PEEK | MSG_DONTWAIT neither consumes data nor blocks.
    let got = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if got < 0 {
        let err = std::io::Error::last_os_error();
        return !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        );
    }
    true
}

/// Connects to a Unix socket, waiting at most `timeout` (std's `UnixStream::connect`
/// waits for as long as the daemon's backlog stays full).
pub fn connect_unix(path: &Path, timeout: Duration) -> std::io::Result<UnixStream> {
    let mut address = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "socket path too long or not a path",
        ));
    }
    for (dst, src) in address.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket this function just created and nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = UnixStream::from(socket);
    // A Unix socket's connect waits for backlog room for at most the send timeout.
    stream.set_write_timeout(Some(timeout))?;
    // SAFETY: `address` is an initialised sockaddr_un and its size is passed with it;
    // the socket stays open for the call.
    let rv = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rv < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

/// Has `prepare` run before every later `fork`, then `parent` in the parent and `child`
/// in the child, before `fork` returns in each.
pub fn on_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> std::io::Result<()> {
    // SAFETY: registers three handlers that live as long as the process (plain
    // functions). They only take or release one lock and add to an atomic: `prepare` runs
    // in the forking thread before `fork`, the others in that thread (or its one copy in
    // the child) after it, where nothing else can be holding what they touch.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}
