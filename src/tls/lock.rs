//! The advisory lock that makes check-and-generate one step across processes: an exclusive
//! `flock` on `<dir>/.clnrest-certs.lock`, which is never deleted.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

pub(super) fn is_read_only_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Takes the exclusive advisory lock, blocking until other holders release it (they hold
/// it for the milliseconds it takes to generate and read six small files).
pub(super) fn lock_exclusive(file: &File) -> io::Result<()> {
    match file.lock() {
        Err(error) if error.kind() == io::ErrorKind::Unsupported => {
            tracing::warn!("file locking is not supported here ({error}); going on without it");
            Ok(())
        }
        other => other,
    }
}
