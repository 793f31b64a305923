//! The `file` audit device: appends hash-chained JSON lines to one file, reopened on
//! SIGHUP so log rotation works as with Vault's file device.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::chain::{self, Link};

/// How much of an existing file's tail is read to find its last line on open.
const TAIL_BYTES: u64 = 1 << 20;

pub struct FileDevice {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// `None` after a failed reopen: every write then fails, and requests fail closed.
    file: Option<File>,
    link: Link,
    error: Option<String>,
}

fn open(path: &Path) -> Result<(File, Link), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    let start = len.saturating_sub(TAIL_BYTES);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tail = String::from_utf8_lossy(&tail);
    let link = chain::last_link(&tail)
        .map_err(|e| format!("{} cannot be continued: {e}", path.display()))?;
    Ok((file, link))
}

impl FileDevice {
    pub fn open(path: &Path) -> Result<Self, String> {
        let (file, link) = open(path)?;
        Ok(FileDevice {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file: Some(file),
                link,
                error: None,
            }),
        })
    }

    /// A device whose file could not be opened at unseal: it stays enabled, and refuses.
    pub fn broken(path: &Path, error: String) -> Self {
        FileDevice {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file: None,
                link: Link::genesis(),
                error: Some(error),
            }),
        }
    }

    pub fn reopen(&self) -> Result<(), String> {
        let mut state = self.state.lock();
        match open(&self.path) {
            Ok((file, link)) => {
                *state = State {
                    file: Some(file),
                    link,
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

    pub fn write(&self, entry: Map<String, Value>) -> Result<(), String> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let Some(file) = state.file.as_mut() else {
            return Err(state
                .error
                .clone()
                .unwrap_or_else(|| format!("{} is not open", self.path.display())));
        };
        let (mut line, next) = chain::seal_line(entry, &state.link);
        line.push('\n');
        file.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        state.link = next;
        Ok(())
    }
}
