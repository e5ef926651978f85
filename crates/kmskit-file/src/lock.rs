//! The writer lock: an advisory `flock` on `keystore.lock`, which also names its holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kmskit_core::{Error, Result, Timestamp};

/// File name of the lock file.
pub(crate) const LOCK_FILE: &str = "keystore.lock";

/// Holds the exclusive lock until dropped (the kernel also drops it when the process dies).
#[derive(Debug)]
pub(crate) struct LockFile {
    file: File,
}

impl LockFile {
    /// Takes the lock on `dir`, or reports who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::io(
                    format!(
                        "cannot create the lock file {} (is the directory read-only? open it with \
                         FileStore::open_read_only)",
                        path.display()
                    ),
                    e,
                )
            })?;
        match try_lock_patiently(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: dir.display().to_string(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e));
            }
        }
        // Record who holds it, for the error a second writer gets. Not fsynced: it is only advice.
        let info = format!(
            "pid {} on host {} since {}",
            std::process::id(),
            crate::fsutil::host_name(),
            Timestamp::from_system(std::time::SystemTime::now())
        );
        let _ = file.set_len(0).and_then(|()| {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            file.write_all(info.as_bytes())
        });
        Ok(Self { file })
    }
}

/// How long [`LockFile::acquire`] keeps trying before it reports the lock as held.
const PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// `try_lock`, retried for up to [`PATIENCE`] while the lock is held.
///
/// A `flock` belongs to the open file description, and a child process forked by *any* thread of
/// this process shares our descriptions until it `exec`s. So a keystore closed and reopened while
/// another thread spawns a process can find its own, just-released lock still held for the instant
/// between that fork and exec. Waiting a little turns that race into a short delay; a lock really
/// held by another writer is still reported, after the wait.
fn try_lock_patiently(file: &File) -> std::result::Result<(), fs4::TryLockError> {
    let start = std::time::Instant::now();
    loop {
        match fs4::FileExt::try_lock(file) {
            Err(fs4::TryLockError::WouldBlock) if start.elapsed() < PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Clear the holder note while still holding the lock; closing the file releases it.
        let _ = self.file.set_len(0);
    }
}
