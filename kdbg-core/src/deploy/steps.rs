//! `kdbg deploy` as plan steps run by [`crate::plan::exec`]: `build:<component>` (one make or
//! replay for all stale ones, each reported alone), `copy:<component>` after its build, and
//! `copy:dlv` after every build (the Delve is chosen to fit the built binaries). A copy is up to
//! date when the node's sha256 matches: one `sha256s` round trip decides for every file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};

use super::{copy_one, dlv, DeployConfig, DeployError, DeployOutcome, Deployed, Dlv, DlvPickError, Needs};
use crate::build::{self, BuildOutcome, Keyed, Prepared};
use crate::component::Component;
use crate::layout::BIN_DIR;
use crate::node::Node;
use crate::plan::exec::{Ran, Runner};
use crate::plan::{Plan, Step, StepId, StepKind};
use crate::report::{Event, Reporter};
use crate::tree::SourceTree;

/// Adds the copies to a build plan: each binary after its build, dlv after all of them.
pub(crate) fn plan(mut plan: Plan, components: &[&'static Component]) -> Plan {
    let why = || vec!["sent only if the node's sha256 differs (one round trip decides for all files)".to_string()];
    let builds: Vec<StepId> = components.iter().map(|c| StepKind::Build.on(c.name)).collect();
    for (c, build) in components.iter().zip(&builds) {
        plan.add(StepKind::Copy.on(c.name), std::slice::from_ref(build), None, false, why());
    }
    let mut dlv_why = why();
    dlv_why.push("the Delve is chosen to read the built binaries (Go and DWARF version)".into());
    plan.add(StepKind::Copy.on("dlv"), &builds, None, false, dlv_why);
    plan
}

/// What the node must be and have before anything is built.
pub(crate) struct Target {
    pub prepared: Prepared,
    pub platform: String,
    pub arch: String,
}

impl Target {
    /// The node's platform is the toolchain's, and a Delve exists at all (worth knowing before a
    /// long build).
    pub(crate) fn check(tree: &SourceTree, node: &dyn Node, config: &DeployConfig) -> Result<Target, DeployError> {
        let (os, arch) = node.platform()?;
        let prepared = build::prepare(tree, &config.build)?;
        let toolchain = &prepared.toolchain.identity;
        let platform = format!("{os}/{arch}");
        let host_platform = format!("{}/{}", toolchain.goos, toolchain.goarch);
        if platform != host_platform {
            return Err(DeployError::CrossBuild { node: node.describe(), node_platform: platform, host_platform });
        }
        dlv::candidates(config.dlv.as_deref())?;
        Ok(Target { prepared, platform, arch })
    }
}

/// A file to send: `(name, local path, sha256)`.
type Wanted = (String, Utf8PathBuf, String);

/// The binaries built and the Delve chosen for them: what the copies send.
#[derive(Clone)]
struct Chosen {
    build: BuildOutcome,
    dlv: Dlv,
    needs: Needs,
    /// `(name, local path, sha256)`: the binaries, then dlv.
    wanted: Vec<Wanted>,
}

/// The one build (and Delve choice) of a run, shared by the runners of every node.
pub(crate) struct BuildOnce {
    keyed: Mutex<Option<Keyed>>,
    chosen: OnceLock<Option<Chosen>>,
}

impl BuildOnce {
    pub(crate) fn new(keyed: Keyed) -> Arc<BuildOnce> {
        Arc::new(BuildOnce { keyed: Mutex::new(Some(keyed)), chosen: OnceLock::new() })
    }
}

/// Runs the build and copy steps of a plan for one node.
pub(crate) struct Deploying<'a> {
    tree: &'a SourceTree,
    node: &'a dyn Node,
    target: &'a Target,
    dlv_flag: Option<&'a Utf8Path>,
    reporter: &'a dyn Reporter,
    build: Arc<BuildOnce>,
    on_node: OnceLock<Option<Vec<Option<String>>>>,
    /// The error of the shared build or round trip, for the first step that asks.
    error: Mutex<Option<DeployError>>,
    files: Mutex<Vec<Deployed>>,
    decide_round_trips: AtomicU64,
}

impl<'a> Deploying<'a> {
    pub(crate) fn new(
        tree: &'a SourceTree,
        node: &'a dyn Node,
        target: &'a Target,
        config: &'a DeployConfig,
        build: Arc<BuildOnce>,
        reporter: &'a dyn Reporter,
    ) -> Deploying<'a> {
        Deploying {
            tree,
            node,
            target,
            dlv_flag: config.dlv.as_deref(),
            reporter,
            build,
            on_node: OnceLock::new(),
            error: Mutex::new(None),
            files: Mutex::new(Vec::new()),
            decide_round_trips: AtomicU64::new(0),
        }
    }

    fn failed(&self, step: &StepId) -> DeployError {
        self.error.lock().unwrap().take().unwrap_or_else(|| DeployError::Earlier { step: step.to_string() })
    }

    fn keep(&self, e: DeployError) {
        self.error.lock().unwrap().get_or_insert(e);
    }

    /// Builds what is stale (once, whichever step asks first) and picks the Delve.
    fn chosen(&self, step: &StepId) -> Result<&Chosen, DeployError> {
        let chosen = self.build.chosen.get_or_init(|| self.choose().map_err(|e| self.keep(e)).ok());
        chosen.as_ref().ok_or_else(|| self.failed(step))
    }

    fn choose(&self) -> Result<Chosen, DeployError> {
        let keyed = self.build.keyed.lock().unwrap().take().expect("the build runs once");
        let quiet = NoSteps(self.reporter);
        let build = build::build_keyed(self.tree, keyed, &self.target.prepared, &quiet)?;
        let (flag, arch) = (self.dlv_flag, &self.target.arch);
        // Every binary is checked against the Delve before anything is sent to the node.
        let (dlv, needs) = match build.components.first() {
            Some(first) => dlv::choose(flag, &first.binary, arch)?,
            None => {
                let go = &self.target.prepared.toolchain.identity.go_version;
                (dlv::inspect(&dlv::find(flag)?, Some(arch))?, Needs::of_go(go))
            }
        };
        for b in build.components.iter().skip(1) {
            if dlv::needs_of(&b.binary)?.unmet_by(&dlv).is_some() {
                dlv::choose(Some(&dlv.path), &b.binary, arch)?;
            }
        }
        self.reporter.info(format!(
            "Delve {} ({}, {}) for binaries built with {} (DWARF {})",
            dlv.version,
            dlv.go_version.as_deref().unwrap_or("unknown Go"),
            dlv.path,
            needs.go_version,
            needs.dwarf
        ));
        let mut wanted: Vec<_> =
            build.components.iter().map(|b| (b.name.clone(), b.binary.clone(), b.sha256.clone())).collect();
        let dlv_sha = crate::node::copy::hash_file(&dlv.path)
            .map_err(|e| DlvPickError::Broken { path: dlv.path.clone(), detail: e.to_string() })?
            .0;
        wanted.push(("dlv".into(), dlv.path.clone(), dlv_sha));
        Ok(Chosen { build, dlv, needs, wanted })
    }

    /// What the node holds of every wanted file: one round trip, whichever copy asks first.
    fn on_node(&self, step: &StepId) -> Result<&[Option<String>], DeployError> {
        let chosen = self.chosen(step)?;
        let have = self.on_node.get_or_init(|| {
            let remote: Vec<String> = chosen.wanted.iter().map(|(n, ..)| format!("{BIN_DIR}/{n}")).collect();
            let before = self.node.round_trips();
            let have = self.node.sha256s(&remote.iter().map(String::as_str).collect::<Vec<_>>());
            self.decide_round_trips.store(self.node.round_trips() - before, Ordering::Relaxed);
            have.map_err(|e| self.keep(e.into())).ok()
        });
        have.as_deref().ok_or_else(|| self.failed(step))
    }

    /// The wanted file a copy step sends, and what the node holds at its path.
    fn file(&self, step: &StepId) -> Result<(&Wanted, Option<String>), DeployError> {
        let have = self.on_node(step)?;
        let chosen = self.chosen(step)?;
        let name = step.subject.as_deref().unwrap_or_default();
        let i = chosen.wanted.iter().position(|(n, ..)| n == name).expect("a copy step names a wanted file");
        Ok((&chosen.wanted[i], have[i].clone()))
    }

    /// What was deployed; builds and copies that never ran (every step up to date) run here.
    pub(crate) fn outcome(self, started: Instant, trips0: u64, sent0: u64) -> Result<DeployOutcome, DeployError> {
        let id = StepKind::Copy.on("dlv");
        self.chosen(&id)?;
        let decide_round_trips = self.decide_round_trips.load(Ordering::Relaxed);
        let (node, platform) = (self.node.describe(), self.target.platform.clone());
        let (round_trips, bytes_sent) = (self.node.round_trips() - trips0, self.node.bytes_sent() - sent0);
        let chosen = self.build.chosen.get().cloned().flatten().expect("chosen above");
        let mut files = self.files.into_inner().unwrap();
        files.sort_by_key(|f| chosen.wanted.iter().position(|(n, ..)| *n == f.name));
        Ok(DeployOutcome {
            node,
            platform,
            build: chosen.build,
            files,
            dlv: chosen.dlv,
            needs: Some(chosen.needs),
            decide_round_trips,
            round_trips,
            bytes_sent,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The binaries built so far (after the build steps ran).
    pub(crate) fn built(&self) -> Option<&BuildOutcome> {
        self.build.chosen.get().and_then(Option::as_ref).map(|c| &c.build)
    }

    /// The Delve chosen for the binaries (after the build steps ran).
    pub(crate) fn dlv(&self) -> Option<&Dlv> {
        self.build.chosen.get().and_then(Option::as_ref).map(|c| &c.dlv)
    }
}

impl Runner for Deploying<'_> {
    type Error = DeployError;

    fn up_to_date(&self, step: &Step) -> Result<Option<String>, DeployError> {
        if step.id.kind != StepKind::Copy {
            return Ok(None);
        }
        let ((name, local, sha), have) = self.file(&step.id)?;
        if have.as_deref() != Some(sha.as_str()) {
            return Ok(None);
        }
        let file_bytes = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        self.files.lock().unwrap().push(Deployed::kept(name, sha, file_bytes));
        Ok(Some(format!("{} already has sha256:{}", self.node.describe(), &sha[..12.min(sha.len())])))
    }

    fn run(&self, step: &Step) -> Result<Ran, DeployError> {
        match step.id.kind {
            StepKind::Build => self.chosen(&step.id).map(|_| Ran::Done),
            StepKind::Copy => {
                let (file, have) = self.file(&step.id)?;
                let d = copy_one(self.tree, self.node, file, have.as_deref(), self.reporter)?;
                self.files.lock().unwrap().push(d);
                Ok(Ran::Done)
            }
            other => unreachable!("a deploy plan has no {} step", other.verb()),
        }
    }
}

/// Passes every event but steps' (the executor reports those) on.
pub(crate) struct NoSteps<'a>(pub &'a dyn Reporter);

impl Reporter for NoSteps<'_> {
    fn report(&self, event: Event) {
        if !matches!(event, Event::Step { .. }) {
            self.0.report(event);
        }
    }
}
