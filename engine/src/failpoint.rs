//! Crash points for tests of interrupted operations: `IRONSEAL_TEST_CRASH_AT=init:keyring`
//! makes the daemon abort right after init stored its keyring, as a power cut would;
//! `IRONSEAL_TEST_FAIL_AT=wal:append` makes a storage step return an I/O error there
//! instead, as a failing disk would. With `IRONSEAL_TEST_POINTS_ARMED_BY=<file>` a point
//! acts only while that file exists, so a test can let init and its own writes through
//! first. Only debug builds read the variables; a release build carries no such hook.
//!
//! The points, in the order a write meets them: `wal:append` (nothing written yet),
//! `wal:written` (the record written, not yet fsync'd), `wal:synced` (durable, not yet in
//! redb nor acknowledged), `redb:committed` (in redb without fsync, not yet
//! acknowledged), `checkpoint:committed` (redb made durable, the log not yet emptied),
//! `wal:truncated` (the log cut to zero, not yet fsync'd). Elsewhere: `keyring:rotate` and
//! `keyring:stored` around the write of a rotated keyring, `seal-migrate:commit` and
//! `seal-migrate:committed` around a seal migration's one write, `outbox:called` (a sync's
//! provider call answered, the outcome not yet recorded), the `init:*` and `rotate:*`
//! steps of init and key-share rotation, and `migrate:batch-N` of `operator migrate`.

/// The variable naming the point to abort at.
pub const CRASH_AT_ENV: &str = "IRONSEAL_TEST_CRASH_AT";
/// The variable naming the storage point to fail at.
pub const FAIL_AT_ENV: &str = "IRONSEAL_TEST_FAIL_AT";
/// The variable naming the file whose presence arms the points.
pub const ARMED_BY_ENV: &str = "IRONSEAL_TEST_POINTS_ARMED_BY";

/// Aborts the process if the crash point named by [`CRASH_AT_ENV`] is `point`.
#[inline]
pub fn crash_at(point: &str) {
    if asked(CRASH_AT_ENV, point) {
        eprintln!("{CRASH_AT_ENV}={point}: aborting here, as a test asked");
        std::process::abort();
    }
}

/// A storage step's crash point that can also fail: aborts as [`crash_at`] does, or
/// returns an I/O error if [`FAIL_AT_ENV`] names `point`.
#[inline]
pub fn io_step(point: &str) -> std::io::Result<()> {
    crash_at(point);
    if asked(FAIL_AT_ENV, point) {
        let message = format!("{FAIL_AT_ENV}={point}: failing here, as a test asked");
        eprintln!("{message}");
        return Err(std::io::Error::other(message));
    }
    Ok(())
}

#[cfg(debug_assertions)]
fn asked(var: &str, point: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == point)
        && match std::env::var_os(ARMED_BY_ENV) {
            Some(file) if !file.is_empty() => std::path::Path::new(&file).exists(),
            _ => true,
        }
}

#[cfg(not(debug_assertions))]
fn asked(_var: &str, _point: &str) -> bool {
    false
}
