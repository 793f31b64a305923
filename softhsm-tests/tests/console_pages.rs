//! The web console's pages in a real browser, each step asserting what the page shows:
//! keys (filters, paging, create, rotate, versions, public key, destruction), the Cloud
//! Exports card against the Scaleway emulator (export, auto-sync toggle, "Sync now", the
//! provider's refusal once the emulator denies), a kv secret's versions, a transit key,
//! a policy with a syntax error shown at its line, tokens, and the audit page showing
//! those actions with an intact hash chain. Screenshots at laptop and phone width, axe
//! on every page. Ironseal's own console: skipped against OpenBao.

use softhsm_tests::cloud_sync::{enable_audit, scaleway, SCALEWAY_PROJECT, SECRET};
use softhsm_tests::console::run_script;
use softhsm_tests::{reference_mode, Daemon};

#[test]
fn the_console_pages_in_the_browser() {
    if reference_mode() {
        return;
    }
    let scw = scaleway();
    let d = Daemon::dev(&[]);
    let root = d.token.clone().expect("dev mode printed a root token");
    enable_audit(&d);
    run_script(
        "pages.py",
        &d,
        Some(&root),
        &[
            ("CONSOLE_SCALEWAY_URL", &scw.url()),
            ("CONSOLE_SCALEWAY_PROJECT", SCALEWAY_PROJECT),
            ("CONSOLE_SCALEWAY_SECRET", SECRET),
        ],
    );
    assert!(
        !d.logs().contains(SECRET),
        "a cloud secret is in the daemon's log"
    );
}
