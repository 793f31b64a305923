//! The barrier: everything above it reads and writes plaintext, everything below it sees
//! only ciphertext. Each value is sealed with XChaCha20-Poly1305 under the active keyring
//! term, its storage path and term bound in as associated data, so a value moved to
//! another path or relabelled with another term fails to open.

mod cache;
mod keyring;

pub use keyring::{KeyStatus, Keyring};

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::XNonce;
use hsm_bridge::{fill_nonce, fill_random, RootOfTrust};
use parking_lot::RwLock;
use zeroize::Zeroizing;

use crate::bounded_cache::Cached;
use crate::error::EngineError;
use crate::storage::{
    retry_on_conflict, Batch, IsConflict, Op, Storage, StorageError, Transaction,
};
use cache::{Entry, Plain, ReadCache};

/// Where the wrapped keyring lives. It is the one value sealed by the root key rather
/// than by the keyring itself.
pub const KEYRING_PATH: &str = "core/keyring";
const TERM_LEN: usize = 4;
const NONCE_LEN: usize = 24;

pub struct Barrier {
    storage: Arc<Storage>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    /// The wrapped keyring as this barrier last read or wrote it: what a write replacing
    /// the keyring expects to find, so that of two nodes rotating at once one conflicts
    /// instead of dropping the other's new term (and every value written under it).
    wrapped: parking_lot::Mutex<Option<Vec<u8>>>,
    cache: Arc<ReadCache>,
}

/// Writes for one atomic commit, encrypted as they are added.
pub struct BarrierBatch {
    keyring: Arc<Keyring>,
    batch: Batch,
}

impl BarrierBatch {
    pub fn put(&mut self, path: &str, plaintext: &[u8]) -> Result<&mut Self, EngineError> {
        let sealed = seal_value(&self.keyring, path, plaintext)?;
        self.batch.put(path, sealed);
        Ok(self)
    }

    pub fn put_json<T: serde::Serialize>(
        &mut self,
        path: &str,
        value: &T,
    ) -> Result<&mut Self, EngineError> {
        self.put(path, &json_plaintext(value)?)
    }

    pub fn delete(&mut self, path: &str) -> &mut Self {
        self.batch.delete(path);
        self
    }
}

/// A storage transaction in plaintext: reads are decrypted, writes encrypted. Each
/// value's ciphertext carries a fresh nonce, so the ciphertext read serves as its version:
/// any rewrite by another writer, even of the same plaintext, fails the condition.
pub struct BarrierTx<'s> {
    keyring: Arc<Keyring>,
    tx: Transaction<'s>,
    cache: &'s ReadCache,
}

impl BarrierTx<'_> {
    /// Reads `path` and makes its current value a condition of the commit. A cached value
    /// (or absence) carries its ciphertext, which serves as the condition without a
    /// storage read; a stale one fails the commit, which drops it and runs the transaction
    /// again. What storage answers is cached, absence included.
    pub fn get(&mut self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, EngineError> {
        if self.tx.has_seen(path) {
            return match self.tx.get(path)? {
                Some(sealed) => Ok(Some(open_value(&self.keyring, path, &sealed)?)),
                None => Ok(None),
            };
        }
        let epoch = match self.cache.get(path) {
            Cached::Hit(entry) => {
                self.tx.assume(path, entry.sealed().map(<[u8]>::to_vec));
                return Ok(entry.plain().map(|p| Zeroizing::new(p.to_vec())));
            }
            Cached::Miss(epoch) => epoch,
        };
        let sealed = self.tx.get(path)?;
        let plain = remember(self.cache, &self.keyring, epoch, path, sealed)?;
        Ok(plain.map(|p| Zeroizing::new(p.to_vec())))
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
    ) -> Result<Option<T>, EngineError> {
        match self.get(path)? {
            Some(plain) => serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|_| EngineError::Corrupt(path.to_string())),
            None => Ok(None),
        }
    }

    pub fn put(&mut self, path: &str, plaintext: &[u8]) -> Result<&mut Self, EngineError> {
        let sealed = seal_value(&self.keyring, path, plaintext)?;
        self.tx.put(path, sealed);
        Ok(self)
    }

    pub fn put_json<T: serde::Serialize>(
        &mut self,
        path: &str,
        value: &T,
    ) -> Result<&mut Self, EngineError> {
        self.put(path, &json_plaintext(value)?)
    }

    pub fn delete(&mut self, path: &str) -> &mut Self {
        self.tx.delete(path);
        self
    }
}

/// Opens what storage answered for `path` and caches it, absence included, unless a
/// write finished since `epoch`.
fn remember(
    cache: &ReadCache,
    keyring: &Keyring,
    epoch: u64,
    path: &str,
    sealed: Option<Vec<u8>>,
) -> Result<Option<Plain>, EngineError> {
    let Some(sealed) = sealed else {
        cache.insert_if_room(epoch, path, Arc::new(Entry::Absent), 0);
        return Ok(None);
    };
    let plain = Arc::new(open_value(keyring, path, &sealed)?);
    let entry = Arc::new(Entry::Value {
        sealed,
        plain: plain.clone(),
    });
    let size = entry.size();
    cache.insert(epoch, path, entry, size);
    Ok(Some(plain))
}

/// A value's JSON, zeroed when dropped: it may hold secrets.
fn json_plaintext<T: serde::Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, EngineError> {
    Ok(Zeroizing::new(
        serde_json::to_vec(value).map_err(EngineError::internal)?,
    ))
}

/// A new 32-byte secret (a salt, an HMAC key), for [`Barrier::get_or_create`].
pub fn random_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 32]);
    fill_random(&mut secret);
    secret
}

fn aad(path: &str, term: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(path.len() + TERM_LEN);
    aad.extend_from_slice(path.as_bytes());
    aad.extend_from_slice(&term.to_be_bytes());
    aad
}

fn seal_value(keyring: &Keyring, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, EngineError> {
    let (term, cipher) = keyring.active();
    let mut nonce = [0u8; NONCE_LEN];
    fill_nonce(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad(path, term),
            },
        )
        .map_err(|_| EngineError::Internal("barrier encryption failed".into()))?;
    let mut out = Vec::with_capacity(TERM_LEN + NONCE_LEN + ct.len());
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_value(
    keyring: &Keyring,
    path: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EngineError> {
    if sealed.len() < TERM_LEN + NONCE_LEN {
        return Err(EngineError::Corrupt(path.to_string()));
    }
    let (term_bytes, rest) = sealed.split_at(TERM_LEN);
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let term = u32::from_be_bytes([term_bytes[0], term_bytes[1], term_bytes[2], term_bytes[3]]);
    let cipher = keyring
        .cipher(term)
        .ok_or_else(|| EngineError::Corrupt(path.to_string()))?;
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &aad(path, term),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EngineError::Corrupt(path.to_string()))
}

impl Barrier {
    pub fn new(storage: Arc<Storage>) -> Self {
        let cache = Arc::new(cache::read_cache());
        storage
            .invalidations()
            .subscribe(&cache, |cache, prefix| cache.invalidate_prefix(prefix));
        Barrier {
            storage,
            keyring: RwLock::new(None),
            wrapped: parking_lot::Mutex::new(None),
            cache,
        }
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.read().is_none()
    }

    fn keyring(&self) -> Result<Arc<Keyring>, EngineError> {
        self.keyring.read().clone().ok_or(EngineError::Sealed)
    }

    /// Creates the first keyring and stores it wrapped by `root`.
    pub async fn initialize(&self, root: &dyn RootOfTrust) -> Result<(), EngineError> {
        self.store_keyring(root, Keyring::generate(), None).await
    }

    /// Opens the stored keyring with `root`. Fails without changing state if `root` is not
    /// the key that wrapped it.
    pub fn unseal(&self, root: &dyn RootOfTrust) -> Result<(), EngineError> {
        let blob = self
            .storage
            .get(KEYRING_PATH)?
            .ok_or(EngineError::NotInitialized)?;
        let plain = root.unwrap(KEYRING_PATH.as_bytes(), &blob)?;
        let keyring = Keyring::decode(&plain)?;
        self.cache.clear();
        *self.keyring.write() = Some(Arc::new(keyring));
        *self.wrapped.lock() = Some(blob);
        Ok(())
    }

    /// Takes up the keyring another node wrote (a rotation, or a rewrap under a new root
    /// key), while unsealed: values sealed under a term it added open here too, and new
    /// values are sealed under its active term. Does nothing while sealed or when the
    /// stored keyring is the one held.
    pub fn reload_keyring(&self, root: &dyn RootOfTrust) -> Result<(), EngineError> {
        if self.is_sealed() {
            return Ok(());
        }
        // Read and taken up under one lock, as a rotation takes up what it stored: a
        // reload that read an older keyring must not replace a newer one taken up
        // meanwhile, or this node would keep it until the next change.
        let mut wrapped = self.wrapped.lock();
        let Some(blob) = self.storage.get(KEYRING_PATH)? else {
            return Ok(());
        };
        if wrapped.as_deref() == Some(blob.as_slice()) {
            return Ok(());
        }
        let plain = root.unwrap(KEYRING_PATH.as_bytes(), &blob)?;
        let keyring = Keyring::decode(&plain)?;
        *self.keyring.write() = Some(Arc::new(keyring));
        *wrapped = Some(blob);
        Ok(())
    }

    /// Drops the keyring from memory; its keys are zeroized when the last user lets go.
    pub fn seal(&self) {
        self.keyring.write().take();
        self.wrapped.lock().take();
        self.cache.clear();
    }

    /// Adds a keyring term and makes it active. The new keyring replaces the old in one
    /// write, so a crash leaves either the old or the new keyring, never a mix. When
    /// another node replaced the keyring first, this one takes that keyring up and adds
    /// its term to it, so no term is lost.
    pub async fn rotate(&self, root: &dyn RootOfTrust) -> Result<KeyStatus, EngineError> {
        retry_on_conflict(|| async {
            self.reload_keyring(root)?;
            let current = self.keyring()?;
            let next = current.rotated();
            let expected = self.wrapped.lock().clone();
            crate::failpoint::crash_at("keyring:rotate");
            let status = next.status();
            self.store_keyring(root, next, expected).await?;
            crate::failpoint::crash_at("keyring:stored");
            Ok::<_, EngineError>(status)
        })
        .await
    }

    /// Adds the current keyring, wrapped under `root`, to `batch`: seal migration commits
    /// it together with the new seal configuration, so a crash leaves one or the other.
    /// The batch applies only if the stored keyring is still the one held.
    pub fn rewrap_keyring_into(
        &self,
        root: &dyn RootOfTrust,
        batch: &mut Batch,
    ) -> Result<(), EngineError> {
        let current = self.keyring()?;
        let plain = current.encode()?;
        batch
            .check(KEYRING_PATH, self.wrapped.lock().clone())
            .put(KEYRING_PATH, root.wrap(KEYRING_PATH.as_bytes(), &plain)?);
        Ok(())
    }

    /// The whole keyring is one value written in one transaction: a crash (even
    /// `kill -9` in the middle of `sys/rotate`) leaves the old or the new keyring. It is
    /// written only if the stored one is still `expected` (`None`: none yet), and then
    /// held.
    async fn store_keyring(
        &self,
        root: &dyn RootOfTrust,
        keyring: Keyring,
        expected: Option<Vec<u8>>,
    ) -> Result<(), EngineError> {
        let plain = keyring.encode()?;
        let blob = root.wrap(KEYRING_PATH.as_bytes(), &plain)?;
        let mut batch = Batch::new();
        batch
            .check(KEYRING_PATH, expected.clone())
            .put(KEYRING_PATH, blob.clone());
        self.storage.commit(batch).await?;
        let mut wrapped = self.wrapped.lock();
        // Another node may have stored a newer keyring on top of this one, and this node
        // taken it up, between the commit and here: that one stays.
        if *wrapped == expected {
            *self.keyring.write() = Some(Arc::new(keyring));
            *wrapped = Some(blob);
        }
        Ok(())
    }

    pub fn key_status(&self) -> Result<KeyStatus, EngineError> {
        Ok(self.keyring()?.status())
    }

    pub fn get(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>, EngineError> {
        Ok(self
            .get_shared(path)?
            .map(|plain| Zeroizing::new(plain.to_vec())))
    }

    fn get_shared(&self, path: &str) -> Result<Option<Plain>, EngineError> {
        let keyring = self.keyring()?;
        let epoch = match self.cache.get(path) {
            Cached::Hit(entry) => return Ok(entry.plain().cloned()),
            Cached::Miss(epoch) => epoch,
        };
        let sealed = self.storage.get(path)?;
        remember(&self.cache, &keyring, epoch, path, sealed)
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, EngineError> {
        match self.get_shared(path)? {
            Some(plain) => serde_json::from_slice(&plain)
                .map(Some)
                .map_err(|_| EngineError::Corrupt(path.to_string())),
            None => Ok(None),
        }
    }

    /// Keys below `prefix`, with the prefix stripped.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, EngineError> {
        self.keyring()?;
        Ok(self
            .storage
            .list(prefix)?
            .into_iter()
            .map(|k| k[prefix.len()..].to_string())
            .collect())
    }

    pub fn batch(&self) -> Result<BarrierBatch, EngineError> {
        Ok(BarrierBatch {
            keyring: self.keyring()?,
            batch: Batch::new(),
        })
    }

    pub async fn commit(&self, batch: BarrierBatch) -> Result<(), EngineError> {
        self.commit_sealed(batch.batch).await
    }

    /// Runs `f` in a transaction over plaintext and commits what it wrote, atomically and
    /// only if nothing it read changed meanwhile; on such a conflict `f` runs again from
    /// its reads, a bounded number of times, and the last conflict is returned. `f` may
    /// run more than once, so it must not have effects outside the transaction.
    pub async fn transact<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut BarrierTx<'_>) -> Result<T, E>,
        E: From<EngineError> + IsConflict,
    {
        retry_on_conflict(|| {
            let attempt = self.keyring().map(|keyring| {
                let mut tx = BarrierTx {
                    keyring,
                    tx: self.storage.begin(),
                    cache: &self.cache,
                };
                let out = f(&mut tx);
                (out, tx.tx.into_batch())
            });
            async move {
                let (out, batch) = attempt?;
                let out = out?;
                self.commit_sealed(batch).await?;
                Ok(out)
            }
        })
        .await
    }

    /// Commits ciphertext, then drops the plaintext it replaces from the cache.
    async fn commit_sealed(&self, batch: Batch) -> Result<(), EngineError> {
        let paths: Vec<String> = batch
            .ops
            .iter()
            .map(|op| match op {
                Op::Put(path, _) | Op::Delete(path) => path.clone(),
            })
            .collect();
        let result = self.storage.commit(batch).await;
        self.cache.invalidate_all(paths.iter().map(String::as_str));
        // A condition taken from the cache that no longer holds: drop the stale value so
        // the retry reads storage.
        if let Err(StorageError::Conflict { key }) = &result {
            self.cache.invalidate_all([key.as_str()]);
        }
        result?;
        Ok(())
    }

    /// The secret at `path`, made by `make` and stored if there is none yet. Of nodes
    /// making it at once, one write commits and the others take up its value, so every
    /// node ends up with the same secret (a salt that differed would make one node's
    /// token HMACs unknown to another).
    pub async fn get_or_create(
        &self,
        path: &str,
        mut make: impl FnMut() -> Zeroizing<Vec<u8>>,
    ) -> Result<Zeroizing<Vec<u8>>, EngineError> {
        self.transact(|tx| {
            if let Some(existing) = tx.get(path)? {
                return Ok(existing);
            }
            let made = make();
            tx.put(path, &made)?;
            Ok::<_, EngineError>(made)
        })
        .await
    }

    pub async fn put_json<T: serde::Serialize>(
        &self,
        path: &str,
        value: &T,
    ) -> Result<(), EngineError> {
        let mut batch = self.batch()?;
        batch.put_json(path, value)?;
        self.commit(batch).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), EngineError> {
        let mut batch = self.batch()?;
        batch.delete(path);
        self.commit(batch).await
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;
    use hsm_bridge::ShamirRoot;

    fn barrier() -> (Barrier, Arc<MemoryBackend>, ShamirRoot) {
        let mem = Arc::new(MemoryBackend::new());
        let storage = Storage::new(mem.clone());
        let (root, _) = ShamirRoot::generate(3, 2).unwrap();
        (Barrier::new(storage), mem, root)
    }

    #[tokio::test]
    async fn values_are_ciphertext_and_bound_to_their_path() {
        let (b, mem, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.put_json("a/b", &"top secret value").await.unwrap();
        assert_eq!(
            b.get_json::<String>("a/b").unwrap().unwrap(),
            "top secret value"
        );
        for v in mem.raw_values() {
            assert!(!v.windows(10).any(|w| w == b"top secret"));
        }
        // The same ciphertext under another path does not open.
        let sealed = crate::storage::Backend::get(mem.as_ref(), "a/b")
            .unwrap()
            .unwrap();
        let mut batch = Batch::new();
        batch.put("a/c", sealed);
        b.storage().commit(batch).await.unwrap();
        assert!(matches!(b.get("a/c"), Err(EngineError::Corrupt(_))));
    }

    #[tokio::test]
    async fn rotation_keeps_old_values_readable() {
        let (b, _, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.put_json("old", &1).await.unwrap();
        let status = b.rotate(&root).await.unwrap();
        assert_eq!(status.term, 2);
        b.put_json("new", &2).await.unwrap();
        b.seal();
        assert!(matches!(b.get("old"), Err(EngineError::Sealed)));
        b.unseal(&root).unwrap();
        assert_eq!(b.get_json::<i32>("old").unwrap(), Some(1));
        assert_eq!(b.get_json::<i32>("new").unwrap(), Some(2));
        assert_eq!(b.key_status().unwrap().term, 2);
    }

    #[tokio::test]
    async fn a_transaction_over_plaintext_runs_again_after_another_writer() {
        let (b, mem, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.put_json("n", &1).await.unwrap();
        let mut attempts = 0;
        let written = b
            .transact(|tx| {
                attempts += 1;
                let n: Option<i32> = tx.get_json("n")?;
                if attempts == 1 {
                    let mut other = Batch::new();
                    other.delete("n");
                    mem.write_as_other_node(&other);
                }
                let next = n.unwrap_or(0) + 10;
                tx.put_json("n", &next)?.put_json("m", &next)?;
                Ok::<_, EngineError>(next)
            })
            .await
            .unwrap();
        assert_eq!((attempts, written), (2, 10));
        assert_eq!(b.get_json::<i32>("n").unwrap(), Some(10));
        assert_eq!(b.get_json::<i32>("m").unwrap(), Some(10));
        // Only ciphertext reached storage. Not a search for the bytes "10": a random
        // ciphertext of n bytes holds any two given bytes with a chance of about n/65536.
        for v in mem.raw_values() {
            assert!(
                serde_json::from_slice::<i32>(&v).is_err(),
                "plaintext stored"
            );
        }
    }

    #[tokio::test]
    async fn a_transaction_reads_through_the_cache_and_a_stale_entry_costs_one_retry() {
        use crate::storage::Backend;
        let (b, mem, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.put_json("n", &1).await.unwrap();
        let first = mem.get("n").unwrap().unwrap();
        b.put_json("n", &2).await.unwrap();
        assert_eq!(b.get_json::<i32>("n").unwrap(), Some(2), "now cached");
        // Another writer puts the first value back and its notification is lost: the
        // cache holds 2, storage 1.
        let mut restore = Batch::new();
        restore.put("n", first);
        mem.apply(&[restore]).unwrap();
        let mut seen = Vec::new();
        let written = b
            .transact(|tx| {
                let n: i32 = tx.get_json("n")?.unwrap_or(0);
                seen.push(n);
                tx.put_json("n", &(n + 10))?;
                Ok::<_, EngineError>(n + 10)
            })
            .await
            .unwrap();
        // The cached 2 failed its condition; the retry read storage's 1.
        assert_eq!(seen, vec![2, 1]);
        assert_eq!(written, 11);
        assert_eq!(b.get_json::<i32>("n").unwrap(), Some(11));
    }

    #[tokio::test]
    async fn an_absent_path_is_remembered_until_it_is_written_or_raised() {
        use crate::storage::Backend;
        let (b, mem, root) = barrier();
        b.initialize(&root).await.unwrap();
        async fn read_cfg(b: &Barrier) -> Vec<Option<i32>> {
            let mut seen = Vec::new();
            b.transact(|tx| {
                let cfg: Option<i32> = tx.get_json("cfg")?;
                seen.push(cfg);
                tx.put_json("out", &cfg.unwrap_or(0))?;
                Ok::<_, EngineError>(())
            })
            .await
            .unwrap();
            seen
        }
        assert_eq!(read_cfg(&b).await, vec![None]);
        // Written behind the barrier's back with no notification: the cached absence
        // answers, fails its condition at commit, and the retry reads storage.
        let mut other = b.batch().unwrap();
        other.put_json("cfg", &7).unwrap();
        mem.apply(&[other.batch]).unwrap();
        assert_eq!(read_cfg(&b).await, vec![None, Some(7)]);
        assert_eq!(b.get_json::<i32>("out").unwrap(), Some(7));
        // Another node's delete, raised, drops the cached value; the absence read next is
        // cached again, and raised again when another node writes the path.
        let mut gone = Batch::new();
        gone.delete("cfg");
        mem.write_as_other_node(&gone);
        assert_eq!(read_cfg(&b).await, vec![None]);
        let mut other = b.batch().unwrap();
        other.put_json("cfg", &8).unwrap();
        mem.write_as_other_node(&other.batch);
        assert_eq!(read_cfg(&b).await, vec![Some(8)]);
        // A plain read's absence serves the next transaction too, and a write on this
        // node drops it.
        assert_eq!(b.get_json::<i32>("later").unwrap(), None);
        let mut behind = b.batch().unwrap();
        behind.put_json("later", &9).unwrap();
        mem.apply(&[behind.batch]).unwrap();
        assert_eq!(b.get_json::<i32>("later").unwrap(), None, "cached absence");
        b.put_json("later", &10).await.unwrap();
        assert_eq!(b.get_json::<i32>("later").unwrap(), Some(10));
    }

    #[tokio::test]
    async fn the_plaintext_cache_drops_what_another_writer_changed() {
        let (b, mem, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.put_json("a/x", &1).await.unwrap();
        b.put_json("b/y", &2).await.unwrap();
        // Both now cached.
        assert_eq!(b.get_json::<i32>("a/x").unwrap(), Some(1));
        assert_eq!(b.get_json::<i32>("b/y").unwrap(), Some(2));
        let mut other = Batch::new();
        other.delete("a/x").delete("b/y");
        // Only "a/x" is raised: "b/y" shows that the cache, not storage, answers.
        crate::storage::Backend::apply(mem.as_ref(), &[other]).unwrap();
        b.storage().invalidations().raise("a/");
        assert_eq!(b.get_json::<i32>("a/x").unwrap(), None);
        assert_eq!(b.get_json::<i32>("b/y").unwrap(), Some(2));
        b.storage().invalidations().raise("b/y");
        assert_eq!(b.get_json::<i32>("b/y").unwrap(), None);
    }

    #[tokio::test]
    async fn another_root_key_cannot_unseal() {
        let (b, _, root) = barrier();
        b.initialize(&root).await.unwrap();
        b.seal();
        let (other, _) = ShamirRoot::generate(3, 2).unwrap();
        assert!(b.unseal(&other).is_err());
        assert!(b.is_sealed());
    }
}
