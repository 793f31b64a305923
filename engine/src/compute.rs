//! The bounded pool that CPU-heavy work runs on: private-key operations, key generation,
//! public-key operations and large batches. The async workers only parse, route and
//! answer, so `sys/health`, `sys/seal-status` and unseal keep answering while RSA batches
//! run.
//!
//! At most `threads` jobs run at once (one per core by default), each on a thread of
//! tokio's blocking pool; admitted jobs wait for a turn in arrival order. Past `threads +
//! queue` admitted jobs, new work is refused with [`EngineError::Overloaded`] (503) rather
//! than piling up in memory. A batch is admitted once and then runs chunk by chunk, each
//! chunk taking its turn, so a single request asking for a few signatures does not wait
//! behind the whole of someone else's thousand-item batch.
//!
//! Calls into a hardware root of trust run on a second, wider pool of the same kind, the
//! device lane ([`run_on_device`]): their time is the device's, not the cores'.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use crate::error::EngineError;

/// Jobs that may wait for a thread per thread of the pool, by default.
const QUEUE_PER_THREAD: usize = 32;
/// Device calls in flight per core, and at least this many.
const DEVICE_CALLS_PER_CORE: usize = 4;
const DEVICE_CALLS_MIN: usize = 8;

/// How the pool is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Jobs running at once.
    pub threads: usize,
    /// Admitted jobs that may wait for a thread beyond those running.
    pub queue: usize,
}

impl Default for PoolSize {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        PoolSize {
            threads,
            queue: threads * QUEUE_PER_THREAD,
        }
    }
}

impl PoolSize {
    /// The device lane: calls into a hardware root of trust (an HSM's `C_Sign`) spend
    /// their time in the device, or on the wire to a network HSM, not on the async
    /// workers' cores. A lane sized to the cores would cap a device that answers many
    /// calls at once at cores / latency, and leave a core idle at every hand-over
    /// between one call and the next; the device's own sessions are the bound.
    pub fn device() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores
            .saturating_mul(DEVICE_CALLS_PER_CORE)
            .max(DEVICE_CALLS_MIN);
        PoolSize {
            threads,
            queue: threads * QUEUE_PER_THREAD,
        }
    }
}

/// How much stack [`scrub_stack`] zeroes below its caller: deeper than the frames that
/// handle keys (an unoptimised build's frames are several times larger), and well inside
/// the 2 MiB a runtime thread has.
const SCRUB_STACK_BYTES: usize = if cfg!(debug_assertions) {
    1024 * 1024
} else {
    256 * 1024
};

/// Zeroes the stack below the caller. A key or plaintext a deeper frame held (a cipher
/// built on the stack, a key moved through it) stays in that dead stack memory until the
/// thread reaches that depth again, which for an idle thread may be never: after
/// `sys/seal` the memory scan found the root key and a transit key there. The runtime
/// calls this when a worker parks, and the pools after each job.
#[inline(never)]
pub fn scrub_stack() {
    if cfg!(feature = "bench-no-hygiene") {
        return;
    }
    let mut area = [0u8; SCRUB_STACK_BYTES];
    std::hint::black_box(&mut area);
}

pub struct Pool {
    size: PoolSize,
    permits: Arc<Semaphore>,
    admitted: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// The process-wide pool, sized to the cores on first use.
pub fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(PoolSize::default()))
}

static DEVICE: OnceLock<Pool> = OnceLock::new();

/// The process-wide device lane ([`PoolSize::device`]).
pub fn device_pool() -> &'static Pool {
    DEVICE.get_or_init(|| Pool::new(PoolSize::device()))
}

/// Runs a call into the hardware root of trust on the device lane: off the async
/// workers like any blocking work, bounded by the device rather than the cores.
pub async fn run_on_device<T, F>(f: F) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    device_pool().run(f).await
}

/// Runs `f` on the process-wide pool: see [`Pool::run`].
pub async fn run<T, F>(f: F) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    pool().run(f).await
}

/// Applies `f` to every item on the process-wide pool: see [`Pool::map`].
pub async fn map<I, R, F>(items: Vec<I>, chunk: usize, f: F) -> Result<Vec<R>, EngineError>
where
    I: Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(&I) -> R + Send + Sync + 'static,
{
    pool().map(items, chunk, f).await
}

/// One admitted job; it leaves the count when dropped, whether it finished or its request
/// was abandoned.
pub struct Ticket<'a> {
    pool: &'a Pool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.pool.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticket<'_> {
    /// Waits for a thread, then runs `f` there. The thread is held until `f` returns,
    /// even if the caller stops waiting, so the pool never runs more than its size.
    pub async fn run<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(EngineError::internal)?;
        tokio::task::spawn_blocking(move || {
            let out = f();
            scrub_stack();
            drop(permit);
            out
        })
        .await
        .map_err(EngineError::internal)
    }
}

impl Pool {
    pub fn new(size: PoolSize) -> Self {
        Pool {
            size,
            permits: Arc::new(Semaphore::new(size.threads.max(1))),
            admitted: AtomicUsize::new(0),
        }
    }

    pub fn size(&self) -> PoolSize {
        self.size
    }

    /// Admits one job, or refuses it when the pool's queue is full.
    pub fn admit(&self) -> Result<Ticket<'_>, EngineError> {
        let limit = self.size.threads.saturating_add(self.size.queue);
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|_| {
                EngineError::Overloaded(format!(
                    "request limit exceeded: {limit} CPU-heavy requests are already running or waiting; retry later"
                ))
            })?;
        Ok(Ticket { pool: self })
    }

    /// Runs `f` on a pool thread once one is free; refused when the queue is full.
    pub async fn run<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.admit()?.run(f).await
    }

    /// Applies `f` to every item, `chunk` items per turn on the pool, keeping their order.
    /// Admitted once: a batch that started is never refused halfway.
    pub async fn map<I, R, F>(
        &self,
        items: Vec<I>,
        chunk: usize,
        f: F,
    ) -> Result<Vec<R>, EngineError>
    where
        I: Send + Sync + 'static,
        R: Send + 'static,
        F: Fn(&I) -> R + Send + Sync + 'static,
    {
        let ticket = self.admit()?;
        let chunk = chunk.max(1);
        let items = Arc::new(items);
        let f = Arc::new(f);
        let mut out = Vec::with_capacity(items.len());
        let mut start = 0;
        while start < items.len() {
            let end = start.saturating_add(chunk).min(items.len());
            let (items, f) = (items.clone(), f.clone());
            let part = ticket
                .run(move || items[start..end].iter().map(|i| f(i)).collect::<Vec<_>>())
                .await?;
            out.extend(part);
            start = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_device_lane_keeps_more_calls_in_flight_than_there_are_cores() {
        let (cpu, device) = (PoolSize::default(), PoolSize::device());
        assert!(device.threads >= DEVICE_CALLS_MIN);
        assert!(device.threads >= cpu.threads * DEVICE_CALLS_PER_CORE);
        assert!(device.queue >= device.threads);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_than_its_threads() {
        let pool = Arc::new(Pool::new(PoolSize {
            threads: 2,
            queue: 16,
        }));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(pool.admitted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_past_its_queue() {
        let pool = Pool::new(PoolSize {
            threads: 1,
            queue: 1,
        });
        let first = pool.admit().unwrap();
        let _second = pool.admit().unwrap();
        let err = pool.admit().err().unwrap();
        assert!(matches!(err, EngineError::Overloaded(ref m) if m.contains("limit exceeded")));
        assert!(pool.run(|| ()).await.is_err());
        drop(first);
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn map_keeps_order_across_chunks() {
        let pool = Pool::new(PoolSize {
            threads: 2,
            queue: 0,
        });
        let out = pool
            .map((0..1000u32).collect(), 7, |i| i * 2)
            .await
            .unwrap();
        assert_eq!(out, (0..1000u32).map(|i| i * 2).collect::<Vec<_>>());
        let empty: Vec<u32> = pool.map(Vec::<u32>::new(), 7, |i| *i).await.unwrap();
        assert!(empty.is_empty());
    }
}
