//! `ironseal operator migrate -from a.hcl -to b.hcl`: copies the keyspace of the storage
//! one config file names into the storage another names, offline (no daemon may run on
//! either), verifying every value and keeping a checkpoint, so a copy that was cut short
//! continues when run again ([`engine::storage::migrate`]).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use engine::storage::migrate::{copy_keyspace, Progress};
use engine::storage::Storage;

use crate::cli::Flags;

pub const USAGE: &str = "Usage: ironseal operator migrate -from=FILE -to=FILE [-force]

Copies every key of the storage the config file -from names into the storage -to names,
reading each value back to verify it. Offline: stop every daemon on both first. A copy
that was interrupted continues where it stopped when run again with the same files.
The target must be empty (or hold an interrupted copy) unless -force is given.
The seal does not change: unseal a daemon on the target with the same keys or device.";

pub fn run(args: &[String]) -> ExitCode {
    let flags = match Flags::parse(args, &["force"], &["from", "to"]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let (Some(from), Some(to)) = (flags.get("from"), flags.get("to")) else {
        eprintln!("operator migrate needs -from and -to\n\n{USAGE}");
        return ExitCode::from(1);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(migrate(
        Path::new(from),
        Path::new(to),
        flags.is_set("force"),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The storage a config file names, opened as the daemon opens it.
fn open(config: &Path, which: &str) -> anyhow::Result<Arc<Storage>> {
    let parsed = crate::config::load(config)?;
    crate::server::open_configured_storage(&parsed.storage).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}\n(the {which} storage of {}: if a daemon runs on it, stop it first)",
            config.display()
        )
    })
}

async fn migrate(from: &Path, to: &Path, force: bool) -> anyhow::Result<()> {
    let source = open(from, "source")?;
    let target = open(to, "target")?;
    if from == to || source.data_dir().is_some() && source.data_dir() == target.data_dir() {
        anyhow::bail!("-from and -to name the same storage");
    }
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    let copied = copy_keyspace(&source, &target, force, |p| bar.show(p)).await?;
    bar.finish();
    if copied.resumed_after > 0 {
        println!(
            "Migration complete: {} keys copied and verified ({} by an earlier, interrupted run).",
            copied.keys, copied.resumed_after
        );
    } else {
        println!(
            "Migration complete: {} keys copied and verified.",
            copied.keys
        );
    }
    Ok(())
}

/// A progress bar on a terminal; otherwise a plain line at each tenth of the way.
struct Bar {
    terminal: bool,
    shown_tenth: Option<usize>,
}

impl Bar {
    fn new(terminal: bool) -> Self {
        Bar {
            terminal,
            shown_tenth: None,
        }
    }

    fn show(&mut self, p: Progress) {
        let fraction = if p.total == 0 {
            1.0
        } else {
            p.done as f64 / p.total as f64
        };
        let mut err = std::io::stderr();
        if self.terminal {
            const WIDTH: usize = 40;
            let filled = (fraction * WIDTH as f64) as usize;
            let _ = write!(
                err,
                "\r[{}{}] {}/{} keys {:3.0}%",
                "#".repeat(filled),
                ".".repeat(WIDTH - filled),
                p.done,
                p.total,
                fraction * 100.0
            );
            let _ = err.flush();
            return;
        }
        let tenth = (fraction * 10.0) as usize;
        if self.shown_tenth != Some(tenth) {
            self.shown_tenth = Some(tenth);
            let _ = writeln!(
                err,
                "migrate: {} of {} keys copied and verified",
                p.done, p.total
            );
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
