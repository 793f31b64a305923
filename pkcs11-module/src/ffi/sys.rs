//! The two socket calls std does not offer for Unix streams.

use std::os::fd::{AsRawFd, BorrowedFd};

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
