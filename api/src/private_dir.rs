//! Directories for the daemon's private files (data directory, generated TLS files).

use std::io;
use std::path::Path;

/// Creates `dir` (and missing parents) so only the daemon's user can enter it, whatever
/// the umask. A directory that already exists keeps its mode: it may be shared, as
/// `/srv` is when the storage file is `/srv/ironseal.redb`, and changing it would take
/// access away from others. A warning says when group or others can read it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{mode:o}"),
                    "directory is open to group or others; the daemon's files in it are 0600, but consider chmod 700"
                );
            }
            return Ok(());
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_private_and_an_existing_one_keeps_its_mode() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("srv");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755, "an existing directory was changed");

        let fresh = shared.join("a/b");
        create_private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&shared.join("a")), 0o700);

        let file = shared.join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(create_private_dir(&file).is_err());
    }
}
