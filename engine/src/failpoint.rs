//! Crash points for tests of interrupted operations: `IRONSEAL_TEST_CRASH_AT=init:keyring`
//! makes the daemon abort right after init stored its keyring, as a power cut would. Only
//! debug builds read the variable; a release build carries no such hook.

/// The variable the tests set.
pub const CRASH_AT_ENV: &str = "IRONSEAL_TEST_CRASH_AT";

/// Aborts the process if the crash point named by [`CRASH_AT_ENV`] is `point`.
#[inline]
pub fn crash_at(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(CRASH_AT_ENV).is_ok_and(|v| v == point) {
        eprintln!("{CRASH_AT_ENV}={point}: aborting here, as a test asked");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
