//! Which directories `kdbg watch` watches, the inotify (notify crate) watches on them, and the
//! debounce that turns a burst of file events into one batch.
//!
//! The set is every package directory of the components' stored import closures, the directory
//! of every closure file (embedded files may live below their package) and the directories of
//! the build's own inputs (`go.mod`, `Makefile`, `hack/lib`, ...), each watched non-recursively:
//! the cache decides whether an event changed a key, the watcher only says "look again". It is
//! refreshed after every cycle, since a cycle may have listed a new closure.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};

use super::WatchError;
use crate::cache;
use crate::component::Component;

/// The tree-relative directories to watch for `components` (`""` is the tree's root).
pub(crate) fn wanted(
    tree_root: &Utf8Path,
    state_dir: &Utf8Path,
    components: &[&'static Component],
) -> BTreeSet<String> {
    let mut dirs = cache::closure_dirs(state_dir, components);
    dirs.extend(cache::build_files(tree_root).iter().map(|f| parent(f).to_string()));
    dirs.retain(|d| !d.starts_with("_output"));
    dirs
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(d, _)| d)
}

/// The inotify watches on a set of directories, kept in step with [`wanted`].
pub(crate) struct Dirs {
    root: Utf8PathBuf,
    watcher: notify::RecommendedWatcher,
    watched: BTreeSet<String>,
}

impl Dirs {
    pub(crate) fn new(
        root: &Utf8Path,
        tx: std::sync::mpsc::Sender<notify::Result<notify::Event>>,
    ) -> Result<Dirs, WatchError> {
        let watcher = notify::recommended_watcher(tx).map_err(|e| watch_error(root, e))?;
        Ok(Dirs { root: root.to_owned(), watcher, watched: BTreeSet::new() })
    }

    /// Watches what is wanted and no longer watches the rest; returns directories that could not
    /// be watched (removed since), and fails only when the system runs out of watches.
    pub(crate) fn refresh(&mut self, wanted: &BTreeSet<String>) -> Result<Vec<String>, WatchError> {
        let gone: Vec<String> = self.watched.difference(wanted).cloned().collect();
        for d in gone {
            let _ = self.watcher.unwatch(self.root.join(&d).as_std_path());
            self.watched.remove(&d);
        }
        let mut missing = Vec::new();
        for d in wanted.difference(&self.watched.clone()) {
            let path = self.root.join(d);
            match self.watcher.watch(path.as_std_path(), RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d.clone());
                }
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => return Err(watch_error(&path, e)),
                Err(_) => missing.push(d.clone()),
            }
        }
        Ok(missing)
    }

    pub(crate) fn len(&self) -> usize {
        self.watched.len()
    }
}

fn watch_error(path: &Utf8Path, e: notify::Error) -> WatchError {
    let fix = match e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            "\n  fix: raise the limit, e.g. `sudo sysctl fs.inotify.max_user_watches=524288`".to_string()
        }
        _ => String::new(),
    };
    WatchError::Watch { path: path.to_string(), detail: format!("{e}{fix}") }
}

/// A debounced burst of changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    /// Tree-relative paths that changed, sorted.
    pub files: Vec<String>,
    /// When the first of them was noticed.
    pub first: Instant,
}

/// Waits for a change, then until `quiet` passes without another; `None` once `stop` is set
/// or the watcher is gone.
pub(crate) fn next_batch(
    rx: &Receiver<notify::Result<notify::Event>>,
    root: &Utf8Path,
    quiet: Duration,
    stop: &AtomicBool,
) -> Option<Batch> {
    let tick = Duration::from_millis(100);
    let mut files = BTreeSet::new();
    let mut first = None;
    let mut last = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let wait = match first {
            None => tick,
            Some(_) => quiet.saturating_sub(last.elapsed()).min(tick),
        };
        match rx.recv_timeout(wait) {
            Ok(Ok(event)) if changes(&event.kind) => {
                files.extend(event.paths.iter().filter_map(|p| relative(root, p)));
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        if let Some(first) = first.filter(|_| last.elapsed() >= quiet) {
            return Some(Batch { files: files.into_iter().collect(), first });
        }
    }
}

/// Events that may change a file's content or a directory's listing. Reads are not changes: `go`
/// and `make` open every source file during a cycle.
pub(crate) fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn relative(root: &Utf8Path, path: &std::path::Path) -> Option<String> {
    let path = Utf8Path::from_path(path)?;
    Some(path.strip_prefix(root).unwrap_or(path).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind};

    #[test]
    fn reads_are_not_changes() {
        assert!(!changes(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!changes(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(changes(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(changes(&EventKind::Modify(ModifyKind::Any)));
        assert!(changes(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn a_burst_is_one_batch_and_a_new_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().canonicalize_utf8().unwrap();
        std::fs::create_dir(root.join("pkg")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut dirs = Dirs::new(&root, tx).unwrap();
        let missing = dirs.refresh(&BTreeSet::from(["pkg".to_string(), "gone".to_string()])).unwrap();
        assert_eq!((missing, dirs.len()), (vec!["gone".to_string()], 1));
        for i in 0..3 {
            std::fs::write(root.join("pkg/a.go"), format!("package pkg // {i}")).unwrap();
        }
        std::fs::write(root.join("pkg/new.go"), "package pkg").unwrap();
        let stop = AtomicBool::new(false);
        let batch = next_batch(&rx, &root, Duration::from_millis(200), &stop).unwrap();
        assert_eq!(batch.files, ["pkg/a.go", "pkg/new.go"]);
        assert!(batch.first.elapsed() >= Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(next_batch(&rx, &root, Duration::from_millis(200), &stop), None);
    }
}
