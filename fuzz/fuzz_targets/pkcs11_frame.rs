//! PKCS#11 wire frames as the daemon's listener reads them: a length prefix and a
//! `postcard` body, first a `Hello`, then `Call`s, answered by the dispatcher that decodes
//! attributes, mechanisms and their parameters into engine operations.
//!
//! Input: a selector byte, then one frame. Selector bit 0: read a `Hello`. Bit 1: the call
//! carries the root token as its PIN (only for calls that create nothing), and the keys it
//! names are the AES key and EC key pair made at start, so the decoded values reach the
//! operations; otherwise the call carries its own PIN and is refused after decoding.
#![no_main]

use std::sync::OnceLock;

use api::fuzzing::Appliance;
use libfuzzer_sys::fuzz_target;
use pkcs11_wire::ck::*;
use pkcs11_wire::{
    frame, AttrValue, Attribute, Call, Function, Hello, Mechanism, ObjectRef, Op, Params, Reply,
};
use zeroize::Zeroizing;

struct Setup {
    appliance: Appliance,
    /// The keys made at start: the AES key, the EC public and private keys.
    keys: Vec<[u8; 16]>,
}

fn key_of(object: &pkcs11_wire::Object) -> [u8; 16] {
    match object.handle {
        ObjectRef::Key { key, .. } => key,
        other => panic!("generated key has handle {other:?}"),
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let appliance = Appliance::dev();
        let pin = || Some(Zeroizing::new(appliance.root_token().to_string()));
        let attr = |kind, value| Attribute { kind, value };
        let aes = appliance.pkcs11(Call {
            function: Function::C_GenerateKey,
            pin: pin(),
            op: Op::GenerateKey {
                mechanism: Mechanism {
                    kind: CKM_AES_KEY_GEN,
                    params: Params::None,
                },
                template: vec![
                    attr(CKA_VALUE_LEN, AttrValue::Ulong(32)),
                    attr(CKA_TOKEN, AttrValue::Bool(true)),
                    attr(CKA_LABEL, AttrValue::Bytes(b"fuzz-aes".to_vec())),
                ],
            },
        });
        let ec = appliance.pkcs11(Call {
            function: Function::C_GenerateKeyPair,
            pin: pin(),
            op: Op::GenerateKeyPair {
                mechanism: Mechanism {
                    kind: CKM_EC_KEY_PAIR_GEN,
                    params: Params::None,
                },
                // The DER OID of P-256.
                public: vec![attr(
                    CKA_EC_PARAMS,
                    AttrValue::Bytes(vec![6, 8, 42, 134, 72, 206, 61, 3, 1, 7]),
                )],
                private: vec![
                    attr(CKA_TOKEN, AttrValue::Bool(true)),
                    attr(CKA_LABEL, AttrValue::Bytes(b"fuzz-ec".to_vec())),
                ],
            },
        });
        let mut keys = Vec::new();
        match aes {
            Reply::Object(o) => keys.push(key_of(&o)),
            other => panic!("generating the AES key: {other:?}"),
        }
        match ec {
            Reply::KeyPair { public, private } => {
                keys.push(key_of(&public));
                keys.push(key_of(&private));
            }
            other => panic!("generating the EC key pair: {other:?}"),
        }
        Setup { appliance, keys }
    })
}

/// Points a key reference at one of the keys made at start.
fn aim(object: &mut ObjectRef, keys: &[[u8; 16]]) {
    if let ObjectRef::Key { key, .. } = object {
        *key = keys[usize::from(key[0]) % keys.len()];
    }
}

/// The root token for a call that creates nothing (keys and objects made by every run
/// would pile up), with its key references aimed.
fn as_root(op: &mut Op, keys: &[[u8; 16]]) -> bool {
    match op {
        Op::TokenInfo
        | Op::Login { .. }
        | Op::FindObjects { .. }
        | Op::Digest { .. }
        | Op::Random { .. } => true,
        Op::GetObject { object } => {
            aim(object, keys);
            true
        }
        Op::Sign { key, .. }
        | Op::Verify { key, .. }
        | Op::Encrypt { key, .. }
        | Op::Decrypt { key, .. } => {
            aim(key, keys);
            true
        }
        Op::WrapKey { wrapping, key, .. } => {
            aim(wrapping, keys);
            aim(key, keys);
            true
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame_bytes)) = data.split_first() else {
        return;
    };
    if selector & 1 == 1 {
        let _ = frame::read::<Hello>(&mut &frame_bytes[..]);
        return;
    }
    let Ok(mut call) = frame::read::<Call>(&mut &frame_bytes[..]) else {
        return;
    };
    let setup = setup();
    if selector & 2 == 2 && as_root(&mut call.op, &setup.keys) {
        call.pin = Some(Zeroizing::new(setup.appliance.root_token().to_string()));
    }
    let reply = setup.appliance.pkcs11(call);
    // The daemon encodes every reply it makes.
    if let Err(e) = frame::encode(&reply) {
        panic!("reply does not encode: {e}");
    }
});
