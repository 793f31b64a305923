//! The `file` audit device: appends hash-chained JSON lines to one file, reopened on
//! SIGHUP so log rotation works as with Vault's file device.
//!
//! Opening never refuses a file for what its tail holds: a crash can tear the last write
//! (nothing but a fsync'd line was ever acknowledged), and refusing would refuse every
//! request until someone edited the file. The tail is read backwards, line by line, to
//! the last line that carries a valid tag, whatever its size; anything after it is kept
//! and recorded in the chain as a cut (`chain.rs`), so verification reports it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::chain::{self, ChainKey, Link};

/// How much is read at a time when looking backwards for a line start.
const CHUNK: u64 = 64 * 1024;

pub struct FileDevice {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// `None` after a failed reopen: every write then fails, and requests fail closed.
    file: Option<File>,
    /// The file's length after the last complete write, to cut a failed write back to.
    len: u64,
    link: Link,
    error: Option<String>,
}

/// What opening found and did.
pub struct Opened {
    file: File,
    len: u64,
    link: Link,
}

/// The start of the line that ends at `end` (exclusive): one past the previous newline.
fn line_start(file: &File, end: u64) -> std::io::Result<u64> {
    let mut pos = end;
    let mut buf = vec![0u8; CHUNK as usize];
    while pos > 0 {
        let from = pos.saturating_sub(CHUNK);
        let n = (pos - from) as usize;
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        pos = from;
    }
    Ok(0)
}

fn read_range(file: &File, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut buf, from)?;
    Ok(buf)
}

/// The last line with a valid tag: its link and the offset just past it (its newline
/// included, when it has one), and whether it lacks its newline.
fn last_good_line(
    file: &File,
    len: u64,
    key: &ChainKey,
) -> std::io::Result<Option<(Link, u64, bool)>> {
    let mut end = len;
    while end > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, end - 1)?;
        let terminated = last[0] == b'\n';
        let line_end = if terminated { end - 1 } else { end };
        let start = line_start(file, line_end)?;
        if let Some(link) = chain::self_check(&read_range(file, start, line_end)?, key) {
            return Ok(Some((link, end, !terminated)));
        }
        end = start;
    }
    Ok(None)
}

/// What to do with a file whose tail is not a complete chain line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// A device being enabled: only a new or empty file, or one that ends with a whole
    /// chain line, is taken. Anything else may be any file the daemon can write (its
    /// storage, its log, its TLS key), and must not get a line appended to it.
    Refuse,
    /// A device already configured, reopened at unseal or on SIGHUP: its file was an
    /// audit log, and a crash may have torn its last write. Record the cut and go on.
    Cut,
}

/// Opens (or creates) the file and finds where its chain stands; records a cut tail
/// (`Tail::Cut`) or refuses the file untouched (`Tail::Refuse`).
pub fn open(path: &Path, key: &ChainKey, tail: Tail) -> Result<Opened, String> {
    let io = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("open", e))?;
    let meta = file.metadata().map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut len = meta.len();
    let found = last_good_line(&file, len, key).map_err(|e| io("read", e))?;
    let (link, mut good_end, unterminated) = found.unwrap_or((Link::genesis(), 0, false));
    if tail == Tail::Refuse && (good_end < len || unterminated) {
        return Err(format!(
            "{} is not empty and does not end with an audit line of this appliance: \
             refusing to append to it; give a new or empty file, or an audit log this \
             appliance wrote",
            path.display()
        ));
    }
    // Torn: what follows the last good line is one fragment with no line end, all a
    // crash in the middle of an append can leave. Anything else was written by someone.
    let torn = good_end < len
        && !unterminated
        && line_start(&file, len).map_err(|e| io("read", e))? == good_end;
    if unterminated || good_end < len {
        // Either the last good line lacks only its newline, or bytes follow it that are
        // not chain lines: end them with a newline so the next line stands alone.
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| io("read", e))?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(|e| io("write", e))?;
            len += 1;
            if unterminated {
                good_end = len;
            }
        }
    }
    let mut opened = Opened { file, len, link };
    if good_end < len {
        let reason = if torn {
            chain::CUT_TORN
        } else {
            chain::CUT_INVALID
        };
        tracing::warn!(
            file = %path.display(),
            offset = good_end,
            length = len - good_end,
            reason,
            "the audit file's tail is not a chain line; recording the cut and continuing"
        );
        let entry = with_time(chain::cut_entry(good_end, len - good_end, reason));
        append(&mut opened, vec![entry], key).map_err(|e| io("write", e))?;
    }
    opened.file.sync_data().map_err(|e| io("sync", e))?;
    Ok(opened)
}

pub fn with_time(mut entry: Map<String, Value>) -> Map<String, Value> {
    entry.insert("time".into(), super::now().into());
    entry
}

/// `entries` as the lines that follow `link`, and the link they leave.
fn render(entries: Vec<Map<String, Value>>, link: &Link, key: &ChainKey) -> (String, Link) {
    let (lines, link) = render_lines(entries, link, key);
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    (text, link)
}

/// `entries` as chain lines (without their newlines) that follow `link`, and the link
/// they leave.
pub(super) fn render_lines(
    entries: Vec<Map<String, Value>>,
    link: &Link,
    key: &ChainKey,
) -> (Vec<String>, Link) {
    let mut link = link.clone();
    let mut lines = Vec::with_capacity(entries.len());
    for e in entries {
        let (line, next) = chain::seal_line(e, &link, key);
        lines.push(line);
        link = next;
    }
    (lines, link)
}

/// Writes `entries` as consecutive lines, in one write, without syncing.
fn append(
    opened: &mut Opened,
    entries: Vec<Map<String, Value>>,
    key: &ChainKey,
) -> std::io::Result<()> {
    let (text, link) = render(entries, &opened.link, key);
    opened.file.write_all(text.as_bytes())?;
    opened.len += text.len() as u64;
    opened.link = link;
    Ok(())
}

impl FileDevice {
    pub fn new(path: &Path, opened: Opened) -> Self {
        FileDevice {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file: Some(opened.file),
                len: opened.len,
                link: opened.link,
                error: None,
            }),
        }
    }

    /// A device whose file could not be opened at unseal: it stays enabled, and refuses.
    pub fn broken(path: &Path, error: String) -> Self {
        FileDevice {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file: None,
                len: 0,
                link: Link::genesis(),
                error: Some(error),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the chain stands now.
    pub fn link(&self) -> Link {
        self.state.lock().link.clone()
    }

    pub fn is_open(&self) -> bool {
        self.state.lock().file.is_some()
    }

    /// Its own descriptor and the length of what is synced, for reading it meanwhile.
    pub fn snapshot(&self) -> Result<(File, u64), String> {
        let state = self.state.lock();
        let file = state.file.as_ref().ok_or_else(|| {
            state
                .error
                .clone()
                .unwrap_or_else(|| format!("{} is not open", self.path.display()))
        })?;
        let copy = file
            .try_clone()
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        Ok((copy, state.len))
    }

    /// Reopens the file (after rotation).
    pub fn reopen(&self, key: &ChainKey) -> Result<(), String> {
        let mut state = self.state.lock();
        match open(&self.path, key, Tail::Cut) {
            Ok(opened) => {
                *state = State {
                    file: Some(opened.file),
                    len: opened.len,
                    link: opened.link,
                    error: None,
                };
                Ok(())
            }
            Err(e) => {
                state.file = None;
                state.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Appends `entries` as consecutive lines in one write and syncs them: one fsync for
    /// a whole group of requests. Returns the new head. A failed write is cut back, so a
    /// half-written group never stays in front of the next one; if even that fails, the
    /// device refuses every later write.
    pub fn write_group(
        &self,
        entries: Vec<Map<String, Value>>,
        key: &ChainKey,
    ) -> Result<Link, String> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let Some(file) = state.file.as_mut() else {
            return Err(state
                .error
                .clone()
                .unwrap_or_else(|| format!("{} is not open", self.path.display())));
        };
        let (text, link) = render(entries, &state.link, key);
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                state.len += text.len() as u64;
                state.link = link.clone();
                Ok(link)
            }
            Err(e) => {
                let msg = format!("cannot write {}: {e}", self.path.display());
                if let Err(cut) = file.set_len(state.len) {
                    let why = format!("{msg}; cutting the failed write back also failed: {cut}");
                    state.file = None;
                    state.error = Some(why.clone());
                    return Err(why);
                }
                Err(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use zeroize::Zeroizing;

    fn key() -> ChainKey {
        ChainKey::new(Zeroizing::new(vec![3; 32]))
    }

    fn entry(i: usize) -> Map<String, Value> {
        let Value::Object(m) = json!({"type": "request", "n": i}) else {
            unreachable!()
        };
        m
    }

    fn report(path: &Path) -> chain::Report {
        let f = std::io::BufReader::new(File::open(path).unwrap());
        chain::verify(f, Some(&key()), None).unwrap()
    }

    fn device(path: &Path) -> FileDevice {
        FileDevice::new(path, open(path, &key(), Tail::Cut).unwrap())
    }

    #[test]
    fn a_torn_tail_is_recorded_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let d = device(&path);
        d.write_group(vec![entry(1), entry(2)], &key()).unwrap();
        drop(d);
        let offset = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"response\",\"requ").unwrap();
        drop(f);
        assert!(
            report(&path).broken.is_some(),
            "a torn tail fails before it is recorded"
        );

        let d = device(&path);
        d.write_group(vec![entry(3)], &key()).unwrap();
        let r = report(&path);
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.cuts.len(), 1);
        assert_eq!((r.cuts[0].line, r.cuts[0].offset), (3, offset));
        assert_eq!(r.cuts[0].reason, chain::CUT_TORN);
        assert_eq!(
            r.head.unwrap().seq,
            4,
            "two lines, the cut record, one more"
        );
    }

    #[test]
    fn a_huge_last_line_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let d = device(&path);
        let mut big = entry(1);
        big.insert("blob".into(), "x".repeat(2 << 20).into());
        d.write_group(vec![entry(0), big], &key()).unwrap();
        drop(d);
        let d = device(&path);
        assert_eq!(d.link().seq, 2);
        d.write_group(vec![entry(2)], &key()).unwrap();
        let r = report(&path);
        assert!(r.is_clean() && r.cuts.is_empty(), "{r:?}");
    }

    #[test]
    fn appended_garbage_is_recorded_as_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let d = device(&path);
        d.write_group(vec![entry(1)], &key()).unwrap();
        drop(d);
        let offset = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not a line\nnor this\n").unwrap();
        drop(f);
        let d = device(&path);
        d.write_group(vec![entry(2)], &key()).unwrap();
        let r = report(&path);
        assert!(!r.is_clean(), "{r:?}");
        assert_eq!(r.cuts[0].offset, offset);
        assert_eq!(r.cuts[0].reason, chain::CUT_INVALID);
    }

    #[test]
    fn enabling_refuses_a_file_that_is_not_an_audit_log_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.bin");
        let bytes = b"\x00\x01binary\nno chain line here".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path, &key(), Tail::Refuse).err().unwrap();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        // A log with a torn tail too: only reopening a configured device records cuts.
        let log = dir.path().join("audit.log");
        device(&log).write_group(vec![entry(1)], &key()).unwrap();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"type\":\"requ").unwrap();
        drop(f);
        let before = std::fs::read(&log).unwrap();
        assert!(open(&log, &key(), Tail::Refuse).is_err());
        assert_eq!(std::fs::read(&log).unwrap(), before);
        assert!(open(&log, &key(), Tail::Cut).is_ok());

        // New, empty, and whole audit logs are taken.
        let empty = dir.path().join("empty.log");
        std::fs::write(&empty, b"").unwrap();
        assert!(open(&empty, &key(), Tail::Refuse).is_ok());
        assert!(open(&dir.path().join("new.log"), &key(), Tail::Refuse).is_ok());
        assert_eq!(open(&log, &key(), Tail::Refuse).unwrap().link.seq, 2);
    }
}
