//! Writing certificate files atomically: each file to a temporary name in the same directory (keys
//! created 0600 before a secret byte is written), fsynced, renamed into place, then the
//! directory fsynced; and removing temporary files a crashed process left.

use super::*;

/// Removes temporary files left by a process that died while generating. Only lock holders
/// create them, so while we hold the lock any that exist are stale. Best effort.
pub(super) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

pub(super) fn is_key_file(name: &str) -> bool {
    name.ends_with("-key.pem")
}

/// A temporary file that is removed unless it was renamed into place.
pub(super) struct TempFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `contents` to a new temporary file in `dir` beside `name` (mode 0600 for keys from the
/// moment it is created), and fsyncs it.
pub(super) fn write_temp(dir: &Path, name: &str, contents: &[u8]) -> Result<TempFile, TlsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let target = dir.join(name);
    let write_error = |error| TlsError::Write {
        path: target.clone(),
        error,
    };
    let tmp_path = dir.join(format!(
        ".{name}.{}-{}{TMP_SUFFIX}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mode = if is_key_file(name) { 0o600 } else { 0o644 };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp_path)
        .map_err(write_error)?;
    let temp = TempFile {
        path: tmp_path,
        renamed: false,
    };
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    Ok(temp)
}

/// Writes `files` (name and contents): every one to a synced temporary file first, then
/// renames them into place in the order given (each key before its certificate), then syncs
/// the directory. A crash part-way leaves at worst a key that does not match its certificate,
/// which the next start finds unusable and replaces.
pub(super) fn write_files(dir: &Path, files: &[(&'static str, String)]) -> Result<(), TlsError> {
    let mut temps = Vec::with_capacity(files.len());
    for (name, contents) in files {
        temps.push((*name, write_temp(dir, name, contents.as_bytes())?));
    }
    for (name, temp) in &mut temps {
        let target = dir.join(*name);
        fs::rename(&temp.path, &target).map_err(|error| TlsError::Write {
            path: target,
            error,
        })?;
        temp.renamed = true;
    }
    sync_dir(dir)
}

/// Makes the renames durable. Filesystems that cannot sync a directory are tolerated.
pub(super) fn sync_dir(dir: &Path) -> Result<(), TlsError> {
    let result = File::open(dir).and_then(|d| d.sync_all());
    match result {
        Err(error)
            if !matches!(
                error.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Err(TlsError::Write {
                path: dir.to_path_buf(),
                error,
            })
        }
        _ => Ok(()),
    }
}
