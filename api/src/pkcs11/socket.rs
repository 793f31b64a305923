//! The Unix socket's file: where it may live, what happens to one left by an earlier
//! run, and who may connect.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use tokio::net::UnixListener;

#[derive(Debug, Error)]
pub enum SocketError {
    #[error("cannot create the PKCS#11 socket's directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("the PKCS#11 socket's directory {path} {reason}: another user could replace the socket and read the PINs sent to it")]
    UnsafeDir { path: PathBuf, reason: String },
    #[error("another daemon is serving PKCS#11 at {0}: stop it, or configure another socket path")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket: remove it, or configure another socket path")]
    NotASocket(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// The daemon's effective uid: the default allow-list, and the owner its socket's
/// directory must have.
pub fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Who may connect: the peer's uid (from `SO_PEERCRED`) is in the allow-list.
pub fn admitted(uid: u32, allowed: &[u32]) -> bool {
    allowed.contains(&uid)
}

/// The listening socket; its file is removed when it is dropped (if it is still the one
/// this daemon made).
pub struct BoundSocket {
    pub(crate) listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the file this daemon made.
    made: (u64, u64),
}

impl BoundSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.made)
            .unwrap_or(false);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the PKCS#11 socket");
            }
        }
    }
}

/// Listens on `path`, mode 0660, in a directory that exists or is created 0700. A socket
/// file left by a daemon that died is replaced; one a live daemon answers on is not.
pub fn bind(path: &Path, own_uid: u32) -> Result<BoundSocket, SocketError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    prepare_dir(dir, own_uid)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(SocketError::NotASocket(path.to_path_buf()));
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(SocketError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "removing the PKCS#11 socket left by an earlier run");
                    std::fs::remove_file(path).map_err(|source| SocketError::Bind {
                        path: path.to_path_buf(),
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(SocketError::Bind {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SocketError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    let bind_err = |source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    // Group members may connect; the uid allow-list then decides.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    let meta = std::fs::symlink_metadata(path).map_err(bind_err)?;
    Ok(BoundSocket {
        listener,
        path: path.to_path_buf(),
        made: (meta.dev(), meta.ino()),
    })
}

/// The directory must be the daemon's (or root's), and nobody else may rename files in
/// it, else a local user could put a socket of their own at the path the library
/// connects to. One that does not exist is created for the daemon's user only.
fn prepare_dir(dir: &Path, own_uid: u32) -> Result<(), SocketError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let made = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                });
            return made.map_err(|source| SocketError::Dir {
                path: dir.to_path_buf(),
                source,
            });
        }
        Err(source) => {
            return Err(SocketError::Dir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let unsafe_dir = |reason: String| SocketError::UnsafeDir {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    if meta.uid() != own_uid && meta.uid() != 0 {
        return Err(unsafe_dir(format!(
            "belongs to uid {}, neither this daemon's ({own_uid}) nor root",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    // Writable by others is fine only with the sticky bit (as /tmp has).
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(unsafe_dir(format!(
            "is writable by group or others (mode {:o})",
            mode & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_uid(dir: &Path) -> u32 {
        std::fs::metadata(dir).unwrap().uid()
    }

    #[test]
    fn the_allow_list_decides() {
        assert!(admitted(1000, &[0, 1000]));
        assert!(!admitted(1001, &[1000]));
        assert!(!admitted(1000, &[]));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_a_live_one_is_not_and_drop_removes_it() {
        let t = tempfile::tempdir().unwrap();
        let uid = own_uid(t.path());
        let path = t.path().join("run/ironseal/pkcs11.sock");
        let bound = bind(&path, uid).unwrap();
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        assert!(matches!(bind(&path, uid), Err(SocketError::InUse(_))));
        drop(bound);
        assert!(!path.exists(), "the socket file goes with the listener");
        // A daemon that died leaves its file behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let again = bind(&path, uid).expect("the stale socket is replaced");
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(again);
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("pkcs11.sock");
        std::fs::write(&path, b"data").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        assert!(matches!(
            bind(&path, own_uid(t.path())),
            Err(SocketError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn a_directory_others_control_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let uid = own_uid(t.path());
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_dir(&open, uid).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_dir(&open, uid).expect("sticky, as /tmp");
        // Owned by someone else (root passes: it could replace anything anyway).
        let theirs = t.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let me = if uid == 0 {
            std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
            0
        } else {
            uid + 1
        };
        let e = prepare_dir(&theirs, me).unwrap_err();
        assert!(e.to_string().contains("belongs to uid"), "{e}");
    }
}
