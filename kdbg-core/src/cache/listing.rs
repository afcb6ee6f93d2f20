//! A package directory as `go build` sees it: its entry names as bytes, each symlink's target,
//! and refusals where kdbg could not follow what the build does.
//!
//! Two kinds of entry are refused with an error naming them, because either would let a changed
//! input go unnoticed:
//!
//! - a source file (`.go`, `.c`, `.s`, `.syso`, ...) whose name is not UTF-8: `go list` reports
//!   it with U+FFFD in place of the bad bytes, so kdbg could never read or hash it;
//! - a source file that is a symlink kdbg cannot follow (dangling, or a loop): the build fails on
//!   it, so "up to date" would be a lie.
//!
//! Other symlinks are followed: their target's content and identity (stat) are what the index
//! keeps, and the link's target text is part of the listing, so retargeting one is a change.

use std::os::unix::ffi::OsStrExt;

use camino::Utf8Path;
use sha2::{Digest, Sha256};

use super::CacheError;

/// File name suffixes `go build` reads in a package directory (go/build's list).
const SOURCE_SUFFIXES: &[&[u8]] = &[
    b".go",
    b".c",
    b".cc",
    b".cxx",
    b".cpp",
    b".m",
    b".s",
    b".S",
    b".sx",
    b".h",
    b".hh",
    b".hpp",
    b".hxx",
    b".f",
    b".F",
    b".for",
    b".f90",
    b".swig",
    b".swigcxx",
    b".syso",
];

/// Whether Go could build a file with this name (it skips names starting with `.` or `_`).
pub(crate) fn is_source(name: &[u8]) -> bool {
    !name.starts_with(b".") && !name.starts_with(b"_") && SOURCE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `dir/name` for messages, with bytes that are not UTF-8 shown as `\xNN`.
pub(crate) fn display(dir: &str, name: &[u8]) -> String {
    let name = match std::str::from_utf8(name) {
        Ok(s) => s.to_string(),
        Err(_) => name.escape_ascii().to_string(),
    };
    if dir.is_empty() {
        name
    } else {
        format!("{dir}/{name}")
    }
}

/// Digest of `dir`'s entries that `go build` could use (git-ignored names are not inputs);
/// `Ok(None)` when the directory cannot be read (treated as changed).
pub(crate) fn listing(
    root: &Utf8Path,
    dir: &str,
    ignored: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, CacheError> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return Ok(None) };
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") || bytes.starts_with(b"_") {
            continue;
        }
        let rel = display(dir, bytes);
        if ignored(&rel) {
            continue;
        }
        let source = is_source(bytes);
        if source && std::str::from_utf8(bytes).is_err() {
            return Err(CacheError::NonUtf8Name { path: rel });
        }
        let mut line = bytes.to_vec();
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            if source {
                if let Err(err) = std::fs::metadata(e.path()) {
                    let (target, detail) = (target.display().to_string(), crate::host::io_text(&err));
                    return Err(CacheError::BrokenLink { path: rel, target, detail });
                }
            }
            line.extend_from_slice(b" -> ");
            line.extend_from_slice(target.as_os_str().as_bytes());
        }
        names.push(line);
    }
    names.sort();
    Ok(Some(hex::encode(&Sha256::digest(names.join(&b'\n'))[..8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, camino::Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        std::fs::create_dir(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/a.go"), "package a\n").unwrap();
        (dir, root)
    }

    #[test]
    fn a_non_utf8_source_name_is_refused_by_name() {
        let (_d, root) = tree();
        let none = |_: &str| false;
        let path = root.join("pkg").into_std_path_buf().join(std::ffi::OsStr::from_bytes(b"\xff.go"));
        std::fs::write(path, "package a\n").unwrap();
        let e = listing(&root, "pkg", &none).unwrap_err().to_string();
        assert!(e.starts_with(r"pkg/\xff.go has a name that is not UTF-8"), "{e}");
        assert_eq!(e.matches("fix:").count(), 1, "{e}");
    }

    #[test]
    fn symlinks_are_part_of_the_listing_and_broken_ones_are_refused() {
        let (_d, root) = tree();
        let none = |_: &str| false;
        std::fs::write(root.join("pkg/b.txt"), "x").unwrap();
        std::os::unix::fs::symlink("a.go", root.join("pkg/l.go")).unwrap();
        let one = listing(&root, "pkg", &none).unwrap();
        std::fs::remove_file(root.join("pkg/l.go")).unwrap();
        std::os::unix::fs::symlink("b.txt", root.join("pkg/l.go")).unwrap();
        assert_ne!(listing(&root, "pkg", &none).unwrap(), one, "a retargeted link is a change");
        std::os::unix::fs::symlink("nowhere.go", root.join("pkg/d.go")).unwrap();
        let e = listing(&root, "pkg", &none).unwrap_err().to_string();
        assert!(e.contains("pkg/d.go is a symlink to nowhere.go that cannot be followed"), "{e}");
        std::fs::remove_file(root.join("pkg/d.go")).unwrap();
        std::os::unix::fs::symlink("y.go", root.join("pkg/x.go")).unwrap();
        std::os::unix::fs::symlink("x.go", root.join("pkg/y.go")).unwrap();
        let e = listing(&root, "pkg", &none).unwrap_err().to_string();
        assert!(e.contains("symbolic links"), "{e}");
        // A dangling link Go would not build is only a name.
        std::fs::remove_file(root.join("pkg/x.go")).unwrap();
        std::fs::remove_file(root.join("pkg/y.go")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("pkg/notes.txt")).unwrap();
        assert!(listing(&root, "pkg", &none).unwrap().is_some());
    }
}
