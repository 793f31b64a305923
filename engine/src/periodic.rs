//! Periodic work while the appliance is unsealed, in the manner of OpenBao's
//! `PeriodicFunc`: each subsystem registers its tasks where it is built, and the daemon
//! drives them all through [`Core::tick`] (about once a second).
//!
//! To add one (the cloud sync outbox, audit fsync), implement [`PeriodicTask`] beside
//! the subsystem and register it with `core.periodic().register(...)` when the subsystem
//! is built. A task runs at most once per [`PeriodicTask::interval`]; one that fails is
//! logged and tried again at its next interval, and never keeps the others from running.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::core::Core;
use crate::error::{EngineError, Result};

/// What [`PeriodicTask::run`] returns: a boxed future, so tasks of any type can share
/// one registry.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// One piece of periodic work.
pub trait PeriodicTask: Send + Sync {
    /// Names the task in the log.
    fn name(&self) -> &'static str;

    /// The least time between two runs. Zero runs the task on every tick.
    fn interval(&self) -> Duration;

    /// Does the work once. The appliance is unsealed when it starts.
    fn run<'a>(&'a self, core: &'a Core) -> TaskFuture<'a>;
}

struct Registered {
    task: Box<dyn PeriodicTask>,
    last_run: Mutex<Option<Instant>>,
    /// Runs on this node since start, failed ones too: of the nodes sharing a keyspace,
    /// only the lease holder's move.
    runs: AtomicU64,
}

impl Registered {
    /// Whether the task is due at `now`; if so, `now` counts as its last run, so a task
    /// that fails waits for its next interval like one that succeeds.
    fn claim(&self, now: Instant) -> bool {
        let mut last = self.last_run.lock();
        let due = last.is_none_or(|t| now.saturating_duration_since(t) >= self.task.interval());
        if due {
            *last = Some(now);
        }
        due
    }
}

/// A task that failed in [`PeriodicTasks::run_due`].
#[derive(Debug)]
pub struct TaskFailure {
    pub task: &'static str,
    pub error: EngineError,
}

/// The registry of periodic tasks.
#[derive(Default)]
pub struct PeriodicTasks {
    tasks: RwLock<Vec<Arc<Registered>>>,
}

impl PeriodicTasks {
    pub fn register(&self, task: impl PeriodicTask + 'static) {
        self.tasks.write().push(Arc::new(Registered {
            task: Box::new(task),
            last_run: Mutex::new(None),
            runs: AtomicU64::new(0),
        }));
    }

    /// The registered tasks' names, in the order they run.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.read().iter().map(|r| r.task.name()).collect()
    }

    /// Each task's name and how many times it has run on this node since start, in the
    /// order they run, for `sys/metrics`.
    pub fn runs(&self) -> Vec<(&'static str, u64)> {
        self.tasks
            .read()
            .iter()
            .map(|r| (r.task.name(), r.runs.load(Ordering::Relaxed)))
            .collect()
    }

    /// Runs, one after another in the order they were registered, the tasks due at
    /// `now`. Each failure is logged and returned; the tasks after it still run.
    pub async fn run_due(&self, core: &Core, now: Instant) -> Vec<TaskFailure> {
        let due: Vec<Arc<Registered>> = self
            .tasks
            .read()
            .iter()
            .filter(|r| r.claim(now))
            .cloned()
            .collect();
        let mut failures = Vec::new();
        for registered in due {
            let task = registered.task.name();
            registered.runs.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = registered.task.run(core).await {
                tracing::warn!(task, error = %error, "periodic task failed");
                failures.push(TaskFailure { task, error });
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::storage::{MemoryBackend, Storage};

    /// Counts its runs; fails every run if `fails`.
    struct Probe {
        name: &'static str,
        interval: Duration,
        fails: bool,
        runs: Arc<AtomicUsize>,
    }

    impl Probe {
        fn new(name: &'static str, interval: Duration, fails: bool) -> (Self, Arc<AtomicUsize>) {
            let runs = Arc::new(AtomicUsize::new(0));
            let probe = Probe {
                name,
                interval,
                fails,
                runs: runs.clone(),
            };
            (probe, runs)
        }
    }

    impl PeriodicTask for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        fn interval(&self) -> Duration {
            self.interval
        }

        fn run<'a>(&'a self, _core: &'a Core) -> TaskFuture<'a> {
            Box::pin(async move {
                self.runs.fetch_add(1, Ordering::SeqCst);
                if self.fails {
                    return Err(EngineError::Internal(format!("{} broke", self.name)));
                }
                Ok(())
            })
        }
    }

    fn core() -> Arc<Core> {
        Core::new(Storage::new(Arc::new(MemoryBackend::new())))
    }

    #[test]
    fn the_subsystems_register_their_tasks() {
        assert_eq!(
            core().periodic().names(),
            [
                "token-expiry",
                "approle-secret-id-tidy",
                "managed-key-destruction",
                "transit-auto-rotation",
                "cloud-export-sync"
            ]
        );
    }

    #[tokio::test]
    async fn registered_tasks_run_in_order_of_registration() {
        let core = core();
        let tasks = PeriodicTasks::default();
        let (a, a_runs) = Probe::new("a", Duration::ZERO, false);
        let (b, b_runs) = Probe::new("b", Duration::ZERO, false);
        tasks.register(a);
        tasks.register(b);
        assert_eq!(tasks.names(), ["a", "b"]);
        assert!(tasks.run_due(&core, Instant::now()).await.is_empty());
        assert_eq!(a_runs.load(Ordering::SeqCst), 1);
        assert_eq!(b_runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failing_task_does_not_stop_the_others() {
        let core = core();
        let tasks = PeriodicTasks::default();
        let (before, before_runs) = Probe::new("before", Duration::ZERO, false);
        let (broken, broken_runs) = Probe::new("broken", Duration::ZERO, true);
        let (after, after_runs) = Probe::new("after", Duration::ZERO, false);
        tasks.register(before);
        tasks.register(broken);
        tasks.register(after);
        let failures = tasks.run_due(&core, Instant::now()).await;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].task, "broken");
        assert_eq!(
            failures[0].error.to_string(),
            "internal error: broken broke"
        );
        for runs in [before_runs, broken_runs, after_runs] {
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn each_task_runs_at_its_own_interval() {
        let core = core();
        let tasks = PeriodicTasks::default();
        let (every_tick, every_runs) = Probe::new("every-tick", Duration::ZERO, false);
        let (slow, slow_runs) = Probe::new("slow", Duration::from_secs(30), false);
        let (broken, broken_runs) = Probe::new("broken", Duration::from_secs(30), true);
        tasks.register(every_tick);
        tasks.register(slow);
        tasks.register(broken);
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);

        tasks.run_due(&core, at(0)).await;
        for secs in [1, 10, 29] {
            tasks.run_due(&core, at(secs)).await;
        }
        assert_eq!(every_runs.load(Ordering::SeqCst), 4);
        assert_eq!(slow_runs.load(Ordering::SeqCst), 1);
        // A failure does not make the task run again before its interval.
        assert_eq!(broken_runs.load(Ordering::SeqCst), 1);

        tasks.run_due(&core, at(30)).await;
        assert_eq!(slow_runs.load(Ordering::SeqCst), 2);
        assert_eq!(broken_runs.load(Ordering::SeqCst), 2);
        tasks.run_due(&core, at(59)).await;
        assert_eq!(slow_runs.load(Ordering::SeqCst), 2);
        tasks.run_due(&core, at(60)).await;
        assert_eq!(slow_runs.load(Ordering::SeqCst), 3);
        assert_eq!(every_runs.load(Ordering::SeqCst), 7);
        // What sys/metrics reports: every run counted, the failed ones too.
        assert_eq!(
            tasks.runs(),
            [("every-tick", 7), ("slow", 3), ("broken", 3)]
        );
    }
}
