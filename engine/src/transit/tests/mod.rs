//! Unit tests of the transit engine over a real barrier on in-memory storage.

mod backup;
mod batch;
mod encryption;
mod export;
mod import;
mod keys;
mod rewrap_props;
mod signing;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hsm_bridge::ShamirRoot;

use super::*;
use crate::barrier::Barrier;
use crate::storage::{MemoryBackend, Storage};

pub(super) const PREFIX: &str = "logical/transit-test/";

/// A barrier, initialised and unsealed, over fresh in-memory storage.
pub(super) async fn barrier() -> Arc<Barrier> {
    let storage = Storage::new(Arc::new(MemoryBackend::new()));
    let barrier = Arc::new(Barrier::new(storage));
    let (root, _) = ShamirRoot::generate(1, 1).unwrap();
    barrier.initialize(&root).await.unwrap();
    barrier
}

/// An engine on `barrier` that accepts auto-rotation periods from one second.
pub(super) fn engine_on(barrier: &Arc<Barrier>) -> TransitEngine {
    TransitEngine::new(
        barrier.clone(),
        PREFIX.into(),
        TransitSettings {
            min_auto_rotate_period: 1,
            ..Default::default()
        },
    )
}

pub(super) async fn engine() -> TransitEngine {
    engine_on(&barrier().await)
}

pub(super) async fn create(e: &TransitEngine, name: &str, kind: KeyType) -> Arc<Key> {
    let (key, created) = e
        .create(
            name,
            CreateKey {
                kind,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(created);
    key
}

pub(super) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(super) fn unb64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

pub(super) fn pt_item(plaintext: &[u8]) -> CipherItem {
    CipherItem {
        plaintext: Some(b64(plaintext)),
        ..Default::default()
    }
}

pub(super) fn ct_item(ciphertext: &str) -> CipherItem {
    CipherItem {
        ciphertext: Some(ciphertext.to_string()),
        ..Default::default()
    }
}

/// Encrypts one plaintext through the engine's request path.
pub(super) async fn encrypt_one(e: &TransitEngine, name: &str, plaintext: &[u8]) -> Encrypted {
    let (mut results, _) = e
        .encrypt(name, &[pt_item(plaintext)], None, false)
        .await
        .unwrap();
    results.remove(0).unwrap()
}

/// Decrypts one ciphertext through the engine's request path.
pub(super) async fn decrypt_one(
    e: &TransitEngine,
    name: &str,
    ciphertext: &str,
) -> ItemResult<Vec<u8>> {
    let mut results = e.decrypt(name, &[ct_item(ciphertext)]).await.unwrap();
    results.remove(0).map(|p| unb64(&p))
}
