//! `ironseal`: the appliance daemon (`ironseal server`) and its operator sub-commands.

mod cli;
mod config;
mod hardening;
mod server;

use std::process::ExitCode;

// A request allocates and frees many small buffers across worker threads; glibc's
// allocator spent a tenth of a kv read's CPU on that (perf, bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "Usage: ironseal <command> [flags]

Commands:
    server     Start the appliance: -config FILE, or -dev for a throwaway dev server
    audit      audit verify FILE: check an audit log's hash chain offline
    version    Print the version

Dev server flags (as `vault server -dev`):
    -dev-listen-address=ADDR   default 127.0.0.1:8200
    -dev-root-token-id=ID      use ID as the root token
    -dev-data-dir=DIR          keep data in DIR instead of a temporary directory
    -log-level=LEVEL           trace, debug, info, warn, error";

fn main() -> ExitCode {
    // Everything the daemon writes (storage, its log, keys, audit files) is for its own
    // user only, whatever umask it was started with; files also get explicit modes.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server::run(&args[1..]),
        Some("audit") => audit_command(&args[1..]),
        Some("version") | Some("-version") | Some("--version") => {
            println!("Ironseal v{}", env!("CARGO_PKG_VERSION"));
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

/// `ironseal audit verify FILE`: exit 0 when the chain is intact, 1 at the first broken
/// line (named with the reason), 2 on usage or I/O errors.
fn audit_command(args: &[String]) -> ExitCode {
    let [verb, file] = args else {
        eprintln!("Usage: ironseal audit verify FILE");
        return ExitCode::from(2);
    };
    if verb != "verify" {
        eprintln!("Usage: ironseal audit verify FILE");
        return ExitCode::from(2);
    }
    let opened = std::fs::File::open(file).map(std::io::BufReader::new);
    match opened.and_then(engine::audit::chain::verify) {
        Ok(engine::audit::chain::Verdict::Intact { lines }) => {
            println!("{file}: intact, {lines} lines");
            ExitCode::SUCCESS
        }
        Ok(engine::audit::chain::Verdict::Broken { line, reason }) => {
            println!("{file}: line {line}: {reason}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{file}: {e}");
            ExitCode::from(2)
        }
    }
}
