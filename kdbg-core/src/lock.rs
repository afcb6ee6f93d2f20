//! An advisory lock per source tree, so two kdbg runs never build into the same `_output` at once.

use std::fs::File;
use std::io::Write;

use crate::report::Reporter;
use camino::Utf8Path;

/// Held for the lifetime of the value; released on drop (and by the kernel if kdbg dies).
#[derive(Debug)]
pub(crate) struct TreeLock {
    _file: File,
}

impl TreeLock {
    /// Takes the lock, telling the user and then waiting when another kdbg holds it.
    pub(crate) fn acquire(state_dir: &Utf8Path, reporter: &dyn Reporter) -> std::io::Result<TreeLock> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("lock");
        let mut file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
                reporter.info(format!("waiting for another kdbg{who} that is building in this tree; lock: {path}"));
                file.lock()?;
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(TreeLock { _file: file })
    }

    /// Does a kdbg hold the lock of the tree with this state directory (is it building there)?
    pub(crate) fn held(state_dir: &Utf8Path) -> bool {
        let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(state_dir.join("lock")) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }
}
