//! The budget for request bodies held in memory at once, across all connections.
//!
//! Bodies are buffered whole before authentication can run, so without a shared budget
//! `max_connections` × HTTP/2 streams × `max_request_size` bytes could be asked of a
//! daemon whose memory is locked. A request takes its share before reading (from its
//! Content-Length) or as its chunks arrive, and gives it back when it finishes, even
//! when it finishes after `max_request_duration` was answered.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in KiB so a u32 permit count covers any single request.
const UNIT: usize = 1024;

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

/// The bytes of request bodies the listener may hold (`max_request_bytes_in_flight`).
#[derive(Clone, Debug)]
pub struct BodyBudget {
    sem: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let permits = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        BodyBudget {
            sem: Arc::new(Semaphore::new(permits)),
        }
    }

    /// A share of nothing yet, grown with [`BodyShare::cover`].
    pub fn share(&self) -> BodyShare {
        BodyShare {
            sem: self.sem.clone(),
            held: None,
            units: 0,
        }
    }

    /// Bytes not taken by any request, rounded down to the unit.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.sem.available_permits() * UNIT
    }
}

/// One request's part of the budget; given back when dropped.
#[derive(Debug)]
pub struct BodyShare {
    sem: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    units: u32,
}

impl BodyShare {
    /// Grows the share to cover `bytes` in all. False, and unchanged, when the budget
    /// has not that much left: the caller refuses the request rather than wait, since
    /// the bytes are already on their way and waiting would hold the connection anyway.
    pub fn cover(&mut self, bytes: usize) -> bool {
        let need = units(bytes);
        if need <= self.units {
            return true;
        }
        match self.sem.clone().try_acquire_many_owned(need - self.units) {
            Ok(p) => {
                match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                }
                self.units = need;
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_bounded_and_given_back() {
        let budget = BodyBudget::new(4 * UNIT);
        let mut a = budget.share();
        assert!(a.cover(10));
        assert!(a.cover(3 * UNIT));
        assert_eq!(budget.available(), UNIT);
        let mut b = budget.share();
        assert!(!b.cover(2 * UNIT), "past the budget");
        assert!(b.cover(UNIT));
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 3 * UNIT);
        drop(b);
        assert_eq!(budget.available(), 4 * UNIT);
        assert!(budget.share().cover(0));
    }
}
