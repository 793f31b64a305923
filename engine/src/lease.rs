//! Leases: work that must run on one node at a time across nodes sharing a keyspace
//! (the periodic tasks, an init). A lease is one key holding its holder's id and its
//! expiry, taken and renewed with conditional writes, so of two nodes racing for it one
//! write commits and the other conflicts. A holder that stops renewing (killed, cut off)
//! loses it when it expires, and another node takes it over.
//!
//! Leases live in the clear below [`PREFIX`]: an init takes one while sealed, and they
//! hold nothing secret. Expiry is wall-clock time, so the nodes' clocks must agree to
//! well within a lease's TTL (NTP does).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::storage::{Batch, Storage, StorageError};

pub const PREFIX: &str = "core/lease/";

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub holder: String,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

impl Holding {
    fn live_at(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }
}

/// What [`Lease::acquire`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This node holds the lease until at least the renewal point.
    Held,
    /// Another node holds it.
    HeldBy(Holding),
}

#[derive(Clone)]
pub struct Lease {
    storage: Arc<Storage>,
    key: String,
    holder: String,
    ttl: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Lease {
    /// The lease `name`, taken as `holder` for `ttl` at a time.
    pub fn new(storage: Arc<Storage>, name: &str, holder: &str, ttl: Duration) -> Self {
        Lease {
            storage,
            key: format!("{PREFIX}{name}"),
            holder: holder.to_string(),
            ttl,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease as stored, and its raw value (the condition of a write replacing it).
    fn read(&self) -> Result<(Option<Holding>, Option<Vec<u8>>), StorageError> {
        let raw = self.storage.get(&self.key)?;
        // An unreadable record is treated as no holder: the write replacing it is still
        // conditional on those exact bytes.
        let holding = raw.as_deref().and_then(|b| serde_json::from_slice(b).ok());
        Ok((holding, raw))
    }

    /// Who holds the lease now, if anyone (an expired holding counts as none).
    pub fn holder(&self) -> Result<Option<Holding>, StorageError> {
        let now = now_ms();
        Ok(self.read()?.0.filter(|h| h.live_at(now)))
    }

    /// Takes the lease if it is free or expired, renews it if this node holds it and a
    /// third of its TTL has passed; otherwise says who holds it. A write that loses a
    /// race to another node answers `HeldBy` that node.
    pub async fn acquire(&self) -> Result<Acquired, StorageError> {
        let now = now_ms();
        let (holding, raw) = self.read()?;
        let ttl_ms = self.ttl.as_millis() as u64;
        match &holding {
            Some(h) if h.holder == self.holder && h.expires_ms > now + ttl_ms * 2 / 3 => {
                return Ok(Acquired::Held);
            }
            // No other node can take it from us there: renewing would only write.
            Some(h) if h.holder == self.holder && !self.storage.shared() => {
                return Ok(Acquired::Held);
            }
            // On a store only this process can write, another holder is a previous run
            // of this process, which cannot be running any more.
            Some(h) if h.holder != self.holder && h.live_at(now) && self.storage.shared() => {
                return Ok(Acquired::HeldBy(h.clone()));
            }
            _ => {}
        }
        let next = Holding {
            holder: self.holder.clone(),
            expires_ms: now + ttl_ms,
        };
        let mut batch = Batch::new();
        batch.check(&self.key, raw).put(
            &self.key,
            serde_json::to_vec(&next).map_err(|e| StorageError::Io {
                context: "encoding a lease",
                source: e.into(),
            })?,
        );
        match self.storage.commit(batch).await {
            Ok(()) => Ok(Acquired::Held),
            Err(StorageError::Conflict { .. }) => match self.read()?.0 {
                Some(h) if h.holder != self.holder => Ok(Acquired::HeldBy(h)),
                // Gone again, or ours after all: the next attempt settles it.
                _ => Ok(Acquired::HeldBy(Holding {
                    holder: String::new(),
                    expires_ms: now,
                })),
            },
            Err(e) => Err(e),
        }
    }

    /// Renews the lease, held now, every third of its TTL until the guard is dropped, so
    /// work that runs longer than the TTL keeps it while a holder that dies loses it
    /// within one TTL. Drop the guard before releasing the lease, or a renewal may take
    /// it again.
    pub fn keep_renewed(&self) -> Renewal {
        let lease = self.clone();
        Renewal(tokio::spawn(async move {
            let mut every = tokio::time::interval(lease.ttl / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                match lease.acquire().await {
                    Ok(Acquired::Held) => {}
                    Ok(Acquired::HeldBy(h)) => {
                        tracing::warn!(lease = %lease.key, holder = %h.holder, "the lease expired before it was renewed, and another node took it");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(lease = %lease.key, error = %e, "could not renew the lease; trying again");
                    }
                }
            }
        }))
    }

    /// Gives the lease up if this node holds it, so another node takes it at once rather
    /// than after it expires.
    pub async fn release(&self) -> Result<(), StorageError> {
        let (holding, raw) = self.read()?;
        if holding.is_none_or(|h| h.holder != self.holder) {
            return Ok(());
        }
        let mut batch = Batch::new();
        batch.check(&self.key, raw).delete(&self.key);
        match self.storage.commit(batch).await {
            // Taken over meanwhile: it was not ours to release any more.
            Err(StorageError::Conflict { .. }) => Ok(()),
            other => other,
        }
    }
}

/// Keeps a lease renewed while it lives (see [`Lease::keep_renewed`]).
pub struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::shared_memory::SharedKeyspace;
    use crate::storage::MemoryBackend;

    fn two_nodes(ttl: Duration) -> (Lease, Lease) {
        let keyspace = SharedKeyspace::new();
        let a = Storage::new(keyspace.node());
        let b = Storage::new(keyspace.node());
        (
            Lease::new(a, "work", "a", ttl),
            Lease::new(b, "work", "b", ttl),
        )
    }

    #[tokio::test]
    async fn one_node_holds_it_until_it_releases() {
        let (a, b) = two_nodes(Duration::from_secs(60));
        assert_eq!(a.acquire().await.unwrap(), Acquired::Held);
        assert!(matches!(b.acquire().await.unwrap(), Acquired::HeldBy(h) if h.holder == "a"));
        assert_eq!(a.acquire().await.unwrap(), Acquired::Held, "renewed");
        // Releasing what another node holds does nothing.
        b.release().await.unwrap();
        assert_eq!(a.holder().unwrap().map(|h| h.holder).as_deref(), Some("a"));
        a.release().await.unwrap();
        assert_eq!(a.holder().unwrap(), None);
        assert_eq!(b.acquire().await.unwrap(), Acquired::Held);
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over() {
        let (a, b) = two_nodes(Duration::from_millis(50));
        assert_eq!(a.acquire().await.unwrap(), Acquired::Held);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.acquire().await.unwrap() != Acquired::Held {
            assert!(std::time::Instant::now() < deadline, "never taken over");
            tokio::task::yield_now().await;
        }
        assert_eq!(b.holder().unwrap().map(|h| h.holder).as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn of_two_racing_for_it_exactly_one_wins() {
        for _ in 0..20 {
            let (a, b) = two_nodes(Duration::from_secs(60));
            let (ra, rb) = tokio::join!(a.acquire(), b.acquire());
            let held = [ra.unwrap(), rb.unwrap()]
                .iter()
                .filter(|r| **r == Acquired::Held)
                .count();
            assert_eq!(held, 1);
        }
    }

    #[tokio::test]
    async fn a_renewed_lease_outlives_its_ttl_and_expires_once_renewal_stops() {
        let ttl = Duration::from_millis(300);
        let (a, b) = two_nodes(ttl);
        assert_eq!(a.acquire().await.unwrap(), Acquired::Held);
        let renewal = a.keep_renewed();
        let start = std::time::Instant::now();
        while start.elapsed() < ttl * 4 {
            assert!(
                matches!(b.acquire().await.unwrap(), Acquired::HeldBy(h) if h.holder == "a"),
                "taken while renewed, after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(ttl / 10).await;
        }
        drop(renewal);
        let deadline = std::time::Instant::now() + ttl * 10;
        while b.acquire().await.unwrap() != Acquired::Held {
            assert!(std::time::Instant::now() < deadline, "never expired");
            tokio::time::sleep(ttl / 10).await;
        }
    }

    #[tokio::test]
    async fn on_a_store_of_its_own_a_previous_runs_lease_is_taken_at_once() {
        let storage = Storage::new(Arc::new(MemoryBackend::new()));
        let before = Lease::new(
            storage.clone(),
            "work",
            "before-restart",
            Duration::from_secs(60),
        );
        assert_eq!(before.acquire().await.unwrap(), Acquired::Held);
        let now = Lease::new(storage, "work", "after-restart", Duration::from_secs(60));
        assert_eq!(now.acquire().await.unwrap(), Acquired::Held);
    }
}
