//! `kdbg watch`: the edit → rebuild → recopy → relaunch loop for components under `kdbg debug`.
//!
//! ```text
//! inotify on the closure's dirs ─▶ debounce ─▶ build::build (keys; ONE make for the stale ones)
//!        ▲                                        │ binary sha256 = what the node holds? ─▶ no change
//!        └── refresh the dirs ◀── launch:<c> ◀────┴─ copy:<c> (delta) for the binaries that differ
//! ```
//!
//! The copies and relaunches are a plan run by the executor ([`cycle`]), as `kdbg debug`'s are.
//!
//! It needs a running session: the journal on the node says how each component runs under Delve,
//! and [`relaunch::capture`] reads the rest once from the running Delve. A cycle relaunches
//! exactly the components whose binary changed, on the same port with the same arguments; the
//! workstation's tunnel stays, so the IDE reattaches to the same `localhost:<port>`. A failed
//! build is reported and the running session is kept. Stopping (`stop`) ends the loop between
//! cycles and leaves the session running.
//!
//! The copy and relaunch of a cycle hold the node's lock ([`crate::node_lock`]), so a
//! `kdbg restore` or another kdbg waits for the cycle, never races it.
//!
//! What the node holds is asked once (one `sha256s` round trip) and then tracked: each copy
//! verifies its result on the node, and a delta against a base the node does not hold falls back
//! to a whole copy, so a stale belief costs time, never a wrong binary. kdbg-core reports
//! [`WatchEvent`]s; the CLI prints them.

mod cycle;
pub(crate) mod dirs;
mod events;
pub(crate) mod relaunch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::build::{self, BuildConfig};
use crate::component::Component;
use crate::layout::binary_path;
use crate::node::{Node, NodeError};
use crate::node_lock::NodeLock;
use crate::plan::StepKind;
use crate::report::{Event, Reporter, StepStatus};
use crate::session::debug::Timeouts;
use crate::session::{journal, SessionError};
use crate::tree::SourceTree;
pub use events::{CycleReport, Stopped, WatchEvent, WatchOutcome};
use relaunch::Held;

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub build: BuildConfig,
    /// How long the tree must be quiet before a cycle starts.
    pub debounce: Duration,
    /// Delve listens (`dlv`) and the program serves (`serve`) after a relaunch.
    pub timeouts: Timeouts,
    /// Stop after this many cycles (tests).
    pub max_cycles: Option<u32>,
    /// Test-only fault injection at a cycle's steps (`copy:<c>`, `launch:<c>`).
    pub crash: crate::crash::CrashAt,
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig {
            build: BuildConfig::default(),
            debounce: Duration::from_millis(300),
            timeouts: Timeouts::default(),
            max_cycles: None,
            crash: crate::crash::CrashAt::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{component} is not under debug on {node}\n  fix: start a session first (`kdbg debug {component}` with the same --target), then run kdbg watch")]
    NotUnderDebug { component: String, node: String },
    #[error("{component}'s Delve is not running on {node}: {why}\n  fix: `kdbg restore {component}`, then `kdbg debug {component}` again (with the same --target)")]
    NoDelve { component: String, node: String, why: String },
    #[error("failed to watch {path}: {detail}")]
    Watch { path: String, detail: String },
    /// `what`: which build the session runs, from which tree, and the tree watch was given.
    #[error("{what}: watching this tree would put another version into the session\n  fix: {fix}")]
    OtherTree { what: String, fix: String },
}

impl From<NodeError> for WatchError {
    fn from(e: NodeError) -> WatchError {
        WatchError::Session(SessionError::Node(e))
    }
}

impl WatchError {
    /// The class of the session's failure behind this error; the rest are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            WatchError::Session(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }
}

/// Everything a cycle needs.
struct Loop<'a> {
    tree: &'a SourceTree,
    components: &'a [&'static Component],
    node: &'a dyn Node,
    cfg: &'a WatchConfig,
    reporter: &'a dyn Reporter,
    events: &'a (dyn Fn(WatchEvent) + Sync),
    held: Vec<Held>,
    /// The sha256 of each component's binary on the node, as last seen or copied.
    on_node: BTreeMap<String, Option<String>>,
    /// Components whose binary on the node does not run under Delve: a relaunch failed. The next
    /// cycle relaunches them even if nothing changed.
    unlaunched: BTreeSet<String>,
}

/// Watches the sources of `components` (each under a `kdbg debug` session on `node`) until
/// `stop` is set or `cfg.max_cycles` cycles ran. The node is first brought in line with the tree.
/// A session started from this workstation is watched from the tree it was built from (another
/// workstation's paths mean nothing here).
fn same_tree(tree: &SourceTree, c: &Component, node: &dyn Node, entry: &journal::Entry) -> Result<(), WatchError> {
    let Some(b) = &entry.built_from else { return Ok(()) };
    if b.tree == tree.root.as_str() || entry.who.host != journal::Who::me().host {
        return Ok(());
    }
    let fix = match &b.at {
        Some(r) => format!("`kdbg watch {} --at {r}` (the worktree it was built from)", c.name),
        None => format!("`kdbg watch {} --src {}`, or `kdbg restore` and debug again from this tree", c.name, b.tree),
    };
    let what = format!(
        "{} on {} runs a build of {} from {}, not from {}",
        c.name,
        node.describe(),
        b.version,
        b.tree,
        tree.root
    );
    Err(WatchError::OtherTree { what, fix })
}

pub fn watch(
    tree: &SourceTree,
    components: &[&'static Component],
    node: &dyn Node,
    cfg: &WatchConfig,
    reporter: &dyn Reporter,
    events: &(dyn Fn(WatchEvent) + Sync),
    stop: &AtomicBool,
) -> Result<WatchOutcome, WatchError> {
    let (os, arch) = node.platform()?;
    let cfg = &WatchConfig {
        build: BuildConfig { platform: Some(crate::platform::Platform::new(&os, &arch)), ..cfg.build.clone() },
        ..cfg.clone()
    };
    let journal = journal::load(node)?;
    let mut held = Vec::new();
    for c in components {
        let Some(entry) = journal.components.get(c.name) else {
            return Err(WatchError::NotUnderDebug { component: c.name.into(), node: node.describe() });
        };
        same_tree(tree, c, node, entry)?;
        held.push(relaunch::capture(node, entry)?);
    }
    let paths: Vec<String> = components.iter().map(|c| binary_path(c.name)).collect();
    let shas = node.sha256s(&paths.iter().map(String::as_str).collect::<Vec<_>>())?;
    let on_node = components.iter().map(|c| c.name.to_string()).zip(shas).collect();

    let (tx, rx) = std::sync::mpsc::channel();
    let mut watched = dirs::Dirs::new(&tree.root, tx)?;
    // The node's platform decides the build, and so which state (and closure) is watched.
    let state_dir = build::prepare(tree, &cfg.build).map(|p| p.state_dir).unwrap_or_else(|_| tree.state_dir());
    watched.refresh(&dirs::wanted(&tree.root, &state_dir, components), &[])?;
    let unlaunched = BTreeSet::new();
    let mut lp = Loop { tree, components, node, cfg, reporter, events, held, on_node, unlaunched };

    let mut cycles = 0;
    let sync = dirs::Batch { files: Vec::new(), first: Instant::now() };
    if lp.cycle(cycles + 1, &sync)? {
        cycles += 1;
    }
    let missing = watched.refresh(&dirs::wanted(&tree.root, &state_dir, components), &[])?;
    let names = components.iter().map(|c| c.name.to_string()).collect();
    events(WatchEvent::Watching { components: names, dirs: watched.len(), missing });
    loop {
        if cfg.max_cycles.is_some_and(|m| cycles >= m) {
            return Ok(WatchOutcome { cycles, stopped: Stopped::Cycles });
        }
        let Some(batch) = dirs::next_batch(&rx, &tree.root, cfg.debounce, stop) else {
            return Ok(WatchOutcome { cycles, stopped: Stopped::Asked });
        };
        if lp.cycle(cycles + 1, &batch)? {
            cycles += 1;
        }
        watched.refresh(&dirs::wanted(&tree.root, &state_dir, components), &batch.files)?;
    }
}

impl Loop<'_> {
    /// One cycle; true when it counted (it built, copied or failed). Errors end the watch: the
    /// session is gone or the node refuses everything.
    fn cycle(&mut self, n: u32, batch: &dirs::Batch) -> Result<bool, WatchError> {
        let t0 = Instant::now();
        let tap = Tap { inner: self.reporter, events: self.events, started: AtomicBool::new(false), cycle: n, batch };
        let built = match build::build(self.tree, self.components, &self.cfg.build, &tap) {
            Ok(b) => b,
            Err(e) => {
                tap.start();
                return Ok(self.failed(n, "build", e.to_string()));
            }
        };
        let build_s = t0.elapsed().as_secs_f64();
        let changed: Vec<&build::Built> = built
            .components
            .iter()
            .filter(|b| self.on_node.get(&b.name).and_then(|s| s.as_deref()) != Some(&b.sha256))
            .collect();
        let stale = |h: &&Held| changed.iter().any(|b| b.name == h.component) || self.unlaunched.contains(&h.component);
        let relaunch: Vec<Held> = self.held.iter().filter(stale).cloned().collect();
        if relaunch.is_empty() && !tap.started.load(Ordering::Relaxed) {
            if !batch.files.is_empty() {
                let components = self.components.iter().map(|c| c.name.to_string()).collect();
                (self.events)(WatchEvent::NoChange { components, files: batch.files.clone() });
            }
            return Ok(false);
        }
        tap.start();
        let (cycled, t1) = match self.on_the_node(&changed, &relaunch, &tap) {
            Ok(c) => c,
            Err((stage, error)) => return Ok(self.failed(n, stage, error)),
        };
        let Some((copy_s, dlv_s, node_s, copy_bytes)) = self.account(n, cycled, t1)? else { return Ok(true) };
        let t2 = t1 + Duration::from_secs_f64(copy_s);
        let done = Instant::now();
        (self.events)(WatchEvent::Done(CycleReport {
            cycle: n,
            relaunched: relaunch.iter().map(|h| h.component.clone()).collect(),
            build_s,
            make_s: built.components.iter().map(|b| b.seconds).fold(0.0, f64::max),
            via: built.via,
            copy_s,
            copy_bytes,
            relaunch_s: (done - t2).as_secs_f64(),
            dlv_s,
            node_s,
            total_s: (done - batch.first).as_secs_f64(),
            debounce_s: (t0 - batch.first).as_secs_f64(),
            files: batch.files.clone(),
        }));
        Ok(true)
    }

    /// Reports a failed cycle (`stage`: build, copy, relaunch); it counts.
    fn failed(&self, n: u32, stage: &str, error: String) -> bool {
        let session_kept = stage != "relaunch";
        (self.events)(WatchEvent::Failed { cycle: n, stage: stage.into(), error, session_kept });
        true
    }

    /// The node part of a cycle under the node's lock (a `kdbg restore` waits for it): the copies
    /// of `changed` and the relaunches of `relaunch`, as a plan. `Err((stage, error))` when it
    /// could not start.
    fn on_the_node(
        &mut self,
        changed: &[&build::Built],
        relaunch: &[Held],
        tap: &Tap<'_>,
    ) -> Result<(cycle::Cycled, Instant), (&'static str, String)> {
        let names: Vec<&str> = relaunch.iter().map(|h| h.component.as_str()).collect();
        let _lock = NodeLock::acquire(self.node, &format!("watch {}", names.join(" ")), true, tap)
            .map_err(|e| ("copy", e.to_string()))?;
        let t1 = Instant::now();
        self.unlaunched.extend(relaunch.iter().map(|h| h.component.clone()));
        let journal = journal::load(self.node).map_err(|e| ("relaunch", e.to_string()))?;
        let run = cycle::Cycling {
            tree: self.tree,
            node: self.node,
            wanted: changed.iter().map(|b| (b.name.clone(), b.binary.clone(), b.sha256.clone())).collect(),
            have: changed.iter().map(|b| self.on_node.get(&b.name).cloned().flatten()).collect(),
            held: relaunch.iter().collect(),
            journal: std::sync::Mutex::new(journal),
            timeouts: self.cfg.timeouts,
            reporter: tap,
        };
        let copies: Vec<&str> = changed.iter().map(|b| b.name.as_str()).collect();
        Ok((run.run_plan(&cycle::plan(&copies, &names), self.cfg.crash.clone()), t1))
    }

    /// Takes in what the node part did: the node's new hashes, the relaunched components, and
    /// the failures (reported; `None`). `Some((copy_s, dlv_s, node_s, copy_bytes))` otherwise.
    #[allow(clippy::type_complexity)]
    fn account(
        &mut self,
        n: u32,
        cycled: cycle::Cycled,
        t1: Instant,
    ) -> Result<Option<(f64, f64, f64, u64)>, WatchError> {
        for (d, _) in &cycled.copied {
            self.on_node.insert(d.name.clone(), Some(d.sha256.clone()));
        }
        let copy_s = cycled.copied.iter().map(|(_, at)| (*at - t1).as_secs_f64()).fold(0.0, f64::max);
        let (mut dlv_s, mut node_s): (f64, f64) = (0.0, 0.0);
        for (name, r) in cycled.relaunched {
            self.unlaunched.remove(&name);
            dlv_s = dlv_s.max(r.stop_s + r.dlv_s);
            node_s = node_s.max(r.stop_s + r.dlv_s + r.serve_s);
            if let Some(message) = r.warning {
                (self.events)(WatchEvent::Warning { message });
            }
        }
        let (mut copy, mut relaunched) = (Vec::new(), Vec::new());
        for e in cycled.errors {
            match e {
                cycle::CycleError::Relaunch(e @ WatchError::NotUnderDebug { .. }) => return Err(e),
                cycle::CycleError::Copy(e) => copy.push(e),
                cycle::CycleError::Relaunch(e) => relaunched.push(e.to_string()),
            }
        }
        if !copy.is_empty() {
            self.failed(n, "copy", copy.join("\n"));
            return Ok(None);
        }
        if !relaunched.is_empty() {
            self.failed(n, "relaunch", relaunched.join("\n"));
            return Ok(None);
        }
        let copy_bytes = cycled.copied.iter().map(|(d, _)| d.wire_bytes).sum();
        Ok(Some((copy_s, dlv_s, node_s, copy_bytes)))
    }
}

/// Passes events on, and announces the cycle when `make` or a copy is about to start.
struct Tap<'a> {
    inner: &'a dyn Reporter,
    events: &'a (dyn Fn(WatchEvent) + Sync),
    started: AtomicBool,
    cycle: u32,
    batch: &'a dirs::Batch,
}

impl Tap<'_> {
    fn start(&self) {
        if !self.started.swap(true, Ordering::Relaxed) {
            (self.events)(WatchEvent::Started { cycle: self.cycle, files: self.batch.files.clone() });
        }
    }
}

impl Reporter for Tap<'_> {
    fn report(&self, event: Event) {
        if let Event::Step { id, status: StepStatus::Started } = &event {
            if matches!(id.kind, StepKind::Build | StepKind::Copy) {
                self.start();
            }
        }
        self.inner.report(event);
    }
}
