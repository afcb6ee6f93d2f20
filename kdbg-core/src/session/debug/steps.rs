//! What each step of `kdbg debug`'s plan does on the node, for the executor: capture, the
//! endpoint choice, stop, launch, tunnel, IDE entries (build, Delve's choice, the node's hashes
//! and the copies are [`Deploying`]'s), and the rollback. Each step yields an [`Out`] that the
//! executor hands to the steps after it:
//!
//! ```text
//! capture-args:<c> ─▶ Captured ─┬─▶ choose-endpoint ─▶ Endpoints ─┐
//! choose-dlv ─▶ Chosen ─────────┘                                 ├─▶ stop:<c> ─▶ Stopped
//! copy:<c>, copy:dlv ─────────────────────────────────────────────┘
//! Stopped ─▶ launch:<c> ─▶ Launched ─▶ tunnel:<c> ─▶ Launched (+ forward) ─▶ write-ide ─▶ Ide
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{DebugConfig, DebugError, Session};
use crate::build::Built;
use crate::component::Component;
use crate::deploy::steps::{Given, Output};
use crate::deploy::Deploying;
use crate::ide::vscode::IdeEntry;
use crate::layout::{binary_path, dlv_path, log_path};
use crate::node::Node;
use crate::node_lock::Locked;
use crate::plan::exec::{Fresh, Inputs, Ran, Runner};
use crate::plan::{Step, StepId, StepKind};
use crate::report::{OnNode, Reporter};
use crate::session::attach::{self, Attach};
use crate::session::capture::{self, Captured};
use crate::session::endpoint::{self, Choice};
use crate::session::journal::{self, BuiltFrom, Entry, EntryState, Journal, SessionId, Who};
use crate::session::launch::{self, LaunchSpec};
use crate::session::restore::{self, RestoreConfig};
use crate::session::{persist, preflight, stop, SessionError};
use crate::tree::SourceTree;

/// What a step of `kdbg debug`'s plan yields.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// Build, Delve's choice, the node's hashes, the copies.
    Deploy(Output),
    /// `capture-args:<c>`: how the original runs, and Delve's port.
    Captured { captured: Box<Captured>, port: u16 },
    /// `choose-endpoint`: where each component's Delve listens.
    Endpoints(BTreeMap<String, Choice>),
    /// `stop:<c>`: the journal entry of the stopped component.
    Stopped { entry: Box<Entry>, captured: Box<Captured> },
    /// `launch:<c>` (and `tunnel:<c>`, with the forward): the component under Delve.
    Launched { session: Box<Session>, entry: Box<Entry> },
    /// `write-ide`.
    Ide(Attach),
}

impl Out {
    pub(crate) fn deploy(&self) -> Option<&Output> {
        match self {
            Out::Deploy(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match self {
            Out::Launched { session, .. } => Some(session),
            _ => None,
        }
    }
}

/// The binaries among a step's inputs.
pub(super) fn built<'a>(inputs: impl Iterator<Item = &'a Out>) -> Vec<Built> {
    Given(inputs.filter_map(Out::deploy).collect()).built().into_iter().cloned().collect()
}

pub(super) struct Debugging<'a> {
    pub tree: &'a SourceTree,
    pub node: &'a dyn Node,
    /// The node's lock: the rollback restores under it.
    pub locked: Locked<'a>,
    pub cfg: &'a DebugConfig,
    pub components: &'a [&'static Component],
    pub reporter: &'a dyn Reporter,
    pub deploy: Deploying<'a>,
    pub journal: Mutex<Journal>,
    /// The node's name in step ids when the run has several nodes.
    pub name: Option<String>,
}

impl Debugging<'_> {
    fn component(&self, id: &StepId) -> &'static Component {
        let name = id.component();
        self.components.iter().copied().find(|c| Some(c.name) == name).expect("a step of a component asked for")
    }

    fn capture(&self, c: &'static Component) -> Result<Out, SessionError> {
        let cfg = self.cfg;
        let cap = capture::capture(self.node, c, cfg.wait_for_debugger);
        // Delve hangs in an emulated process, whose executable is the emulator: no capture finds it.
        let emulated = match &cap {
            Ok(cap) => crate::emulation::detect(self.node, cap.pid)?,
            Err(_) => crate::emulation::detect_by_name(self.node, c.name)?,
        };
        if let Some(e) = emulated {
            return Err(SessionError::Unsupported {
                component: c.name.into(),
                node: self.node.describe(),
                why: e.to_string(),
            });
        }
        let cap = cap?;
        cap.warnings.iter().for_each(|w| self.reporter.warn(w.clone()));
        preflight::warn_version(self.node, self.tree, &cap, self.reporter);
        preflight::warn_pausing(c, cfg.leader_elect_false, self.reporter);
        let i = self.components.iter().position(|x| x.name == c.name).unwrap_or(0);
        let port = cfg.port.map(|p| p + i as u16).unwrap_or(c.default_port);
        if cfg.tunnel {
            preflight::local_port(self.node, cfg.state_dir.as_deref(), c, port + cfg.local_shift)?;
        }
        Ok(Out::Captured { captured: Box::new(cap), port })
    }

    /// Where each component's Delve listens, decided for all at once before the first stop, so
    /// that a busy node port fails before any component is stopped.
    fn choose_endpoint(&self, inputs: &Inputs<'_, Out>) -> Result<Out, SessionError> {
        let given = Given(inputs.iter().filter_map(|(_, o)| o.deploy()).collect());
        let mut dlv = given.delve().expect("choose-endpoint after choose-dlv").dlv.clone();
        // A Delve whose version only the node could tell: as copy:dlv read it there.
        let on_node = given.0.iter().find_map(|o| match o {
            Output::Sent(d) => d.dlv_version.clone(),
            _ => None,
        });
        if let Some(version) = on_node.filter(|_| dlv.version == crate::deploy::dlv::UNKNOWN) {
            dlv.version = version;
        }
        let dlv = &dlv;
        let mut all = BTreeMap::new();
        for (id, out) in inputs.iter() {
            if let (Some(c), Out::Captured { port, .. }) = (id.component(), out) {
                let c = self.component(&StepKind::CaptureArgs.on(c));
                all.insert(c.name.to_string(), endpoint::choose(self.node, dlv, &self.cfg.policy(), c, *port)?);
            }
        }
        Ok(Out::Endpoints(all))
    }

    /// Journals the session and stops the original.
    fn stop(&self, c: &'static Component, inputs: &Inputs<'_, Out>) -> Result<Out, SessionError> {
        let (mut cap, mut port, mut listen) = (None, 0, None);
        for (_, out) in inputs.iter() {
            match out {
                Out::Captured { captured, port: p } if captured.component.name == c.name => {
                    (cap, port) = (Some(captured), *p)
                }
                Out::Endpoints(all) => listen = all.get(c.name).cloned(),
                _ => {}
            }
        }
        let cap = cap.expect("stop after its capture");
        let listen = listen.expect("stop after choose-endpoint");
        let binary = binary_path(c.name);
        let args = capture::debug_argv(&cap.argv, &binary, self.cfg.leader_elect_false && c.leader_elect);
        let now = journal::now();
        let mut entry = Entry {
            component: c.name.into(),
            state: EntryState::Stopping,
            who: Who::me(),
            session: SessionId::mine(),
            started_at: now,
            updated_at: now,
            how: cap.how.clone(),
            captured_from: cap.from.clone(),
            was_running: cap.pid.is_some(),
            args,
            env_names: cap.env.iter().map(|(k, _)| k.clone()).collect(),
            ports: cap.ports.clone(),
            binary,
            dlv: dlv_path(),
            listen: listen.listen,
            tcp_because: listen.tcp_because,
            port,
            dlv_pid: None,
            log: log_path(c.name),
            built_from: Some(BuiltFrom::of(self.tree, &self.deploy.dest.prepared.platform)),
        };
        let mut journal = self.journal.lock().unwrap();
        stop::stop(self.node, cap, &mut journal, &mut entry, self.cfg.timeouts.stop, &self.cfg.crash)?;
        Ok(Out::Stopped { entry: Box::new(entry), captured: cap.clone() })
    }

    /// Starts Delve, journaled `launching` before and `launched` after.
    fn launch(&self, id: &StepId, c: &'static Component, inputs: &Inputs<'_, Out>) -> Result<Out, SessionError> {
        let stopped = inputs.iter().find_map(|(_, o)| match o {
            Out::Stopped { entry, captured } => Some((entry, captured)),
            _ => None,
        });
        let (entry, cap) = stopped.expect("launch after its stop");
        let (cfg, node) = (self.cfg, self.node);
        let mut entry = Entry::clone(entry);
        let port = entry.port;
        let spec = LaunchSpec {
            dlv: entry.dlv.clone(),
            args: entry.args.clone(),
            env: cap.env.clone(),
            working_dir: cap.working_dir.clone().unwrap_or_else(|| "/".into()),
            listen: entry.listen.clone(),
            run: !cfg.wait_for_debugger,
            log: entry.log.clone(),
            mounts: cap.how.bind_mounts(),
        };
        persist::launching(node, &self.journal, &mut entry)?;
        cfg.crash.within(id, "journal");
        if let Some(socket) = endpoint::socket_of(&entry.endpoint()) {
            endpoint::prepare(node, socket)?;
        }
        let pid = launch::spawn(node, &spec)?;
        cfg.crash.within(id, "spawned");
        launch::wait_listening(node, c.name, &spec, pid, cfg.timeouts.dlv)?;
        persist::launched(node, &self.journal, &mut entry, pid)?;
        if spec.run {
            launch::wait_serving(node, c.name, &spec, pid, &entry.ports, cfg.timeouts.serve, self.reporter)?;
        }
        let session = Session {
            component: c.name.into(),
            listen: entry.listen.clone(),
            tcp_because: entry.tcp_because.clone(),
            port,
            local_port: None,
            dlv_pid: pid,
            tunnel_pid: None,
            log: entry.log.clone(),
            captured_from: cap.from.clone(),
            args: entry.args.clone(),
        };
        Ok(Out::Launched { session: Box::new(session), entry: Box::new(entry) })
    }

    /// The `write-ide` step for the entries of every node of the run (this one alone, or all).
    pub(super) fn write_ide(&self, mut attach: Attach, entries: &[IdeEntry]) -> Ran<Out> {
        let args = self.cfg.ide.as_ref().expect("a write-ide step only with --ide");
        match attach::write_ide(self.tree, entries, args, self.reporter) {
            Ok(report) => {
                attach.ide = Some(report);
                Ran::done(Out::Ide(attach))
            }
            Err(e) => Ran { output: Out::Ide(attach), warning: Some(e) },
        }
    }
}

/// The sessions among `outputs` (a tunnel's, else its launch's), in the components' order,
/// each with the node its step ran on.
pub(super) fn sessions<'a>(
    components: &[&'static Component],
    outputs: impl Iterator<Item = (&'a StepId, &'a Out)>,
) -> Vec<(Option<String>, Session)> {
    let mut found: BTreeMap<(Option<String>, String), (StepKind, Session)> = BTreeMap::new();
    for (id, out) in outputs {
        let Some(session) = out.session() else { continue };
        let key = (id.node.clone(), session.component.clone());
        if found.get(&key).is_none_or(|(kind, _)| *kind != StepKind::Tunnel) {
            found.insert(key, (id.kind, session.clone()));
        }
    }
    let mut all: Vec<(Option<String>, Session)> = found.into_iter().map(|((n, _), (_, s))| (n, s)).collect();
    all.sort_by_key(|(n, s)| (n.clone(), components.iter().position(|c| c.name == s.component)));
    all
}

/// How to attach to `sessions` and their VSCode entries, each named after its node when the run
/// has several.
pub(super) fn attach_all(
    tree: &SourceTree,
    sessions: &[(Option<String>, Session)],
    built: &[Built],
    reporter: &dyn Reporter,
) -> (Attach, Vec<IdeEntry>) {
    let mut all = Attach::default();
    let mut entries = Vec::new();
    let mut nodes: Vec<&Option<String>> = sessions.iter().map(|(n, _)| n).collect();
    nodes.dedup();
    for node in nodes {
        let mine: Vec<Session> = sessions.iter().filter(|(n, _)| n == node).map(|(_, s)| s.clone()).collect();
        let (a, mut e) = attach::attach(tree, &mine, built, reporter);
        e.iter_mut().for_each(|e| e.node = node.clone());
        all.instructions.push_str(&a.instructions);
        entries.extend(e);
    }
    (all, entries)
}

impl Runner for Debugging<'_> {
    type Error = DebugError;
    type Output = Out;

    fn up_to_date(&self, step: &Step, inputs: &Inputs<'_, Out>) -> Result<Option<Fresh<Out>>, DebugError> {
        if !is_deploy(step) {
            return Ok(None);
        }
        let fresh = self.deploy.up_to_date(step, &inputs.map(Out::deploy))?;
        Ok(fresh.map(|f| Fresh { reason: f.reason, output: Out::Deploy(f.output) }))
    }

    fn run(&self, step: &Step, inputs: &Inputs<'_, Out>) -> Result<Ran<Out>, DebugError> {
        let id = &step.id;
        let out = match id.kind {
            _ if is_deploy(step) => {
                let ran = self.deploy.run(step, &inputs.map(Out::deploy))?;
                return Ok(Ran { output: Out::Deploy(ran.output), warning: ran.warning });
            }
            StepKind::WriteIde => {
                let built = built(inputs.iter().map(|(_, o)| o));
                let (attach, entries) =
                    attach_all(self.tree, &sessions(self.components, inputs.iter()), &built, self.reporter);
                return Ok(self.write_ide(attach, &entries));
            }
            StepKind::CaptureArgs => self.capture(self.component(id))?,
            StepKind::ChooseEndpoint => self.choose_endpoint(inputs)?,
            StepKind::Stop => self.stop(self.component(id), inputs)?,
            StepKind::Launch => self.launch(id, self.component(id), inputs)?,
            StepKind::Tunnel => self.tunnel(self.component(id), inputs)?,
            other => unreachable!("a debug plan has no {} step", other.verb()),
        };
        Ok(Ran::done(out))
    }

    fn batched(&self, step: &Step) -> bool {
        self.deploy.batched(step)
    }

    fn run_batch(&self, steps: &[(&Step, Inputs<'_, Out>)]) -> Vec<Result<Ran<Out>, DebugError>> {
        let steps: Vec<(&Step, Inputs<'_, Output>)> = steps.iter().map(|(s, i)| (*s, i.map(Out::deploy))).collect();
        let out = |r: Ran<Output>| Ran { output: Out::Deploy(r.output), warning: r.warning };
        self.deploy.run_batch(&steps).into_iter().map(|r| r.map(out).map_err(DebugError::from)).collect()
    }

    /// Once the node changed (a stop began), puts back every entry this run journaled.
    fn rollback(&self, ran: &[&Step]) {
        if !ran.iter().any(|s| matches!(s.id.kind, StepKind::Stop | StepKind::Launch | StepKind::Tunnel)) {
            return;
        }
        let rollback = RestoreConfig {
            components: self.components.to_vec(),
            back_timeout: self.cfg.timeouts.back,
            state_dir: self.cfg.state_dir.clone(),
            owner: Some(Who::me()),
            ..RestoreConfig::default()
        };
        let on_node = self.name.as_deref().map(|node| OnNode { inner: self.reporter, node });
        let reporter = on_node.as_ref().map(|r| r as &dyn Reporter).unwrap_or(self.reporter);
        let node = self.node.describe();
        match restore::restore(self.locked, &rollback, reporter) {
            Ok(_) => self.reporter.warn(format!("rolled back {node}: it is as it was before `kdbg debug`")),
            Err(r) => self.reporter.warn(format!("rolling back {node} failed too: {r}")),
        }
    }
}

/// The steps [`Deploying`] runs.
fn is_deploy(step: &Step) -> bool {
    matches!(step.id.kind, StepKind::Build | StepKind::ChooseDlv | StepKind::HashNode | StepKind::Copy)
}
