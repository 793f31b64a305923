//! Frames: a 4-byte big-endian length, then that many bytes of `postcard`.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest frame either side sends or accepts. Data for one operation is bounded well
/// below it by the daemon (64 KiB of message or plaintext).
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME`].
    TooLarge(usize),
    /// The bytes are not a value of the expected type.
    Malformed(postcard::Error),
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
            FrameError::Malformed(e) => write!(f, "malformed frame: {e}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// The whole frame for `value`: prefix and body, ready to write in one call.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 4];
    out = postcard::to_extend(value, out).map_err(FrameError::Malformed)?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// The body length a prefix announces, refused past [`MAX_FRAME`] before anything is
/// allocated for it.
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// A frame's body (without its prefix) as a value.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(FrameError::Malformed)
}

/// Writes one frame to a blocking stream (the library's side).
pub fn write<T: Serialize>(w: &mut impl std::io::Write, value: &T) -> Result<(), FrameError> {
    w.write_all(&encode(value)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame from a blocking stream (the library's side).
pub fn read<T: DeserializeOwned>(r: &mut impl std::io::Read) -> Result<T, FrameError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix)?;
    let mut body = vec![0u8; body_len(prefix)?];
    r.read_exact(&mut body)?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Call, Function, Op, Reply};

    #[test]
    fn a_call_survives_the_round_trip() {
        let call = Call {
            function: Function::C_Sign,
            pin: Some("s.token".to_string().into()),
            op: Op::Random { len: 32 },
        };
        let mut buf = Vec::new();
        write(&mut buf, &call).unwrap();
        let back: Call = read(&mut &buf[..]).unwrap();
        assert_eq!(back.function, Function::C_Sign);
        assert!(matches!(back.op, Op::Random { len: 32 }));
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_allocation() {
        let prefix = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(body_len(prefix), Err(FrameError::TooLarge(_))));
        let mut buf = prefix.to_vec();
        buf.extend([0u8; 8]);
        assert!(matches!(
            read::<Reply>(&mut &buf[..]),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let mut buf = 3u32.to_be_bytes().to_vec();
        buf.extend([0xff, 0xff, 0xff]);
        assert!(matches!(
            read::<Call>(&mut &buf[..]),
            Err(FrameError::Malformed(_))
        ));
    }
}
