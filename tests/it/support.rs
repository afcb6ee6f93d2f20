//! Test helpers: a scratch copy of the fixture tree and a builder that runs the kdbg CLI on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A private copy of the fixture tree, with `make` wrapped so tests can count its runs.
pub struct Tree {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bin: PathBuf,
    make_log: PathBuf,
    /// The Go and Delve kdbg runs with here.
    pub toolchain: Toolchain,
}

/// The make wrapper's gate: with `KDBG_IT_MAKE_GATE` set, wait until that file exists (or the
/// tree's scratch directory, SCRATCH, is gone: the test ended).
const GATE_WAIT: &str = r#"if [ -n "$KDBG_IT_MAKE_GATE" ]; then
  while [ ! -e "$KDBG_IT_MAKE_GATE" ] && [ -d "SCRATCH" ]; do sleep 0.05; done
fi"#;

pub use kdbg_tests::lab::GO_BIN;
use kdbg_tests::toolchain::Toolchain;

impl Tree {
    /// The fixture of the Go under test's era (`KDBG_TEST_GO`, default Go 1.19: the 1.20 era).
    pub fn fixture() -> Tree {
        Tree::fixture_with(Toolchain::under_test())
    }

    /// The fixture `toolchain`'s Go builds, with its `.go-version` set to that Go.
    pub fn fixture_with(toolchain: Toolchain) -> Tree {
        Tree::fixture_in(toolchain, &std::env::temp_dir())
    }

    /// [`Tree::fixture_with`] in a new directory under `parent` (removed with the tree).
    pub fn fixture_in(toolchain: Toolchain, parent: &Path) -> Tree {
        let dir = tempfile::Builder::new().prefix("kdbg-it-").tempdir_in(parent).unwrap();
        let version = toolchain.go_version();
        let root = kdbg_tests::fixture::copy_era(dir.path(), toolchain.era(), Some(&version)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let make_log = dir.path().join("make.log");
        let wrapper = bin.join("make");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> {log}\n{gate}\nexec /usr/bin/make \"$@\"\n",
                log = make_log.display(),
                gate = GATE_WAIT.replace("SCRATCH", &dir.path().display().to_string()),
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Tree { _dir: dir, root, bin, make_log, toolchain }
    }

    /// Where a make started with `KDBG_IT_MAKE_GATE` set to this path waits (after logging its
    /// run) until [`Tree::open_make_gate`]: a build that holds its locks while the test acts.
    pub fn make_gate(&self) -> PathBuf {
        self._dir.path().join("make-gate")
    }

    /// Lets every make waiting at [`Tree::make_gate`] (and every later one) run.
    pub fn open_make_gate(&self) {
        std::fs::write(self.make_gate(), "").unwrap();
    }

    /// The parent of the tree: scratch space that is removed with it.
    pub fn scratch(&self) -> &Path {
        self._dir.path()
    }

    /// The healthz handler with the breakpoint marker, relative to the tree.
    pub fn healthz(&self) -> &'static str {
        kdbg_tests::lab::healthz_file(&self.root)
    }

    /// `kdbg <args>` in this tree, with the toolchain's Go and the make wrapper on PATH (and its
    /// dlv as `KDBG_DLV` unless it is the default pair).
    pub fn kdbg<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kdbg-it"));
        cmd.args(args).current_dir(&self.root).stdin(Stdio::null());
        let go = self.toolchain.go_bin.display();
        cmd.env("PATH", format!("{}:{go}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display()));
        cmd.env_remove("KDBG_SRC").env_remove("KUBE_GIT_VERSION_FILE").env_remove("GOFLAGS");
        cmd.env_remove("KDBG_GO").env_remove("KDBG_DLV").env_remove("GOROOT").env_remove("GOTOOLCHAIN");
        if !self.toolchain.is_default() {
            cmd.env("KDBG_DLV", &self.toolchain.dlv);
        }
        Run { cmd }
    }

    pub fn make_runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.make_log).unwrap_or_default().lines().map(String::from).collect()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn append(&self, rel: &str, text: &str) {
        let mut s = std::fs::read_to_string(self.path(rel)).unwrap();
        s.push_str(text);
        std::fs::write(self.path(rel), s).unwrap();
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// `kdbg build <args> --json`, which must succeed; returns the components' JSON objects.
    pub fn build(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.kdbg(["build"].iter().chain(args).chain(&["--json"])).success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("build --json prints JSON");
        v["components"].as_array().unwrap().clone()
    }
}

pub struct Run {
    pub cmd: Command,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn env_remove(mut self, k: &str) -> Run {
        self.cmd.env_remove(k);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }

    pub fn output(mut self) -> Out {
        let o: Output = self.cmd.output().expect("kdbg-it runs");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Out {
        let out = self.output();
        assert_eq!(out.code, 0, "kdbg failed:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        out
    }

    #[track_caller]
    pub fn failure(self, code: i32) -> Out {
        let out = self.output();
        assert_eq!(out.code, code, "unexpected exit code:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        out
    }
}

pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}
