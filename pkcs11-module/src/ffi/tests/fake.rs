//! A small daemon serving the wire protocol on a Unix socket, for the library's tests:
//! one RSA key pair, a user PIN and an SO PIN, and counters of what it was asked.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pkcs11_wire::{
    ck, frame, AttrValue, Attribute, Call, Hello, KeyClass, MechanismInfo, Object, ObjectRef, Op,
    Reply, TokenInfo, UserType, Welcome, PROTOCOL_VERSION,
};

pub const USER_PIN: &str = "s.user-token";
pub const SO_PIN: &str = "s.so-token";
pub const SIGNATURE_LEN: usize = 256;

const PRIVATE: ObjectRef = ObjectRef::Key {
    key: [7; 16],
    version: 1,
    class: KeyClass::Private,
};
const PUBLIC: ObjectRef = ObjectRef::Key {
    key: [7; 16],
    version: 1,
    class: KeyClass::Public,
};

#[derive(Default)]
pub struct Counters {
    pub calls: AtomicUsize,
    pub signs: AtomicUsize,
    pub connections: AtomicUsize,
    pub released: Mutex<Vec<u64>>,
    /// The instance id of every greeting.
    pub instances: Mutex<Vec<[u8; 16]>>,
}

pub struct FakeDaemon {
    pub path: PathBuf,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<UnixStream>>>,
    accept: Option<JoinHandle<()>>,
}

pub fn token() -> TokenInfo {
    let mech = |kind, flags| MechanismInfo {
        kind,
        min_key_size: 2048,
        max_key_size: 4096,
        flags,
    };
    TokenInfo {
        label: "fake appliance".to_string(),
        manufacturer: "Ironseal".to_string(),
        model: "test".to_string(),
        serial: "0001".to_string(),
        firmware: (0, 1),
        present: true,
        mechanisms: vec![
            mech(ck::CKM_SHA256_RSA_PKCS, ck::CKF_SIGN | ck::CKF_VERIFY),
            mech(ck::CKM_RSA_PKCS_PSS, ck::CKF_SIGN | ck::CKF_VERIFY),
            mech(ck::CKM_RSA_PKCS_OAEP, ck::CKF_ENCRYPT | ck::CKF_DECRYPT),
            mech(ck::CKM_SHA256, ck::CKF_DIGEST),
            mech(ck::CKM_RSA_PKCS_KEY_PAIR_GEN, ck::CKF_GENERATE_KEY_PAIR),
        ],
        min_pin_len: 1,
        max_pin_len: 256,
    }
}

fn objects() -> Vec<Object> {
    let attr = |kind, value| Attribute { kind, value };
    vec![
        Object {
            handle: PRIVATE,
            attributes: vec![
                attr(ck::CKA_CLASS, AttrValue::Ulong(ck::CKO_PRIVATE_KEY)),
                attr(ck::CKA_KEY_TYPE, AttrValue::Ulong(ck::CKK_RSA)),
                attr(ck::CKA_LABEL, AttrValue::Bytes(b"signer".to_vec())),
                attr(ck::CKA_ID, AttrValue::Bytes(vec![1])),
                attr(ck::CKA_SENSITIVE, AttrValue::Bool(true)),
                attr(ck::CKA_MODULUS, AttrValue::Bytes(vec![0xC5; 256])),
            ],
            sensitive: vec![ck::CKA_PRIVATE_EXPONENT, ck::CKA_PRIME_1],
        },
        Object {
            handle: PUBLIC,
            attributes: vec![
                attr(ck::CKA_CLASS, AttrValue::Ulong(ck::CKO_PUBLIC_KEY)),
                attr(ck::CKA_LABEL, AttrValue::Bytes(b"signer".to_vec())),
            ],
            sensitive: vec![],
        },
    ]
}

impl FakeDaemon {
    pub fn start(path: &Path) -> FakeDaemon {
        FakeDaemon::start_with(path, Arc::new(Counters::default()))
    }

    /// A daemon on `path` that keeps counting into `counters` (a restart).
    pub fn start_with(path: &Path, counters: Arc<Counters>) -> FakeDaemon {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind the fake daemon's socket");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, streams, counters) = (stop.clone(), streams.clone(), counters.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).expect("blocking stream");
                            if let Ok(clone) = stream.try_clone() {
                                streams.lock().unwrap().push(clone);
                            }
                            counters.connections.fetch_add(1, Ordering::SeqCst);
                            let counters = counters.clone();
                            std::thread::spawn(move || serve(stream, &counters));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FakeDaemon {
            path: path.to_path_buf(),
            counters,
            stop,
            streams,
            accept: Some(accept),
        }
    }

    /// Stops listening and drops every connection, as a daemon that exits does.
    pub fn stop(mut self) -> Arc<Counters> {
        self.halt();
        self.counters.clone()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One connection: the greeting, then a reply for each call.
pub fn serve(mut stream: impl Read + Write, counters: &Counters) {
    let Ok(hello) = frame::read::<Hello>(&mut stream) else {
        return;
    };
    assert_eq!(hello.version, PROTOCOL_VERSION);
    counters.instances.lock().unwrap().push(hello.instance);
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        token: token(),
    };
    if frame::write(&mut stream, &Reply::Welcome(welcome)).is_err() {
        return;
    }
    let mut session_objects: HashMap<u64, Object> = HashMap::new();
    while let Ok(call) = frame::read::<Call>(&mut stream) {
        counters.calls.fetch_add(1, Ordering::SeqCst);
        let reply = answer(call, counters, &mut session_objects);
        if frame::write(&mut stream, &reply).is_err() {
            return;
        }
    }
}

fn error(rv: ck::CK_RV) -> Reply {
    Reply::Error {
        rv,
        message: format!("fake daemon: {rv:#x}"),
    }
}

fn answer(call: Call, counters: &Counters, session_objects: &mut HashMap<u64, Object>) -> Reply {
    let pin = call.pin.as_ref().map(|p| p.as_str().to_string());
    let user = pin.as_deref() == Some(USER_PIN);
    let authorised = user || pin.as_deref() == Some(SO_PIN);
    match call.op {
        Op::TokenInfo => Reply::Token(token()),
        Op::Login { user: kind } => {
            let expected = match kind {
                UserType::User => USER_PIN,
                UserType::SecurityOfficer => SO_PIN,
            };
            if pin.as_deref() == Some(expected) {
                Reply::Ok
            } else {
                error(ck::CKR_PIN_INCORRECT)
            }
        }
        Op::Random { len } => Reply::Bytes(vec![0x5A; len as usize]),
        Op::Digest { data, .. } => Reply::Bytes(vec![data.len() as u8; 32]),
        _ if !authorised => error(ck::CKR_USER_NOT_LOGGED_IN),
        Op::FindObjects { template } => Reply::Objects(
            objects()
                .into_iter()
                .chain(session_objects.values().cloned())
                .filter(|o| template.iter().all(|t| o.attributes.contains(t)))
                .collect(),
        ),
        Op::GetObject { object } => objects()
            .into_iter()
            .chain(session_objects.values().cloned())
            .find(|o| o.handle == object)
            .map_or_else(|| error(ck::CKR_OBJECT_HANDLE_INVALID), Reply::Object),
        Op::CreateObject { template } => {
            let id = session_objects.len() as u64 + 1;
            let object = Object {
                handle: ObjectRef::Session { id },
                attributes: template,
                sensitive: vec![],
            };
            session_objects.insert(id, object.clone());
            Reply::Object(object)
        }
        Op::Sign { key, data, .. } if key == PRIVATE && user => {
            counters.signs.fetch_add(1, Ordering::SeqCst);
            let mut signature = vec![0u8; SIGNATURE_LEN];
            signature[..data.len().min(SIGNATURE_LEN)]
                .copy_from_slice(&data[..data.len().min(SIGNATURE_LEN)]);
            Reply::Bytes(signature)
        }
        Op::Sign { .. } => error(ck::CKR_KEY_FUNCTION_NOT_PERMITTED),
        Op::Verify {
            data, signature, ..
        } => {
            if signature.starts_with(&data) {
                Reply::Ok
            } else {
                error(ck::CKR_SIGNATURE_INVALID)
            }
        }
        // A stand-in cipher the tests can check: encryption reverses the bytes.
        Op::Encrypt { key, mut data, .. } if key == PUBLIC => {
            data.reverse();
            Reply::Bytes(data.to_vec())
        }
        Op::Decrypt { key, mut data, .. } if key == PRIVATE && user => {
            data.reverse();
            Reply::Secret(data.into())
        }
        Op::ReleaseSessionObjects { objects } => {
            for id in &objects {
                session_objects.remove(id);
            }
            counters.released.lock().unwrap().extend(objects);
            Reply::Ok
        }
        _ => error(ck::CKR_FUNCTION_NOT_SUPPORTED),
    }
}
