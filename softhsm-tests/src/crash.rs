//! The daemon's debug-only crash points (`IRONSEAL_TEST_CRASH_AT`), for tests that kill
//! it in the middle of a step and check what a restart finds.

use std::time::Duration;

use crate::{poll_until, Daemon};

/// How long an abort at a crash point may take to show in the log.
const ABORT_DEADLINE: Duration = Duration::from_secs(60);

/// `d` was started with `IRONSEAL_TEST_CRASH_AT=step`: runs `operator init <args>`
/// (which must not answer), waits for the abort, and starts the daemon again without the
/// crash point.
pub fn init_aborted_at(d: &mut Daemon, step: &str, init_args: &[&str]) {
    let args = [&["operator", "init"], init_args].concat();
    let out = d.bao_as(None, &args);
    assert!(
        !out.success(),
        "{step}: init answered although the daemon aborted: {out}"
    );
    restart_after_abort(d, step);
}

/// `d` was started with `IRONSEAL_TEST_CRASH_AT=step` and was just asked to do what
/// reaches it: waits for the abort, and starts the daemon again without the crash point.
pub fn restart_after_abort(d: &mut Daemon, step: &str) {
    poll_until(
        ABORT_DEADLINE,
        &format!("the daemon to abort at {step}"),
        || {
            d.logs()
                .contains(&format!("IRONSEAL_TEST_CRASH_AT={step}: aborting"))
                .then_some(())
        },
    );
    d.kill9();
    d.set_env("IRONSEAL_TEST_CRASH_AT", "");
    d.start();
}
