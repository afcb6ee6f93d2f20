//! Test-only: builds the fixture kubernetes tree (`tests/fixtures/kubernetes`) in a scratch copy.
//!
//! Each caller gets its own copy (Go's build cache keeps repeated builds cheap); the copy is
//! removed when the returned [`Built`] is dropped. Needs `go` on `PATH`.

use std::path::Path;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};

pub(crate) struct Built {
    pub root: Utf8PathBuf,
    pub binary: Utf8PathBuf,
    _dir: tempfile::TempDir,
}

/// The fixture in this repository (never built in place).
pub(crate) fn source() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/kubernetes")
}

/// A fresh copy of the fixture tree, not built.
pub(crate) fn copy() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::Builder::new().prefix("kdbg-fixture-").tempdir().expect("a temp dir");
    let root = Utf8PathBuf::from_path_buf(dir.path().join("kubernetes")).expect("a utf-8 temp dir");
    copy_dir(source().as_std_path(), root.as_std_path()).expect("copy the fixture");
    (dir, root)
}

/// `make all WHAT=cmd/kube-apiserver <vars>` in a fresh copy, e.g. `&["DBG=1"]`.
pub(crate) fn make(vars: &[&str]) -> Built {
    let (dir, root) = copy();
    let mut cmd = Command::new("make");
    cmd.arg("all").arg("WHAT=cmd/kube-apiserver").args(vars).current_dir(&root);
    run(cmd);
    let binary = root.join("_output/local/bin/linux/amd64/kube-apiserver");
    Built { root, binary, _dir: dir }
}

/// Builds the way v1.20's `make` does: GOPATH mode through `_output/local/go/src/k8s.io/kubernetes`,
/// a symlink to the tree, with `gcflags` (which may contain `{root}`) given as is.
pub(crate) fn gopath_build(gcflags: &str) -> Built {
    let (dir, root) = copy();
    let gopath = root.join("_output/local/go");
    std::fs::create_dir_all(gopath.join("src/k8s.io")).unwrap();
    std::os::unix::fs::symlink(&root, gopath.join("src/k8s.io/kubernetes")).unwrap();
    let binary = root.join("_output/local/bin/linux/amd64/kube-apiserver");
    let mut cmd = Command::new("go");
    cmd.args(["build", "-o", binary.as_str(), "-gcflags", &gcflags.replace("{root}", root.as_str())])
        .arg("k8s.io/kubernetes/cmd/kube-apiserver")
        .current_dir(gopath.join("src/k8s.io/kubernetes"))
        .env("PWD", gopath.join("src/k8s.io/kubernetes"))
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0");
    run(cmd);
    Built { root, binary, _dir: dir }
}

fn run(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("failed to run {cmd:?} (is go on PATH?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == "_output" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
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

/// The 1-based line of the fixture's `// kdbg-fixture: breakpoint here` marker in `file`.
pub(crate) fn marker_line(root: &Utf8Path, file: &str) -> u32 {
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let i = text.lines().position(|l| l.contains("kdbg-fixture: breakpoint here")).expect("the marker");
    i as u32 + 1
}
