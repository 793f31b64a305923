//! Calls to engine operations: decodes what a [`Call`] asks into a typed operation, runs
//! it through `Core::apply` like every other door, and encodes the outcome as a
//! [`Reply`].
//!
//! Each call is a request on the path `pkcs11/<C_FunctionName>`, authorised by the PIN it
//! carries (an appliance token) and audited with the key, version and class it names and
//! the mechanism's name. Digests, random bytes and the release of session objects need no
//! token; the token facts need nothing.

use std::net::IpAddr;
use std::sync::Arc;

use engine::ops::pkcs11::crypto::{Decrypt, Digest, Encrypt, Random, Sign, Verify};
use engine::ops::pkcs11::keys::{Decapsulate, Encapsulate, GenerateKey, UnwrapKey, WrapKey};
use engine::ops::pkcs11::objects::{
    CopyObject, CreateObject, DestroyObject, FindObjects, GetObject, Login, ReleaseSessionObjects,
    SetAttributes, User,
};
use engine::ops::{Audited, AuditedResponse, Op, Request};
use engine::pkcs11::Handle;
use engine::policy::Operation;
use engine::{Core, EngineError, ErrorKind};
use pkcs11_wire::{ck, Call, Mechanism, ObjectRef, Op as WireOp, Reply, TokenInfo, UserType};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{decode, encode};

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
pub fn token_info(core: &Core) -> TokenInfo {
    let present = !core.is_sealed() && core.is_initialized().unwrap_or(false);
    let (major, minor) = version();
    TokenInfo {
        label: "ironseal".into(),
        manufacturer: "Ironseal".into(),
        model: "appliance".into(),
        serial: String::new(),
        firmware: (major, minor),
        present,
        mechanisms: if present {
            core.pkcs11_mechanisms()
                .into_iter()
                .map(encode::mechanism)
                .collect()
        } else {
            Vec::new()
        },
        min_pin_len: 1,
        max_pin_len: 4096,
    }
}

/// The daemon's version, as major and minor.
fn version() -> (u8, u8) {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u8>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A reply as the audit log records it.
struct Answer {
    reply: Reply,
    status: u16,
    error: Option<String>,
}

impl Audited for Answer {
    fn audited(&self) -> AuditedResponse<'_> {
        match &self.error {
            None => AuditedResponse::answered(self.status, None),
            Some(e) => AuditedResponse::failed(self.status, e.as_str()),
        }
    }
}

/// The HTTP-like status the audit log uses for every door.
fn status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidInput => 400,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::Unauthenticated | ErrorKind::Forbidden => 403,
        ErrorKind::Sealed | ErrorKind::Unavailable => 503,
        ErrorKind::LimitExceeded => 429,
        ErrorKind::Internal => 500,
    }
}

fn failed(e: &EngineError) -> Answer {
    let reply = encode::error(e);
    let error = match &reply {
        Reply::Error { rv, message } => format!("CKR {rv:#x}: {message}"),
        _ => String::new(),
    };
    Answer {
        reply,
        status: status(e.kind()),
        error: Some(error),
    }
}

fn answered(reply: Reply) -> Answer {
    match reply {
        Reply::Error { rv, message } => Answer {
            error: Some(format!("CKR {rv:#x}: {message}")),
            status: 400,
            reply: Reply::Error { rv, message },
        },
        reply => Answer {
            reply,
            status: 200,
            error: None,
        },
    }
}

/// One call's request to the engine: who, which function, what it names.
struct Ask<'a> {
    core: &'a Arc<Core>,
    peer: &'a Peer,
    token: &'a str,
    path: String,
    params: Map<String, Value>,
}

impl Ask<'_> {
    fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    fn object(self, name: &str, object: ObjectRef) -> Self {
        let named = match decode::handle(object) {
            Handle::Key {
                key,
                version,
                class,
            } => format!("key:{key}:v{version}:{class:?}"),
            Handle::Stored(id) => format!("stored:{id}"),
            Handle::Session(id) => format!("session:{id}"),
        };
        self.with(name, named)
    }

    fn mechanism(self, m: &Mechanism) -> Self {
        let name = decode::mechanism_name(m.kind).into_owned();
        self.with("mechanism", name)
    }

    /// Runs `op`; `ok` encodes its outcome.
    async fn run<O: Op>(
        self,
        operation: Operation,
        op: O,
        ok: impl Fn(O::Output) -> Reply,
    ) -> Answer {
        self.run_with(operation, op, |r| match r {
            Ok(out) => answered(ok(out)),
            Err(e) => failed(&e),
        })
        .await
    }

    async fn run_with<O: Op>(
        self,
        operation: Operation,
        op: O,
        encode: impl Fn(engine::Result<O::Output>) -> Answer,
    ) -> Answer {
        let req = Request {
            token: self.token,
            remote: self.peer.remote,
            path: &self.path,
            operation,
            params: &self.params,
        };
        self.core.apply(&req, op, encode).await
    }
}

/// Answers one call.
pub async fn dispatch(core: &Arc<Core>, peer: &Peer, call: Call) -> Reply {
    let Call { function, pin, op } = call;
    let token = pin.as_ref().map(|p| p.as_str()).unwrap_or("");
    let ask = Ask {
        core,
        peer,
        token,
        path: format!("pkcs11/{}", function.name()),
        params: Map::new(),
    };
    let instance = peer.instance;
    let object = |reply: engine::pkcs11::Object| Reply::Object(encode::object(reply));
    let answer = match op {
        WireOp::TokenInfo => return Reply::Token(token_info(core)),
        WireOp::Login { user } => {
            let (user, name) = match user {
                UserType::User => (User::User, "user"),
                UserType::SecurityOfficer => (User::SecurityOfficer, "so"),
            };
            ask.with("user", name)
                .run_with(Operation::Update, Login { user }, login)
                .await
        }
        WireOp::FindObjects { template } => {
            let op = FindObjects {
                instance,
                template: Ok(decode::attributes(&template)),
            };
            ask.run(Operation::Read, op, |found| {
                Reply::Objects(found.into_iter().map(encode::object).collect())
            })
            .await
        }
        WireOp::GetObject { object: o } => {
            let op = GetObject {
                instance,
                handle: decode::handle(o),
            };
            ask.object("object", o)
                .run(Operation::Read, op, object)
                .await
        }
        WireOp::CreateObject { template } => {
            let op = CreateObject {
                instance,
                request: decode::new_object(&template),
            };
            ask.run(Operation::Create, op, object).await
        }
        WireOp::CopyObject {
            object: o,
            template,
        } => {
            let op = CopyObject {
                instance,
                handle: decode::handle(o),
                template: Ok(decode::attributes(&template)),
            };
            ask.object("object", o)
                .run(Operation::Create, op, object)
                .await
        }
        WireOp::DestroyObject { object: o } => {
            let op = DestroyObject {
                instance,
                handle: decode::handle(o),
            };
            ask.object("object", o)
                .run(Operation::Delete, op, |()| Reply::Ok)
                .await
        }
        WireOp::SetAttributes {
            object: o,
            template,
        } => {
            let op = SetAttributes {
                instance,
                handle: decode::handle(o),
                template: Ok(decode::attributes(&template)),
            };
            ask.object("object", o)
                .run(Operation::Update, op, object)
                .await
        }
        WireOp::GenerateKey {
            mechanism,
            template,
        } => {
            let op = GenerateKey {
                instance,
                request: decode::key_generation(&mechanism, &[], &template, false),
            };
            ask.mechanism(&mechanism)
                .run(Operation::Create, op, encode::generated)
                .await
        }
        WireOp::GenerateKeyPair {
            mechanism,
            public,
            private,
        } => {
            let op = GenerateKey {
                instance,
                request: decode::key_generation(&mechanism, &public, &private, true),
            };
            ask.mechanism(&mechanism)
                .run(Operation::Create, op, encode::generated)
                .await
        }
        WireOp::Sign {
            key,
            mechanism,
            data,
        } => {
            let op = Sign {
                instance,
                key: decode::handle(key),
                scheme: decode::sign_scheme(&mechanism),
                data,
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, Reply::Bytes)
                .await
        }
        WireOp::Verify {
            key,
            mechanism,
            data,
            signature,
        } => {
            let op = Verify {
                instance,
                key: decode::handle(key),
                scheme: decode::sign_scheme(&mechanism),
                data,
                signature,
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, |valid| {
                    if valid {
                        Reply::Ok
                    } else {
                        Reply::Error {
                            rv: ck::CKR_SIGNATURE_INVALID,
                            message: "the signature does not verify".into(),
                        }
                    }
                })
                .await
        }
        WireOp::Encrypt {
            key,
            mechanism,
            data,
        } => {
            let op = Encrypt {
                instance,
                key: decode::handle(key),
                scheme: decode::cipher_scheme(&mechanism),
                data,
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, Reply::Bytes)
                .await
        }
        WireOp::Decrypt {
            key,
            mechanism,
            data,
        } => {
            let op = Decrypt {
                instance,
                key: decode::handle(key),
                scheme: decode::cipher_scheme(&mechanism),
                data,
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, Reply::Secret)
                .await
        }
        WireOp::Digest { mechanism, data } => {
            let op = Digest {
                hash: decode::digest(&mechanism),
                data,
            };
            ask.mechanism(&mechanism)
                .run(Operation::Update, op, Reply::Bytes)
                .await
        }
        WireOp::WrapKey {
            mechanism,
            wrapping,
            key,
        } => {
            let op = WrapKey {
                instance,
                wrapping: decode::handle(wrapping),
                key: decode::handle(key),
                mechanism: decode::wrapping(&mechanism).map(|_| ()),
            };
            ask.object("wrapping", wrapping)
                .object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, |never| match never {})
                .await
        }
        WireOp::UnwrapKey {
            mechanism,
            unwrapping,
            wrapped,
            template,
        } => {
            let op = UnwrapKey {
                instance,
                key: decode::handle(unwrapping),
                scheme: decode::wrapping(&mechanism),
                wrapped,
                template: decode::secret_template(&template, false),
            };
            ask.object("key", unwrapping)
                .mechanism(&mechanism)
                .run(Operation::Update, op, object)
                .await
        }
        WireOp::Encapsulate {
            mechanism,
            key,
            template,
        } => {
            let op = Encapsulate {
                instance,
                key: decode::handle(key),
                mechanism: decode::encapsulation(&mechanism),
                template: decode::secret_template(&template, true),
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, |(ciphertext, key)| {
                    Reply::Encapsulated {
                        ciphertext,
                        key: encode::object(key),
                    }
                })
                .await
        }
        WireOp::Decapsulate {
            mechanism,
            key,
            ciphertext,
            template,
        } => {
            let op = Decapsulate {
                instance,
                key: decode::handle(key),
                mechanism: decode::encapsulation(&mechanism),
                ciphertext,
                template: decode::secret_template(&template, true),
            };
            ask.object("key", key)
                .mechanism(&mechanism)
                .run(Operation::Update, op, object)
                .await
        }
        WireOp::Random { len } => {
            let op = Random { len: len as usize };
            ask.with("len", len)
                .run(Operation::Update, op, |bytes: Zeroizing<Vec<u8>>| {
                    Reply::Secret(bytes)
                })
                .await
        }
        WireOp::ReleaseSessionObjects { objects } => {
            let op = ReleaseSessionObjects {
                instance,
                ids: objects,
            };
            ask.run(Operation::Delete, op, |()| Reply::Ok).await
        }
    };
    answer.reply
}

/// A login the token does not allow is a wrong PIN, whatever the reason (unknown,
/// expired, revoked, or no `keys:write` for the security officer).
fn login(r: engine::Result<()>) -> Answer {
    match r {
        Ok(()) => answered(Reply::Ok),
        Err(e) if matches!(e.kind(), ErrorKind::Unauthenticated | ErrorKind::Forbidden) => {
            let mut answer = failed(&e);
            answer.reply = Reply::Error {
                rv: ck::CKR_PIN_INCORRECT,
                message: "the PIN is not a token allowed to log in here".into(),
            };
            answer.error = Some(format!("CKR_PIN_INCORRECT: {e}"));
            answer
        }
        Err(e) => failed(&e),
    }
}

/// The connection of `instance` closed for good: its session objects go.
pub fn forget_instance(core: &Core, instance: &[u8; 16]) {
    core.pkcs11_forget_instance(instance);
}
