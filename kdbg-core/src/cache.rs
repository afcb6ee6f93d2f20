//! Content-hashed build cache: decides, without running `make`, whether a component's binary is
//! already built from exactly the current inputs.
//!
//! # What goes into a key
//!
//! A component's key is the sha256 of a serialized [`KeyInputs`], which holds:
//!
//! - the sha256 of every file of its Go import closure inside the tree: the non-test `.go`,
//!   cgo, C/C++/header, assembly, `.syso` and `//go:embed` files of `cmd/<x>` and every package it
//!   imports, as one `go list -deps` run reports them for the build's own environment (GOPATH mode
//!   under `_output/local/go` for trees whose `hack/lib/golang.sh` sets `GO111MODULE=off`, modules
//!   otherwise). Build constraints are honoured by `go list`, so a `_windows.go` file or another
//!   command's private package is simply not an input;
//! - the files that drive the build itself: `go.mod`, `go.sum`, `go.work`, `go.work.sum`,
//!   `vendor/modules.txt`, the
//!   `Makefile`s and `hack/lib/*.sh`, `hack/make-rules/build.sh`;
//! - the toolchain identity (`go env GOVERSION GOOS GOARCH GOFLAGS` of the Go that really builds,
//!   chosen by [`crate::toolchain`] from the tree's `.go-version`) and `CGO_ENABLED` as
//!   kubernetes sets it for that binary;
//! - the exact `make` variables (`GOLDFLAGS` set to empty is not `GOLDFLAGS` unset: the first
//!   keeps DWARF, the second strips it);
//! - what kdbg stamps into the binary: the version it writes to `KUBE_GIT_VERSION_FILE` and its
//!   fixed `SOURCE_DATE_EPOCH`. Pinning these is what makes a rebuild of the same inputs produce
//!   the same bytes, so "recopy only what changed" can compare hashes.
//!
//! # What is deliberately left out
//!
//! - Absolute paths, timestamps and host names: a copy of the tree at another path, on another
//!   machine, before or after a build, has the same key (that is what makes it a CI cache key).
//!   Paths in the key are repo-relative and sorted.
//! - Files outside the tree (GOROOT, the module cache): the Go version and `go.sum` stand for them.
//! - Generated files that git ignores (anything under `_output/`, and what `.gitignore` matches):
//!   `make` writes them from other inputs, and a fresh clone must have the same key as a built one.
//! - Test files and files excluded by build constraints.
//!
//! # Fast path
//!
//! `go list` costs a second or more on a real tree, so a no-op must avoid it. The stat index
//! ([`index::Index`]) remembers size, mtime, ctime and inode of every input and the stat of every
//! package directory. If no directory changed (no file added or removed) and no changed `.go`
//! file's header (package clause, build constraints, imports, `//go:embed`) changed, the stored
//! closure still holds and only the changed files are read again. Entries modified at or after the
//! index was written are "racy" and are hashed again.
//!
//! # Names and links
//!
//! Directory listings are taken over names as bytes, with each symlink's target. A source file
//! whose name is not UTF-8 (`go list` reports it with U+FFFD, so it could never be hashed) and a
//! source symlink that cannot be followed (dangling, a loop) are errors naming the file, never a
//! hit ([`listing`]). Other links are followed: the index keeps their target's stat and content.
//! Files `go list` names but cannot read (`InvalidGoFiles`) are inputs too, so a package the
//! build would fail on is never "up to date".
//!
//! # Outputs
//!
//! After a successful build each binary's path, sha256, size and mtime is recorded with the key
//! it was built from ([`state::OutputRecord`]); a missing or altered binary is a miss. State lives
//! in `_output/kdbg/`, so `make clean` clears it together with the outputs. Inputs that changed
//! while make ran (make rewriting tracked files) are reported and remembered ([`rewritten`]).

pub(crate) mod golist;
pub(crate) mod index;
pub(crate) mod key;
pub(crate) mod listing;
pub mod remote;
pub mod rewritten;
pub(crate) mod state;

use std::collections::{BTreeMap, BTreeSet};

use camino::{Utf8Path, Utf8PathBuf};

use crate::component::Component;
use crate::flags::SOURCE_DATE_EPOCH;
use crate::host::HostError;
use crate::toolchain::{GoToolchain, ToolchainError};
use crate::tree::SourceTree;

pub(crate) use key::{ci_key, explain, KeyInputs, Toolchain};
pub(crate) use state::{CacheState, OutputRecord};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("failed to list the Go import closure: {0}")]
    GoList(HostError),
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error("failed to parse `go list` output: {0}")]
    GoListOutput(String),
    #[error("`go list` did not report the package ./{what} in {root}; is this tree complete?")]
    NoPackage { what: String, root: Utf8PathBuf },
    #[error("failed to access {path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("{path} has a name that is not UTF-8: `go list` reports it with U+FFFD in place of the bad bytes, so kdbg cannot tell when it changes\n  fix: rename it to a UTF-8 name, or move it out of the package")]
    NonUtf8Name { path: String },
    #[error("{path} is a symlink to {target} that cannot be followed ({detail}); `go build` cannot read it either\n  fix: point it at an existing file, or remove it")]
    BrokenLink { path: String, target: String, detail: String },
    #[error("cannot read {path}, an input of the build ({detail})\n  fix: make it readable, or remove it if it should not be part of the package")]
    Unreadable { path: String, detail: String },
    #[error("--optimized cannot keep debug information in {root}: its hack/lib/golang.sh adds `-s -w` unless DBG=1, and DBG=1 turns optimisations off; drop --optimized")]
    OptimizedStripped { root: Utf8PathBuf },
}

/// What to compute keys for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRequest<'a> {
    pub tree: &'a SourceTree,
    pub components: &'a [&'static Component],
    pub make_vars: &'a BTreeMap<String, String>,
    pub toolchain: &'a GoToolchain,
    /// The platform's state directory (see [`crate::build::Prepared::state_dir`]).
    pub state_dir: &'a camino::Utf8Path,
    /// Which components the tree builds with cgo.
    pub cgo: &'a crate::cgo::Cgo,
}

/// One component's key and what it means against the last build.
#[derive(Debug, Clone)]
pub struct ComponentKey {
    pub component: &'static Component,
    pub key: String,
    pub inputs: KeyInputs,
    /// The recorded binary matches this key and is intact: nothing to build.
    pub hit: bool,
    /// Why the key differs from the last successful build (empty if never built or unchanged).
    pub changed: Vec<String>,
    /// No successful build recorded.
    pub never_built: bool,
    /// The recorded output exists no more or was altered.
    pub output_gone: bool,
    pub binary: Utf8PathBuf,
}

/// The result of key computation, with the refreshed state to save.
#[derive(Debug)]
pub struct Keys {
    pub components: Vec<ComponentKey>,
    pub warnings: Vec<String>,
    pub state: CacheState,
    pub go_list_runs: usize,
    pub files_hashed: usize,
}

impl Keys {
    pub fn ci_key(&self, toolchain: &Toolchain) -> String {
        let keys: Vec<&str> = self.components.iter().map(|k| k.key.as_str()).collect();
        ci_key(toolchain, &keys)
    }
}

/// Computes the keys of the requested components, reusing the stat index where it can.
pub(crate) fn compute(req: KeyRequest<'_>) -> Result<Keys, CacheError> {
    let root = &req.tree.root;
    let (mut state, warning) = CacheState::load(req.state_dir);
    let build_files = build_files(root);
    let ignored = Ignored::new(root);
    let (trusted, mut files_hashed) = trusted_closures(&req, &mut state, &build_files, &ignored)?;
    let stale: Vec<&'static Component> = req.components.iter().copied().filter(|c| !trusted.contains(c)).collect();
    let (go_list_runs, listed_hashed) = list_closures(&req, &mut state, &stale, &ignored)?;
    files_hashed += listed_hashed;
    let components = req.components.iter().map(|&c| component_key(&req, &state, &build_files, c)).collect();
    let warnings = warning.into_iter().filter(|w| !w.is_empty()).collect();
    Ok(Keys { components, warnings, state, go_list_runs, files_hashed })
}

/// The components whose stored closures can be trusted without asking `go list` again (the
/// module doc's fast path), after refreshing the build files and those closures' files; and how
/// many files that hashed again.
fn trusted_closures(
    req: &KeyRequest<'_>,
    state: &mut CacheState,
    build_files: &BTreeSet<String>,
    ignored: &Ignored,
) -> Result<(Vec<&'static Component>, usize), CacheError> {
    let root = &req.tree.root;
    let build_refresh = state.index.refresh(root, build_files);
    let module_files_changed = build_refresh
        .changed
        .iter()
        .any(|f| matches!(f.as_str(), "go.mod" | "go.sum" | "go.work" | "vendor/modules.txt"));
    let mut trusted: Vec<&'static Component> = Vec::new();
    for &c in req.components {
        let Some(s) = state.components.get(c.name) else {
            continue;
        };
        let holds = s.closure_env == closure_env(req, c)
            && !s.closure.files.is_empty()
            && !module_files_changed
            && state.index.dirs_unchanged(root, &s.closure.dirs, &|p: &str| ignored.matches(p))?;
        if holds {
            trusted.push(c);
        }
    }
    let trusted_files: BTreeSet<String> =
        trusted.iter().flat_map(|c| state.components[c.name].closure.files.iter().cloned()).collect();
    let refresh = state.index.refresh(root, &trusted_files);
    if refresh.closure_suspect {
        trusted.clear();
    }
    Ok((trusted, build_refresh.rehashed + refresh.rehashed))
}

/// Asks `go list` once per CGO_ENABLED value for the closures of `stale` and records them with
/// their files' hashes; returns how many times `go list` ran and how many files were hashed.
fn list_closures(
    req: &KeyRequest<'_>,
    state: &mut CacheState,
    stale: &[&'static Component],
    ignored: &Ignored,
) -> Result<(usize, usize), CacheError> {
    let (mut go_list_runs, mut files_hashed) = (0, 0);
    for cgo in ["0", "1"] {
        let group: Vec<&'static Component> = stale.iter().copied().filter(|c| req.cgo.cgo_enabled(c) == cgo).collect();
        if group.is_empty() {
            continue;
        }
        go_list_runs += 1;
        for (name, closure) in golist::closures(req.tree, req.toolchain, cgo, &group)? {
            let c = group.iter().find(|c| c.name == name).expect("go list answered for a requested component");
            files_hashed += record_closure(req, state, c, closure, ignored)?;
        }
    }
    Ok((go_list_runs, files_hashed))
}

/// Keeps `c`'s freshly listed closure (without ignored files) and hashes its files; returns
/// how many were hashed.
fn record_closure(
    req: &KeyRequest<'_>,
    state: &mut CacheState,
    c: &'static Component,
    mut closure: golist::Closure,
    ignored: &Ignored,
) -> Result<usize, CacheError> {
    let root = &req.tree.root;
    closure.files.retain(|f| !ignored.matches(f));
    // Names and links first: a non-UTF-8 name is what `go list` reported as U+FFFD.
    state.index.record_dirs(root, &closure.dirs, &|p: &str| ignored.matches(p))?;
    let refresh = state.index.refresh(root, &closure.files);
    if let Some((path, detail)) = refresh.unreadable.into_iter().next() {
        return Err(unreadable(root, path, detail));
    }
    let entry = state.components.entry(c.name.to_string()).or_default();
    entry.closure = closure;
    entry.closure_env = closure_env(req, c);
    Ok(refresh.rehashed)
}

/// `c`'s key from its recorded closure and the build files, and what it means against the
/// component's last build.
fn component_key(
    req: &KeyRequest<'_>,
    state: &CacheState,
    build_files: &BTreeSet<String>,
    c: &'static Component,
) -> ComponentKey {
    let (tree, toolchain) = (req.tree, &req.toolchain.identity);
    let entry = &state.components[c.name];
    let files = entry
        .closure
        .files
        .iter()
        .chain(build_files)
        .filter_map(|f| Some((f.clone(), state.index.sha256(f)?.to_string())))
        .collect();
    let inputs = KeyInputs {
        schema: key::SCHEMA,
        component: c.name.to_string(),
        what: c.what.to_string(),
        toolchain: toolchain.clone(),
        cgo_enabled: req.cgo.cgo_enabled(c).to_string(),
        go_mode: tree.go_mode,
        make_vars: req.make_vars.clone(),
        kube_version: tree.version.text.clone(),
        source_date_epoch: SOURCE_DATE_EPOCH.to_string(),
        files,
    };
    let key = inputs.digest();
    let output_ok = entry.output.as_ref().is_some_and(|o| output_intact(&tree.root, o));
    ComponentKey {
        component: c,
        hit: output_ok && entry.output.as_ref().is_some_and(|o| o.key == key),
        changed: entry.built_inputs.as_ref().map(|old| explain(old, &inputs)).unwrap_or_default(),
        never_built: entry.built_inputs.is_none(),
        output_gone: entry.output.is_some() && !output_ok,
        binary: tree.binary(&toolchain.goos, &toolchain.goarch, c.name),
        key,
        inputs,
    }
}

/// Why a file `go list` named as an input cannot be hashed, as precisely as kdbg can tell.
fn unreadable(root: &Utf8Path, path: String, detail: String) -> CacheError {
    let full = root.join(&path);
    match std::fs::symlink_metadata(&full) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(&full).map(|t| t.display().to_string()).unwrap_or_default();
            match std::fs::metadata(&full) {
                Err(e) => CacheError::BrokenLink { path, target, detail: crate::host::io_text(&e) },
                Ok(_) => CacheError::Unreadable { path, detail },
            }
        }
        Err(_) if path.contains('\u{FFFD}') => CacheError::NonUtf8Name { path },
        _ => CacheError::Unreadable { path, detail },
    }
}

/// Conditions under which a stored closure was listed; if they differ, list again.
fn closure_env(req: &KeyRequest<'_>, c: &Component) -> String {
    let (tree, go) = (req.tree, req.toolchain);
    let t = &go.identity;
    format!(
        "{:?} CGO_ENABLED={} {} {}/{} GOFLAGS={} GOWORK={}",
        tree.go_mode,
        req.cgo.cgo_enabled(c),
        t.go_version,
        t.goos,
        t.goarch,
        t.goflags,
        go.gowork
    )
}

/// The tree-relative directories of the components' stored import closures: every package
/// directory and the directory of every closure file (what `kdbg watch` watches).
pub(crate) fn closure_dirs(state_dir: &Utf8Path, components: &[&'static Component]) -> BTreeSet<String> {
    let (state, _) = CacheState::load(state_dir);
    let mut dirs = BTreeSet::new();
    for c in components {
        let Some(s) = state.components.get(c.name) else { continue };
        dirs.extend(s.closure.dirs.iter().cloned());
        dirs.extend(s.closure.files.iter().map(|f| f.rsplit_once('/').map_or("", |(d, _)| d).to_string()));
    }
    dirs
}

/// The files that drive the build itself, as far as they exist in this tree.
pub(crate) fn build_files(root: &Utf8Path) -> BTreeSet<String> {
    let mut files: BTreeSet<String> =
        ["go.mod", "go.sum", "go.work", "go.work.sum", "vendor/modules.txt", "Makefile", "hack/make-rules/build.sh"]
            .into_iter()
            .map(String::from)
            .collect();
    for dir in ["hack/lib", "build/root"] {
        if let Ok(entries) = root.join(dir).read_dir_utf8() {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.ends_with(".sh") || name.starts_with("Makefile") {
                    files.insert(format!("{dir}/{name}"));
                }
            }
        }
    }
    files.retain(|f| root.join(f).is_file());
    files
}

fn output_intact(root: &Utf8Path, o: &OutputRecord) -> bool {
    index::Stat::of(&root.join(&o.path)).is_ok_and(|s| s.size == o.size && s.mtime_ns == o.mtime_ns)
}

/// Generated files git ignores are not inputs (see the module doc).
struct Ignored(Option<ignore::gitignore::Gitignore>);

impl Ignored {
    fn new(root: &Utf8Path) -> Ignored {
        let mut b = ignore::gitignore::GitignoreBuilder::new(root);
        if root.join(".gitignore").is_file() && b.add(root.join(".gitignore")).is_none() {
            return Ignored(b.build().ok());
        }
        Ignored(None)
    }
    fn matches(&self, rel: &str) -> bool {
        rel.starts_with("_output/")
            || self.0.as_ref().is_some_and(|g| g.matched_path_or_any_parents(rel, false).is_ignore())
    }
}
