//! The harness of the end-to-end tests: start the `ironseal` daemon in a temporary
//! directory ([`daemon`]), bring it to service ([`unseal`]), drive it with the real `bao`
//! CLI ([`bao`]) and through its two HTTP APIs ([`vault_client`] for `/v1`, [`kms_client`]
//! for `/api/v1`), and kill it when the test is done. [`reference`] runs the same tests
//! against OpenBao (`IRONSEAL_REFERENCE=openbao`). [`pkcs11`] is the token the PKCS#11
//! library's tests drive, or SoftHSM2 as their reference (`IRONSEAL_PKCS11_REFERENCE`).
//! [`emulators`] starts the cloud providers' stand-ins that the export tests sync to.
//! [`postgres`] starts a throw-away PostgreSQL for the shared-storage tests.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

pub mod bao;
pub mod cloud_sync;
pub mod console;
pub mod crash;
pub mod daemon;
pub mod emulators;
pub mod hardware;
pub mod kms_client;
pub mod kryoptic;
pub mod leaks;
pub mod localstack;
pub mod pkcs11;
pub mod postgres;
pub mod reference;
pub mod rotate;
pub mod tools;
pub mod unseal;
pub mod vault_client;

pub use bao::{bao_bin, parse_table, Output};
pub use daemon::{free_port, ironseal_bin, Daemon, STARTUP_DEADLINE};
pub use leaks::{
    contains, encodings, files_below, files_containing, needles_in_memory, register_secret,
};
pub use reference::reference_mode;
pub use unseal::{decode_key, Init};
pub use vault_client::{Body, HttpResponse};

/// Calls `probe` until it returns `Some`, or panics with `what` after `deadline`.
pub fn poll_until<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
