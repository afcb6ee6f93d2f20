//! Running a debug session's plan: keys, the plan over every node, the executor (each node's
//! steps to its [`Debugging`], one `write-ide` for all), and each node's outcome from the steps'
//! outputs.

use super::steps::{self, Debugging, Out};
use super::{full_plan, DebugConfig, DebugError, DebugOutcome, Session};
use crate::build::{self, Building};
use crate::component::Component;
use crate::deploy::{self, DeployError, Deploying, Destination};
use crate::node::Node;
use crate::node_lock::Locked;
use crate::plan::exec::{Exec, Fresh, Inputs, Policy, Ran, Run, Runner};
use crate::plan::fleet::Fleet;
use crate::plan::{Plan, StepId, StepKind};
use crate::report::Reporter;
use crate::session::journal;
use crate::tree::SourceTree;

/// A finished debug run: the executor's outputs, and per node its destination and counters.
pub(super) struct Finished {
    pub run: Run<Out>,
    pub dests: Vec<Destination>,
    pub counters: Vec<(u64, u64)>,
}

/// Keys, the plan over every node, and the executor.
pub(super) fn run_debug(
    tree: &SourceTree,
    components: &[&'static Component],
    nodes: &[(String, Locked<'_>)],
    cfg: &DebugConfig,
    dests: Vec<Destination>,
    journals: Vec<journal::Journal>,
    reporter: &dyn Reporter,
) -> Result<Finished, DebugError> {
    let counters: Vec<(u64, u64)> =
        nodes.iter().map(|(_, n)| (n.node().round_trips(), n.node().bytes_sent())).collect();
    let keyed = build::keyed(tree, components, &dests[0].prepared, reporter).map_err(DeployError::from)?;
    let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let plan =
        full_plan(Plan::for_build(&keyed.keys.components), components, cfg.tunnel, cfg.ide.is_some()).across(&names);
    let building = Building::new(tree, keyed, &dests[0].prepared, reporter);
    let cfgs: Vec<DebugConfig> =
        (0..nodes.len()).map(|i| DebugConfig { local_shift: 100 * i as u16, ..cfg.clone() }).collect();
    let mut fleet = Fleet { nodes: Vec::new() };
    for (i, ((name, node), journal)) in nodes.iter().zip(journals).enumerate() {
        let dlv_flag = cfg.deploy.dlv.for_platform(&dests[i].prepared.platform);
        let deploy = Deploying { tree, node: node.node(), dest: &dests[i], dlv_flag, building: &building, reporter };
        let debugging = Debugging {
            tree,
            node: node.node(),
            locked: *node,
            cfg: &cfgs[i],
            components,
            reporter,
            deploy,
            journal: std::sync::Mutex::new(journal),
            name: (nodes.len() > 1).then(|| name.clone()),
        };
        fleet.nodes.push((name.clone(), debugging));
    }
    let exec = Exec { policy: Policy::Stop, crash: cfg.crash.clone(), parallel: 4.max(2 * nodes.len()) };
    let is_consequence = |e: &DebugError| matches!(e, DebugError::Deploy(d) if d.is_consequence());
    let run = exec.run(&plan, &Nodes(fleet), reporter).map_err(|f| DeployError::first(f, is_consequence))?;
    building.finish().map_err(DeployError::from)?.report(reporter);
    Ok(Finished { run, dests, counters })
}

/// What a debug run did on one node (`name`: `None` for a one-node run), from its steps' outputs.
#[allow(clippy::too_many_arguments)]
pub(super) fn outcome(
    tree: &SourceTree,
    components: &[&'static Component],
    node: &dyn Node,
    dest: &Destination,
    run: &Run<Out>,
    name: Option<&str>,
    seconds: f64,
    counters: (u64, u64),
    reporter: &dyn Reporter,
) -> DebugOutcome {
    let mine: Vec<(&StepId, &Out)> = run.on_node(name).collect();
    let sessions: Vec<Session> =
        steps::sessions(components, mine.iter().copied()).into_iter().map(|(_, s)| s).collect();
    let built = steps::built(mine.iter().map(|(_, o)| *o));
    let attach = mine.iter().find_map(|(_, o)| if let Out::Ide(a) = o { Some(a.clone()) } else { None });
    let attach = attach.unwrap_or_else(|| {
        let with: Vec<(Option<String>, Session)> = sessions.iter().map(|s| (None, s.clone())).collect();
        steps::attach_all(tree, &with, &built, reporter).0
    });
    let deploy =
        deploy::steps::outcome(node, dest, components, mine.iter().filter_map(|(_, o)| o.deploy()), seconds, counters);
    let events = run.events.iter().filter(|e| e.id.node.as_deref().is_none_or(|n| Some(n) == name)).cloned().collect();
    DebugOutcome { sessions, deploy, attach, steps: events }
}

/// The runners of a debug: each node's steps to its [`Debugging`], and one `write-ide` with every
/// node's entries (named after their node when there are several).
struct Nodes<'a>(Fleet<Debugging<'a>>);

impl Runner for Nodes<'_> {
    type Error = DebugError;
    type Output = Out;

    fn up_to_date(&self, step: &crate::plan::Step, inputs: &Inputs<'_, Out>) -> Result<Option<Fresh<Out>>, DebugError> {
        self.0.up_to_date(step, inputs)
    }

    fn run(&self, step: &crate::plan::Step, inputs: &Inputs<'_, Out>) -> Result<Ran<Out>, DebugError> {
        if step.id.kind != StepKind::WriteIde {
            return self.0.run(step, inputs);
        }
        let first = &self.0.nodes[0].1;
        let sessions = steps::sessions(first.components, inputs.iter());
        let built = steps::built(inputs.iter().map(|(_, o)| o));
        let (attach, entries) = steps::attach_all(first.tree, &sessions, &built, first.reporter);
        Ok(first.write_ide(attach, &entries))
    }

    fn batched(&self, step: &crate::plan::Step) -> bool {
        self.0.batched(step)
    }

    fn run_batch(&self, steps: &[(&crate::plan::Step, Inputs<'_, Out>)]) -> Vec<Result<Ran<Out>, DebugError>> {
        self.0.run_batch(steps)
    }

    fn rollback(&self, ran: &[&crate::plan::Step]) {
        self.0.rollback(ran)
    }
}
