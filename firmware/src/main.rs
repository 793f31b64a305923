//! `ironseal`: the appliance daemon (`ironseal server`) and its operator sub-commands.

#![forbid(unsafe_code)]

mod audit_cmd;
mod cli;
mod config;
mod hardening;
mod kv_cmd;
mod migrate_cmd;
mod operator;
mod server;
mod vault_client;

use std::process::ExitCode;

// A request allocates and frees many small buffers across worker threads; glibc's
// allocator spent a tenth of a kv read's CPU on that (perf, bench/README.md).
//
// Every block is zeroed as it is freed: request and response bodies, parsed JSON and the
// copies a growing buffer leaves behind hold secrets, and a freed block keeps its bytes
// until reused, so after `sys/seal` the heap could still hold kv values, plaintexts and
// keys (softhsm-tests/tests/memory_hygiene.rs looks). Zeroizing each type that may hold
// a secret cannot reach the buffers of hyper, serde and the TLS stack.
#[cfg(not(feature = "bench-no-hygiene"))]
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<mimalloc::MiMalloc> =
    zeroizing_alloc::ZeroAlloc(mimalloc::MiMalloc);

// Only `bench/` builds this, to measure what the zeroing costs; such a binary leaves
// secrets in freed memory and must never pass for a normal one (`NO_HYGIENE_WARNING`).
#[cfg(feature = "bench-no-hygiene")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a `bench-no-hygiene` build says at every start and in `ironseal version`.
const NO_HYGIENE_WARNING: Option<&str> = if cfg!(feature = "bench-no-hygiene") {
    Some(
        "BENCHMARK BUILD (bench-no-hygiene): freed memory and dead stack frames are NOT zeroed, \
         secrets outlive their use; never run this binary in production",
    )
} else {
    None
};

const USAGE: &str = "Usage: ironseal <command> [flags]

Commands:
    server     Start the appliance: -config FILE, or -dev for a throwaway dev server
    audit      audit verify FILE: check an audit log's chain offline (structure, seq, links)
               audit verify -device=PATH [-against-storage]: have the appliance at
               VAULT_ADDR check its file with the chain key (and the head in storage)
    kv         list, get, put, patch, destroy the secrets of a kv mount of a running
               appliance (VAULT_ADDR, VAULT_TOKEN): `ironseal kv -help`
    operator   seal-policy, authorize-pcrs, reseal: the TPM seal's PCR policy;
               migrate: copy the keyspace between two configured storages, offline
    version    Print the version

Dev server flags (as `vault server -dev`):
    -dev-listen-address=ADDR   default 127.0.0.1:8200
    -dev-root-token-id=ID      use ID as the root token
    -dev-data-dir=DIR          keep data in DIR instead of a temporary directory
    -dev-pkcs11-socket=PATH    serve PKCS#11 (libironseal_pkcs11.so; the user PIN is the
                               root token) on PATH; default $XDG_RUNTIME_DIR/ironseal-pkcs11.sock,
                               else /tmp/ironseal-<uid>/pkcs11.sock
    -log-level=LEVEL           trace, debug, info, warn, error";

fn main() -> ExitCode {
    // Everything the daemon writes (storage, its log, keys, audit files) is for its own
    // user only, whatever umask it was started with; files also get explicit modes.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server::run(&args[1..]),
        Some("audit") => audit_cmd::run(&args[1..]),
        Some("operator") => operator::run(&args[1..]),
        Some("kv") => kv_cmd::run(&args[1..]),
        Some("version") | Some("-version") | Some("--version") => {
            match NO_HYGIENE_WARNING {
                Some(warning) => println!("Ironseal v{} {warning}", env!("CARGO_PKG_VERSION")),
                None => println!("Ironseal v{}", env!("CARGO_PKG_VERSION")),
            }
            ExitCode::SUCCESS
        }
        Some("-h") | Some("-help") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(1)
        }
    }
}
