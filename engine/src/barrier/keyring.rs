//! The keyring: every barrier key ever made, by term, and which one encrypts new values.
//! Old terms stay so values written under them remain readable after `sys/rotate`.

use std::collections::BTreeMap;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::XChaCha20Poly1305;
use hsm_bridge::fill_random;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::EngineError;

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct StoredTerm {
    term: u32,
    #[zeroize(skip)]
    installed: i64,
    key: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active: u32,
    terms: Vec<StoredTerm>,
}

struct Term {
    installed: OffsetDateTime,
    cipher: XChaCha20Poly1305,
    key: Zeroizing<[u8; 32]>,
}

pub struct Keyring {
    active: u32,
    terms: BTreeMap<u32, Term>,
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub install_time: OffsetDateTime,
}

fn new_term(installed: OffsetDateTime, key: Zeroizing<[u8; 32]>) -> Term {
    Term {
        installed,
        cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key[..])),
        key,
    }
}

impl Keyring {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(key.as_mut());
        let mut terms = BTreeMap::new();
        terms.insert(1, new_term(OffsetDateTime::now_utc(), key));
        Keyring { active: 1, terms }
    }

    pub fn rotated(&self) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        fill_random(key.as_mut());
        let mut terms: BTreeMap<u32, Term> = self
            .terms
            .iter()
            .map(|(t, term)| (*t, new_term(term.installed, term.key.clone())))
            .collect();
        let next = self.active + 1;
        terms.insert(next, new_term(OffsetDateTime::now_utc(), key));
        Keyring {
            active: next,
            terms,
        }
    }

    pub(super) fn active(&self) -> (u32, &XChaCha20Poly1305) {
        // `active` always names a term: both constructors and `decode` guarantee it.
        let term = &self.terms[&self.active];
        (self.active, &term.cipher)
    }

    pub(super) fn cipher(&self, term: u32) -> Option<&XChaCha20Poly1305> {
        self.terms.get(&term).map(|t| &t.cipher)
    }

    pub fn status(&self) -> KeyStatus {
        KeyStatus {
            term: self.active,
            install_time: self.terms[&self.active].installed,
        }
    }

    /// Every barrier key, for tests that prove none of them reaches the disk.
    pub fn key_bytes(&self) -> Vec<Zeroizing<Vec<u8>>> {
        self.terms
            .values()
            .map(|t| Zeroizing::new(t.key.to_vec()))
            .collect()
    }

    pub(super) fn encode(&self) -> Result<Zeroizing<Vec<u8>>, EngineError> {
        let stored = StoredKeyring {
            active: self.active,
            terms: self
                .terms
                .iter()
                .map(|(t, term)| StoredTerm {
                    term: *t,
                    installed: term.installed.unix_timestamp(),
                    key: *term.key,
                })
                .collect(),
        };
        serde_json::to_vec(&stored)
            .map(Zeroizing::new)
            .map_err(EngineError::internal)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EngineError> {
        let stored: StoredKeyring = serde_json::from_slice(bytes)
            .map_err(|_| EngineError::Corrupt(super::KEYRING_PATH.into()))?;
        let mut terms = BTreeMap::new();
        for t in &stored.terms {
            let installed = OffsetDateTime::from_unix_timestamp(t.installed)
                .map_err(|_| EngineError::Corrupt(super::KEYRING_PATH.into()))?;
            terms.insert(t.term, new_term(installed, Zeroizing::new(t.key)));
        }
        if !terms.contains_key(&stored.active) {
            return Err(EngineError::Corrupt(super::KEYRING_PATH.into()));
        }
        Ok(Keyring {
            active: stored.active,
            terms,
        })
    }
}
