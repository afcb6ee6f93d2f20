//! The built-in fixture tree: copied to a scratch directory and made a git repository tagged v1.20.2.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixture inside this repository (never built in place).
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kubernetes")
}

/// Copies the fixture to `<parent>/kubernetes` and commits it, tagged `v1.20.2`, so `git describe`
/// gives its version the way it does in a real checkout. Returns the tree's root.
pub fn copy_to(parent: &Path) -> std::io::Result<PathBuf> {
    let root = parent.join("kubernetes");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    copy_dir(&source(), &root)?;
    let git = |args: &[&str]| -> std::io::Result<()> {
        let out = Command::new("git")
            .args(["-c", "user.name=kdbg", "-c", "user.email=kdbg@localhost", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&root)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr))))
        }
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-qm", "fixture"])?;
    git(&["tag", "v1.20.2"])?;
    Ok(root)
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
