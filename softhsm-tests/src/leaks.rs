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

/// Secrets shorter than this are not registered: a short value could occur in a log by
/// chance (a timestamp, a port) and fail a test that leaked nothing.
pub const MIN_SECRET_LEN: usize = 8;

static SECRETS: std::sync::Mutex<Vec<(String, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());

/// Registers a secret the test sent to a daemon (a kv value, a plaintext, a key): from now
/// on every daemon of this test process checks, when it is dropped, that its captured log
/// holds the secret in none of its [`encodings`].
pub fn register_secret(name: &str, bytes: &[u8]) {
    if bytes.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|(_, b)| b == bytes) {
        secrets.push((name.to_string(), bytes.to_vec()));
    }
}

/// Every registered secret in every encoding, as `(name (encoding), bytes)`.
pub fn registered_secrets() -> Vec<(String, Vec<u8>)> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    secrets
        .iter()
        .flat_map(|(name, bytes)| encodings(name, bytes))
        .collect()
}

/// The names of the `needles` that occur in `haystack`.
pub fn needles_in(haystack: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| !n.is_empty() && contains(haystack, n))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Where each needle occurs in the writable mappings of process `pid` (heap, stacks,
/// anonymous memory, writable data: where a secret the process handled could still be;
/// its read-only mappings, code and constants, cannot hold one), read through
/// `/proc/PID/mem`: `needle name at offsets [...] of <maps line>` strings. Needs root (or
/// ptrace rights on `pid`); mappings that cannot be read (`[vvar]`, guard pages) are
/// left out. Reads in chunks, so a large mapping costs no more than a chunk of memory.
pub fn needles_in_memory(pid: u32, needles: &[(String, Vec<u8>)]) -> std::io::Result<Vec<String>> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 16 << 20;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mem = fs::File::open(format!("/proc/{pid}/mem"))?;
    let finders: Vec<(&str, memchr::memmem::Finder)> = needles
        .iter()
        .filter(|(_, n)| !n.is_empty())
        .map(|(name, n)| (name.as_str(), memchr::memmem::Finder::new(n)))
        .collect();
    let overlap =
        (needles.iter().map(|(_, n)| n.len()).max().unwrap_or(0) as u64).saturating_sub(1);
    let mut hits = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut found: Vec<Vec<u64>> = vec![Vec::new(); finders.len()];
        let mut at = start;
        let mut buf = Vec::new();
        while at < end {
            // Each chunk but the first starts `overlap` bytes early, so a needle across
            // two chunks is found (once: only starts at or after `at` count).
            let from = if at == start { at } else { at - overlap };
            let to = (at + CHUNK).min(end);
            buf.resize((to - from) as usize, 0);
            if mem.read_exact_at(&mut buf, from).is_err() {
                break;
            }
            for (i, (_, finder)) in finders.iter().enumerate() {
                for off in finder.find_iter(&buf) {
                    let addr = from + off as u64;
                    if addr >= at && found[i].len() < 4 {
                        found[i].push(addr - start);
                    }
                }
            }
            at = to;
        }
        let owner = stack_owner(pid, start, end)
            .map(|t| format!(" (the stack of thread {t})"))
            .unwrap_or_default();
        for (i, offsets) in found.iter().enumerate() {
            if !offsets.is_empty() {
                hits.push(format!(
                    "{} at offsets {offsets:x?} of {}{owner}",
                    finders[i].0,
                    line.trim()
                ));
            }
        }
    }
    Ok(hits)
}

/// The thread of `pid` whose stack pointer lies in `start..end`, as `name (tid)`: tells a
/// thread's stack from other anonymous memory in a finding.
fn stack_owner(pid: u32, start: u64, end: u64) -> Option<String> {
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let dir = task.path();
        // `nr args... sp pc`, or `-1 sp pc` outside a system call: sp is second to last.
        let syscall = fs::read_to_string(dir.join("syscall")).unwrap_or_default();
        let fields: Vec<&str> = syscall.split_whitespace().collect();
        let sp = fields
            .len()
            .checked_sub(2)
            .and_then(|i| u64::from_str_radix(fields[i].trim_start_matches("0x"), 16).ok());
        if sp.is_some_and(|sp| (start..end).contains(&sp)) {
            let name = fs::read_to_string(dir.join("comm")).unwrap_or_default();
            return Some(format!(
                "{} ({})",
                name.trim(),
                task.file_name().to_string_lossy()
            ));
        }
    }
    None
}
