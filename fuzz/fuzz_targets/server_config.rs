//! The server configuration file (HCL), as `ironseal server -config` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The daemon's own parser, compiled in unchanged: the binary crate has no library to
// link against.
#[allow(dead_code)]
#[path = "../../firmware/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config::parse(std::path::Path::new("fuzz.hcl"), text);
    }
});
