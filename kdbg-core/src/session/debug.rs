//! `kdbg debug`: the plan capture → build → copy → stop → launch → tunnel → IDE for one or more
//! components, run by the executor ([`crate::plan::exec`]); what each step does is in
//! [`steps`]. A failure after the first change rolls this run back.
//!
//! The order is chosen so a mistake costs little: every component is captured before the
//! builds (bad input fails before a long make), Delve is chosen and copied before the endpoints
//! are decided, and nothing on the node changes before every port was checked. Several nodes run
//! in one executor run (one build, each node's steps `@node`, node `i` forwarding from
//! `port + 100·i`, one `write-ide`); a rollback restores only the entries this run journaled
//! (`Who::me`), never another kdbg's session.

mod run;
mod steps;
mod tunnel;

use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::attach::Attach;
use super::journal;
use super::SessionError;
use crate::component::Component;
use crate::crash::CrashAt;
use crate::deploy::{self, DeployConfig, DeployError, DeployOutcome, Destination};
use crate::ide::vscode::TaskArgs;
use crate::node::Node;
use crate::node_lock::Locked;
use crate::plan::exec::StepEvent;
use crate::plan::{Plan, StepId, StepKind};
use crate::report::Reporter;
use crate::tree::SourceTree;

/// How long each wait may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The original exits and frees its ports (the kubelet notices a removed manifest within
    /// seconds, then gives the pod its grace period).
    pub stop: Duration,
    /// Delve listens.
    pub dlv: Duration,
    /// The debug build listens on its ports (a debug kube-apiserver is slow to start).
    pub serve: Duration,
    /// The original runs again after a rollback.
    pub back: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let s = Duration::from_secs;
        Timeouts { stop: s(90), dlv: s(30), serve: s(60), back: s(120) }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DebugConfig {
    pub deploy: DeployConfig,
    /// Delve's port for the first component, the next ones count up; default: each component's.
    pub port: Option<u16>,
    /// Inject `--leader-elect=false` (controller-manager, scheduler).
    pub leader_elect_false: bool,
    /// Start the program halted at its entry (no `--continue`).
    pub wait_for_debugger: bool,
    /// Listen on all interfaces instead of 127.0.0.1.
    pub expose: bool,
    /// Open a detached local forward to Delve (not needed for the local target).
    pub tunnel: bool,
    /// Added to each component's port for the workstation's end of its forward: 0 for one node;
    /// with several, node `i` forwards from `port + 100 * i` ([`debug_nodes`]).
    pub local_shift: u16,
    pub timeouts: Timeouts,
    /// The workstation's state directory (tunnel records).
    pub state_dir: Option<Utf8PathBuf>,
    /// Write VSCode entries, whose tasks run this very session again with these arguments;
    /// `None`: `--no-ide`.
    pub ide: Option<TaskArgs>,
    pub crash: CrashAt,
    /// The session's lease on each node (`--lease`; `None`: until `kdbg restore`), see
    /// [`super::lease`].
    pub lease: Option<std::time::Duration>,
}

impl DebugConfig {
    /// What this session asks of Delve's endpoint.
    pub(crate) fn policy(&self) -> super::endpoint::Policy {
        super::endpoint::Policy { expose: self.expose, tunnel: self.tunnel }
    }
}

/// What `kdbg debug` did.
#[derive(Debug, Clone)]
pub struct DebugOutcome {
    pub sessions: Vec<Session>,
    pub deploy: DeployOutcome,
    pub attach: Attach,
    /// Every step's events, in the order they were reported.
    pub steps: Vec<StepEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl DebugError {
    /// The class of the session's or the deploy's failure behind this error.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            DebugError::Session(e) => e.exit_class(),
            DebugError::Deploy(e) => e.exit_class(),
        }
    }
}

pub use super::attach::Session;

/// The steps of `kdbg debug` added to a deploy plan ([`deploy::steps::plan`]): the builds wait
/// for every capture (bad input fails before a long build); the endpoints are chosen once Delve
/// is and every component captured; each stop waits for its capture, its copies and the
/// endpoints, then launch, tunnel and, after all of them, the IDE entries.
pub(crate) fn plan(mut plan: Plan, components: &[&'static Component], tunnel: bool, ide: bool) -> Plan {
    let captures: Vec<StepId> =
        components.iter().map(|c| plan.add(StepKind::CaptureArgs.on(c.name), &[], None, false, vec![])).collect();
    let builds: Vec<StepId> =
        plan.steps.iter().filter(|s| s.id.kind == StepKind::Build).map(|s| s.id.clone()).collect();
    for s in plan.steps.iter_mut().filter(|s| s.id.kind == StepKind::Build) {
        s.deps.extend(captures.iter().cloned());
    }
    let mut after = vec![StepKind::ChooseDlv.alone(), StepKind::Copy.delve()];
    after.extend(captures.iter().cloned());
    let why = vec!["a unix socket only the login user can reach, else loopback TCP (see kdbg status)".to_string()];
    let endpoint = plan.add(StepKind::ChooseEndpoint.alone(), &after, None, false, why);
    let mut last = Vec::new();
    for (c, capture) in components.iter().zip(captures) {
        let before = [StepKind::Copy.on(c.name), StepKind::Copy.delve(), capture, endpoint.clone()];
        let stop = plan.add(StepKind::Stop.on(c.name), &before, None, false, vec![]);
        let mut end = plan.add(StepKind::Launch.on(c.name), &[stop], None, false, vec![]);
        if tunnel {
            end = plan.add(StepKind::Tunnel.on(c.name), &[end], None, false, vec![]);
        }
        last.push(end);
    }
    if ide {
        last.extend(builds);
        plan.add(StepKind::WriteIde.alone(), &last, None, false, vec![]);
    }
    plan
}

/// `kdbg plan --debug` and what `kdbg debug` runs: the build steps, the copies, then what
/// `kdbg debug` does with each component. Copies are decided at run time by one sha256 round
/// trip, so in a plan not yet run they read "only if the node differs".
pub fn full_plan(build: Plan, components: &[&'static Component], tunnel: bool, ide: bool) -> Plan {
    plan(deploy::steps::plan(build, components), components, tunnel, ide)
}

/// Every port the run uses (`port + i` for component `i`, each node 100 more) is a port: checked
/// before anything happens.
fn ports_fit(port: Option<u16>, components: &[&'static Component], nodes: usize) -> Result<(), SessionError> {
    let shift = 100 * nodes.saturating_sub(1) as u32;
    let highest = |i: usize, c: &Component| port.map_or(c.default_port as u32, |p| p as u32 + i as u32) + shift;
    let last = components.iter().enumerate().map(|(i, c)| highest(i, c)).max().unwrap_or(0);
    if last <= u16::MAX as u32 {
        return Ok(());
    }
    let first = port.unwrap_or_else(|| components.iter().map(|c| c.default_port).min().unwrap_or(0));
    Err(SessionError::PortsPastTheEnd { first, last, components: components.len(), nodes })
}

/// Runs a whole debug session start: [`full_plan`] through the executor. Nothing on the node
/// changes before every component was captured and every port checked; a failure after the
/// first change rolls this run back.
///
/// On one node, or several at once (`--all-nodes`, several `--target`s): one build,
/// then [`full_plan`] spread over the nodes ([`Plan::across`]: `copy:kubelet@n1`, ...), the steps of
/// different nodes of a wave running concurrently; node `i` forwards from `port + 100 * i` on
/// the workstation; one `write-ide` with an entry per node. A failure on any node rolls back
/// what this run changed on every node; each node keeps its own journal, so a killed run leaves
/// each node restorable on its own. `nodes`: `(name in step ids, node)`.
pub fn debug_nodes(
    tree: &SourceTree,
    components: &[&'static Component],
    locked: &[(String, Locked<'_>)],
    cfg: &DebugConfig,
    reporter: &dyn Reporter,
) -> Result<Vec<DebugOutcome>, DebugError> {
    let nodes: Vec<(String, &dyn Node)> = locked.iter().map(|(name, l)| (name.clone(), l.node())).collect();
    let nodes = nodes.as_slice();
    if cfg.expose {
        reporter.warn(
            "--expose: Delve listens on every interface of the node. Its API is unauthenticated: anyone who can \
             reach the port can run any code as root on the node. Use it only on a network you trust"
                .into(),
        );
    }
    ports_fit(cfg.port, components, nodes.len())?;
    let started = Instant::now();
    let mut journals = Vec::new();
    let mut dests = Vec::new();
    for (_, node) in nodes {
        let journal = journal::load(*node)?;
        if let Some(dir) = &cfg.state_dir {
            // A session the node put back by itself left its forward here, on a port this one may need.
            let live: Vec<&str> = journal.components.keys().map(String::as_str).collect();
            for (c, port) in super::status::stop_ended_tunnels(*node, dir, &live)? {
                reporter.info(format!(
                    "stopped the tunnel localhost:{port} for {c}: its session on {} is over",
                    node.describe()
                ));
            }
        }
        for c in components {
            if let Some(e) = journal.components.get(c.name) {
                let holder = e.holder();
                return Err(SessionError::Held { component: c.name.into(), node: node.describe(), holder }.into());
            }
        }
        let mut journal = journal;
        // A session of another component may run already: this run's lease is the node's now.
        journal.lease = cfg.lease.map(super::lease::starting);
        journals.push(journal);
        dests.push(Destination::check(tree, *node, &cfg.deploy)?);
    }
    deploy::one_platform(&dests, nodes)?;
    // Before the nodes change, so a kdbg killed mid-way still keeps the tree from being pruned.
    let uses = Uses { nodes, state_dir: cfg.state_dir.as_deref(), tree, components };
    uses.update(true)?;
    let ran = run::run_debug(tree, components, locked, cfg, dests, journals, reporter).map(|run| {
        let several = nodes.len() > 1;
        let seconds = started.elapsed().as_secs_f64();
        let outcomes = nodes.iter().zip(&run.dests).zip(&run.counters).map(|(((name, node), dest), counters)| {
            let name = several.then_some(name.as_str());
            run::outcome(tree, components, *node, dest, &run.run, name, seconds, *counters, reporter)
        });
        outcomes.collect()
    });
    if ran.is_err() {
        // Rolled back: no session uses the tree.
        let _ = uses.update(false);
    }
    ran
}

/// The worktree uses of a debug run (which tree each node's sessions were built from), recorded
/// before the nodes change and forgotten when the run is rolled back.
struct Uses<'a> {
    nodes: &'a [(String, &'a dyn Node)],
    state_dir: Option<&'a camino::Utf8Path>,
    tree: &'a SourceTree,
    components: &'a [&'static Component],
}

impl Uses<'_> {
    fn update(&self, record: bool) -> Result<(), SessionError> {
        let Some(dir) = self.state_dir else { return Ok(()) };
        let names: Vec<&str> = self.components.iter().map(|c| c.name).collect();
        for (_, node) in self.nodes {
            let done = match record {
                true => crate::worktree::record(dir, &self.tree.root, &node.describe(), &names),
                false => crate::worktree::forget(dir, &node.describe(), &names),
            };
            done.map_err(|source| SessionError::Local { what: "update".into(), path: dir.to_string(), source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_plan_chains_capture_stop_launch_tunnel_after_the_copy() {
        let mut p = Plan::default();
        p.add(StepKind::Build.on("kube-apiserver"), &[], None, true, vec![]);
        let p = full_plan(p, &[Component::lookup("apiserver").unwrap()], true, true);
        expect_test::expect![[r#"
            1. capture-args:kube-apiserver      will run
            2. build:kube-apiserver             up to date  after capture-args:kube-apiserver
            3. choose-dlv                       will run  after build:kube-apiserver
                 the Delve that reads the built binaries (Go and DWARF version) and runs on the node
            4. hash-node                        will run  after build:kube-apiserver, choose-dlv
                 one round trip for every file
            5. copy:kube-apiserver              will run  after build:kube-apiserver, hash-node
                 sent only if the node's sha256 differs
            5. copy:dlv                         will run  after choose-dlv, hash-node
                 sent only if the node's sha256 differs
            6. choose-endpoint                  will run  after choose-dlv, copy:dlv, capture-args:kube-apiserver
                 a unix socket only the login user can reach, else loopback TCP (see kdbg status)
            7. stop:kube-apiserver              will run  after copy:kube-apiserver, copy:dlv, capture-args:kube-apiserver, choose-endpoint
            8. launch:kube-apiserver            will run  after stop:kube-apiserver
            9. tunnel:kube-apiserver            will run  after launch:kube-apiserver
            10. write-ide                        will run  after tunnel:kube-apiserver, build:kube-apiserver
        "#]]
        .assert_eq(&p.render());
    }

    #[test]
    fn ports_past_65535_are_refused_before_anything_runs() {
        let two = Component::resolve(&["apiserver", "scheduler"]).unwrap();
        assert!(ports_fit(Some(65534), &two, 1).is_ok());
        let err = ports_fit(Some(65535), &two, 1).unwrap_err().to_string();
        assert!(err.starts_with("2 component(s) from port 65535 needs ports up to 65536, past 65535"), "{err}");
        assert!(ports_fit(None, &two, 2).is_ok(), "defaults, two nodes");
        let err = ports_fit(Some(65400), &two, 3).unwrap_err().to_string();
        assert!(err.starts_with("2 component(s) on 3 nodes from port 65400 needs ports up to 65601"), "{err}");
    }
}
