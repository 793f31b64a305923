//! Looking for secrets where they must not be: every file below a directory, searched
//! for a secret in each of the encodings it could have been written down in.

use std::fs;
use std::path::{Path, PathBuf};

/// Every regular file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The files below `dir` whose bytes contain `needle`, as `path (needle name)` strings.
pub fn files_containing(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut hits = Vec::new();
    for f in files_below(dir) {
        let bytes = fs::read(&f).unwrap_or_default();
        for (name, needle) in needles {
            if !needle.is_empty() && contains(&bytes, needle) {
                hits.push(format!("{} holds {name}", f.display()));
            }
        }
    }
    hits
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The ways a secret byte string could be written down: raw, hex (both cases), base64
/// and base64url (padded or not).
pub fn encodings(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let mut v = vec![
        (format!("{name} (raw)"), bytes.to_vec()),
        (format!("{name} (hex)"), hex::encode(bytes).into_bytes()),
        (
            format!("{name} (HEX)"),
            hex::encode_upper(bytes).into_bytes(),
        ),
    ];
    for (label, eng) in [
        ("base64", &STANDARD),
        ("base64 nopad", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE),
        ("base64url nopad", &URL_SAFE_NO_PAD),
    ] {
        v.push((format!("{name} ({label})"), eng.encode(bytes).into_bytes()));
    }
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v.dedup_by(|a, b| a.1 == b.1);
    v
}
