//! The stat index: what each input file looked like when it was last hashed, so unchanged files are not read again.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;

use camino::Utf8Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::listing::listing;
use super::CacheError;

/// The cheap identity of a file or directory. Any difference means "look again".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stat {
    pub(crate) fn of(path: &Utf8Path) -> std::io::Result<Stat> {
        let m = std::fs::metadata(path)?;
        Ok(Stat {
            size: if m.is_dir() { 0 } else { m.size() },
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub stat: Stat,
    pub sha256: String,
    /// For `.go` files: a digest of what decides the import closure (package clause, build
    /// constraints, imports, `//go:embed` lines). A body edit leaves it alone, so `go list` need
    /// not run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    /// When the index was written; an entry modified at or after it may have changed again within
    /// the clock's granularity ("racy"), so it is hashed again.
    pub written_ns: i64,
    pub files: BTreeMap<String, FileEntry>,
    pub dirs: BTreeMap<String, DirEntry>,
    /// Something changed since the index was loaded, so it is worth writing back.
    #[serde(skip)]
    pub dirty: bool,
}

/// A package directory: its stat, and a digest of the names in it that Go could build or embed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub stat: Stat,
    pub listing: String,
}

/// What a refresh found.
#[derive(Debug, Default)]
pub(crate) struct Refresh {
    /// Files that were read and hashed again (new, changed or racy).
    pub rehashed: usize,
    /// Files whose content differs from the previous entry (or that had none).
    pub changed: Vec<String>,
    /// A changed `.go` file's header changed, or a file is gone: the closure may be different.
    pub closure_suspect: bool,
    /// Files that could not be stat'ed or read, and why (gone, a broken symlink, no permission).
    pub unreadable: Vec<(String, String)>,
}

impl Index {
    /// Brings the entries of `files` up to date, hashing only what the stat index cannot vouch for.
    pub(crate) fn refresh(&mut self, root: &Utf8Path, files: &BTreeSet<String>) -> Refresh {
        let mut todo = Vec::new();
        let mut refresh = Refresh::default();
        for rel in files {
            match Stat::of(&root.join(rel)) {
                Ok(stat) => match self.files.get(rel) {
                    Some(e) if e.stat == stat && stat.mtime_ns < self.written_ns => {}
                    _ => todo.push((rel.clone(), stat)),
                },
                Err(e) => {
                    self.files.remove(rel);
                    refresh.closure_suspect = true;
                    refresh.unreadable.push((rel.clone(), crate::host::io_text(&e)));
                }
            }
        }
        refresh.rehashed = todo.len();
        self.dirty |= refresh.rehashed > 0 || refresh.closure_suspect;
        for (rel, entry) in hash_all(root, todo) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.files.remove(&rel);
                    refresh.closure_suspect = true;
                    refresh.unreadable.push((rel, e));
                    continue;
                }
            };
            let old = self.files.insert(rel.clone(), entry.clone());
            if old.as_ref().map(|o| &o.sha256) != Some(&entry.sha256) {
                if old.as_ref().map(|o| &o.header) != Some(&entry.header) {
                    refresh.closure_suspect = true;
                }
                refresh.changed.push(rel);
            }
        }
        refresh
    }

    /// True when no directory gained or lost a file Go could see. A directory whose stat changed
    /// (an editor's swap file, a generated file git ignores) is listed again and compared by name;
    /// a name or a link kdbg cannot follow is an error (see [`listing`]).
    pub(crate) fn dirs_unchanged(
        &mut self,
        root: &Utf8Path,
        dirs: &BTreeSet<String>,
        ignored: &dyn Fn(&str) -> bool,
    ) -> Result<bool, CacheError> {
        for d in dirs {
            let Ok(stat) = Stat::of(&root.join(d)) else {
                return Ok(false);
            };
            let Some(entry) = self.dirs.get_mut(d) else {
                return Ok(false);
            };
            if entry.stat == stat && stat.mtime_ns < self.written_ns {
                continue;
            }
            match listing(root, d, ignored)? {
                Some(l) if l == entry.listing => {
                    entry.stat = stat;
                    self.dirty = true;
                }
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    pub(crate) fn record_dirs(
        &mut self,
        root: &Utf8Path,
        dirs: &BTreeSet<String>,
        ignored: &dyn Fn(&str) -> bool,
    ) -> Result<(), CacheError> {
        self.dirty = true;
        for d in dirs {
            if let (Ok(stat), Some(listing)) = (Stat::of(&root.join(d)), listing(root, d, ignored)?) {
                self.dirs.insert(d.clone(), DirEntry { stat, listing });
            }
        }
        Ok(())
    }

    pub(crate) fn sha256(&self, rel: &str) -> Option<&str> {
        self.files.get(rel).map(|e| e.sha256.as_str())
    }
}

/// Hashes files on all cores; a file that vanished in the meantime maps to why it cannot be read.
fn hash_all(root: &Utf8Path, todo: Vec<(String, Stat)>) -> Vec<(String, Result<FileEntry, String>)> {
    if todo.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let chunk = todo.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter().map(|(rel, stat)| (rel.clone(), hash_file(root, rel, *stat))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("hash worker panicked")).collect()
    })
}

fn hash_file(root: &Utf8Path, rel: &str, stat: Stat) -> Result<FileEntry, String> {
    let bytes = std::fs::read(root.join(rel)).map_err(|e| crate::host::io_text(&e))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let header = rel.ends_with(".go").then(|| go_header_digest(&bytes));
    Ok(FileEntry { stat, sha256, header })
}

/// Digest of the lines of a Go file that can change the import closure or the file's build
/// constraints: everything before the first top-level declaration other than `import`, plus every
/// `//go:embed` line.
pub(crate) fn go_header_digest(src: &[u8]) -> String {
    let text = String::from_utf8_lossy(src);
    let mut h = Sha256::new();
    let mut in_header = true;
    for line in text.lines() {
        let t = line.trim_start();
        if in_header && ["func ", "type ", "var ", "const "].iter().any(|k| line.starts_with(k)) {
            in_header = false;
        }
        if in_header || t.starts_with("//go:embed") {
            h.update(line.as_bytes());
            h.update(b"\n");
        }
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_edits_keep_the_header_digest_and_import_edits_change_it() {
        let a = b"package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Println(1) }\n";
        let b = b"package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Println(2) }\n";
        let c = b"package a\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc F() { fmt.Println(os.Args) }\n";
        let d = b"package a\n\nimport \"fmt\"\n\nfunc F() { fmt.Println(1) }\n\n//go:embed x.txt\nvar x string\n";
        assert_eq!(go_header_digest(a), go_header_digest(b));
        assert_ne!(go_header_digest(a), go_header_digest(c));
        assert_ne!(go_header_digest(a), go_header_digest(d));
    }

    #[test]
    fn swap_files_and_ignored_files_do_not_change_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/a.go"), "package a\n").unwrap();
        let dirs: BTreeSet<String> = ["pkg".to_string()].into();
        let ignored = |p: &str| p.ends_with("zz_generated.go");
        let mut index = Index::default();
        index.record_dirs(root, &dirs, &ignored).unwrap();
        index.written_ns = i64::MAX;
        std::fs::write(root.join("pkg/.a.go.swp"), "").unwrap();
        std::fs::write(root.join("pkg/zz_generated.go"), "package a\n").unwrap();
        assert!(index.dirs_unchanged(root, &dirs, &ignored).unwrap());
        std::fs::write(root.join("pkg/b.go"), "package a\n").unwrap();
        assert!(!index.dirs_unchanged(root, &dirs, &ignored).unwrap());
    }

    #[test]
    fn only_changed_or_racy_files_are_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("a.go"), "package a\n").unwrap();
        std::fs::write(root.join("b.go"), "package a\n").unwrap();
        let files: BTreeSet<String> = ["a.go".to_string(), "b.go".to_string()].into();
        let mut index = Index::default();
        assert_eq!(index.refresh(root, &files).rehashed, 2);
        // Entries written before the index was stamped are trusted.
        index.written_ns = i64::MAX;
        assert_eq!(index.refresh(root, &files).rehashed, 0);
        std::fs::write(root.join("b.go"), "package a // changed\n").unwrap();
        let r = index.refresh(root, &files);
        assert_eq!((r.rehashed, r.changed.as_slice()), (1, &["b.go".to_string()][..]));
        // Racy: modified at or after the index was written, so looked at again even if stat matches.
        index.written_ns = 0;
        assert_eq!(index.refresh(root, &files).rehashed, 2);
    }
}
