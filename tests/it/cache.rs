//! The remote cache (issue #25): `kdbg build --push` from one tree (CI's) into Debian's
//! Distribution registry, `kdbg debug`/`deploy`/`build` pulling it into another tree at another
//! path with another HOME, and the failure paths (wrong credentials, a stopped registry, a
//! tampered layer, plain HTTP off loopback), push idempotence and the configuration sources.
//!
//! Builds are the expensive part (a make of the fixture takes 20-40 s here): CI's tree is built
//! once per run ([`source`]) and every test pushes it into its own registry; a test makes only
//! what its failure path must show.

mod config;
mod failures;
mod harness;
mod pull;
mod push;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kdbg_tests::registry::{docker, Registry};

use crate::support::{sha256_file, Out, Run, Tree};

/// The registry's user and password (htpasswd) in the tests with auth.
pub const USER: &str = "ci";
pub const PASSWORD: &str = "s3cret-push-token";
/// The repository of the apiserver under a registry's [`Registry::url`].
pub const REPO: &str = "kdbg/kube-apiserver";
/// Where make (and a pull) puts the apiserver, relative to a tree.
pub const BINARY: &str = "_output/local/bin/linux/amd64/kube-apiserver";
/// make's link to the platform's binaries: `_output/bin` -> `local/bin/linux/amd64`.
pub const MAKE_BIN: &str = "_output/bin/kube-apiserver";

/// A workstation's HOME of its own: Docker's `~/.docker/config.json` and kdbg's
/// `~/.config/kdbg/config.toml`, and kdbg's default state directory.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home { dir: tempfile::Builder::new().prefix("kdbg-home-").tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `docker login HOST:PORT` as `user`/`password`: `auths` in `~/.docker/config.json`.
    pub fn login(&self, registry: &Registry, user: &str, password: &str) -> &Home {
        docker::login(self.path(), &registry.host_port(), user, password).unwrap();
        self
    }

    /// Writes `~/.config/kdbg/config.toml`.
    pub fn config(&self, toml: &str) -> &Home {
        let dir = self.path().join(".config/kdbg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), toml).unwrap();
        self
    }

    /// `run` with this HOME and none of this machine's cache, registry or config settings
    /// (`DOCKER_CONFIG`, `KDBG_CACHE`, `KDBG_CONFIG`, `XDG_CONFIG_HOME`, `XDG_STATE_HOME`,
    /// `SSL_CERT_FILE`). Go's build cache stays the machine's: a fresh one would make every build
    /// compile the standard library again.
    pub fn run(&self, run: Run) -> Run {
        let run = ["DOCKER_CONFIG", "KDBG_CACHE", "KDBG_CONFIG", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "SSL_CERT_FILE"]
            .iter()
            .fold(run, |run, k| run.env_remove(k));
        run.env("HOME", self.path()).env("GOCACHE", go_cache())
    }
}

/// The Go build cache of the user running the tests.
fn go_cache() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("GOCACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("go-build")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/go-build")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache/go-build"))
}

/// CI's tree: a fixture copy whose apiserver is built once per test run (no cache involved).
/// It lives under cargo's per-target scratch directory: a static is never dropped, so a temp dir
/// would be left in /tmp by every run; this one is replaced by the next run.
pub fn source() -> &'static Tree {
    static SOURCE: OnceLock<(Tree, Home)> = OnceLock::new();
    let (tree, _) = SOURCE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache-source");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tree = Tree::fixture_in(kdbg_tests::toolchain::Toolchain::under_test(), &dir);
        let home = Home::new();
        home.run(tree.kdbg(["build", "apiserver"])).success();
        (tree, home)
    });
    tree
}

/// `args`, then `--cache URL` (and `--cache-ca CA` for a TLS registry).
pub fn with_cache(args: &[&str], registry: &Registry) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--cache".to_string(), registry.url()]);
    if let Some(ca) = registry.ca() {
        all.extend(["--cache-ca".to_string(), ca.display().to_string()]);
    }
    all
}

/// CI pushes [`source`]'s apiserver into `registry` (`kdbg build apiserver --push`, as `home`
/// with `extra` flags); checks it says so and the tag is there. Returns the tag.
pub fn push(home: &Home, registry: &Registry, extra: &[&str]) -> String {
    let args = with_cache(&[&["build", "apiserver", "--push"][..], extra].concat(), registry);
    let out = home.run(source().kdbg(args)).success();
    let tag = cache_key(source());
    let pushed = format!("pushed kube-apiserver to {}/kube-apiserver:{tag} (", registry.url());
    // CACHE_SPEC.md puts this line on stdout; `push`'s own test checks the stream.
    assert!(said(&out, &pushed), "{pushed:?} in:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_eq!(
        registry.tags(REPO),
        std::slice::from_ref(&tag),
        "the registry has the tag; its log:\n{}",
        registry.log()
    );
    tag
}

/// `kdbg cache-key apiserver` in `tree`: the apiserver's CI key, the registry's tag.
pub fn cache_key(tree: &Tree) -> String {
    let out = tree.kdbg(["cache-key", "apiserver"]).success();
    out.stdout.trim().to_string()
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// kdbg printed `text` (on stdout or stderr).
pub fn said(out: &Out, text: &str) -> bool {
    out.stdout.contains(text) || out.stderr.contains(text)
}

/// The warnings on stderr: each a `warning: ` line with the indented lines that follow it (a
/// `fix:` line, say).
pub fn warnings(stderr: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut open = false;
    for line in stderr.lines() {
        if line.starts_with("warning: ") {
            found.push(line.to_string());
            open = true;
        } else if open && line.starts_with(char::is_whitespace) {
            let last = found.last_mut().expect("a warning is open");
            last.push('\n');
            last.push_str(line);
        } else {
            open = false;
        }
    }
    found
}

/// kdbg said it pulled the apiserver from `registry`, and warned about nothing.
#[track_caller]
pub fn assert_pulled(out: &Out, registry: &Registry) {
    let pulled = format!("kube-apiserver: pulled from {}/kube-apiserver:", registry.url());
    assert!(out.stderr.contains(&pulled), "{pulled:?} in:\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

/// kdbg did not pull (and said nothing about pulling).
#[track_caller]
pub fn assert_not_pulled(out: &Out) {
    assert!(!out.stderr.contains("kube-apiserver: pulled from"), "nothing is pulled:\n{}", out.stderr);
}

/// The tree's apiserver is CI's binary, byte for byte.
#[track_caller]
pub fn assert_same_binary_as_source(tree: &Tree) {
    assert_eq!(sha256_file(&tree.path(BINARY)), sha256_file(&source().path(BINARY)), "the pulled binary is CI's");
}

/// Forgets every build of `tree` (its `_output`: binaries and kdbg's state): the next build pulls
/// or makes again.
pub fn forget_builds(tree: &Tree) {
    std::fs::remove_dir_all(tree.path("_output")).unwrap();
}

/// The JSON document kdbg printed on stdout.
pub fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr))
}
