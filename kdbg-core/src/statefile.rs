//! Small JSON files in the workstation's state directory (tunnels, worktree uses), read-modify-
//! written under a lock file, since several kdbg processes (or nodes of one run) write them at once.

use std::io;

use camino::Utf8Path;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The list in `dir/file`; none when the file does not exist (or is not readable JSON).
pub(crate) fn load<T: DeserializeOwned>(dir: &Utf8Path, file: &str) -> io::Result<Vec<T>> {
    match std::fs::read(dir.join(file)) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Replaces `dir/file` at once (written aside, then renamed).
pub(crate) fn save<T: Serialize>(dir: &Utf8Path, file: &str, items: &[T]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{file}.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(items).expect("state serializes"))?;
    std::fs::rename(&tmp, dir.join(file))
}

/// Runs `f` on the list in `dir/file` holding an exclusive lock (`file.lock`), and saves what
/// it leaves.
pub(crate) fn update<T: Serialize + DeserializeOwned, R>(
    dir: &Utf8Path,
    file: &str,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> io::Result<R> {
    std::fs::create_dir_all(dir)?;
    let lock =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("{file}.lock")))?;
    lock.lock()?;
    let existed = dir.join(file).exists();
    let mut items = load(dir, file)?;
    let out = f(&mut items);
    if existed || !items.is_empty() {
        save(dir, file, &items)?;
    }
    Ok(out)
}
