//! `kdbg build`: compute keys, run one `make all` for the stale components, record the outputs.

use std::collections::BTreeMap;
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::cache::state::STATE_FILE;
use crate::cache::{self, CacheError, ComponentKey, KeyRequest, Keys, OutputRecord};
use crate::component::Component;
use crate::flags::{self, Profile};
use crate::host::{Cmd, HostError};
use crate::lock::TreeLock;
use crate::plan::{self, Plan, StepId, StepKind};
use crate::report::{Event, Reporter, StepStatus};
use crate::toolchain::{self, GoSearch, GoToolchain};
use crate::tree::SourceTree;

pub(crate) mod capture;
pub(crate) mod replay;

#[derive(Debug, Clone, Default)]
pub struct BuildConfig {
    pub profile: Profile,
    /// `--go PATH`: the Go to build with (checked against the tree's `.go-version`).
    pub go: Option<Utf8PathBuf>,
    /// `--via-make`: never replay the captured `go` calls (see [`replay`]).
    pub via_make: bool,
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

/// One component's result, as `kdbg build --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub name: String,
    pub key: String,
    pub hit: bool,
    pub binary: Utf8PathBuf,
    pub sha256: String,
    pub seconds: f64,
    #[serde(skip)]
    pub why: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildOutcome {
    pub components: Vec<Built>,
    /// The `make` command that ran, if one did.
    pub make: Option<String>,
    /// How the stale components were built: `make`, or `replay` of make's captured `go` calls.
    pub via: Option<&'static str>,
}

/// The inputs every build and key computation share.
pub struct Prepared {
    pub toolchain: GoToolchain,
    pub make_vars: BTreeMap<String, String>,
    pub via_make: bool,
}

/// Decides the build profile and the Go (see [`crate::toolchain`]); fails before any `make` when
/// the tree's `.go-version` has no local match.
pub fn prepare(tree: &SourceTree, config: &BuildConfig) -> Result<Prepared, CacheError> {
    if config.profile == Profile::Optimized && !tree.goldflags_replace_strip {
        return Err(CacheError::OptimizedStripped { root: tree.root.clone() });
    }
    let toolchain = toolchain::select(&tree.root, &GoSearch::from_env(config.go.clone()))?;
    Ok(Prepared {
        toolchain,
        make_vars: flags::make_vars(tree.debug_policy, config.profile),
        via_make: config.via_make,
    })
}

/// Where `kdbg build` puts `name`'s binary: `_output/local/bin/<GOOS>/<GOARCH>/<name>` of the Go
/// toolchain that builds this tree (its `go env`, not the workstation's architecture).
pub fn binary_path(tree: &SourceTree, config: &BuildConfig, name: &str) -> Result<Utf8PathBuf, CacheError> {
    let identity = prepare(tree, config)?.toolchain.identity;
    Ok(tree.binary(&identity.goos, &identity.goarch, name))
}

pub fn keys(tree: &SourceTree, components: &[&'static Component], p: &Prepared) -> Result<Keys, CacheError> {
    cache::compute(KeyRequest { tree, components, make_vars: &p.make_vars, toolchain: &p.toolchain })
}

/// Builds what is stale; a second call with nothing changed runs no `make` at all.
pub fn build(
    tree: &SourceTree,
    components: &[&'static Component],
    config: &BuildConfig,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let prepared = prepare(tree, config)?;
    build_prepared(tree, components, &prepared, reporter)
}

/// [`build`] with the Go and make variables already decided.
pub(crate) fn build_prepared(
    tree: &SourceTree,
    components: &[&'static Component],
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let keyed = keyed(tree, components, prepared, reporter)?;
    build_keyed(tree, keyed, prepared, reporter)
}

/// The keys of a build about to run, computed under the tree's lock, which stays held until
/// [`build_keyed`] is done with them (a plan's build steps are decided by these keys).
pub(crate) struct Keyed {
    pub keys: Keys,
    _lock: TreeLock,
}

/// Takes the tree's lock and computes the keys, reporting the toolchain's and keys' warnings.
pub(crate) fn keyed(
    tree: &SourceTree,
    components: &[&'static Component],
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<Keyed, BuildError> {
    let state_dir = tree.state_dir();
    let lock = TreeLock::acquire(&state_dir, reporter).map_err(not_writable(tree, &state_dir.join("lock")))?;
    if let Some(w) = &prepared.toolchain.warning {
        reporter.warn(w.clone());
    }
    let keys = keys(tree, components, prepared)?;
    for w in &keys.warnings {
        reporter.warn(w.clone());
    }
    Ok(Keyed { keys, _lock: lock })
}

/// Builds what `keyed` says is stale (one make, or one replay), records the outputs, and
/// releases the tree's lock.
pub(crate) fn build_keyed(
    tree: &SourceTree,
    keyed: Keyed,
    prepared: &Prepared,
    reporter: &dyn Reporter,
) -> Result<BuildOutcome, BuildError> {
    let state_dir = tree.state_dir();
    let Keyed { mut keys, _lock } = keyed;
    let stale: Vec<&ComponentKey> = keys.components.iter().filter(|k| !k.hit).collect();
    for k in keys.components.iter().filter(|k| k.hit) {
        reporter.step(&StepKind::Build.on(k.component.name), StepStatus::Skipped { reason: plan::why(k).join("; ") });
    }
    let mut make_line = None;
    let mut via = None;
    let mut seconds = 0.0;
    let replayable = match stale.is_empty() || prepared.via_make {
        true => None,
        false => replay::plan(&tree.root, &state_dir, &stale, &keys.state),
    };
    if let Some(capture) = replayable {
        seconds = run_replay(tree, &stale, prepared, capture, reporter)?;
        via = Some("replay");
    } else if !stale.is_empty() {
        let what: Vec<&str> = stale.iter().map(|k| k.component.what).collect();
        let version_file = state_dir.join("version.env");
        std::fs::write(&version_file, flags::version_file(&tree.version)).map_err(not_writable(tree, &version_file))?;
        let shim = capture::write_shim(&state_dir, &prepared.toolchain.go)
            .map_err(not_writable(tree, &capture::shim_dir(&state_dir)))?;
        let cmd = Cmd::new("make")
            .arg("all")
            .arg(format!("WHAT={}", what.join(" ")))
            .args(flags::make_args(&prepared.make_vars))
            .envs(shim_first_on_path(&prepared.toolchain.env, &shim))
            .env("SOURCE_DATE_EPOCH", flags::SOURCE_DATE_EPOCH)
            .env("KUBE_GIT_VERSION_FILE", version_file.as_str())
            .cwd(&tree.root);
        let ids = build_ids(&stale);
        ids.iter().for_each(|id| reporter.step(id, StepStatus::Started));
        let go = &prepared.toolchain;
        reporter.info(format!(
            "running {} with {} ({}, GOTOOLCHAIN=local)",
            cmd.display(),
            go.identity.go_version,
            go.go
        ));
        let started = Instant::now();
        let result =
            cmd.stream(&mut |line| reporter.report(Event::Output { id: ids[0].clone(), line: line.to_string() }));
        seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => ids.iter().for_each(|id| reporter.step(id, StepStatus::Done { seconds })),
            Err(HostError::Failed { tail, .. }) => {
                ids.iter().for_each(|id| reporter.step(id, StepStatus::Failed { error: "make failed".into() }));
                return Err(BuildError::Make { root: tree.root.clone(), tail });
            }
            Err(e) => return Err(BuildError::MakeSpawn(e)),
        }
        make_line = Some(cmd.display());
        let rewritten = cache::rewritten::detect(&tree.root, &mut keys.state, &stale);
        if let Some(w) = cache::rewritten::warning(&rewritten) {
            reporter.warn(w);
        }
        let keyed = stale.iter().map(|k| (k.component.name.to_string(), k.key.clone())).collect();
        capture::save(&state_dir, keyed, &what).map_err(not_writable(tree, &state_dir.join(capture::CAPTURE_FILE)))?;
        via = Some("make");
    }

    let mut out = Vec::new();
    for k in &keys.components {
        let entry = keys.state.components.get_mut(k.component.name).expect("keys computed for it");
        let sha256 = if k.hit {
            entry.output.as_ref().map(|o| o.sha256.clone()).unwrap_or_default()
        } else {
            let record = record_output(tree, k)?;
            let sha = record.sha256.clone();
            entry.output = Some(record);
            entry.built_inputs = Some(k.inputs.clone());
            sha
        };
        out.push(Built {
            name: k.component.name.to_string(),
            key: k.key.clone(),
            hit: k.hit,
            binary: k.binary.clone(),
            sha256,
            seconds: if k.hit { 0.0 } else { seconds },
            why: plan::why(k),
        });
    }
    // A no-op changes nothing worth writing (and rewriting megabytes of state costs more than
    // the rest of the no-op).
    if via.is_some() || keys.state.index.dirty {
        keys.state.save(&state_dir).map_err(not_writable(tree, &state_dir.join(STATE_FILE)))?;
    }
    Ok(BuildOutcome { components: out, make: make_line, via })
}

/// Runs the captured `go` builds, places `go install`'s binaries where make copies them, and
/// re-keys the capture for the next replay. Returns the seconds it took.
fn run_replay(
    tree: &SourceTree,
    stale: &[&ComponentKey],
    prepared: &Prepared,
    mut capture: capture::Capture,
    reporter: &dyn Reporter,
) -> Result<f64, BuildError> {
    let ids = build_ids(stale);
    ids.iter().for_each(|id| reporter.step(id, StepStatus::Started));
    reporter.info(format!(
        "replaying make's {} captured go build(s) (no make: only Go bodies changed)",
        capture.invocations.len()
    ));
    let started = Instant::now();
    for inv in &capture.invocations {
        let mut cmd = Cmd::new(prepared.toolchain.go.as_str())
            .args(inv.args.iter().cloned())
            .envs(replay::env(&prepared.toolchain.env, &inv.env))
            .env("PWD", inv.cwd.as_str())
            .cwd(Utf8Path::new(&inv.cwd));
        // What make's environment did not set, the replay must not set either.
        for var in capture::GO_ENV.iter().filter(|v| !inv.env.contains_key(**v)) {
            cmd = cmd.env_remove(*var);
        }
        let result =
            cmd.stream(&mut |line| reporter.report(Event::Output { id: ids[0].clone(), line: line.to_string() }));
        match result {
            Ok(()) => {}
            Err(HostError::Failed { tail, .. }) => {
                ids.iter().for_each(|id| reporter.step(id, StepStatus::Failed { error: "go build failed".into() }));
                return Err(BuildError::Replay { root: tree.root.clone(), tail });
            }
            Err(e) => return Err(BuildError::MakeSpawn(e)),
        }
        if inv.args.first().map(String::as_str) == Some("install") && !inv.args.iter().any(|a| a == "-o") {
            let gopath = inv.env.get("GOPATH").and_then(|p| p.split(':').next()).unwrap_or_default();
            for k in stale {
                let name = k.binary.file_name().unwrap_or_default();
                let from = Utf8Path::new(gopath).join("bin").join(name);
                if !gopath.is_empty() && from.is_file() {
                    replay::place(&from, &k.binary).map_err(not_writable(tree, &k.binary))?;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    ids.iter().for_each(|id| reporter.step(id, StepStatus::Done { seconds }));
    capture.keys = stale.iter().map(|k| (k.component.name.to_string(), k.key.clone())).collect();
    let bytes = serde_json::to_vec_pretty(&capture).expect("capture serializes");
    let path = tree.state_dir().join(capture::CAPTURE_FILE);
    cache::state::write_atomic(&path, &bytes).map_err(not_writable(tree, &path))?;
    Ok(seconds)
}

/// One step per stale component: the one make (or replay) that builds them all reports each, and
/// its output lines under the first.
fn build_ids(stale: &[&ComponentKey]) -> Vec<StepId> {
    stale.iter().map(|k| StepKind::Build.on(k.component.name)).collect()
}

/// The toolchain's environment with the capture shim's directory first on PATH.
fn shim_first_on_path(env: &[(String, String)], shim: &Utf8Path) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    match env.iter_mut().find(|(k, _)| k == "PATH") {
        Some((_, v)) => *v = format!("{shim}:{v}"),
        None => env.push(("PATH".into(), format!("{shim}:{}", std::env::var("PATH").unwrap_or_default()))),
    }
    env
}

fn record_output(tree: &SourceTree, k: &ComponentKey) -> Result<OutputRecord, BuildError> {
    let path = &k.binary;
    if !path.is_file() {
        return Err(BuildError::NoOutput { path: path.clone(), what: k.component.what.to_string() });
    }
    let stat = cache::index::Stat::of(path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
    let (sha256, _) =
        crate::digest::sha256_file(path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
    Ok(OutputRecord {
        key: k.key.clone(),
        path: path.strip_prefix(&tree.root).unwrap_or(path).to_string(),
        sha256,
        size: stat.size,
        mtime_ns: stat.mtime_ns,
    })
}

/// The plan `kdbg plan` shows for a build.
pub fn plan(tree: &SourceTree, components: &[&'static Component], config: &BuildConfig) -> Result<Plan, CacheError> {
    let prepared = prepare(tree, config)?;
    let keys = keys(tree, components, &prepared)?;
    Ok(Plan::for_build(&keys.components))
}
