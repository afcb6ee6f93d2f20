//! `kdbg build`: compute keys, then the plan's `build:<component>` steps ([`step::Building`]):
//! one `make all` (or one replay) for the stale components, the outputs recorded.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::binary::Needs;
use crate::cache::state::STATE_FILE;
use crate::cache::{self, CacheError, KeyRequest, Keys};
use crate::cgo::Cgo;
use crate::component::Component;
use crate::flags::{self, Profile};
use crate::host::HostError;
use crate::lock::TreeLock;
use crate::plan::exec::Exec;
use crate::plan::Plan;
use crate::platform::Platform;
use crate::report::Reporter;
use crate::toolchain::{self, GoSearch, GoToolchain};
use crate::tree::SourceTree;

pub(crate) mod capture;
pub(crate) mod replay;
pub(crate) mod step;
mod team;

pub(crate) use step::Building;
pub use team::{list, Listed};

#[derive(Debug, Clone, Default)]
pub struct BuildConfig {
    pub profile: Profile,
    /// `--go PATH`: the Go to build with (checked against the tree's `.go-version`).
    pub go: Option<Utf8PathBuf>,
    /// `--via-make`: never replay the captured `go` calls (see [`replay`]).
    pub via_make: bool,
    /// `--platform`, or the node's: what to build for (default: [`Platform::default_for`] the Go
    /// toolchain's own).
    pub platform: Option<Platform>,
    /// `--static`: build the tree's cgo binaries static through `KUBE_STATIC_OVERRIDES` (for
    /// another platform without its C cross compiler).
    pub static_cgo: bool,
    /// The team cache to pull from on a miss (and push to), from `--cache`, `KDBG_CACHE` or the
    /// configuration file; `None` with `--no-cache` or when none is named.
    pub cache: Option<crate::cache::remote::RemoteSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("`make` failed in {root}; the previous binaries and cache records are untouched. Last lines:\n{tail}")]
    Make { root: Utf8PathBuf, tail: String },
    #[error("the replayed `go` build failed in {root}; the previous binaries and cache records are untouched (`--via-make` runs make instead). Last lines:\n{tail}")]
    Replay { root: Utf8PathBuf, tail: String },
    #[error("failed to run make: {0}")]
    MakeSpawn(HostError),
    #[error("make succeeded but did not produce {path}; is WHAT={what} right for this tree?")]
    NoOutput { path: Utf8PathBuf, what: String },
    #[error("failed to access {path}: {source}")]
    Io { path: Utf8PathBuf, source: std::io::Error },
    #[error("cannot write {path} ({detail}): kdbg keeps its build state, and make its binaries, under {output}\n  fix: make {output} writable for this user (e.g. `sudo chown -R $(id -un) {output}`), or remove it (`make clean`)")]
    NotWritable { path: Utf8PathBuf, detail: String, output: Utf8PathBuf },
    #[error("{path} is a directory, where kdbg keeps its build state file\n  fix: remove it (`rm -r {path}`); kdbg rebuilds its state on the next run")]
    StateIsDir { path: Utf8PathBuf },
    /// A cgo component for another platform without its C cross compiler: which, and the fix.
    #[error("{message}")]
    NoCrossCompiler { message: String },
    #[error("no team cache is named\n  fix: pass --cache oci://HOST[:PORT]/REPO (or set KDBG_CACHE, or `url` under [cache] in kdbg's config.toml)")]
    NoCache,
    #[error(transparent)]
    Remote(#[from] crate::cache::remote::RemoteError),
    /// Another step of the same make (or replay) failed; its error says why.
    #[error("not built: the same build as {first} failed")]
    SameBuild { first: String },
}

impl BuildError {
    /// A failed make, or one that left no binary, is a failed build; a failed replay (make is
    /// the way out) and the cache's and workstation's errors are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            BuildError::Make { .. } | BuildError::NoOutput { .. } => crate::exit::ExitClass::BuildFailed,
            _ => crate::exit::ExitClass::Failure,
        }
    }
}

/// A write under `_output` failed: say which path, why, and how to make it writable.
fn not_writable(tree: &SourceTree, path: &Utf8Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let (path, output) = (path.to_owned(), tree.root.join("_output"));
    move |e| match path.is_dir() && path.file_name() == Some(STATE_FILE) {
        true => BuildError::StateIsDir { path },
        false => BuildError::NotWritable { path, detail: crate::host::io_text(&e), output },
    }
}

/// How a component's binary came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Via {
    /// Its key was unchanged and the binary intact: nothing ran.
    #[serde(rename = "up_to_date")]
    UpToDate,
    /// `make all WHAT=…` built it.
    #[serde(rename = "make")]
    Made,
    /// make's captured `go` calls were replayed (see [`replay`]).
    #[serde(rename = "replay")]
    Replayed,
    /// Pulled from the team cache by its key, verified, and placed where make puts it.
    #[serde(rename = "cache")]
    Pulled,
}

impl Via {
    /// `make`, `replay`, `up to date`: what the CLI prints.
    pub fn word(self) -> &'static str {
        match self {
            Via::UpToDate => "up to date",
            Via::Made => "make",
            Via::Replayed => "replay",
            Via::Pulled => "cache",
        }
    }
}

/// The output of a component's build step (as `kdbg build --json` prints it): the binary, its
/// facts, and how it came to be.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub name: String,
    pub key: String,
    pub hit: bool,
    pub binary: Utf8PathBuf,
    pub sha256: String,
    pub seconds: f64,
    #[serde(skip)]
    pub size: u64,
    /// `linux/amd64`: the GOOS/GOARCH it was built for.
    #[serde(skip)]
    pub platform: String,
    /// The Go that built it and its DWARF version, from its ELF.
    #[serde(skip)]
    pub needs: Option<Needs>,
    pub via: Via,
    /// The `make` command that built it, when one did.
    #[serde(skip)]
    pub command: Option<String>,
    #[serde(skip)]
    pub why: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    pub components: Vec<Built>,
    /// The `make` command that ran, if one did.
    pub make: Option<String>,
    /// How the stale components were built: `make`, `replay` of make's captured `go` calls, or
    /// `cache` when every stale one was pulled.
    pub via: Option<Via>,
    /// What each push to the team cache did (`pushed …`, `… is already in the cache`).
    #[serde(skip)]
    pub pushed: Vec<String>,
    /// Pushes to the team cache that failed (each a message); `kdbg build --push` fails on them.
    #[serde(skip)]
    pub push_failed: Vec<String>,
}

impl BuildOutcome {
    /// The outcome of the build steps' outputs, in the components' order.
    pub(crate) fn of(components: Vec<Built>) -> BuildOutcome {
        let make = components.iter().find_map(|b| b.command.clone());
        let vias = || components.iter().map(|b| b.via);
        let via = [Via::Replayed, Via::Made, Via::Pulled].into_iter().find(|v| vias().any(|x| x == *v));
        BuildOutcome { components, make, via, pushed: Vec::new(), push_failed: Vec::new() }
    }
}

/// The inputs every build and key computation share.
pub struct Prepared {
    pub toolchain: GoToolchain,
    pub make_vars: BTreeMap<String, String>,
    pub via_make: bool,
    /// What the binaries are built for.
    pub platform: Platform,
    /// Which components are built with cgo (the tree's rule, the overrides, `--static`).
    pub cgo: Cgo,
    /// Where this platform's build state lives: `_output/kdbg` for the toolchain's own platform,
    /// `_output/kdbg/platforms/<os>-<arch>` for another (so switching platforms rebuilds nothing).
    pub state_dir: Utf8PathBuf,
    /// The team cache, as [`BuildConfig::cache`].
    pub remote: Option<crate::cache::remote::RemoteSettings>,
}

impl Prepared {
    /// The platform is not the one the Go toolchain builds for by itself.
    pub fn cross(&self) -> bool {
        self.platform != self.toolchain.native()
    }
}

/// Decides the build profile and the Go (see [`crate::toolchain`]); fails before any `make` when
/// the tree's `.go-version` has no local match.
pub fn prepare(tree: &SourceTree, config: &BuildConfig) -> Result<Prepared, CacheError> {
    if config.profile == Profile::Optimized && !tree.goldflags_replace_strip {
        return Err(CacheError::OptimizedStripped { root: tree.root.clone() });
    }
    let mut toolchain = toolchain::select(&tree.root, &GoSearch::from_env(config.go.clone()))?;
    let native = toolchain.native();
    let platform = config.platform.clone().unwrap_or_else(|| Platform::default_for(&native.os, &native.arch));
    toolchain.target(&platform);
    let state_dir = match platform == native {
        true => tree.state_dir(),
        false => tree.state_dir().join("platforms").join(platform.dashed()),
    };
    let mut cgo = Cgo::of_tree(&tree.root);
    cgo.force_static = config.static_cgo;
    Ok(Prepared {
        toolchain,
        make_vars: flags::make_vars(tree.debug_policy, config.profile),
        via_make: config.via_make,
        platform,
        cgo,
        state_dir,
        remote: config.cache.clone(),
    })
}

/// Where `kdbg build` puts `name`'s binary: `_output/local/bin/<GOOS>/<GOARCH>/<name>` of the Go
/// toolchain that builds this tree (its `go env`, not the workstation's architecture).
pub fn binary_path(tree: &SourceTree, config: &BuildConfig, name: &str) -> Result<Utf8PathBuf, CacheError> {
    let identity = prepare(tree, config)?.toolchain.identity;
    Ok(tree.binary(&identity.goos, &identity.goarch, name))
}

pub fn keys(tree: &SourceTree, components: &[&'static Component], p: &Prepared) -> Result<Keys, CacheError> {
    cache::compute(KeyRequest {
        tree,
        components,
        make_vars: &p.make_vars,
        toolchain: &p.toolchain,
        state_dir: &p.state_dir,
        cgo: &p.cgo,
    })
}

/// Builds what is stale; a second call with nothing changed runs no `make` at all. The plan's
/// build steps run through the executor, as `kdbg deploy`'s and `kdbg debug`'s do.
pub fn build(
    tree: &SourceTree,
    components: &[&'static Component],
    config: &BuildConfig,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let prepared = prepare(tree, config)?;
    let keyed = keyed(tree, components, &prepared, reporter)?;
    let plan = Plan::for_build(&keyed.keys.components);
    let building = Building::new(tree, keyed, &prepared, reporter);
    let run = Exec::default().run(&plan, &building, reporter).map_err(|f| first_error(f.errors))?;
    let mut built: Vec<Built> = run.outputs.into_values().collect();
    built.sort_by_key(|b| components.iter().position(|c| c.name == b.name));
    // `--push` publishes the current builds, also those that were up to date.
    let current: Vec<&Built> = built.iter().filter(|b| b.via == Via::UpToDate).collect();
    building.push(&current);
    let pushes = building.finish()?;
    Ok(BuildOutcome { pushed: pushes.lines, push_failed: pushes.failed, ..BuildOutcome::of(built) })
}

/// The error to show of failed build steps: the one that is not another's consequence.
pub(crate) fn first_error<I>(errors: Vec<(I, BuildError)>) -> BuildError {
    let mut errors: Vec<BuildError> = errors.into_iter().map(|(_, e)| e).collect();
    let i = errors.iter().position(|e| !matches!(e, BuildError::SameBuild { .. })).unwrap_or(0);
    errors.swap_remove(i)
}

/// The keys of a build about to run, computed under the tree's lock, which stays held until
/// the build steps are done with them (a plan's build steps are decided by these keys).
pub(crate) struct Keyed {
    pub keys: Keys,
    lock: TreeLock,
}

/// Takes the tree's lock and computes the keys, reporting the toolchain's and keys' warnings.
pub(crate) fn keyed(
    tree: &SourceTree,
    components: &[&'static Component],
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<Keyed, BuildError> {
    cgo_check(components, prepared, reporter)?;
    let state_dir = tree.state_dir();
    let lock = TreeLock::acquire(&state_dir, reporter).map_err(not_writable(tree, &state_dir.join("lock")))?;
    if let Some(w) = &prepared.toolchain.warning {
        reporter.warn(w.clone());
    }
    let keys = keys(tree, components, prepared)?;
    for w in &keys.warnings {
        reporter.warn(w.clone());
    }
    Ok(Keyed { keys, lock })
}

/// Before anything runs: a component this tree builds with cgo for another platform needs that
/// platform's C cross compiler; missing, the error names it and the static override. With
/// `--static`, says which components are built static although the tree would use cgo.
fn cgo_check(components: &[&'static Component], p: &Prepared, reporter: &dyn Reporter) -> Result<(), BuildError> {
    let by_tree: Vec<&str> = components.iter().filter(|c| p.cgo.by_tree(c)).map(|c| c.name).collect();
    if by_tree.is_empty() {
        return Ok(());
    }
    if p.cgo.force_static {
        reporter.warn(format!(
            "building {} static (KUBE_STATIC_OVERRIDES, --static): this tree builds {} with cgo, so the node may \
             run a cgo binary where your debug build has none",
            by_tree.join(", "),
            if by_tree.len() == 1 { "it" } else { "them" }
        ));
        return Ok(());
    }
    let (cc, package) = crate::cgo::cross_cc(&p.platform);
    if !p.cross() || crate::cgo::cc_found(&cc) {
        return Ok(());
    }
    let install = match package {
        Some(pkg) => format!("install {cc} (Debian: `apt-get install {pkg}`)"),
        None => format!("make {cc} runnable"),
    };
    let message = format!(
        "{} for {}: this tree builds it with cgo, and the C cross compiler {cc} is missing\n  fix: {install}; \
         or build it static with --static (the tree's KUBE_STATIC_OVERRIDES={}), which the node's cgo binary is not",
        by_tree.join(", "),
        p.platform,
        by_tree.join(" ")
    );
    Err(BuildError::NoCrossCompiler { message })
}

/// The plan `kdbg plan` shows for a build.
pub fn plan(tree: &SourceTree, components: &[&'static Component], config: &BuildConfig) -> Result<Plan, CacheError> {
    let prepared = prepare(tree, config)?;
    let keys = keys(tree, components, &prepared)?;
    Ok(Plan::for_build(&keys.components))
}
