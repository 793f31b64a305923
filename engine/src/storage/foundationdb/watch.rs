//! The watcher: one thread per backend that follows the version key and raises on
//! [`Invalidations`] what other nodes changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::layout::Layout;
use super::txn::{Database, Transaction, TxError, Watch};
use super::{Invalidations, WATCH_POLL};

/// Where the watcher has read up to: a read version and the commit counter there.
#[derive(Clone, Copy)]
pub(super) struct Seen {
    version: i64,
    commits: i64,
}

pub(super) fn spawn<D: Database>(
    db: Arc<D>,
    layout: Arc<Layout>,
    node: [u8; 16],
    hub: Arc<Invalidations>,
    stopped: Arc<AtomicBool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the FoundationDB watcher: caches see other nodes' writes only when they reload");
            return;
        }
    };
    // The first look is taken before this returns, so before any cache above fills: a
    // change made after it is one the watcher reports.
    let mut first = look(&*db, &layout, &node, None).ok();
    let spawned = std::thread::Builder::new()
        .name("fdb-watch".into())
        .spawn(move || {
            // Timers are made outside `block_on`, so in the runtime's context.
            let _context = runtime.enter();
            let mut seen = first.as_ref().map(|(seen, _, _)| *seen);
            while !stopped.load(Ordering::Relaxed) {
                let next_look = tokio::time::Instant::now() + WATCH_POLL;
                let looked = match first.take() {
                    Some(first) => Ok(first),
                    None => look(&*db, &layout, &node, seen),
                };
                match looked {
                    Ok((now, raise, watch)) => {
                        if seen.is_none() {
                            // Not looked since start: anything may have changed.
                            hub.raise("");
                        }
                        for prefix in raise {
                            hub.raise(&prefix);
                        }
                        seen = Some(now);
                        match runtime.block_on(tokio::time::timeout_at(next_look, watch)) {
                            // Changed, or time to look anyway.
                            Ok(Ok(())) | Err(_) => {}
                            Ok(Err(e)) => {
                                tracing::debug!(
                                    code = e.code,
                                    error = e.message,
                                    "FoundationDB watch failed; polling"
                                );
                                runtime.block_on(tokio::time::sleep_until(next_look));
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            code = e.code,
                            error = e.message,
                            "cannot read FoundationDB's change log; retrying"
                        );
                        runtime.block_on(tokio::time::sleep_until(next_look));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the FoundationDB watcher thread");
    }
}

/// Reads the commit counter and the log after `seen` in one snapshot; answers where that
/// leaves the watcher, the prefixes to raise, and a watch on the counter from there.
pub(super) fn look<D: Database>(
    db: &D,
    layout: &Layout,
    node: &[u8; 16],
    seen: Option<Seen>,
) -> Result<(Seen, Vec<String>, Watch), TxError> {
    let mut tx = db.begin()?;
    let version = tx.read_version()?;
    let commits = counter(tx.get(layout.version(), true)?);
    let now = Seen { version, commits };
    let mut raise = Vec::new();
    if let Some(seen) = seen {
        let entries = if commits == seen.commits {
            Vec::new()
        } else {
            tx.get_ranges(&[layout.log_after(seen.version)], true)?
                .into_iter()
                .flatten()
                .collect()
        };
        if entries.len() as i64 != commits - seen.commits {
            // Entries were trimmed before this node read them: what changed is unknown.
            raise.push(String::new());
        } else {
            for (_, entry) in entries {
                let Some((writer, keys)) = entry.split_first_chunk::<16>() else {
                    raise.push(String::new());
                    continue;
                };
                if writer == node {
                    continue;
                }
                match foundationdb_tuple::unpack::<Vec<String>>(keys) {
                    Ok(keys) => raise.extend(keys),
                    Err(_) => raise.push(String::new()),
                }
            }
        }
    }
    let watch = tx.watch(layout.version());
    // Committing a read-only transaction arms its watch and writes nothing.
    tx.commit().map_err(|(_, e)| e)?;
    Ok((now, raise, watch))
}

/// The version key's value: a little-endian counter, absent before the first commit.
fn counter(value: Option<Vec<u8>>) -> i64 {
    value
        .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map_or(0, i64::from_le_bytes)
}
