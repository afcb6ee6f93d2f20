//! The `build:<component>` steps of a plan: a component whose key is unchanged is up to date and
//! yields its recorded binary; the stale ones of a wave are one batch, built by ONE `make all
//! WHAT="…"` (or one replay of make's captured `go` calls, [`super::replay`]), and each yields its
//! new binary ([`Built`]: path, sha256, size, platform, Go and DWARF, and how it came to be).
//! A failed make fails every step of the batch (the first with make's error) and leaves the
//! records and state untouched. With a team cache, the stale components it has are pulled first
//! ([`super::team`]) and only the rest are built; what is built is pushed when asked.

use std::sync::Mutex;
use std::time::Instant;

use camino::Utf8Path;

use super::{capture, not_writable, replay, BuildError, Built, Keyed, Prepared, Via};
use crate::binary::needs_of;
use crate::cache::remote::Remote;
use crate::cache::state::STATE_FILE;
use crate::cache::{self, CacheState, ComponentKey, OutputRecord};
use crate::flags;
use crate::host::{Cmd, HostError};
use crate::lock::TreeLock;
use crate::plan::exec::{Fresh, Inputs, Ran, Runner};
use crate::plan::{self, Step, StepId, StepKind};
use crate::report::{Event, Reporter};
use crate::tree::SourceTree;

/// Runs a plan's build steps for one tree.
pub(crate) struct Building<'a> {
    pub(super) tree: &'a SourceTree,
    pub(super) prepared: &'a Prepared,
    pub(super) reporter: &'a dyn Reporter,
    keys: Vec<ComponentKey>,
    /// The tree's cache state, read-modify-written by the build steps as a session's steps do
    /// the node's journal; saved by the batch that builds, else by [`Building::finish`].
    pub(super) state: Mutex<CacheState>,
    /// The team cache, when one is named (and could be opened).
    pub(super) remote: Option<Box<dyn Remote>>,
    /// What the pushes did (see [`Building::finish`]).
    pub(super) pushes: Mutex<Pushes>,
    /// Held from key computation until the outputs are recorded.
    _lock: TreeLock,
}

/// Writes the tree's cache state for this platform; the stat index is clean afterwards.
pub(super) fn save(tree: &SourceTree, prepared: &Prepared, state: &mut CacheState) -> Result<(), BuildError> {
    let dir = &prepared.state_dir;
    state.save(dir).map_err(not_writable(tree, &dir.join(STATE_FILE)))?;
    state.index.dirty = false;
    Ok(())
}

/// What the pushes to the team cache of a build did: a line each, and the failures (also warned).
#[derive(Debug, Default)]
pub(crate) struct Pushes {
    pub lines: Vec<String>,
    pub failed: Vec<String>,
}

impl Pushes {
    /// For commands whose stdout is not the build's: the lines as progress.
    pub(crate) fn report(self, reporter: &dyn Reporter) {
        self.lines.into_iter().for_each(|l| reporter.info(l));
    }
}

/// How a batch built: the path, its seconds, and the make command when make ran.
struct Made {
    via: Via,
    seconds: f64,
    command: Option<String>,
}

impl<'a> Building<'a> {
    pub(crate) fn new(
        tree: &'a SourceTree,
        keyed: Keyed,
        prepared: &'a Prepared,
        reporter: &'a dyn Reporter,
    ) -> Building<'a> {
        let Keyed { keys, lock } = keyed;
        Building {
            tree,
            prepared,
            reporter,
            keys: keys.components,
            state: Mutex::new(keys.state),
            remote: super::team::open(prepared, reporter),
            pushes: Mutex::default(),
            _lock: lock,
        }
    }

    /// Saves what key computation refreshed when no build did (a no-op writes nothing else), and
    /// returns what the pushes did.
    pub(crate) fn finish(self) -> Result<Pushes, BuildError> {
        let mut state = self.state.into_inner().unwrap();
        if state.index.dirty {
            save(self.tree, self.prepared, &mut state)?;
        }
        Ok(self.pushes.into_inner().unwrap())
    }

    fn key(&self, id: &StepId) -> &ComponentKey {
        let name = id.component().expect("a build step names its component");
        self.keys.iter().find(|k| k.component.name == name).expect("keys computed for every build step")
    }

    pub(super) fn platform(&self) -> String {
        self.prepared.platform.to_string()
    }

    /// A component's binary as its up-to-date record says.
    fn recorded(&self, k: &ComponentKey) -> Built {
        let state = self.state.lock().unwrap();
        let output = state.components.get(k.component.name).and_then(|c| c.output.as_ref());
        // Records of an older kdbg lack them; Delve's choice reads the ELF then (not a no-op build).
        let needs = output.and_then(|o| o.needs.clone());
        Built {
            name: k.component.name.to_string(),
            key: k.key.clone(),
            hit: true,
            binary: k.binary.clone(),
            sha256: output.map(|o| o.sha256.clone()).unwrap_or_default(),
            seconds: 0.0,
            size: output.map(|o| o.size).unwrap_or_default(),
            platform: self.platform(),
            needs,
            via: Via::UpToDate,
            command: None,
            why: plan::why(k),
        }
    }

    /// Pulls what the team cache has of `stale`, builds the rest (one make or one replay),
    /// records each output, saves the state, and pushes what was built when asked.
    fn build(&self, stale: &[&ComponentKey]) -> Result<Vec<Built>, BuildError> {
        let mut out = self.pull(stale)?;
        let rest: Vec<&ComponentKey> =
            stale.iter().copied().filter(|k| !out.iter().any(|b| b.name == k.component.name)).collect();
        if !rest.is_empty() {
            let built = self.build_here(&rest)?;
            if self.prepared.remote.as_ref().is_some_and(|r| r.push) {
                self.push(&built.iter().collect::<Vec<_>>());
            }
            out.extend(built);
        }
        out.sort_by_key(|b| stale.iter().position(|k| k.component.name == b.name));
        Ok(out)
    }

    /// Builds `stale` here (one make or one replay), records each output, and saves the state.
    fn build_here(&self, stale: &[&ComponentKey]) -> Result<Vec<Built>, BuildError> {
        let tree = self.tree;
        let state_dir = &self.prepared.state_dir;
        let mut state = self.state.lock().unwrap();
        let replayable = match self.prepared.via_make {
            true => None,
            false => replay::plan(&tree.root, state_dir, stale, &state),
        };
        let made = match replayable {
            Some(capture) => self.replay(stale, capture)?,
            None => self.make(stale, &mut state)?,
        };
        let mut out = Vec::new();
        for k in stale {
            let record = record_output(tree, k)?;
            let entry = state.components.get_mut(k.component.name).expect("keys computed for it");
            out.push(Built {
                name: k.component.name.to_string(),
                key: k.key.clone(),
                hit: false,
                binary: k.binary.clone(),
                sha256: record.sha256.clone(),
                seconds: made.seconds,
                size: record.size,
                platform: self.platform(),
                needs: record.needs.clone(),
                via: made.via,
                command: made.command.clone(),
                why: plan::why(k),
            });
            entry.output = Some(record);
            entry.built_inputs = Some(k.inputs.clone());
        }
        save(tree, self.prepared, &mut state)?;
        Ok(out)
    }

    /// One `make all WHAT="…"` for `stale`, with the capture shim first on PATH; keeps the
    /// captured `go` calls for the next replay and warns about files make rewrote.
    fn make(&self, stale: &[&ComponentKey], state: &mut CacheState) -> Result<Made, BuildError> {
        let (tree, prepared, reporter) = (self.tree, self.prepared, self.reporter);
        let state_dir = &prepared.state_dir;
        let what: Vec<&str> = stale.iter().map(|k| k.component.what).collect();
        super::team::say_full_make(state, stale, reporter);
        let version_file = state_dir.join("version.env");
        std::fs::create_dir_all(state_dir).map_err(not_writable(tree, state_dir))?;
        std::fs::write(&version_file, flags::version_file(&tree.version)).map_err(not_writable(tree, &version_file))?;
        let shim = capture::write_shim(state_dir, &prepared.toolchain.go)
            .map_err(not_writable(tree, &capture::shim_dir(state_dir)))?;
        let cmd = Cmd::new("make")
            .arg("all")
            .arg(format!("WHAT={}", what.join(" ")))
            .args(flags::make_args(&prepared.make_vars))
            .envs(shim_first_on_path(&prepared.toolchain.env, &shim))
            .env("SOURCE_DATE_EPOCH", flags::SOURCE_DATE_EPOCH)
            .env("KUBE_GIT_VERSION_FILE", version_file.as_str())
            .envs(prepared.cross().then(|| ("KUBE_BUILD_PLATFORMS".to_string(), prepared.platform.to_string())))
            .envs(static_overrides(prepared, stale).map(|names| ("KUBE_STATIC_OVERRIDES".to_string(), names)))
            .cwd(&tree.root);
        let go = &prepared.toolchain;
        reporter.info(format!(
            "running {} with {} ({}, GOTOOLCHAIN=local)",
            cmd.display(),
            go.identity.go_version,
            go.go
        ));
        let started = Instant::now();
        let first = StepKind::Build.on(stale[0].component.name);
        match cmd.stream(&mut |line| reporter.report(Event::Output { id: first.clone(), line: line.to_string() })) {
            Ok(()) => {}
            Err(HostError::Failed { tail, .. }) => return Err(BuildError::Make { root: tree.root.clone(), tail }),
            Err(e) => return Err(BuildError::MakeSpawn(e)),
        }
        let seconds = started.elapsed().as_secs_f64();
        let rewritten = cache::rewritten::detect(&tree.root, state, stale);
        if let Some(w) = cache::rewritten::warning(&rewritten) {
            reporter.warn(w);
        }
        let keyed = stale.iter().map(|k| (k.component.name.to_string(), k.key.clone())).collect();
        capture::save(state_dir, keyed, &what).map_err(not_writable(tree, &state_dir.join(capture::CAPTURE_FILE)))?;
        Ok(Made { via: Via::Made, seconds, command: Some(cmd.display()) })
    }

    /// Runs the captured `go` builds, places `go install`'s binaries where make copies them, and
    /// re-keys the capture for the next replay.
    fn replay(&self, stale: &[&ComponentKey], mut capture: capture::Capture) -> Result<Made, BuildError> {
        let (tree, reporter) = (self.tree, self.reporter);
        reporter.info(format!(
            "replaying make's {} captured go build(s) (no make: only Go bodies changed)",
            capture.invocations.len()
        ));
        let first = StepKind::Build.on(stale[0].component.name);
        let started = Instant::now();
        for inv in &capture.invocations {
            let mut cmd = Cmd::new(self.prepared.toolchain.go.as_str())
                .args(inv.args.iter().cloned())
                .envs(replay::env(&self.prepared.toolchain.env, &inv.env))
                .env("PWD", inv.cwd.as_str())
                .cwd(Utf8Path::new(&inv.cwd));
            // What make's environment did not set, the replay must not set either.
            for var in capture::GO_ENV.iter().filter(|v| !inv.env.contains_key(**v)) {
                cmd = cmd.env_remove(*var);
            }
            match cmd.stream(&mut |line| reporter.report(Event::Output { id: first.clone(), line: line.to_string() })) {
                Ok(()) => {}
                Err(HostError::Failed { tail, .. }) => {
                    return Err(BuildError::Replay { root: tree.root.clone(), tail })
                }
                Err(e) => return Err(BuildError::MakeSpawn(e)),
            }
            if inv.args.first().map(String::as_str) == Some("install") && !inv.args.iter().any(|a| a == "-o") {
                place_installed(tree, stale, inv)?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        capture.keys = stale.iter().map(|k| (k.component.name.to_string(), k.key.clone())).collect();
        let bytes = serde_json::to_vec_pretty(&capture).expect("capture serializes");
        let path = self.prepared.state_dir.join(capture::CAPTURE_FILE);
        cache::state::write_atomic(&path, &bytes).map_err(not_writable(tree, &path))?;
        Ok(Made { via: Via::Replayed, seconds, command: None })
    }
}

impl Runner for Building<'_> {
    type Error = BuildError;
    type Output = Built;

    fn up_to_date(&self, step: &Step, _: &Inputs<'_, Built>) -> Result<Option<Fresh<Built>>, BuildError> {
        let k = self.key(&step.id);
        Ok(k.hit.then(|| Fresh { reason: plan::why(k).join("; "), output: self.recorded(k) }))
    }

    /// A build step takes no inputs: one step alone is a batch of one.
    fn run(&self, step: &Step, _: &Inputs<'_, Built>) -> Result<Ran<Built>, BuildError> {
        let mut one = self.run_batch(&[(step, Inputs::none())]);
        one.pop().expect("one result per step")
    }

    fn batched(&self, step: &Step) -> bool {
        step.id.kind == StepKind::Build
    }

    fn run_batch(&self, steps: &[(&Step, Inputs<'_, Built>)]) -> Vec<Result<Ran<Built>, BuildError>> {
        let stale: Vec<&ComponentKey> = steps.iter().map(|(s, _)| self.key(&s.id)).collect();
        match self.build(&stale) {
            Ok(built) => built.into_iter().map(|b| Ok(Ran::done(b))).collect(),
            Err(e) => {
                let first = steps[0].0.id.to_string();
                let mut errors = vec![Err(e)];
                errors.extend(steps[1..].iter().map(|_| Err(BuildError::SameBuild { first: first.clone() })));
                errors
            }
        }
    }
}

/// Places `go install`'s `$GOPATH/bin/<name>` at each binary's path, as kubernetes' `place_bins`.
fn place_installed(tree: &SourceTree, stale: &[&ComponentKey], inv: &capture::GoInvocation) -> Result<(), BuildError> {
    let gopath = inv.env.get("GOPATH").and_then(|p| p.split(':').next()).unwrap_or_default();
    for k in stale {
        let name = k.binary.file_name().unwrap_or_default();
        let from = Utf8Path::new(gopath).join("bin").join(name);
        if !gopath.is_empty() && from.is_file() {
            replay::place(&from, &k.binary).map_err(not_writable(tree, &k.binary))?;
        }
    }
    Ok(())
}

/// `KUBE_STATIC_OVERRIDES` for make: with `--static`, the stale components the tree builds with
/// cgo (and the environment's own overrides).
fn static_overrides(prepared: &Prepared, stale: &[&ComponentKey]) -> Option<String> {
    let cgo = &prepared.cgo;
    let mut names = cgo.static_overrides.clone();
    if cgo.force_static {
        names.extend(stale.iter().filter(|k| cgo.by_tree(k.component)).map(|k| k.component.name.to_string()));
    }
    (!names.is_empty()).then(|| names.join(" "))
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

/// The record of a freshly built binary: path, sha256, size, mtime, and its Go and DWARF.
pub(super) fn record_output(tree: &SourceTree, k: &ComponentKey) -> Result<OutputRecord, BuildError> {
    let path = &k.binary;
    if !path.is_file() {
        return Err(BuildError::NoOutput { path: path.clone(), what: k.component.what.to_string() });
    }
    let (sha256, _) =
        crate::digest::sha256_file(path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
    record_known(tree, k, sha256, needs_of(path).ok())
}

/// The record of a binary whose sha256 and Go/DWARF are already known (a verified pull): only
/// its stat is read.
pub(super) fn record_known(
    tree: &SourceTree,
    k: &ComponentKey,
    sha256: String,
    needs: Option<crate::binary::Needs>,
) -> Result<OutputRecord, BuildError> {
    let path = &k.binary;
    let stat = cache::index::Stat::of(path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
    Ok(OutputRecord {
        key: k.key.clone(),
        path: path.strip_prefix(&tree.root).unwrap_or(path).to_string(),
        sha256,
        size: stat.size,
        mtime_ns: stat.mtime_ns,
        needs,
        pulled_from: None,
    })
}
