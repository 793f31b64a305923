//! `ironseal operator ...`: the hardware seal's platform policy, against a running daemon
//! (the `sys/seal-policy` endpoints; a token with `sudo` on them, e.g. the root token).
//!
//! Reached like the `bao` CLI: `VAULT_ADDR` (or `BAO_ADDR`, or `-address`), `VAULT_TOKEN`
//! (or `BAO_TOKEN`), and for HTTPS `VAULT_CACERT` (or `BAO_CACERT`, or `-ca-cert`).

use std::process::ExitCode;

use hyper::Method;
use serde_json::{json, Value};

use crate::cli::Flags;
use crate::vault_client::Client;

pub const USAGE: &str = "Usage: ironseal operator <command> [flags]

Commands (TPM seal; the daemon must be unsealed; the token needs sudo):
    seal-policy      Show the sealed root key's PCRs, their current values and the
                     signed values auto-unseal accepts
    authorize-pcrs   Before a firmware/boot/Secure Boot update: sign the PCR values of
                     the next boot, so the appliance still unseals itself after it
                       -pcrs=16=<hex>[,23=<hex>]    expected SHA-256 values
                       -extend=16=<hex>[,16=<hex>]  digests the update will extend into
                                                    the current values, in order
    reseal           Re-create the sealed root key for the current PCR values (after
                     an unseal with the recovery keys, once this boot state is trusted)

Offline (no daemon running):
    migrate          Copy the keyspace from one configured storage to another:
                     `ironseal operator migrate -help`

Flags: -address=URL (VAULT_ADDR), -ca-cert=FILE (VAULT_CACERT)";

pub fn run(args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    };
    if command == "migrate" {
        if rest
            .iter()
            .any(|a| matches!(a.as_str(), "-h" | "-help" | "--help"))
        {
            println!("{}", crate::migrate_cmd::USAGE);
            return ExitCode::SUCCESS;
        }
        return crate::migrate_cmd::run(rest);
    }
    let valued: &[&str] = match command.as_str() {
        "authorize-pcrs" => &["address", "ca-cert", "pcrs", "extend"],
        "reseal" | "seal-policy" => &["address", "ca-cert"],
        "-h" | "-help" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown operator command {other:?}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let flags = match Flags::parse(rest, &[], valued) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let (method, path, body) = match command.as_str() {
        "seal-policy" => (Method::GET, "sys/seal-policy", None),
        "reseal" => (Method::POST, "sys/seal-policy/reseal", Some(json!({}))),
        _ => {
            let mut body = serde_json::Map::new();
            for name in ["pcrs", "extend"] {
                if let Some(v) = flags.get(name) {
                    body.insert(name.into(), Value::String(v.into()));
                }
            }
            if body.is_empty() {
                eprintln!("authorize-pcrs needs -pcrs or -extend (the values of the next boot)");
                return ExitCode::from(1);
            }
            (
                Method::POST,
                "sys/seal-policy/authorize-pcrs",
                Some(Value::Object(body)),
            )
        }
    };
    let client = match Client::from_env(
        flags.get("address"),
        flags.get("ca-cert"),
        "sudo on sys/seal-policy (e.g. the root token)",
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match client.request(method, path, body.as_ref()) {
        Ok((_, v)) => {
            let shown = v.get("data").cloned().unwrap_or(v);
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(2)
        }
    }
}
