//! Calls to engine operations: decodes what a [`Call`] asks into a typed operation, runs
//! it through `Core::apply` like every other door, and encodes the outcome as a
//! [`Reply`].

use std::net::IpAddr;

use engine::Core;
use pkcs11_wire::{ck, Call, Reply, TokenInfo};

/// Who is on the other end of a connection, as the listener established it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's uid on a Unix socket.
    pub uid: Option<u32>,
    /// The peer's address over TCP.
    pub remote: Option<IpAddr>,
    /// The library instance (from its `Hello`): the owner of its session objects.
    pub instance: [u8; 16],
}

/// What `C_GetTokenInfo` reports now.
pub fn token_info(_core: &Core) -> TokenInfo {
    TokenInfo {
        label: "ironseal".into(),
        manufacturer: "Ironseal".into(),
        model: "appliance".into(),
        serial: String::new(),
        firmware: (0, 1),
        present: false,
        mechanisms: Vec::new(),
        min_pin_len: 1,
        max_pin_len: 4096,
    }
}

/// Answers one call.
pub async fn dispatch(_core: &Core, _peer: &Peer, _call: Call) -> Reply {
    Reply::Error {
        rv: ck::CKR_FUNCTION_NOT_SUPPORTED,
        message: "not implemented yet".into(),
    }
}

/// The connection of `instance` closed for good: its session objects go.
pub fn forget_instance(_core: &Core, _instance: &[u8; 16]) {}
