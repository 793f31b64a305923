//! A pool of welcomed connections: a call takes an idle one (or opens one) and gives it
//! back after the reply, so calls from many threads run in parallel.

use parking_lot::Mutex;
use pkcs11_wire::{frame, Call, Reply, TokenInfo};
use zeroize::Zeroizing;

use super::config::Target;
use super::transport::{Dialer, Stream};
use super::ClientError;

/// Idle connections kept for reuse; more may be open while calls are in flight.
const MAX_IDLE: usize = 16;

/// Connections of one library instance (one `C_Initialize`).
pub struct Client {
    dialer: Dialer,
    idle: Mutex<Vec<Stream>>,
    /// The token facts of the latest `Welcome`.
    welcomed: Mutex<Option<TokenInfo>>,
}

impl Client {
    pub fn new(target: Target, instance: [u8; 16]) -> Result<Client, ClientError> {
        Ok(Client {
            dialer: Dialer::new(target, instance)?,
            idle: Mutex::new(Vec::new()),
            welcomed: Mutex::new(None),
        })
    }

    /// The token facts a daemon sent when a connection was last opened.
    pub fn welcomed(&self) -> Option<TokenInfo> {
        self.welcomed.lock().clone()
    }

    /// Sends one call and waits for its reply. A connection that turns out dead before
    /// the call is written is replaced once; once written, a failure is final, since
    /// the daemon may have acted on it.
    pub fn call(&self, call: &Call) -> Result<Reply, ClientError> {
        let bytes =
            Zeroizing::new(frame::encode(call).map_err(|e| ClientError::Protocol(e.to_string()))?);
        let (mut stream, reused) = self.checkout()?;
        let mut stream = match write_all(&mut stream, &bytes) {
            Ok(()) => stream,
            Err(_) if reused => {
                let mut fresh = self.open()?;
                write_all(&mut fresh, &bytes)
                    .map_err(|e| ClientError::Unreachable(e.to_string()))?;
                fresh
            }
            Err(e) => return Err(ClientError::Unreachable(e.to_string())),
        };
        let reply = read_reply(&mut stream)?;
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(stream);
        }
        Ok(reply)
    }

    /// An idle connection that still looks alive, else a new one.
    fn checkout(&self) -> Result<(Stream, bool), ClientError> {
        loop {
            let candidate = self.idle.lock().pop();
            match candidate {
                Some(mut stream) => {
                    if !stream.is_stale() {
                        return Ok((stream, true));
                    }
                }
                None => return Ok((self.open()?, false)),
            }
        }
    }

    fn open(&self) -> Result<Stream, ClientError> {
        let (stream, token) = self.dialer.dial()?;
        *self.welcomed.lock() = Some(token);
        Ok(stream)
    }
}

/// The reply, read into a buffer that is zeroized afterwards (it may hold plaintext).
fn read_reply(stream: &mut Stream) -> Result<Reply, ClientError> {
    use std::io::Read;
    let lost = |e: std::io::Error| ClientError::Lost(e.to_string());
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).map_err(lost)?;
    let len = frame::body_len(prefix).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut body = Zeroizing::new(vec![0u8; len]);
    stream.read_exact(&mut body).map_err(lost)?;
    frame::decode(&body).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn write_all(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    stream.write_all(bytes)?;
    stream.flush()
}
