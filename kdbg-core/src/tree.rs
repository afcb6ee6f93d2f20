//! A Kubernetes source tree: where it is, which version it is, and how its Go build is set up;
//! [`choose`] decides which tree a command builds (`--at`, `--match-node`).
//!
//! Found at `--src`, `$KDBG_SRC`, the current directory or an ancestor, then
//! `$GOPATH/src/k8s.io/kubernetes`. Its version comes from `--kube-version`, else the caller's
//! `KUBE_GIT_VERSION_FILE`, else `git describe` — only when the tree is a git toplevel, so a tree
//! copied inside another repository never takes that repository's tags. GOPATH or module mode is
//! what the tree's own scripts say (v1.20's `hack/lib/init.sh` exports `GO111MODULE=off`, and
//! `golang.sh` links the tree under `_output/local/go`). For the journal a tree also names its
//! commit and, in a kdbg worktree, the `--at` ref it was made for.

mod choose;

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::flags::DebugPolicy;
use crate::host::Cmd;
pub use choose::{choose, ChooseError, TreeConfig, VersionChoice};

/// Where to look for the tree, in this order: `--src`, `$KDBG_SRC`, the current
/// directory (or an ancestor), `$GOPATH/src/k8s.io/kubernetes`.
#[derive(Debug, Clone, Default)]
pub struct TreeSearch {
    pub explicit: Option<Utf8PathBuf>,
    pub env_src: Option<Utf8PathBuf>,
    pub cwd: Option<Utf8PathBuf>,
    pub gopath: Option<Utf8PathBuf>,
    /// `--kube-version`: the version when the tree cannot say.
    pub kube_version: Option<String>,
    /// `$KUBE_GIT_VERSION_FILE` of the caller's environment.
    pub version_file: Option<Utf8PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path} is not a kubernetes source tree (no Makefile with hack/lib/golang.sh or a go.mod for k8s.io/kubernetes); pass --src or set KDBG_SRC to the root of a kubernetes checkout")]
    NotATree { path: Utf8PathBuf },
    #[error("no kubernetes source tree found: not given by --src or KDBG_SRC, not the current directory ({cwd}), not $GOPATH/src/k8s.io/kubernetes; run kdbg inside a kubernetes checkout or pass --src DIR")]
    NotFound { cwd: String },
    #[error("cannot tell which kubernetes version {root} is: it has no git history and no KUBE_GIT_VERSION_FILE is set; pass --kube-version vX.Y.Z (e.g. --kube-version v1.20.2)")]
    NoVersion { root: Utf8PathBuf },
    #[error("`{text}` is not a kubernetes version (expected vMAJOR.MINOR.PATCH, e.g. v1.20.2){origin}")]
    BadVersion { text: String, origin: String },
    #[error("failed to read {path}: {source}")]
    Read { path: Utf8PathBuf, source: std::io::Error },
}

/// A parsed `vMAJOR.MINOR.PATCH[-pre][+build]` version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The whole string as given, e.g. `v1.24.0-alpha.1.123+0123456789abcd`.
    pub text: String,
}

impl KubeVersion {
    pub(crate) fn parse(text: &str) -> Option<KubeVersion> {
        let core = text.trim().strip_prefix('v')?;
        let core = core.split(['-', '+']).next()?;
        let mut nums = core.split('.').map(|n| n.parse::<u32>().ok());
        let (major, minor, patch) = (nums.next()??, nums.next()??, nums.next()??);
        Some(KubeVersion { major, minor, patch, text: text.trim().to_string() })
    }
    pub(crate) fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where the version came from, so messages can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    Flag,
    VersionFile,
    GitDescribe,
}

/// How `go list` must be run to see what `make` sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoMode {
    /// Trees before v1.25 build in GOPATH mode under `_output/local/go` with `GO111MODULE=off`.
    Gopath,
    /// Newer trees build with modules (and `-mod=vendor` when `vendor/` exists).
    Modules,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceTree {
    pub root: Utf8PathBuf,
    pub version: KubeVersion,
    pub version_source: VersionSource,
    pub go_mode: GoMode,
    pub debug_policy: DebugPolicy,
    /// A set `GOLDFLAGS` replaces the default `-s -w` (v1.20's `${GOLDFLAGS=-s -w ...}`), so an
    /// optimised build can keep DWARF. From v1.24 `-s -w` is added unless `DBG=1`.
    pub goldflags_replace_strip: bool,
    pub git: bool,
    /// The commit checked out (git trees).
    pub commit: Option<String>,
    /// The ref a kdbg worktree was made for (`--at v1.20.1`), when the tree is one.
    pub at: Option<String>,
}

/// The directory kdbg keeps its state in; `make clean` removes it with the outputs.
pub(crate) const STATE_DIR: &str = "_output/kdbg";
/// Where `hack/lib/golang.sh` in GOPATH-mode trees links the tree into a GOPATH.
pub(crate) const GOPATH_LINK: &str = "_output/local/go/src/k8s.io/kubernetes";

impl TreeSearch {
    /// Where the tree is, without inspecting it (see [`SourceTree::find`]).
    pub fn root(&self) -> Result<Utf8PathBuf, TreeError> {
        find_root(self)
    }
}

impl SourceTree {
    /// Finds and inspects the tree. Runs `git` only when the root is a git work tree's top.
    pub fn find(search: &TreeSearch) -> Result<SourceTree, TreeError> {
        let root = find_root(search)?;
        let golang_sh = std::fs::read_to_string(root.join("hack/lib/golang.sh")).ok();
        let git = is_git_toplevel(&root);
        let (version, version_source) = read_version(&root, search, git)?;
        // v1.20's hack/lib/init.sh exports GO111MODULE=off and golang.sh links the tree into a GOPATH.
        let init_sh = std::fs::read_to_string(root.join("hack/lib/init.sh")).unwrap_or_default();
        let go_mode = if init_sh.contains("GO111MODULE=off")
            || golang_sh.as_deref().is_some_and(|t| t.contains("GO111MODULE=off"))
        {
            GoMode::Gopath
        } else {
            GoMode::Modules
        };
        let debug_policy = DebugPolicy::detect(golang_sh.as_deref(), &version);
        let goldflags_replace_strip =
            golang_sh.as_deref().is_none_or(|t| t.contains("${GOLDFLAGS=") || t.contains("${GOLDFLAGS+"));
        let commit = git
            .then(|| Cmd::new("git").args(["rev-parse", "HEAD"]).cwd(&root).read().ok())
            .flatten()
            .map(|c| c.trim().to_string());
        let at = crate::worktree::record_of(&root).map(|r| r.git_ref);
        Ok(SourceTree {
            root,
            version,
            version_source,
            go_mode,
            debug_policy,
            goldflags_replace_strip,
            git,
            commit,
            at,
        })
    }

    pub fn state_dir(&self) -> Utf8PathBuf {
        self.root.join(STATE_DIR)
    }

    /// The binary `make` leaves for `name` (kubernetes links `_output/bin` to this directory).
    pub(crate) fn binary(&self, goos: &str, goarch: &str, name: &str) -> Utf8PathBuf {
        self.root.join(format!("_output/local/bin/{goos}/{goarch}/{name}"))
    }
}

/// Is `dir` the root of a kubernetes tree?
pub(crate) fn is_kubernetes_tree(dir: &Utf8Path) -> bool {
    if !dir.join("Makefile").is_file() {
        return false;
    }
    let go_mod = std::fs::read_to_string(dir.join("go.mod")).unwrap_or_default();
    go_mod.lines().any(|l| l.trim() == "module k8s.io/kubernetes") || dir.join("hack/lib/golang.sh").is_file()
}

fn find_root(search: &TreeSearch) -> Result<Utf8PathBuf, TreeError> {
    if let Some(given) = search.explicit.as_ref().or(search.env_src.as_ref()) {
        let abs = absolute(given, search.cwd.as_deref());
        return if is_kubernetes_tree(&abs) { Ok(abs) } else { Err(TreeError::NotATree { path: abs }) };
    }
    if let Some(cwd) = &search.cwd {
        if let Some(found) = cwd.ancestors().find(|d| is_kubernetes_tree(d)) {
            return Ok(found.to_owned());
        }
    }
    if let Some(gopath) = &search.gopath {
        let first = gopath.as_str().split(':').next().unwrap_or_default();
        let candidate = Utf8Path::new(first).join("src/k8s.io/kubernetes");
        if is_kubernetes_tree(&candidate) {
            return Ok(candidate);
        }
    }
    Err(TreeError::NotFound { cwd: search.cwd.as_ref().map(|c| c.to_string()).unwrap_or_default() })
}

fn absolute(path: &Utf8Path, cwd: Option<&Utf8Path>) -> Utf8PathBuf {
    let joined = match cwd {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_owned(),
    };
    joined.canonicalize_utf8().unwrap_or(joined)
}

pub(crate) fn is_git_toplevel(root: &Utf8Path) -> bool {
    if !root.join(".git").exists() {
        return false;
    }
    Cmd::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .cwd(root)
        .read()
        .ok()
        .and_then(|top| Utf8PathBuf::from(top.trim()).canonicalize_utf8().ok())
        .is_some_and(|top| Some(top) == root.canonicalize_utf8().ok())
}

fn read_version(root: &Utf8Path, search: &TreeSearch, git: bool) -> Result<(KubeVersion, VersionSource), TreeError> {
    let parse = |text: &str, origin: String| {
        KubeVersion::parse(text).ok_or_else(|| TreeError::BadVersion { text: text.to_string(), origin })
    };
    if let Some(v) = &search.kube_version {
        return Ok((parse(v, " (from --kube-version)".into())?, VersionSource::Flag));
    }
    if let Some(file) = &search.version_file {
        let text = std::fs::read_to_string(file).map_err(|source| TreeError::Read { path: file.clone(), source })?;
        let v = parse_version_file(&text).unwrap_or_default();
        return Ok((parse(&v, format!(" (KUBE_GIT_VERSION in {file})"))?, VersionSource::VersionFile));
    }
    if git {
        let described =
            Cmd::new("git").args(["describe", "--tags", "--match", "v[0-9]*", "--abbrev=14", "HEAD"]).cwd(root).read();
        if let Ok(d) = described {
            return Ok((parse(d.trim(), format!(" (git describe in {root})"))?, VersionSource::GitDescribe));
        }
    }
    Err(TreeError::NoVersion { root: root.to_owned() })
}

/// The `KUBE_GIT_VERSION` of a `KUBE_GIT_VERSION_FILE` (shell `KEY='value'` lines).
pub(crate) fn parse_version_file(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("KUBE_GIT_VERSION=")?;
        Some(v.trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_pre_release_and_build() {
        let v = KubeVersion::parse("v1.24.0-alpha.1.123+0123456789abcd").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 24, 0));
        assert!(v.at_least(1, 24) && !v.at_least(1, 25));
        assert!(KubeVersion::parse("1.20.2").is_none());
        assert!(KubeVersion::parse("v1.20").is_none());
    }

    #[test]
    fn version_file_value_is_unquoted() {
        let text = "KUBE_GIT_COMMIT='abc'\nKUBE_GIT_VERSION='v1.20.2'\n";
        assert_eq!(parse_version_file(text).as_deref(), Some("v1.20.2"));
    }

    #[test]
    fn a_directory_without_makefile_is_not_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().to_owned();
        let err = SourceTree::find(&TreeSearch { explicit: Some(path.clone()), ..Default::default() });
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("is not a kubernetes source tree") && msg.contains("--src"), "{msg}");
    }
}
