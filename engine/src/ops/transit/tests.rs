//! Transit operations through the entry point: Vault's upsert on encrypt, one item
//! against a batch, and the key's life cycle. The ACL's part is tested at the door.

use std::sync::Arc;

use serde_json::Map;

use super::*;
use crate::core::Core;
use crate::ops::{Audited, AuditedResponse, Request};
use crate::storage::{MemoryBackend, Storage};
use crate::transit::{ConfigUpdate, CreateKey, Encrypted};

/// The test door: audit is off, nothing to record.
struct Outcome<T>(Result<T>);

impl<T> Audited for Outcome<T> {
    fn audited(&self) -> AuditedResponse<'_> {
        AuditedResponse {
            status: 200,
            body: None,
            error: None,
        }
    }
}

struct Appliance {
    core: Arc<Core>,
    root: String,
}

impl Appliance {
    async fn new() -> Appliance {
        let core = Core::new(Storage::new(Arc::new(MemoryBackend::new())));
        let root = core.dev_setup(None).await.expect("dev setup").root_token;
        Appliance {
            root: root.to_string(),
            core,
        }
    }

    fn mount(&self) -> MountRef {
        self.core
            .route("transit/keys")
            .expect("transit/ is mounted")
            .0
    }

    async fn apply<O: Op>(
        &self,
        token: &str,
        path: &str,
        verb: Operation,
        op: O,
    ) -> Result<O::Output>
    where
        O::Output: Send,
    {
        let params = Map::new();
        let req = Request {
            token,
            remote: None,
            path,
            operation: verb,
            params: &params,
        };
        self.core.apply(&req, op, Outcome).await.0
    }

    async fn create_key(&self, key: &str) {
        let op = TransitKeyCreate {
            mount: self.mount(),
            key: key.into(),
            spec: Ok(CreateKey::default()),
        };
        let path = format!("transit/keys/{key}");
        self.apply(&self.root, &path, Operation::Update, op)
            .await
            .expect("key created");
    }
}

fn plaintexts(texts: &[&str], batch: bool) -> Items<CipherItem> {
    let items = texts
        .iter()
        .enumerate()
        .map(|(i, p)| CipherItem {
            plaintext: Some(p.to_string()),
            reference: format!("r{i}"),
            ..Default::default()
        })
        .collect();
    Items { items, batch }
}

fn encrypt(a: &Appliance, key: &str, items: Items<CipherItem>) -> TransitEncrypt {
    TransitEncrypt {
        mount: a.mount(),
        key: key.into(),
        request: Ok(EncryptRequest {
            items,
            key_type: None,
            convergent: false,
        }),
    }
}

/// An encrypt whose existence check saw no key, though another request made it before
/// the encrypt ran.
struct Raced(TransitEncrypt);

impl Op for Raced {
    type Output = Encryption;

    fn access(&self) -> Access {
        self.0.access()
    }

    fn exists(&self, _core: &Core) -> Result<bool> {
        Ok(false)
    }

    async fn run(self, cx: Context<'_>) -> Result<Encryption> {
        self.0.run(cx).await
    }
}

const WARNING: &str =
    "Attempted creation of the key during the encrypt operation, but it was created beforehand";

#[tokio::test]
async fn encrypt_warns_when_its_create_found_the_key_made() {
    let a = Appliance::new().await;
    let path = "transit/encrypt/k";
    let op = encrypt(&a, "k", plaintexts(&["aGk="], false));
    let e = a
        .apply(&a.root, path, Operation::Update, op)
        .await
        .expect("a new key is created");
    assert!(e.warnings.is_empty());
    assert!(matches!(
        e.answered,
        Answered::One(Encrypted { key_version: 1, .. })
    ));

    a.create_key("raced").await;
    let op = Raced(encrypt(&a, "raced", plaintexts(&["aGk="], false)));
    let e = a
        .apply(&a.root, "transit/encrypt/raced", Operation::Update, op)
        .await
        .expect("encrypted");
    assert_eq!(e.warnings, vec![WARNING.to_string()]);
}

#[tokio::test]
async fn one_item_fails_the_request_and_a_batch_answers_each_item() {
    let a = Appliance::new().await;
    a.create_key("k").await;
    let path = "transit/encrypt/k";
    let op = encrypt(&a, "k", plaintexts(&["not base64!"], false));
    let failed = a.apply(&a.root, path, Operation::Update, op).await;
    assert!(matches!(failed, Err(EngineError::BadRequest(_))));

    let op = encrypt(&a, "k", plaintexts(&["aGk=", "not base64!"], true));
    let e = a
        .apply(&a.root, path, Operation::Update, op)
        .await
        .expect("a batch answers");
    let Answered::Batch(items) = e.answered else {
        panic!("a batch answers per item");
    };
    let references: Vec<_> = items.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(references, ["r0", "r1"]);
    assert!(items[0].result.is_ok());
    assert!(items[1].result.as_ref().is_err_and(|e| e.is_user_error()));
}

#[tokio::test]
async fn keys_are_created_listed_read_rotated_and_trimmed() {
    let a = Appliance::new().await;
    a.create_key("k").await;
    let keys = a
        .apply(
            &a.root,
            "transit/keys",
            Operation::List,
            TransitKeyList { mount: a.mount() },
        )
        .await
        .expect("listed");
    assert_eq!(keys, ["k"]);
    let rotate = TransitKeyRotate {
        mount: a.mount(),
        key: "k".into(),
    };
    a.apply(&a.root, "transit/keys/k/rotate", Operation::Update, rotate)
        .await
        .expect("rotated");
    let config = TransitKeyConfig {
        mount: a.mount(),
        key: "k".into(),
        update: Ok(ConfigUpdate {
            min_decryption_version: Some(2),
            min_encryption_version: Some(2),
            ..Default::default()
        }),
    };
    a.apply(&a.root, "transit/keys/k/config", Operation::Update, config)
        .await
        .expect("configured");
    let trim = TransitKeyTrim {
        mount: a.mount(),
        key: "k".into(),
        min_available_version: Ok(2),
    };
    let d = a
        .apply(&a.root, "transit/keys/k/trim", Operation::Update, trim)
        .await
        .expect("trimmed");
    assert_eq!(d.key.config.min_available_version, 2);
    let read = TransitKeyRead {
        mount: a.mount(),
        key: "missing".into(),
        context: Ok(Vec::new()),
    };
    let missing = a
        .apply(&a.root, "transit/keys/missing", Operation::Read, read)
        .await;
    assert!(matches!(missing, Err(EngineError::NotFound(_))));
}
