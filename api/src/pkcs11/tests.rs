//! The door on a dev appliance: calls as the library sends them, replies as it reads
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use engine::policy::Operation;
use engine::storage::{MemoryBackend, Storage};
use engine::Core;
use pkcs11_wire::ck::*;
use pkcs11_wire::{
    AttrValue, Attribute, Call, Function, KeyClass, Mechanism, Object, ObjectRef, Op, Params,
    Reply, UserType,
};
use serde_json::{json, Map, Value};

use super::dispatch::{dispatch, forget_instance, token_info, Peer};
use crate::request::VaultRequest;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

struct Appliance {
    core: Arc<Core>,
    root: String,
    peer: Peer,
}

async fn appliance() -> Appliance {
    let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
    let root = core
        .dev_setup(None)
        .await
        .expect("dev setup")
        .root_token
        .to_string();
    Appliance {
        core,
        root,
        peer: peer(1),
    }
}

fn peer(n: u8) -> Peer {
    Peer {
        uid: Some(1000),
        remote: None,
        instance: [n; 16],
    }
}

fn b(kind: CK_ATTRIBUTE_TYPE, v: bool) -> Attribute {
    Attribute {
        kind,
        value: AttrValue::Bool(v),
    }
}

fn u(kind: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Attribute {
    Attribute {
        kind,
        value: AttrValue::Ulong(v),
    }
}

fn bytes(kind: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Attribute {
    Attribute {
        kind,
        value: AttrValue::Bytes(v.to_vec()),
    }
}

fn mechanism(kind: CK_MECHANISM_TYPE) -> Mechanism {
    Mechanism {
        kind,
        params: Params::None,
    }
}

fn rv(reply: &Reply) -> CK_RV {
    match reply {
        Reply::Error { rv, .. } => *rv,
        _ => CKR_OK,
    }
}

fn get(o: &Object, kind: CK_ATTRIBUTE_TYPE) -> Option<&AttrValue> {
    o.attributes
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| &a.value)
}

impl Appliance {
    async fn call_as(&self, peer: &Peer, pin: Option<&str>, function: Function, op: Op) -> Reply {
        let call = Call {
            function,
            pin: pin.map(|p| p.to_string().into()),
            op,
        };
        dispatch(&self.core, peer, call).await
    }

    async fn call(&self, function: Function, op: Op) -> Reply {
        self.call_as(&self.peer, Some(&self.root), function, op)
            .await
    }

    async fn vault(&self, op: Operation, path: &str, body: Value) -> Value {
        let body = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let req = VaultRequest {
            op,
            path: path.into(),
            query: HashMap::new(),
            body,
            token: self.root.clone(),
            remote_address: None,
            wrap_ttl: None,
            peer_chain: None,
        };
        match crate::vault::handle(&self.core, req).await {
            Ok(reply) => reply.body.unwrap_or(Value::Null),
            Err(e) => panic!("{path}: {}", e.body_json()),
        }
    }

    async fn token(&self, scopes: &[&str]) -> String {
        let body = self
            .vault(
                Operation::Update,
                "auth/token/create",
                json!({"scopes": scopes, "policies": ["default"]}),
            )
            .await;
        body["auth"]["client_token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    async fn find(&self, peer: &Peer, template: Vec<Attribute>) -> Vec<Object> {
        match self
            .call_as(
                peer,
                Some(&self.root),
                Function::C_FindObjectsInit,
                Op::FindObjects { template },
            )
            .await
        {
            Reply::Objects(found) => found,
            other => panic!("find: {other:?}"),
        }
    }

    async fn ec_pair(&self, label: &str, id: &[u8]) -> (Object, Object) {
        let op = Op::GenerateKeyPair {
            mechanism: mechanism(CKM_EC_KEY_PAIR_GEN),
            public: vec![
                b(CKA_TOKEN, true),
                bytes(CKA_EC_PARAMS, P256),
                b(CKA_VERIFY, true),
                bytes(CKA_LABEL, label.as_bytes()),
                bytes(CKA_ID, id),
            ],
            private: vec![
                b(CKA_TOKEN, true),
                b(CKA_PRIVATE, true),
                b(CKA_SENSITIVE, true),
                b(CKA_SIGN, true),
                b(CKA_DERIVE, true),
                bytes(CKA_LABEL, label.as_bytes()),
                bytes(CKA_ID, id),
            ],
        };
        match self.call(Function::C_GenerateKeyPair, op).await {
            Reply::KeyPair { public, private } => (public, private),
            other => panic!("generate: {other:?}"),
        }
    }
}

#[tokio::test]
async fn login_takes_a_token_and_the_so_needs_keys_write() {
    let a = appliance().await;
    let login = |pin: Option<String>, user| {
        let a = &a;
        async move {
            rv(&a
                .call_as(
                    &a.peer,
                    pin.as_deref(),
                    Function::C_Login,
                    Op::Login { user },
                )
                .await)
        }
    };
    assert_eq!(login(Some(a.root.clone()), UserType::User).await, CKR_OK);
    assert_eq!(
        login(Some(a.root.clone()), UserType::SecurityOfficer).await,
        CKR_OK
    );
    assert_eq!(
        login(Some("not-a-token".into()), UserType::User).await,
        CKR_PIN_INCORRECT
    );
    assert_eq!(login(None, UserType::User).await, CKR_PIN_INCORRECT);
    let reader = a.token(&["keys:read"]).await;
    assert_eq!(login(Some(reader.clone()), UserType::User).await, CKR_OK);
    assert_eq!(
        login(Some(reader), UserType::SecurityOfficer).await,
        CKR_PIN_INCORRECT
    );
    let writer = a.token(&["keys:write"]).await;
    assert_eq!(login(Some(writer), UserType::SecurityOfficer).await, CKR_OK);
}

#[tokio::test]
async fn generated_pairs_are_found_by_id_and_sign_through_the_scheme() {
    let a = appliance().await;
    let (public, private) = a.ec_pair("p11-ec", &[0x01]).await;
    assert_eq!(
        get(&public, CKA_CLASS),
        Some(&AttrValue::Ulong(CKO_PUBLIC_KEY))
    );
    assert_eq!(
        get(&public, CKA_LABEL),
        Some(&AttrValue::Bytes(b"p11-ec".to_vec()))
    );
    assert!(matches!(get(&public, CKA_EC_POINT), Some(AttrValue::Bytes(p)) if p.len() == 67));
    assert_eq!(get(&private, CKA_DERIVE), Some(&AttrValue::Bool(false)));
    assert_eq!(private.sensitive, vec![CKA_VALUE]);
    assert!(matches!(
        private.handle,
        ObjectRef::Key {
            version: 1,
            class: KeyClass::Private,
            ..
        }
    ));

    let found = a.find(&a.peer, vec![bytes(CKA_ID, &[0x01])]).await;
    assert_eq!(found.len(), 2);
    let found = a
        .find(
            &a.peer,
            vec![u(CKA_CLASS, CKO_PRIVATE_KEY), bytes(CKA_ID, &[0x01])],
        )
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].handle, private.handle);
    let got = a
        .call(
            Function::C_GetAttributeValue,
            Op::GetObject {
                object: public.handle,
            },
        )
        .await;
    assert!(matches!(got, Reply::Object(o) if o == public));

    // The same label is the same key name: refused.
    let again = a
        .call(
            Function::C_GenerateKeyPair,
            Op::GenerateKeyPair {
                mechanism: mechanism(CKM_EC_KEY_PAIR_GEN),
                public: vec![
                    bytes(CKA_EC_PARAMS, P256),
                    bytes(CKA_LABEL, b"p11-ec"),
                    b(CKA_TOKEN, true),
                ],
                private: Vec::new(),
            },
        )
        .await;
    assert_eq!(rv(&again), CKR_ATTRIBUTE_VALUE_INVALID);
    let incomplete = a
        .call(
            Function::C_GenerateKeyPair,
            Op::GenerateKeyPair {
                mechanism: mechanism(CKM_RSA_PKCS_KEY_PAIR_GEN),
                public: Vec::new(),
                private: Vec::new(),
            },
        )
        .await;
    assert_eq!(rv(&incomplete), CKR_TEMPLATE_INCOMPLETE);
    let wrong = a
        .call(
            Function::C_GenerateKey,
            Op::GenerateKey {
                mechanism: mechanism(CKM_EC_KEY_PAIR_GEN),
                template: Vec::new(),
            },
        )
        .await;
    assert_eq!(rv(&wrong), CKR_MECHANISM_INVALID);

    // Raw r || s, as PKCS#11 encodes ECDSA; verified with the public object.
    let signed = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: private.handle,
                mechanism: mechanism(CKM_ECDSA_SHA256),
                data: b"message".to_vec(),
            },
        )
        .await;
    let Reply::Bytes(signature) = signed else {
        panic!("sign: {signed:?}")
    };
    assert_eq!(signature.len(), 64);
    let verify = |data: &[u8], signature: &[u8]| Op::Verify {
        key: public.handle,
        mechanism: mechanism(CKM_ECDSA_SHA256),
        data: data.to_vec(),
        signature: signature.to_vec(),
    };
    let valid = a
        .call(Function::C_Verify, verify(b"message", &signature))
        .await;
    assert_eq!(rv(&valid), CKR_OK);
    let forged = a
        .call(Function::C_Verify, verify(b"messagE", &signature))
        .await;
    assert_eq!(rv(&forged), CKR_SIGNATURE_INVALID);
    let with_public = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: public.handle,
                mechanism: mechanism(CKM_ECDSA_SHA256),
                data: b"message".to_vec(),
            },
        )
        .await;
    assert_eq!(rv(&with_public), CKR_KEY_FUNCTION_NOT_PERMITTED);
    let rsa_mechanism = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: private.handle,
                mechanism: mechanism(CKM_SHA256_RSA_PKCS),
                data: b"message".to_vec(),
            },
        )
        .await;
    assert_eq!(rv(&rsa_mechanism), CKR_KEY_TYPE_INCONSISTENT);
    let bad_param = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: private.handle,
                mechanism: Mechanism {
                    kind: CKM_ECDSA,
                    params: Params::Iv(vec![0; 16]),
                },
                data: vec![0; 32],
            },
        )
        .await;
    assert_eq!(rv(&bad_param), CKR_MECHANISM_PARAM_INVALID);
    let too_long = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: private.handle,
                mechanism: mechanism(CKM_ECDSA_SHA256),
                data: vec![0; 64 * 1024 + 1],
            },
        )
        .await;
    assert_eq!(rv(&too_long), CKR_DATA_LEN_RANGE);

    // Never extractable; no other instance's handles, no unknown keys.
    let aes = a
        .call(
            Function::C_GenerateKey,
            Op::GenerateKey {
                mechanism: mechanism(CKM_AES_KEY_GEN),
                template: vec![
                    u(CKA_VALUE_LEN, 32),
                    bytes(CKA_LABEL, b"kek"),
                    b(CKA_TOKEN, true),
                ],
            },
        )
        .await;
    let Reply::Object(aes) = aes else {
        panic!("aes: {aes:?}")
    };
    let wrapped = a
        .call(
            Function::C_WrapKey,
            Op::WrapKey {
                mechanism: mechanism(CKM_AES_KEY_WRAP_KWP),
                wrapping: aes.handle,
                key: private.handle,
            },
        )
        .await;
    assert_eq!(rv(&wrapped), CKR_KEY_UNEXTRACTABLE);
    let unknown = a
        .call(
            Function::C_GetAttributeValue,
            Op::GetObject {
                object: ObjectRef::Key {
                    key: [9; 16],
                    version: 1,
                    class: KeyClass::Private,
                },
            },
        )
        .await;
    assert_eq!(rv(&unknown), CKR_OBJECT_HANDLE_INVALID);

    // Destroying the private object takes the key away (after its pending window).
    let refused = a
        .call(
            Function::C_DestroyObject,
            Op::DestroyObject {
                object: public.handle,
            },
        )
        .await;
    assert_eq!(rv(&refused), CKR_ACTION_PROHIBITED);
    let destroyed = a
        .call(
            Function::C_DestroyObject,
            Op::DestroyObject {
                object: private.handle,
            },
        )
        .await;
    assert_eq!(rv(&destroyed), CKR_OK);
    assert!(a
        .find(&a.peer, vec![bytes(CKA_ID, &[0x01])])
        .await
        .is_empty());
}

#[tokio::test]
async fn aes_and_ml_dsa_keys_work_through_their_mechanisms() {
    let a = appliance().await;
    let aes = a
        .call(
            Function::C_GenerateKey,
            Op::GenerateKey {
                mechanism: mechanism(CKM_AES_KEY_GEN),
                template: vec![
                    u(CKA_CLASS, CKO_SECRET_KEY),
                    u(CKA_VALUE_LEN, 32),
                    b(CKA_TOKEN, true),
                    b(CKA_ENCRYPT, true),
                    b(CKA_DECRYPT, true),
                    b(CKA_SIGN, true),
                ],
            },
        )
        .await;
    let Reply::Object(aes) = aes else {
        panic!("aes: {aes:?}")
    };
    let gcm = Mechanism {
        kind: CKM_AES_GCM,
        params: Params::Gcm {
            iv: vec![7; 12],
            aad: b"header".to_vec(),
            tag_bits: 128,
        },
    };
    let sealed = a
        .call(
            Function::C_Encrypt,
            Op::Encrypt {
                key: aes.handle,
                mechanism: gcm.clone(),
                data: b"plaintext".to_vec().into(),
            },
        )
        .await;
    let Reply::Bytes(sealed) = sealed else {
        panic!("encrypt: {sealed:?}")
    };
    assert_eq!(sealed.len(), 9 + 16);
    let opened = a
        .call(
            Function::C_Decrypt,
            Op::Decrypt {
                key: aes.handle,
                mechanism: gcm,
                data: sealed,
            },
        )
        .await;
    assert!(matches!(opened, Reply::Secret(p) if p.as_slice() == b"plaintext"));

    let pair = a
        .call(
            Function::C_GenerateKeyPair,
            Op::GenerateKeyPair {
                mechanism: mechanism(CKM_ML_DSA_KEY_PAIR_GEN),
                public: vec![u(CKA_PARAMETER_SET, CKP_ML_DSA_65), b(CKA_TOKEN, true)],
                private: vec![b(CKA_SIGN, true)],
            },
        )
        .await;
    let Reply::KeyPair { public, private } = pair else {
        panic!("ml-dsa: {pair:?}")
    };
    let context = Mechanism {
        kind: CKM_ML_DSA,
        params: Params::SignContext {
            hedge: CKH_DETERMINISTIC_REQUIRED,
            context: b"ctx".to_vec(),
        },
    };
    let signed = a
        .call(
            Function::C_Sign,
            Op::Sign {
                key: private.handle,
                mechanism: context.clone(),
                data: b"message".to_vec(),
            },
        )
        .await;
    let Reply::Bytes(signature) = signed else {
        panic!("sign: {signed:?}")
    };
    let verified = a
        .call(
            Function::C_Verify,
            Op::Verify {
                key: public.handle,
                mechanism: context,
                data: b"message".to_vec(),
                signature: signature.clone(),
            },
        )
        .await;
    assert_eq!(rv(&verified), CKR_OK);
    let other_context = a
        .call(
            Function::C_Verify,
            Op::Verify {
                key: public.handle,
                mechanism: mechanism(CKM_ML_DSA),
                data: b"message".to_vec(),
                signature,
            },
        )
        .await;
    assert_eq!(rv(&other_context), CKR_SIGNATURE_INVALID);
}

#[tokio::test]
async fn certificates_are_stored_found_and_destroyed() {
    let a = appliance().await;
    let cert = rcgen::generate_simple_self_signed(vec!["signer.example".into()])
        .expect("certificate")
        .cert
        .der()
        .to_vec();
    let created = a
        .call(
            Function::C_CreateObject,
            Op::CreateObject {
                template: vec![
                    u(CKA_CLASS, CKO_CERTIFICATE),
                    u(CKA_CERTIFICATE_TYPE, CKC_X_509),
                    b(CKA_TOKEN, true),
                    b(CKA_PRIVATE, false),
                    bytes(CKA_VALUE, &cert),
                    bytes(CKA_ID, &[0x01]),
                    bytes(CKA_LABEL, b"signer"),
                ],
            },
        )
        .await;
    let Reply::Object(created) = created else {
        panic!("create: {created:?}")
    };
    assert!(matches!(created.handle, ObjectRef::Stored { .. }));
    assert!(matches!(get(&created, CKA_SUBJECT), Some(AttrValue::Bytes(s)) if !s.is_empty()));

    // Stored objects are token objects: every instance of the library finds them.
    let found = a.find(&peer(7), vec![u(CKA_CLASS, CKO_CERTIFICATE)]).await;
    assert_eq!(found, vec![created.clone()]);
    let renamed = a
        .call(
            Function::C_SetAttributeValue,
            Op::SetAttributes {
                object: created.handle,
                template: vec![bytes(CKA_LABEL, b"renamed")],
            },
        )
        .await;
    assert!(
        matches!(renamed, Reply::Object(o) if get(&o, CKA_LABEL) == Some(&AttrValue::Bytes(b"renamed".to_vec())))
    );
    let read_only = a
        .call(
            Function::C_SetAttributeValue,
            Op::SetAttributes {
                object: created.handle,
                template: vec![bytes(CKA_VALUE, b"x")],
            },
        )
        .await;
    assert_eq!(rv(&read_only), CKR_ATTRIBUTE_READ_ONLY);

    let destroyed = a
        .call(
            Function::C_DestroyObject,
            Op::DestroyObject {
                object: created.handle,
            },
        )
        .await;
    assert_eq!(rv(&destroyed), CKR_OK);
    assert!(a
        .find(&a.peer, vec![u(CKA_CLASS, CKO_CERTIFICATE)])
        .await
        .is_empty());
    let again = a
        .call(
            Function::C_DestroyObject,
            Op::DestroyObject {
                object: created.handle,
            },
        )
        .await;
    assert_eq!(rv(&again), CKR_OBJECT_HANDLE_INVALID);

    let unknown = a
        .call(
            Function::C_CreateObject,
            Op::CreateObject {
                template: vec![u(CKA_CLASS, CKO_DATA), b(CKA_SIGN, true)],
            },
        )
        .await;
    assert_eq!(rv(&unknown), CKR_ATTRIBUTE_TYPE_INVALID);
}

#[tokio::test]
async fn session_objects_belong_to_their_instance_until_it_is_forgotten() {
    let a = appliance().await;
    let data = |token: bool| Op::CreateObject {
        template: vec![
            u(CKA_CLASS, CKO_DATA),
            b(CKA_TOKEN, token),
            bytes(CKA_VALUE, b"secret note"),
            bytes(CKA_LABEL, b"note"),
        ],
    };
    let created = a.call(Function::C_CreateObject, data(false)).await;
    let Reply::Object(created) = created else {
        panic!("create: {created:?}")
    };
    let ObjectRef::Session { id } = created.handle else {
        panic!("not a session object: {:?}", created.handle)
    };
    let template = vec![u(CKA_CLASS, CKO_DATA)];
    assert_eq!(a.find(&a.peer, template.clone()).await.len(), 1);
    assert!(a.find(&peer(2), template.clone()).await.is_empty());
    let elsewhere = a
        .call_as(
            &peer(2),
            Some(&a.root),
            Function::C_GetAttributeValue,
            Op::GetObject {
                object: created.handle,
            },
        )
        .await;
    assert_eq!(rv(&elsewhere), CKR_OBJECT_HANDLE_INVALID);

    forget_instance(&a.core, &a.peer.instance);
    assert!(a.find(&a.peer, template.clone()).await.is_empty());

    // Released by the library when its session closes, without a login.
    let created = a.call(Function::C_CreateObject, data(false)).await;
    let Reply::Object(created) = created else {
        panic!("create: {created:?}")
    };
    let ObjectRef::Session { id: second } = created.handle else {
        panic!("not a session object")
    };
    assert_ne!(second, id);
    let released = a
        .call_as(
            &a.peer,
            None,
            Function::C_CloseSession,
            Op::ReleaseSessionObjects {
                objects: vec![second],
            },
        )
        .await;
    assert_eq!(rv(&released), CKR_OK);
    assert!(a.find(&a.peer, template).await.is_empty());
}

#[tokio::test]
async fn unauthorised_calls_are_refused_and_audited_by_function_name() {
    let a = appliance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    a.vault(
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_string_lossy()}}),
    )
    .await;
    let reader = a.token(&["keys:read"]).await;
    let op = || Op::GenerateKeyPair {
        mechanism: mechanism(CKM_EC_KEY_PAIR_GEN),
        public: vec![bytes(CKA_EC_PARAMS, P256), b(CKA_TOKEN, true)],
        private: Vec::new(),
    };
    let refused = a
        .call_as(&a.peer, Some(&reader), Function::C_GenerateKeyPair, op())
        .await;
    assert_eq!(rv(&refused), CKR_ACTION_PROHIBITED);
    let no_pin = a
        .call_as(&a.peer, None, Function::C_GenerateKeyPair, op())
        .await;
    assert_eq!(rv(&no_pin), CKR_USER_NOT_LOGGED_IN);
    let find = a
        .call_as(
            &a.peer,
            None,
            Function::C_FindObjectsInit,
            Op::FindObjects {
                template: Vec::new(),
            },
        )
        .await;
    assert_eq!(rv(&find), CKR_USER_NOT_LOGGED_IN);

    let text = std::fs::read_to_string(&log).expect("audit log");
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let named: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["path"] == "pkcs11/C_GenerateKeyPair")
        .collect();
    assert!(
        named.iter().any(|e| e["type"] == "response"
            && e["error"]
                .as_str()
                .is_some_and(|s| s.contains("keys:write"))),
        "{text}"
    );
    assert!(
        named.len() >= 4,
        "request and response of both calls: {text}"
    );
}

#[tokio::test]
async fn digests_random_and_token_facts_need_no_login() {
    let a = appliance().await;
    let digest = a
        .call_as(
            &a.peer,
            None,
            Function::C_Digest,
            Op::Digest {
                mechanism: mechanism(CKM_SHA256),
                data: b"abc".to_vec(),
            },
        )
        .await;
    let expected = hex::decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        .expect("hex");
    assert!(matches!(digest, Reply::Bytes(d) if d == expected));
    let unknown = a
        .call_as(
            &a.peer,
            None,
            Function::C_Digest,
            Op::Digest {
                mechanism: mechanism(CKM_MD5),
                data: b"abc".to_vec(),
            },
        )
        .await;
    assert_eq!(rv(&unknown), CKR_MECHANISM_INVALID);
    let random = a
        .call_as(
            &a.peer,
            None,
            Function::C_GenerateRandom,
            Op::Random { len: 48 },
        )
        .await;
    assert!(matches!(random, Reply::Secret(r) if r.len() == 48));
    let too_much = a
        .call_as(
            &a.peer,
            None,
            Function::C_GenerateRandom,
            Op::Random { len: 64 * 1024 + 1 },
        )
        .await;
    assert_eq!(rv(&too_much), CKR_DATA_LEN_RANGE);

    let info = token_info(&a.core);
    assert!(info.present);
    for kind in [
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        CKM_EC_KEY_PAIR_GEN,
        CKM_AES_KEY_GEN,
        CKM_ML_DSA_KEY_PAIR_GEN,
        CKM_ML_KEM_KEY_PAIR_GEN,
        CKM_SHA256,
    ] {
        assert!(info.mechanisms.iter().any(|m| m.kind == kind), "{kind:#x}");
    }
    let mechanism = |kind| {
        *info
            .mechanisms
            .iter()
            .find(|m| m.kind == kind)
            .unwrap_or_else(|| panic!("{kind:#x} listed"))
    };
    let rsa = mechanism(CKM_RSA_PKCS_KEY_PAIR_GEN);
    assert_eq!((rsa.min_key_size, rsa.max_key_size), (2048, 4096));
    assert_eq!(rsa.flags, CKF_GENERATE_KEY_PAIR);
    let ecdsa = mechanism(CKM_ECDSA_SHA256);
    assert_eq!((ecdsa.min_key_size, ecdsa.max_key_size), (256, 384));
    assert_eq!(ecdsa.flags & (CKF_SIGN | CKF_VERIFY), CKF_SIGN | CKF_VERIFY);
    assert_eq!(mechanism(CKM_ML_DSA).flags & CKF_SIGN, CKF_SIGN);
    let gcm = mechanism(CKM_AES_GCM);
    assert_eq!(
        gcm.flags & (CKF_ENCRYPT | CKF_DECRYPT),
        CKF_ENCRYPT | CKF_DECRYPT
    );
    let answered = a
        .call_as(&a.peer, None, Function::C_GetTokenInfo, Op::TokenInfo)
        .await;
    assert!(matches!(answered, Reply::Token(t) if t == info));
}

/// A secret known outside the appliance, as unwrapped or encapsulated keys are.
const SECRET: [u8; 32] = [0x5c; 32];

fn gcm(iv: u8) -> Mechanism {
    Mechanism {
        kind: CKM_AES_GCM,
        params: Params::Gcm {
            iv: vec![iv; 12],
            aad: b"aad".to_vec(),
            tag_bits: 128,
        },
    }
}

fn oaep() -> Mechanism {
    Mechanism {
        kind: CKM_RSA_PKCS_OAEP,
        params: Params::Oaep {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            label: Vec::new(),
        },
    }
}

/// Opens what the appliance sealed with `gcm(iv)` under `key`.
fn open_outside(key: &[u8], iv: u8, sealed: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).expect("AES-256 key");
    cipher
        .decrypt(
            aes_gcm::Nonce::from_slice(&[iv; 12]),
            Payload {
                msg: sealed,
                aad: b"aad",
            },
        )
        .expect("the appliance's ciphertext opens outside it")
}

fn secret_template(token: bool, label: &[u8]) -> Vec<Attribute> {
    vec![
        u(CKA_CLASS, CKO_SECRET_KEY),
        u(CKA_KEY_TYPE, CKK_AES),
        b(CKA_TOKEN, token),
        b(CKA_ENCRYPT, true),
        b(CKA_DECRYPT, true),
        bytes(CKA_LABEL, label),
    ]
}

impl Appliance {
    async fn unwrap_as(
        &self,
        peer: &Peer,
        pin: &str,
        mechanism: Mechanism,
        unwrapping: ObjectRef,
        wrapped: Vec<u8>,
        template: Vec<Attribute>,
    ) -> Reply {
        self.call_as(
            peer,
            Some(pin),
            Function::C_UnwrapKey,
            Op::UnwrapKey {
                mechanism,
                unwrapping,
                wrapped,
                template,
            },
        )
        .await
    }

    async fn unwrap(
        &self,
        mechanism: Mechanism,
        unwrapping: ObjectRef,
        wrapped: Vec<u8>,
        template: Vec<Attribute>,
    ) -> Reply {
        self.unwrap_as(
            &self.peer, &self.root, mechanism, unwrapping, wrapped, template,
        )
        .await
    }

    async fn encrypt_as(&self, peer: &Peer, key: ObjectRef, iv: u8, data: &[u8]) -> Vec<u8> {
        let sealed = self
            .call_as(
                peer,
                Some(&self.root),
                Function::C_Encrypt,
                Op::Encrypt {
                    key,
                    mechanism: gcm(iv),
                    data: data.to_vec().into(),
                },
            )
            .await;
        match sealed {
            Reply::Bytes(b) => b,
            other => panic!("encrypt: {other:?}"),
        }
    }

    /// An RSA encryption key pair, and its public key for use outside.
    async fn rsa_pair(&self) -> (rsa::RsaPublicKey, Object) {
        let pair = self
            .call(
                Function::C_GenerateKeyPair,
                Op::GenerateKeyPair {
                    mechanism: mechanism(CKM_RSA_PKCS_KEY_PAIR_GEN),
                    public: vec![
                        u(CKA_MODULUS_BITS, 2048),
                        b(CKA_ENCRYPT, true),
                        b(CKA_TOKEN, true),
                    ],
                    private: vec![b(CKA_DECRYPT, true), b(CKA_UNWRAP, true)],
                },
            )
            .await;
        let Reply::KeyPair { public, private } = pair else {
            panic!("rsa: {pair:?}")
        };
        let int = |kind| match get(&public, kind) {
            Some(AttrValue::Bytes(v)) => rsa::BigUint::from_bytes_be(v),
            other => panic!("{kind:#x}: {other:?}"),
        };
        let pk = rsa::RsaPublicKey::new(int(CKA_MODULUS), int(CKA_PUBLIC_EXPONENT))
            .expect("RSA public key");
        (pk, private)
    }

    /// An appliance AES key whose value is known outside (imported by RSA-OAEP), to wrap
    /// secrets under with the aes-kw crate.
    async fn known_kek(&self) -> (Object, [u8; 32]) {
        let kek = [0x4b; 32];
        let (pk, private) = self.rsa_pair().await;
        let wrapped = pk
            .encrypt(
                &mut rand::rngs::OsRng,
                rsa::Oaep::new::<sha2::Sha256>(),
                &kek,
            )
            .expect("OAEP");
        let mut template = secret_template(true, b"kek");
        template.push(b(CKA_UNWRAP, true));
        let imported = self.unwrap(oaep(), private.handle, wrapped, template).await;
        match imported {
            Reply::Object(o) => (o, kek),
            other => panic!("import the KEK: {other:?}"),
        }
    }
}

#[tokio::test]
async fn aes_key_wrap_and_kwp_unwrap_into_session_keys_that_encrypt() {
    let a = appliance().await;
    let (kek, kek_value) = a.known_kek().await;
    let outside = aes_kw::KekAes256::from(kek_value);
    for (kind, wrapped) in [
        (
            CKM_AES_KEY_WRAP,
            outside.wrap_vec(&SECRET).expect("RFC 3394"),
        ),
        (
            CKM_AES_KEY_WRAP_KWP,
            outside.wrap_with_padding_vec(&SECRET).expect("RFC 5649"),
        ),
    ] {
        let unwrapped = a
            .unwrap(
                mechanism(kind),
                kek.handle,
                wrapped,
                secret_template(false, b"session"),
            )
            .await;
        let Reply::Object(key) = unwrapped else {
            panic!("{kind:#x}: {unwrapped:?}")
        };
        assert!(matches!(key.handle, ObjectRef::Session { .. }));
        assert_eq!(key.sensitive, vec![CKA_VALUE]);
        assert_eq!(get(&key, CKA_VALUE), None, "the value is never shown");
        assert_eq!(get(&key, CKA_LOCAL), Some(&AttrValue::Bool(false)));
        assert_eq!(
            get(&key, CKA_NEVER_EXTRACTABLE),
            Some(&AttrValue::Bool(false))
        );
        assert_eq!(get(&key, CKA_VALUE_LEN), Some(&AttrValue::Ulong(32)));
        let sealed = a.encrypt_as(&a.peer, key.handle, 1, b"for outside").await;
        assert_eq!(open_outside(&SECRET, 1, &sealed), b"for outside");
        let opened = a
            .call(
                Function::C_Decrypt,
                Op::Decrypt {
                    key: key.handle,
                    mechanism: gcm(1),
                    data: sealed,
                },
            )
            .await;
        assert!(matches!(opened, Reply::Secret(p) if p.as_slice() == b"for outside"));
        let cbc = Mechanism {
            kind: CKM_AES_CBC_PAD,
            params: Params::Iv(vec![9; 16]),
        };
        let sealed = a
            .call(
                Function::C_Encrypt,
                Op::Encrypt {
                    key: key.handle,
                    mechanism: cbc.clone(),
                    data: b"cbc".to_vec().into(),
                },
            )
            .await;
        let Reply::Bytes(sealed) = sealed else {
            panic!("cbc: {sealed:?}")
        };
        assert_eq!(sealed.len(), 16);
        let opened = a
            .call(
                Function::C_Decrypt,
                Op::Decrypt {
                    key: key.handle,
                    mechanism: cbc,
                    data: sealed,
                },
            )
            .await;
        assert!(matches!(opened, Reply::Secret(p) if p.as_slice() == b"cbc"));

        // A new label keeps the value; a copy would hold it twice and is refused.
        let renamed = a
            .call(
                Function::C_SetAttributeValue,
                Op::SetAttributes {
                    object: key.handle,
                    template: vec![bytes(CKA_LABEL, b"renamed")],
                },
            )
            .await;
        assert!(
            matches!(&renamed, Reply::Object(o) if o.sensitive == vec![CKA_VALUE]),
            "{renamed:?}"
        );
        let sealed = a.encrypt_as(&a.peer, key.handle, 2, b"still").await;
        assert_eq!(open_outside(&SECRET, 2, &sealed), b"still");
        let copied = a
            .call(
                Function::C_CopyObject,
                Op::CopyObject {
                    object: key.handle,
                    template: Vec::new(),
                },
            )
            .await;
        assert_eq!(rv(&copied), CKR_ACTION_PROHIBITED);
    }

    let mut tampered = outside.wrap_vec(&SECRET).expect("RFC 3394");
    tampered[5] ^= 1;
    let wrong = a
        .unwrap(
            mechanism(CKM_AES_KEY_WRAP),
            kek.handle,
            tampered,
            secret_template(false, b""),
        )
        .await;
    assert_eq!(rv(&wrong), CKR_WRAPPED_KEY_INVALID);
    let short = a
        .unwrap(
            mechanism(CKM_AES_KEY_WRAP),
            kek.handle,
            vec![0; 20],
            secret_template(false, b""),
        )
        .await;
    assert_eq!(rv(&short), CKR_WRAPPED_KEY_LEN_RANGE);
    let aes128 = a
        .unwrap(
            mechanism(CKM_AES_KEY_WRAP_KWP),
            kek.handle,
            outside.wrap_with_padding_vec(&[1; 16]).expect("RFC 5649"),
            secret_template(false, b""),
        )
        .await;
    assert_eq!(rv(&aes128), CKR_WRAPPED_KEY_INVALID);
    let mut rsa_template = secret_template(false, b"");
    rsa_template[1] = u(CKA_KEY_TYPE, CKK_RSA);
    let not_aes = a
        .unwrap(
            mechanism(CKM_AES_KEY_WRAP),
            kek.handle,
            outside.wrap_vec(&SECRET).expect("RFC 3394"),
            rsa_template,
        )
        .await;
    assert_eq!(rv(&not_aes), CKR_TEMPLATE_INCONSISTENT);
    let mut short_template = secret_template(false, b"");
    short_template.push(u(CKA_VALUE_LEN, 16));
    let not_256 = a
        .unwrap(
            mechanism(CKM_AES_KEY_WRAP),
            kek.handle,
            outside.wrap_vec(&SECRET).expect("RFC 3394"),
            short_template,
        )
        .await;
    assert_eq!(rv(&not_256), CKR_TEMPLATE_INCONSISTENT);
}

#[tokio::test]
async fn oaep_unwraps_into_a_token_key_found_by_label_from_another_instance() {
    let a = appliance().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("audit.log");
    a.vault(
        Operation::Update,
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log.to_string_lossy()}}),
    )
    .await;
    let (pk, private) = a.rsa_pair().await;
    let wrapped = pk
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha2::Sha256>(),
            &SECRET,
        )
        .expect("OAEP");

    let user = a.token(&["keys:use"]).await;
    let refused = a
        .unwrap_as(
            &a.peer,
            &user,
            oaep(),
            private.handle,
            wrapped.clone(),
            secret_template(true, b"imported"),
        )
        .await;
    assert_eq!(rv(&refused), CKR_ACTION_PROHIBITED, "keys:write is needed");
    let reader = a.token(&["keys:read", "keys:write"]).await;
    let refused = a
        .unwrap_as(
            &a.peer,
            &reader,
            oaep(),
            private.handle,
            wrapped.clone(),
            secret_template(true, b"imported"),
        )
        .await;
    assert_eq!(rv(&refused), CKR_ACTION_PROHIBITED, "keys:use is needed");
    let session = a
        .unwrap_as(
            &a.peer,
            &user,
            oaep(),
            private.handle,
            wrapped.clone(),
            secret_template(false, b"session"),
        )
        .await;
    assert!(matches!(session, Reply::Object(_)), "{session:?}");

    let writer = a.token(&["keys:use", "keys:write"]).await;
    let imported = a
        .unwrap_as(
            &a.peer,
            &writer,
            oaep(),
            private.handle,
            wrapped,
            secret_template(true, b"imported"),
        )
        .await;
    let Reply::Object(imported) = imported else {
        panic!("unwrap: {imported:?}")
    };
    assert!(matches!(imported.handle, ObjectRef::Key { .. }));
    for (kind, value) in [
        (CKA_TOKEN, true),
        (CKA_SENSITIVE, true),
        (CKA_EXTRACTABLE, false),
        (CKA_LOCAL, false),
        (CKA_ALWAYS_SENSITIVE, false),
        (CKA_NEVER_EXTRACTABLE, false),
    ] {
        assert_eq!(
            get(&imported, kind),
            Some(&AttrValue::Bool(value)),
            "{kind:#x}"
        );
    }
    assert_eq!(
        get(&imported, CKA_KEY_GEN_MECHANISM),
        Some(&AttrValue::Ulong(CK_UNAVAILABLE_INFORMATION))
    );

    // A token key outlives the library instance that made it.
    forget_instance(&a.core, &a.peer.instance);
    let other = peer(9);
    let found = a
        .find(
            &other,
            vec![u(CKA_CLASS, CKO_SECRET_KEY), bytes(CKA_LABEL, b"imported")],
        )
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].handle, imported.handle);
    let sealed = a.encrypt_as(&other, found[0].handle, 3, b"kept").await;
    assert_eq!(open_outside(&SECRET, 3, &sealed), b"kept");

    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["request"]["path"] == "pkcs11/C_UnwrapKey" && e["type"] == "response"),
        "{text}"
    );
}

/// The encoded ML-KEM-768 public key of an appliance key pair, and the pair.
async fn ml_kem_pair(a: &Appliance) -> (Vec<u8>, Object, Object) {
    let pair = a
        .call(
            Function::C_GenerateKeyPair,
            Op::GenerateKeyPair {
                mechanism: mechanism(CKM_ML_KEM_KEY_PAIR_GEN),
                public: vec![u(CKA_PARAMETER_SET, CKP_ML_KEM_768), b(CKA_TOKEN, true)],
                private: Vec::new(),
            },
        )
        .await;
    let Reply::KeyPair { public, private } = pair else {
        panic!("ml-kem: {pair:?}")
    };
    let Some(AttrValue::Bytes(value)) = get(&public, CKA_VALUE) else {
        panic!("no CKA_VALUE on the public key")
    };
    (value.clone(), public, private)
}

fn kem_template(token: bool) -> Vec<Attribute> {
    vec![
        u(CKA_CLASS, CKO_SECRET_KEY),
        u(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        u(CKA_VALUE_LEN, 32),
        b(CKA_TOKEN, token),
    ]
}

#[tokio::test]
async fn ml_kem_decapsulates_a_secret_encapsulated_outside() {
    use ml_kem::kem::Encapsulate;
    use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
    type Ek = <MlKem768 as KemCore>::EncapsulationKey;

    let a = appliance().await;
    let (public_value, _, private) = ml_kem_pair(&a).await;
    let encoded = ml_kem::Encoded::<Ek>::try_from(public_value.as_slice()).expect("1184 bytes");
    let (ct, shared) = Ek::from_bytes(&encoded)
        .encapsulate(&mut rand::rngs::OsRng)
        .expect("encapsulate");
    let decapsulated = a
        .call(
            Function::C_DecapsulateKey,
            Op::Decapsulate {
                mechanism: mechanism(CKM_ML_KEM),
                key: private.handle,
                ciphertext: ct.to_vec(),
                template: kem_template(false),
            },
        )
        .await;
    let Reply::Object(key) = decapsulated else {
        panic!("decapsulate: {decapsulated:?}")
    };
    assert!(matches!(key.handle, ObjectRef::Session { .. }));
    let sealed = a.encrypt_as(&a.peer, key.handle, 5, b"post-quantum").await;
    assert_eq!(open_outside(&shared, 5, &sealed), b"post-quantum");

    let short = a
        .call(
            Function::C_DecapsulateKey,
            Op::Decapsulate {
                mechanism: mechanism(CKM_ML_KEM),
                key: private.handle,
                ciphertext: vec![0; 100],
                template: kem_template(false),
            },
        )
        .await;
    assert_eq!(rv(&short), CKR_ENCRYPTED_DATA_LEN_RANGE);
}

#[tokio::test]
async fn ml_kem_encapsulates_to_an_appliance_key() {
    let a = appliance().await;
    let (_, public, private) = ml_kem_pair(&a).await;
    let encapsulated = a
        .call(
            Function::C_EncapsulateKey,
            Op::Encapsulate {
                mechanism: mechanism(CKM_ML_KEM),
                key: public.handle,
                template: kem_template(false),
            },
        )
        .await;
    let Reply::Encapsulated { ciphertext, key } = encapsulated else {
        panic!("encapsulate: {encapsulated:?}")
    };
    assert_eq!(ciphertext.len(), 1088);
    // The private key never leaves the appliance: the receiving side decapsulates there
    // too, into a token key, and what one key seals the other opens.
    let decapsulated = a
        .call(
            Function::C_DecapsulateKey,
            Op::Decapsulate {
                mechanism: mechanism(CKM_ML_KEM),
                key: private.handle,
                ciphertext,
                template: kem_template(true),
            },
        )
        .await;
    let Reply::Object(received) = decapsulated else {
        panic!("decapsulate: {decapsulated:?}")
    };
    assert!(matches!(received.handle, ObjectRef::Key { .. }));
    let sealed = a.encrypt_as(&a.peer, key.handle, 7, b"both sides").await;
    let opened = a
        .call(
            Function::C_Decrypt,
            Op::Decrypt {
                key: received.handle,
                mechanism: gcm(7),
                data: sealed,
            },
        )
        .await;
    assert!(matches!(opened, Reply::Secret(p) if p.as_slice() == b"both sides"));

    let wrong_object = a
        .call(
            Function::C_EncapsulateKey,
            Op::Encapsulate {
                mechanism: mechanism(CKM_ML_KEM),
                key: private.handle,
                template: kem_template(false),
            },
        )
        .await;
    assert_eq!(rv(&wrong_object), CKR_KEY_FUNCTION_NOT_PERMITTED);

    let info = token_info(&a.core);
    let flags = |kind| {
        info.mechanisms
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.flags)
            .unwrap_or_else(|| panic!("{kind:#x} listed"))
    };
    assert_eq!(flags(CKM_ML_KEM), CKF_ENCAPSULATE | CKF_DECAPSULATE);
    for kind in [CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP, CKM_RSA_PKCS_OAEP] {
        assert_eq!(flags(kind) & CKF_UNWRAP, CKF_UNWRAP, "{kind:#x}");
        assert_eq!(flags(kind) & CKF_WRAP, 0, "{kind:#x}");
    }
}

#[tokio::test]
async fn session_keys_are_generated_for_one_instance_and_never_stored() {
    let a = appliance().await;
    let pair = a
        .call(
            Function::C_GenerateKeyPair,
            Op::GenerateKeyPair {
                mechanism: mechanism(CKM_EC_KEY_PAIR_GEN),
                public: vec![bytes(CKA_EC_PARAMS, P256), b(CKA_TOKEN, false)],
                private: vec![b(CKA_TOKEN, false), bytes(CKA_LABEL, b"ephemeral")],
            },
        )
        .await;
    let Reply::KeyPair { public, private } = pair else {
        panic!("session pair: {pair:?}")
    };
    assert!(matches!(private.handle, ObjectRef::Session { .. }));
    assert_eq!(get(&private, CKA_TOKEN), Some(&AttrValue::Bool(false)));
    assert_eq!(get(&private, CKA_LOCAL), Some(&AttrValue::Bool(true)));
    assert_eq!(
        get(&private, CKA_LABEL),
        Some(&AttrValue::Bytes(b"ephemeral".to_vec()))
    );
    let sign = || Op::Sign {
        key: private.handle,
        mechanism: mechanism(CKM_ECDSA_SHA256),
        data: b"message".to_vec(),
    };
    let (mine, other) = (peer(1), peer(2));
    let Reply::Bytes(signature) = a
        .call_as(&mine, Some(&a.root), Function::C_Sign, sign())
        .await
    else {
        panic!("a session key signs")
    };
    let verified = a
        .call(
            Function::C_Verify,
            Op::Verify {
                key: public.handle,
                mechanism: mechanism(CKM_ECDSA_SHA256),
                data: b"message".to_vec(),
                signature,
            },
        )
        .await;
    assert_eq!(rv(&verified), CKR_OK);
    // Another library instance neither finds nor uses it.
    let elsewhere = a
        .call_as(&other, Some(&a.root), Function::C_Sign, sign())
        .await;
    assert_ne!(rv(&elsewhere), CKR_OK);
    assert!(a
        .find(&other, vec![bytes(CKA_LABEL, b"ephemeral")])
        .await
        .is_empty());
    // Not a managed key: another instance finds no object at all.
    assert!(a.find(&other, Vec::new()).await.is_empty());

    // An AES session key encrypts, decrypts and unwraps.
    let aes = a
        .call(
            Function::C_GenerateKey,
            Op::GenerateKey {
                mechanism: mechanism(CKM_AES_KEY_GEN),
                template: vec![u(CKA_VALUE_LEN, 32)],
            },
        )
        .await;
    let Reply::Object(aes) = aes else {
        panic!("session aes: {aes:?}")
    };
    assert_eq!(get(&aes, CKA_TOKEN), Some(&AttrValue::Bool(false)));
    let cbc = Mechanism {
        kind: CKM_AES_CBC_PAD,
        params: Params::Iv(vec![3; 16]),
    };
    let Reply::Bytes(sealed) = a
        .call(
            Function::C_Encrypt,
            Op::Encrypt {
                key: aes.handle,
                mechanism: cbc.clone(),
                data: b"plaintext".to_vec().into(),
            },
        )
        .await
    else {
        panic!("a session AES key encrypts")
    };
    let opened = a
        .call(
            Function::C_Decrypt,
            Op::Decrypt {
                key: aes.handle,
                mechanism: cbc,
                data: sealed,
            },
        )
        .await;
    assert!(matches!(opened, Reply::Secret(p) if p.as_slice() == b"plaintext"));

    forget_instance(&a.core, &a.peer.instance);
    let gone = a
        .call_as(&mine, Some(&a.root), Function::C_Sign, sign())
        .await;
    assert_ne!(rv(&gone), CKR_OK);
}
