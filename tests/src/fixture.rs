//! The built-in fixture trees, one per build-contract era: copied to a scratch directory and made
//! a git repository tagged with the era's version.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// `tests/fixtures/kubernetes`: GOPATH-era layout, vendor/, `GOLDFLAGS=''` debug flags; v1.20.2.
    V120,
    /// `tests/fixtures/kubernetes-modern`: go.work, staging modules, `.go-version`, `DBG=1`; v1.36.0.
    Modern,
}

impl Era {
    pub fn dir(self) -> &'static str {
        match self {
            Era::V120 => "kubernetes",
            Era::Modern => "kubernetes-modern",
        }
    }
    pub fn tag(self) -> &'static str {
        match self {
            Era::V120 => "v1.20.2",
            Era::Modern => "v1.36.0",
        }
    }
    /// The healthz handler with the breakpoint marker, relative to the tree.
    pub fn healthz(self) -> &'static str {
        match self {
            Era::V120 => "pkg/healthz/healthz.go",
            Era::Modern => "staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go",
        }
    }
    /// The era of a tree on disk.
    pub fn of(tree: &Path) -> Era {
        if tree.join("go.work").is_file() {
            Era::Modern
        } else {
            Era::V120
        }
    }
}

/// The 1.20-era fixture inside this repository (never built in place).
pub fn source() -> PathBuf {
    source_of(Era::V120)
}

pub fn source_of(era: Era) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(era.dir())
}

/// Copies the 1.20-era fixture to `<parent>/kubernetes` (see [`copy_era`]).
pub fn copy_to(parent: &Path) -> std::io::Result<PathBuf> {
    copy_era(parent, Era::V120, None)
}

/// Copies a fixture to `<parent>/kubernetes` and commits it, tagged with its era's version, so
/// `git describe` gives its version the way it does in a real checkout. `go_version` (`1.24.11`)
/// replaces the modern fixture's `.go-version`, as a release branch pins its own Go. Returns the
/// tree's root.
pub fn copy_era(parent: &Path, era: Era, go_version: Option<&str>) -> std::io::Result<PathBuf> {
    let root = parent.join("kubernetes");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    copy_dir(&source_of(era), &root)?;
    if let (Era::Modern, Some(v)) = (era, go_version) {
        std::fs::write(root.join(".go-version"), format!("{v}\n"))?;
    }
    let git = |args: &[&str]| git(&root, args).map(drop);
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-qm", "fixture"])?;
    git(&["tag", era.tag()])?;
    Ok(root)
}

/// Runs git in `root` as the fixtures' committer (`kdbg <kdbg@localhost>`, first branch `main`);
/// its stdout, or an error holding its stderr.
pub fn git(root: &Path, args: &[&str]) -> std::io::Result<String> {
    let out = Command::new("git")
        .args(["-c", "user.name=kdbg", "-c", "user.email=kdbg@localhost", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(root)
        .output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(std::io::Error::other(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr))))
    }
}

/// Copies a directory tree, skipping build outputs; symlinks are recreated as symlinks.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "_output" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let ty = entry.file_type()?;
        if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}
