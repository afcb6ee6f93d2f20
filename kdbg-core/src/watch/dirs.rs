//! Which directories `kdbg watch` watches, the inotify (notify crate) watches on them, and the
//! debounce that turns a burst of file events into one batch.
//!
//! The set is every package directory of the components' stored import closures, the directory
//! of every closure file (embedded files may live below their package) and the directories of
//! the build's own inputs (`go.mod`, `Makefile`, `hack/lib`, ...), each watched non-recursively:
//! the cache decides whether an event changed a key, the watcher only says "look again". It is
//! refreshed after every cycle, since a cycle may have listed a new closure.
//!
//! A directory that goes away and comes back (`git checkout`, `git stash`) is a new directory
//! with no watch: each refresh re-watches a directory that the last batch named itself (its
//! removal or creation) or whose identity (device, inode) changed, and while one is missing its
//! nearest existing ancestor is watched, so its return starts a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
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

/// A directory's identity: a directory removed and made again is another one.
type Ident = (u64, u64);

fn ident(path: &Utf8Path) -> Option<Ident> {
    std::fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

/// The inotify watches on a set of directories, kept in step with [`wanted`].
pub(crate) struct Dirs {
    root: Utf8PathBuf,
    watcher: notify::RecommendedWatcher,
    /// Every directory with a watch (wanted ones, and ancestors of missing ones), by identity.
    watches: BTreeMap<String, Ident>,
    /// How many wanted directories are watched.
    count: usize,
}

impl Dirs {
    pub(crate) fn new(
        root: &Utf8Path,
        tx: std::sync::mpsc::Sender<notify::Result<notify::Event>>,
    ) -> Result<Dirs, WatchError> {
        let watcher = notify::recommended_watcher(tx).map_err(|e| watch_error(root, e))?;
        Ok(Dirs { root: root.to_owned(), watcher, watches: BTreeMap::new(), count: 0 })
    }

    /// Watches what is wanted (again, when a directory was replaced: `touched` are the paths the
    /// last batch named), and the nearest existing ancestor of what is missing; no longer watches
    /// the rest. Returns the wanted directories that do not exist, and fails only when the system
    /// runs out of watches.
    pub(crate) fn refresh(&mut self, wanted: &BTreeSet<String>, touched: &[String]) -> Result<Vec<String>, WatchError> {
        for d in touched {
            if self.watches.remove(d).is_some() {
                let _ = self.watcher.unwatch(self.root.join(d).as_std_path());
            }
        }
        let mut target: BTreeMap<String, Ident> = BTreeMap::new();
        let mut missing = Vec::new();
        for d in wanted {
            match ident(&self.root.join(d)) {
                Some(id) => drop(target.insert(d.clone(), id)),
                None => missing.push(d.clone()),
            }
        }
        for d in &missing {
            if let Some((a, id)) = self.nearest_existing(d) {
                target.entry(a).or_insert(id);
            }
        }
        for (d, id) in self.watches.clone() {
            if target.get(&d) != Some(&id) {
                let _ = self.watcher.unwatch(self.root.join(&d).as_std_path());
                self.watches.remove(&d);
            }
        }
        for (d, id) in target {
            if self.watches.contains_key(&d) {
                continue;
            }
            let path = self.root.join(&d);
            match self.watcher.watch(path.as_std_path(), RecursiveMode::NonRecursive) {
                Ok(()) => drop(self.watches.insert(d, id)),
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => return Err(watch_error(&path, e)),
                Err(_) if wanted.contains(&d) => missing.push(d),
                Err(_) => {}
            }
        }
        self.count = wanted.iter().filter(|d| self.watches.contains_key(*d)).count();
        Ok(missing)
    }

    /// The closest ancestor of `rel` that exists (at worst the tree's root).
    fn nearest_existing(&self, rel: &str) -> Option<(String, Ident)> {
        let mut d = rel;
        while !d.is_empty() {
            d = parent(d);
            if let Some(id) = ident(&self.root.join(d)) {
                return Some((d.to_string(), id));
            }
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.count
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
        let missing = dirs.refresh(&BTreeSet::from(["pkg".to_string(), "gone".to_string()]), &[]).unwrap();
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

    /// Waits (up to a generous bound) for an event naming `rel`.
    fn seen(rx: &Receiver<notify::Result<notify::Event>>, root: &Utf8Path, rel: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(Ok(e)) if e.paths.iter().any(|p| relative(root, p).as_deref() == Some(rel)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    #[test]
    fn a_directory_that_goes_and_comes_back_is_watched_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().canonicalize_utf8().unwrap();
        std::fs::create_dir_all(root.join("pkg/x")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut dirs = Dirs::new(&root, tx).unwrap();
        let wanted = BTreeSet::from(["pkg/x".to_string()]);
        assert!(dirs.refresh(&wanted, &[]).unwrap().is_empty());
        // Removed, then a refresh while it is gone: its ancestor sees it come back.
        std::fs::remove_dir_all(root.join("pkg/x")).unwrap();
        assert_eq!(dirs.refresh(&wanted, &[]).unwrap(), ["pkg/x"]);
        std::fs::create_dir(root.join("pkg/x")).unwrap();
        assert!(seen(&rx, &root, "pkg/x"), "the return of pkg/x was not seen");
        assert!(dirs.refresh(&wanted, &[]).unwrap().is_empty());
        std::fs::write(root.join("pkg/x/a.go"), "package x").unwrap();
        assert!(seen(&rx, &root, "pkg/x/a.go"), "an edit in the returned pkg/x was not seen");
        // Replaced between two refreshes (git stash and pop in one go; the inode may be reused):
        // the batch names the directory, which is watched again.
        std::fs::remove_dir_all(root.join("pkg/x")).unwrap();
        std::fs::create_dir(root.join("pkg/x")).unwrap();
        let stop = AtomicBool::new(false);
        let batch = next_batch(&rx, &root, Duration::from_millis(200), &stop).unwrap();
        assert!(batch.files.iter().any(|f| f == "pkg/x"), "{:?}", batch.files);
        assert!(dirs.refresh(&wanted, &batch.files).unwrap().is_empty());
        std::fs::write(root.join("pkg/x/b.go"), "package x").unwrap();
        assert!(seen(&rx, &root, "pkg/x/b.go"), "an edit in the replaced pkg/x was not seen");
        assert_eq!(dirs.len(), 1);
    }
}
