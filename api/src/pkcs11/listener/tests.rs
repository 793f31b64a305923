//! The listener over real sockets, in front of a real dev-mode core.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::storage::{MemoryBackend, Storage};
use engine::Core;
use pkcs11_wire::frame::{self, MAX_FRAME};
use pkcs11_wire::{ck, Call, Function, Hello, Op, Reply, UserType, Welcome, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use super::*;
use crate::pkcs11::login_limit;
use crate::pkcs11::socket::own_uid;

/// How long a test waits for the listener to close a connection it should close at once.
const PROMPTLY: Duration = Duration::from_secs(5);

struct Running {
    _dir: TempDir,
    socket: PathBuf,
    root_token: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn dev_core() -> (Arc<Core>, String) {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let init = core.dev_setup(None).await.expect("dev setup");
    let root = init.root_token.to_string();
    (core, root)
}

async fn start(options: Options, allowed: Vec<u32>) -> Running {
    let (core, root_token) = dev_core().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/pkcs11.sock");
    let listener = Pkcs11Listener::new(options)
        .with_socket(&socket, allowed)
        .expect("bind the socket");
    let task = tokio::spawn(serve(core, listener));
    Running {
        _dir: dir,
        socket,
        root_token,
        task,
    }
}

async fn start_default() -> Running {
    start(Options::default(), vec![own_uid()]).await
}

fn hello(version: u16, instance: u8) -> Hello {
    Hello {
        version,
        instance: [instance; 16],
        library: "listener tests".into(),
    }
}

async fn put<T: Serialize>(s: &mut (impl AsyncWrite + Unpin), value: &T) {
    s.write_all(&frame::encode(value).unwrap()).await.unwrap();
}

async fn get<T: DeserializeOwned>(s: &mut (impl AsyncRead + Unpin)) -> T {
    tokio::time::timeout(PROMPTLY, async {
        let mut prefix = [0u8; 4];
        s.read_exact(&mut prefix).await.expect("a frame");
        let mut body = vec![0u8; frame::body_len(prefix).unwrap()];
        s.read_exact(&mut body).await.unwrap();
        frame::decode(&body).expect("a frame of the expected type")
    })
    .await
    .expect("an answer in time")
}

/// The peer closed the connection (without sending anything more) in time.
async fn closed(s: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(PROMPTLY, s.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn connect(r: &Running) -> UnixStream {
    UnixStream::connect(&r.socket).await.expect("connect")
}

async fn welcomed(r: &Running, instance: u8) -> (UnixStream, Welcome) {
    let mut s = connect(r).await;
    put(&mut s, &hello(PROTOCOL_VERSION, instance)).await;
    let Reply::Welcome(welcome) = get::<Reply>(&mut s).await else {
        panic!("no Welcome");
    };
    (s, welcome)
}

#[tokio::test]
async fn a_hello_is_welcomed_with_the_token() {
    let r = start(
        Options {
            token_label: Some("vault-keys".into()),
            ..Options::default()
        },
        vec![own_uid()],
    )
    .await;
    let (mut s, welcome) = welcomed(&r, 1).await;
    assert_eq!(welcome.version, PROTOCOL_VERSION);
    assert_eq!(welcome.token.label, "vault-keys");
    // The connection goes on carrying calls, one reply each.
    for _ in 0..2 {
        put(
            &mut s,
            &Call {
                function: Function::C_GenerateRandom,
                pin: None,
                op: Op::Random { len: 16 },
            },
        )
        .await;
        let _: Reply = get(&mut s).await;
    }
}

#[tokio::test]
async fn another_protocol_version_is_refused_with_both_versions_named() {
    let r = start_default().await;
    let mut s = connect(&r).await;
    put(&mut s, &hello(PROTOCOL_VERSION + 7, 1)).await;
    match get::<Reply>(&mut s).await {
        Reply::Error { rv, message } => {
            assert_eq!(rv, ck::CKR_DEVICE_ERROR);
            assert!(
                message.contains(&format!("version {}", PROTOCOL_VERSION + 7))
                    && message.contains(&format!("version {PROTOCOL_VERSION}")),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn an_oversized_prefix_closes_the_connection_without_waiting_for_its_body() {
    let r = start_default().await;
    for prefix in [(MAX_FRAME + 1) as u32, u32::MAX] {
        let (mut s, _) = welcomed(&r, 1).await;
        s.write_all(&prefix.to_be_bytes()).await.unwrap();
        // Nothing follows the prefix: a listener that allocated and read the announced
        // body would still be waiting.
        assert!(closed(&mut s).await, "prefix {prefix}");
    }
    // Before the Hello too.
    let mut s = connect(&r).await;
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection() {
    let r = start_default().await;
    let (mut s, _) = welcomed(&r, 1).await;
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed(&mut s).await);
    // The listener itself goes on.
    let (_s, welcome) = welcomed(&r, 2).await;
    assert_eq!(welcome.version, PROTOCOL_VERSION);
}

#[tokio::test]
async fn a_uid_not_in_the_allow_list_is_closed_without_a_frame() {
    let r = start(Options::default(), vec![own_uid().wrapping_add(1)]).await;
    let mut s = connect(&r).await;
    // The write may already fail: the listener closes before reading anything.
    let _ = s
        .write_all(&frame::encode(&hello(PROTOCOL_VERSION, 1)).unwrap())
        .await;
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn connections_are_bounded_per_peer_and_come_back_when_closed() {
    let r = start(
        Options {
            max_connections_per_peer: 2,
            ..Options::default()
        },
        vec![own_uid()],
    )
    .await;
    let (first, _) = welcomed(&r, 1).await;
    let (_second, _) = welcomed(&r, 1).await;
    let mut third = connect(&r).await;
    let _ = third
        .write_all(&frame::encode(&hello(PROTOCOL_VERSION, 1)).unwrap())
        .await;
    assert!(
        closed(&mut third).await,
        "a third connection of the same uid"
    );
    drop(first);
    // The place comes back once the listener has seen the close.
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let mut s = connect(&r).await;
        put(&mut s, &hello(PROTOCOL_VERSION, 1)).await;
        let mut prefix = [0u8; 4];
        if let Ok(Ok(_)) = tokio::time::timeout(PROMPTLY, s.read_exact(&mut prefix)).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_instance_is_forgotten_when_its_last_connection_closes() {
    let (core, _) = dev_core().await;
    let shared = Shared {
        core,
        token_label: None,
        pins: Default::default(),
        slots: Arc::new(Semaphore::new(1)),
        per_peer: Mutex::new(HashMap::new()),
        max_per_peer: 1,
        instances: Mutex::new(HashMap::new()),
        logins: LoginLimiter::default(),
        frames: BodyBudget::new(1024),
    };
    let a = shared.join([1; 16]);
    let b = shared.join([1; 16]);
    let other = shared.join([2; 16]);
    drop(a);
    assert_eq!(lock(&shared.instances).get(&[1; 16]), Some(&1));
    drop(b);
    assert_eq!(lock(&shared.instances).get(&[1; 16]), None);
    assert_eq!(lock(&shared.instances).len(), 1);
    drop(other);
    assert!(lock(&shared.instances).is_empty());
}

fn login(pin: &str) -> Call {
    Call {
        function: Function::C_Login,
        pin: Some(pin.to_string().into()),
        op: Op::Login {
            user: UserType::User,
        },
    }
}

#[tokio::test]

async fn failed_logins_lock_the_peer_out_and_the_engine_is_not_asked() {
    let r = start_default().await;
    let (mut s, _) = welcomed(&r, 1).await;
    for _ in 0..login_limit::MAX_FAILURES {
        put(&mut s, &login("not-a-token")).await;
        match get::<Reply>(&mut s).await {
            Reply::Error { rv, .. } => assert_eq!(rv, ck::CKR_PIN_INCORRECT),
            other => panic!("{other:?}"),
        }
    }
    // Now even the right PIN gets no further, on any connection of this uid.
    let (mut again, _) = welcomed(&r, 2).await;
    put(&mut again, &login(&r.root_token)).await;
    match get::<Reply>(&mut again).await {
        Reply::Error { rv, message } => {
            assert_eq!(rv, ck::CKR_PIN_INCORRECT);
            assert!(message.contains("too many failed logins"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

mod mtls {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    struct Pki {
        dir: TempDir,
        ca: CertificateDer<'static>,
        client_chain: Vec<CertificateDer<'static>>,
        client_key: PrivateKeyDer<'static>,
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca: ca_cert.der().clone(),
            client_chain: vec![client_cert.der().clone()],
            client_key: PrivateKeyDer::Pkcs8(client_key.serialize_der().into()),
        }
    }

    fn client(pki: &Pki, with_cert: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn a_client_certificate_from_the_ca_is_required() {
        let pki = pki();
        let tls = crate::pkcs11::tls::server_config(
            &pki.dir.path().join("cert.pem"),
            &pki.dir.path().join("key.pem"),
            &pki.dir.path().join("ca.pem"),
        )
        .unwrap();
        let (core, _) = dev_core().await;
        let listener = Pkcs11Listener::new(Options::default())
            .with_tcp("127.0.0.1:0".parse().unwrap(), tls)
            .await
            .unwrap();
        let addr = listener.tcp_address().unwrap();
        let task = tokio::spawn(serve(core, listener));
        let name = ServerName::try_from("localhost").unwrap();

        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = client(&pki, true)
            .connect(name.clone(), tcp)
            .await
            .expect("handshake with a certificate");
        put(&mut s, &hello(PROTOCOL_VERSION, 1)).await;
        let Reply::Welcome(welcome) = get::<Reply>(&mut s).await else {
            panic!("no Welcome");
        };
        assert_eq!(welcome.version, PROTOCOL_VERSION);

        // Without a certificate: TLS 1.3 lets the client finish its side of the
        // handshake; the server's refusal arrives on the first read.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        if let Ok(mut s) = client(&pki, false).connect(name, tcp).await {
            let _ = s
                .write_all(&frame::encode(&hello(PROTOCOL_VERSION, 2)).unwrap())
                .await;
            assert!(closed(&mut s).await, "no Welcome without a certificate");
        }
        task.abort();
    }
}
