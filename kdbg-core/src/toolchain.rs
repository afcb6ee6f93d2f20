//! Which Go builds a tree. A tree with a `.go-version` (kubernetes ≥ v1.30 pins its Go release
//! there, and its `hack/lib/golang.sh` exports `GOTOOLCHAIN=go<that version>`) gets a local Go of
//! that release: `--go`, else the `go` on PATH, else `$GOROOT`, else one installed where Go
//! installs releases (`~/sdk/go*`, the module cache's `golang.org/toolchain@*`, Debian's
//! `/usr/lib/go-*`, `/usr/local/go`). kdbg then runs `make` and `go` with `GOTOOLCHAIN=local` (and
//! `FORCE_HOST_GO=1` where the tree honours it), so nothing is downloaded behind the user's back.
//! A tree without `.go-version` uses `--go` or the `go` on PATH, as before.
//!
//! The Go chosen here is the one whose `go env` gives the cache key's toolchain identity, and the
//! environment it returns is the one both `make` and `go list` run with.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::cache::Toolchain;
use crate::host::{Cmd, HostError};

/// Where a Go came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoSource {
    Flag,
    Path,
    Goroot,
    Installed,
}

/// Where to look, read once from the environment (data in, so tests can give their own).
#[derive(Debug, Clone, Default)]
pub(crate) struct GoSearch {
    /// `--go PATH`: a `go` binary, its `bin` directory or a GOROOT.
    pub explicit: Option<Utf8PathBuf>,
    /// The caller's `PATH`.
    pub path: String,
    pub goroot: Option<Utf8PathBuf>,
    /// Directories holding installed Go releases (each entry a GOROOT, or a parent of GOROOTs).
    pub installed: Vec<Utf8PathBuf>,
}

impl GoSearch {
    pub(crate) fn from_env(explicit: Option<Utf8PathBuf>) -> GoSearch {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = crate::host::home_dir();
        let gopath = var("GOPATH").map(|p| Utf8PathBuf::from(p.split(':').next().unwrap_or_default()));
        let modcache = var("GOMODCACHE")
            .map(Utf8PathBuf::from)
            .or_else(|| gopath.or_else(|| home.as_ref().map(|h| h.join("go"))).map(|g| g.join("pkg/mod")));
        let mut installed: Vec<Utf8PathBuf> = home.iter().map(|h| h.join("sdk")).collect();
        installed.extend(modcache.map(|m| m.join("golang.org")));
        installed.extend(["/usr/lib".into(), "/usr/local".into()]);
        GoSearch { explicit, path: var("PATH").unwrap_or_default(), goroot: var("GOROOT").map(Into::into), installed }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("{root}/.go-version asks for go{wanted}, but {local}, and no go{wanted} is installed where kdbg looks (~/sdk/go*, the Go module cache's toolchains, /usr/lib/go-*, /usr/local/go); kdbg builds with GOTOOLCHAIN=local and never downloads a Go\n  fix: install Go {wanted} and pass --go /path/to/go{wanted}/bin/go (or put its bin directory first on PATH)")]
    Mismatch { root: Utf8PathBuf, wanted: String, local: String },
    #[error("--go {path} is {version}, but {root}/.go-version asks for go{wanted}\n  fix: pass a Go {wanted} with --go, or drop --go")]
    FlagMismatch { path: Utf8PathBuf, version: String, root: Utf8PathBuf, wanted: String },
    #[error("--go {path}: no go binary there (looked for {path}, {path}/go, {path}/bin/go and {path}/go/bin/go)\n  fix: pass the go binary of the release to build with, e.g. --go /usr/local/go/bin/go")]
    NoGo { path: Utf8PathBuf },
    #[error("`go` was not found on PATH{}\n  fix: install Go (Debian: apt-get install golang-go), or pass --go PATH", .hint)]
    NoGoOnPath { hint: String },
    #[error("failed to read the Go toolchain identity: {0}")]
    GoEnv(HostError),
}

/// The Go that builds, with the environment `make` and `go list` share.
#[derive(Debug, Clone, Serialize)]
pub struct GoToolchain {
    /// The `go` binary (absolute).
    pub go: Utf8PathBuf,
    pub goroot: Utf8PathBuf,
    pub source: GoSource,
    /// What the tree's `.go-version` asks for (`1.27.3`), if it has one.
    pub wanted: Option<String>,
    /// `go env` facts that go into the cache key.
    pub identity: Toolchain,
    /// `GOWORK` as `go env` reports it for the tree (absolute; never part of a key).
    pub gowork: String,
    /// PATH, GOROOT, GOTOOLCHAIN and (where the tree honours it) FORCE_HOST_GO.
    pub env: Vec<(String, String)>,
    /// `GOOS`/`GOARCH` of the target when it is not the toolchain's own: for `go list` and `go
    /// env`, never for make (kubernetes' build takes `KUBE_BUILD_PLATFORMS`).
    pub target_env: Vec<(String, String)>,
    /// Not an exact match of `.go-version` (another patch release of the same minor).
    pub warning: Option<String>,
    /// `(GOOS, GOARCH)` of the toolchain itself.
    native: (String, String),
}

impl GoToolchain {
    /// `go` with the build's environment.
    pub(crate) fn cmd(&self) -> Cmd {
        self.env.iter().chain(&self.target_env).fold(Cmd::new(self.go.as_str()), |c, (k, v)| c.env(k, v))
    }

    /// The platform this Go builds for by itself (its `go env GOOS GOARCH` without a target).
    pub(crate) fn native(&self) -> crate::platform::Platform {
        crate::platform::Platform::new(&self.native.0, &self.native.1)
    }

    /// Builds for `target` from now on: the identity (and so every key, the binary's path and
    /// the CI key) names the target; `go list` runs with its `GOOS`/`GOARCH`.
    pub(crate) fn target(&mut self, target: &crate::platform::Platform) {
        self.target_env.clear();
        if *target != self.native() {
            self.target_env = vec![("GOOS".into(), target.os.clone()), ("GOARCH".into(), target.arch.clone())];
        }
        self.identity.goos = target.os.clone();
        self.identity.goarch = target.arch.clone();
    }
}

/// The tree's `.go-version` (`1.27.3`), if any.
pub(crate) fn wanted_version(root: &Utf8Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join(".go-version")).ok()?;
    let v = text.trim().trim_start_matches("go").to_string();
    (!v.is_empty()).then_some(v)
}

/// Chooses the Go for `root` (see the module doc).
pub(crate) fn select(root: &Utf8Path, search: &GoSearch) -> Result<GoToolchain, ToolchainError> {
    let wanted = wanted_version(root);
    let on_path = go_on_path(&search.path);
    let chosen = match (&search.explicit, &wanted) {
        (Some(given), _) => given_go(root, given, wanted.as_deref())?,
        (None, Some(w)) => go_for_version(root, search, on_path.as_deref(), w)?,
        (None, None) => {
            let go = on_path.ok_or_else(|| ToolchainError::NoGoOnPath { hint: crate::host::install_hint("go") })?;
            Chosen { go, source: GoSource::Path, warning: None }
        }
    };
    let mut t = GoToolchain::new(root, chosen, wanted, &search.path);
    t.read_identity(root)?;
    Ok(t)
}

/// The first `go` on `path`.
fn go_on_path(path: &str) -> Option<Utf8PathBuf> {
    path.split(':').filter(|d| !d.is_empty()).map(|d| Utf8Path::new(d).join("go")).find(|p| p.is_file())
}

/// The GOROOT of the Go kdbg selects, where the standard library's sources of its builds are:
/// `--go`, else for a tree with `.go-version` the Go [`select`] picks, else the `go` on PATH, else
/// `$GOROOT`. `Err` says why there is none and what to pass.
pub fn goroot(root: Option<&Utf8Path>, explicit: Option<Utf8PathBuf>) -> Result<Utf8PathBuf, String> {
    goroot_in(root, &GoSearch::from_env(explicit))
}

fn goroot_in(root: Option<&Utf8Path>, search: &GoSearch) -> Result<Utf8PathBuf, String> {
    const FIX: &str = "fix: pass --go /path/to/go, the Go that built the component";
    let pinned = root.filter(|r| wanted_version(r).is_some());
    let go = match (pinned, &search.explicit) {
        (Some(root), _) => select(root, search).map_err(|e| e.to_string())?.go,
        (None, Some(given)) => {
            go_binary(given).ok_or_else(|| ToolchainError::NoGo { path: given.clone() }.to_string())?
        }
        (None, None) => go_on_path(&search.path)
            .or_else(|| search.goroot.as_ref().map(|g| g.join("bin/go")).filter(|p| p.is_file()))
            .ok_or_else(|| format!("no --go given, no `go` on PATH and no $GOROOT\n  {FIX}"))?,
    };
    let real = go.canonicalize_utf8().unwrap_or(go);
    let goroot = real.parent().and_then(Utf8Path::parent).map(Utf8Path::to_owned).unwrap_or_default();
    if goroot.join("src").is_dir() {
        Ok(goroot)
    } else {
        Err(format!("{goroot} (the GOROOT of {real}) has no src directory\n  {FIX}"))
    }
}

/// A `go` binary picked, where it was found, and what to warn about it.
struct Chosen {
    go: Utf8PathBuf,
    source: GoSource,
    warning: Option<String>,
}

/// `--go`: the binary given, which must match the tree's `.go-version` (`wanted`) when it has one.
fn given_go(root: &Utf8Path, given: &Utf8Path, wanted: Option<&str>) -> Result<Chosen, ToolchainError> {
    let go = go_binary(given).ok_or_else(|| ToolchainError::NoGo { path: given.to_owned() })?;
    let version = version_of(&go).unwrap_or_default();
    let warning = match wanted.map(|w| (w, matches(&version, w))) {
        None | Some((_, Match::Exact)) => None,
        Some((w, Match::Minor)) => Some(minor_warning(&go, &version, w)),
        Some((w, Match::No)) => {
            return Err(ToolchainError::FlagMismatch {
                path: given.to_owned(),
                version,
                root: root.to_owned(),
                wanted: w.to_string(),
            })
        }
    };
    Ok(Chosen { go, source: GoSource::Flag, warning })
}

/// The Go for a tree that pins `wanted`: among the one on PATH, `$GOROOT`'s and the installed
/// releases, the exact release first, else the newest patch of the same minor (with a warning).
fn go_for_version(
    root: &Utf8Path,
    search: &GoSearch,
    on_path: Option<&Utf8Path>,
    wanted: &str,
) -> Result<Chosen, ToolchainError> {
    let mut candidates: Vec<(Utf8PathBuf, GoSource)> = Vec::new();
    candidates.extend(on_path.map(|p| (p.to_owned(), GoSource::Path)));
    candidates.extend(search.goroot.as_ref().map(|g| (g.join("bin/go"), GoSource::Goroot)));
    candidates.extend(installed(&search.installed).into_iter().map(|p| (p, GoSource::Installed)));
    let versions: Vec<(Utf8PathBuf, GoSource, String)> =
        candidates.into_iter().filter_map(|(p, s)| Some((p.clone(), s, version_of(&p)?))).collect();
    let exact = versions.iter().find(|(_, _, v)| matches(v, wanted) == Match::Exact);
    let minor = versions.iter().filter(|(_, _, v)| matches(v, wanted) == Match::Minor).max_by_key(|(_, _, v)| patch(v));
    match (exact, minor) {
        (Some((p, s, _)), _) => Ok(Chosen { go: p.clone(), source: *s, warning: None }),
        (None, Some((p, s, v))) => Ok(Chosen { go: p.clone(), source: *s, warning: Some(minor_warning(p, v, wanted)) }),
        (None, None) => {
            let local = match on_path {
                Some(p) => {
                    format!("the go on PATH ({p}) is {}", version_of(p).unwrap_or_else(|| "of unknown version".into()))
                }
                None => "there is no go on PATH".to_string(),
            };
            Err(ToolchainError::Mismatch { root: root.to_owned(), wanted: wanted.to_string(), local })
        }
    }
}

impl GoToolchain {
    /// The chosen Go with the environment `make` and `go list` run with in `root`; its identity
    /// is read by [`GoToolchain::read_identity`].
    fn new(root: &Utf8Path, chosen: Chosen, wanted: Option<String>, path: &str) -> GoToolchain {
        let go = chosen.go.canonicalize_utf8().unwrap_or(chosen.go);
        let goroot = go.parent().and_then(Utf8Path::parent).map(Utf8Path::to_owned).unwrap_or_default();
        let golang_sh = std::fs::read_to_string(root.join("hack/lib/golang.sh")).unwrap_or_default();
        let mut env = vec![
            ("PATH".to_string(), format!("{goroot}/bin:{path}")),
            ("GOROOT".to_string(), goroot.to_string()),
            ("GOTOOLCHAIN".to_string(), "local".to_string()),
        ];
        if golang_sh.contains("FORCE_HOST_GO") {
            env.push(("FORCE_HOST_GO".into(), "1".into()));
        }
        let identity =
            Toolchain { go_version: String::new(), goos: String::new(), goarch: String::new(), goflags: String::new() };
        GoToolchain {
            go,
            goroot,
            source: chosen.source,
            wanted,
            identity,
            gowork: String::new(),
            env,
            target_env: Vec::new(),
            warning: chosen.warning,
            native: (String::new(), String::new()),
        }
    }

    /// Fills in the `go env` identity (and `GOWORK`) as this Go reports them for `root`.
    fn read_identity(&mut self, root: &Utf8Path) -> Result<(), ToolchainError> {
        let out = self.cmd().args(["env", "GOVERSION", "GOOS", "GOARCH", "GOFLAGS", "GOWORK"]).cwd(root).read();
        let out = out.map_err(ToolchainError::GoEnv)?;
        let mut lines = out.lines().map(|l| l.trim().to_string());
        let mut next = || lines.next().unwrap_or_default();
        self.identity = Toolchain { go_version: next(), goos: next(), goarch: next(), goflags: next() };
        self.gowork = next();
        self.native = (self.identity.goos.clone(), self.identity.goarch.clone());
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Match {
    Exact,
    /// Same `1.N`, another patch release.
    Minor,
    No,
}

/// `go1.27.3` against `.go-version`'s `1.27.3` (or `1.27`).
fn matches(version: &str, wanted: &str) -> Match {
    let have = version.trim().trim_start_matches("go");
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    if have == wanted || (wanted.split('.').count() == 2 && minor(have) == wanted) {
        Match::Exact
    } else if minor(have) == minor(wanted) {
        Match::Minor
    } else {
        Match::No
    }
}

fn patch(version: &str) -> u32 {
    version.split('.').nth(2).and_then(|p| p.parse().ok()).unwrap_or(0)
}

fn minor_warning(go: &Utf8Path, version: &str, wanted: &str) -> String {
    format!("the tree's .go-version asks for go{wanted}; building with {version} ({go}), the same minor release")
}

/// `--go` may name the binary, its `bin` directory or a GOROOT.
fn go_binary(given: &Utf8Path) -> Option<Utf8PathBuf> {
    [given.to_owned(), given.join("go"), given.join("bin/go"), given.join("go/bin/go")]
        .into_iter()
        .find(|p| p.is_file())
}

/// A Go release's version from its GOROOT's `VERSION` file (no process needed), else `go env`.
pub(crate) fn version_of(go: &Utf8Path) -> Option<String> {
    let real = go.canonicalize_utf8().ok()?;
    let goroot = real.parent()?.parent()?;
    if let Ok(text) = std::fs::read_to_string(goroot.join("VERSION")) {
        if let Some(first) = text.lines().next().filter(|l| l.starts_with("go")) {
            return Some(first.trim().to_string());
        }
    }
    let out = Cmd::new(real.as_str()).args(["env", "GOVERSION"]).env("GOTOOLCHAIN", "local").read().ok()?;
    Some(out.trim().to_string()).filter(|v| !v.is_empty())
}

/// `go` binaries of the releases installed under `dirs`: `DIR/go*/bin/go`, `DIR/go/bin/go`,
/// `DIR/toolchain@*/bin/go` (the module cache's downloaded toolchains).
fn installed(dirs: &[Utf8PathBuf]) -> Vec<Utf8PathBuf> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = dir.read_dir_utf8() else { continue };
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string()).collect();
        names.sort();
        for name in names.iter().filter(|n| n.starts_with("go") || n.starts_with("toolchain@")) {
            let go = dir.join(name).join("bin/go");
            if go.is_file() {
                found.push(go);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
