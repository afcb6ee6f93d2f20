//! What each step of `kdbg debug`'s plan does on the node, for the executor: capture, stop,
//! launch, tunnel, IDE entries (build and copy are [`Deploying`]'s), and the rollback.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DebugConfig, DebugError, DebugOutcome, Session};
use crate::component::Component;
use crate::deploy::Deploying;
use crate::ide::vscode::IdeEntry;
use crate::layout::{binary_path, dlv_path, log_path};
use crate::node::Node;
use crate::plan::exec::{Ran, Runner, StepEvent};
use crate::plan::{Step, StepId, StepKind};
use crate::report::{OnNode, Reporter};
use crate::session::attach::{self, Attach};
use crate::session::capture::{self, Captured};
use crate::session::endpoint::{self, Choice};
use crate::session::journal::{self, BuiltFrom, Entry, EntryState, Journal, SessionId, Who};
use crate::session::launch::{self, LaunchSpec};
use crate::session::restore::{self, RestoreConfig};
use crate::session::tunnels::{self, TunnelRecord};
use crate::session::{preflight, status, stop, SessionError};
use crate::tree::SourceTree;

pub(super) struct Debugging<'a> {
    tree: &'a SourceTree,
    node: &'a dyn Node,
    cfg: &'a DebugConfig,
    components: &'a [&'static Component],
    reporter: &'a dyn Reporter,
    deploy: Deploying<'a>,
    journal: Mutex<Journal>,
    /// Per component: what capture found and Delve's port.
    caps: Mutex<BTreeMap<String, (Captured, u16)>>,
    /// Per component: where Delve listens, chosen for all at the first stop (see [`Self::listen`]).
    listens: Mutex<Option<BTreeMap<String, Choice>>>,
    entries: Mutex<BTreeMap<String, Entry>>,
    sessions: Mutex<BTreeMap<String, Session>>,
    attach: Mutex<Option<Attach>>,
    /// The node's name in step ids when the run has several nodes.
    name: Option<String>,
}

impl<'a> Debugging<'a> {
    pub(super) fn new(
        tree: &'a SourceTree,
        node: &'a dyn Node,
        cfg: &'a DebugConfig,
        components: &'a [&'static Component],
        journal: Journal,
        deploy: Deploying<'a>,
        reporter: &'a dyn Reporter,
    ) -> Debugging<'a> {
        Debugging {
            tree,
            node,
            cfg,
            components,
            reporter,
            deploy,
            journal: Mutex::new(journal),
            caps: Mutex::default(),
            listens: Mutex::default(),
            entries: Mutex::default(),
            sessions: Mutex::default(),
            attach: Mutex::default(),
            name: None,
        }
    }

    /// In a run over several nodes: the node's name in step ids, for the rollback's events.
    pub(super) fn named(self, name: Option<String>) -> Debugging<'a> {
        Debugging { name, ..self }
    }

    pub(super) fn outcome(
        self,
        steps: Vec<StepEvent>,
        started: Instant,
        trips0: u64,
        sent0: u64,
    ) -> Result<DebugOutcome, DebugError> {
        let mut by_name = self.sessions.into_inner().unwrap();
        let sessions: Vec<Session> = self.components.iter().filter_map(|c| by_name.remove(c.name)).collect();
        let attach = match self.attach.into_inner().unwrap() {
            Some(a) => a,
            None => {
                let built = self.deploy.built().map(|b| b.components.as_slice()).unwrap_or_default();
                attach::attach(self.tree, &sessions, built, self.reporter).0
            }
        };
        let deploy = self.deploy.outcome(started, trips0, sent0)?;
        Ok(DebugOutcome { sessions, deploy, attach, steps })
    }

    fn component(&self, id: &StepId) -> &'static Component {
        let name = id.subject.as_deref();
        self.components.iter().copied().find(|c| Some(c.name) == name).expect("a step of a component asked for")
    }

    fn capture(&self, c: &'static Component) -> Result<(), SessionError> {
        let cfg = self.cfg;
        let cap = capture::capture(self.node, c, cfg.wait_for_debugger)?;
        cap.warnings.iter().for_each(|w| self.reporter.warn(w.clone()));
        preflight::warn_version(self.node, self.tree, &cap, self.reporter);
        preflight::warn_pausing(c, cfg, self.reporter);
        let i = self.components.iter().position(|x| x.name == c.name).unwrap_or(0);
        let port = cfg.port.map(|p| p + i as u16).unwrap_or(c.default_port);
        preflight::port(self.node, cfg, c, port + cfg.local_shift)?;
        self.caps.lock().unwrap().insert(c.name.into(), (cap, port));
        Ok(())
    }

    fn captured(&self, c: &Component) -> (Captured, u16) {
        self.caps.lock().unwrap().get(c.name).cloned().expect("captured before")
    }

    /// Where `c`'s Delve listens. Chosen for every component at once, when the Delve is known
    /// (after `copy:dlv`) and before the first stop, so that a busy node port fails before any
    /// component is stopped.
    fn listen(&self, c: &'static Component) -> Result<Choice, SessionError> {
        let mut listens = self.listens.lock().unwrap();
        if listens.is_none() {
            let dlv = self.deploy.dlv().expect("copy:dlv runs before every stop");
            let mut all = BTreeMap::new();
            for x in self.components {
                let (_, port) = self.captured(x);
                all.insert(x.name.to_string(), endpoint::choose(self.node, dlv, self.cfg, x, port)?);
            }
            *listens = Some(all);
        }
        Ok(listens.as_ref().and_then(|all| all.get(c.name)).cloned().expect("chosen for every component"))
    }

    /// Journals the session and stops the original.
    fn stop(&self, c: &'static Component) -> Result<(), SessionError> {
        let listen = self.listen(c)?;
        let (cap, port) = self.captured(c);
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
            built_from: Some(BuiltFrom::of(self.tree)),
        };
        let mut journal = self.journal.lock().unwrap();
        stop::stop(self.node, &cap, &mut journal, &mut entry, self.cfg.timeouts.stop, &self.cfg.crash)?;
        self.entries.lock().unwrap().insert(c.name.into(), entry);
        Ok(())
    }

    /// Starts Delve, journaled `launching` before and `launched` after.
    fn launch(&self, id: &StepId, c: &'static Component) -> Result<(), SessionError> {
        let (cap, port) = self.captured(c);
        let (cfg, node) = (self.cfg, self.node);
        let mut entry = self.entries.lock().unwrap().get(c.name).cloned().expect("stopped before");
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
        journal::launching(node, &self.journal, &mut entry)?;
        cfg.crash.within(id, "journal");
        if let Some(socket) = endpoint::socket_of(&entry.endpoint()) {
            endpoint::prepare(node, socket)?;
        }
        let pid = launch::spawn(node, &spec)?;
        cfg.crash.within(id, "spawned");
        launch::wait_listening(node, c.name, &spec, pid, cfg.timeouts.dlv)?;
        journal::launched(node, &self.journal, &mut entry, pid)?;
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
        self.entries.lock().unwrap().insert(c.name.into(), entry);
        self.sessions.lock().unwrap().insert(c.name.into(), session);
        Ok(())
    }

    /// A detached local forward to Delve, recorded in the workstation's state directory (before
    /// it starts: see [`tunnels::add`]).
    fn tunnel(&self, c: &'static Component) -> Result<(), SessionError> {
        let (node, cfg) = (self.node, self.cfg);
        let mut sessions = self.sessions.lock().unwrap();
        let session = sessions.get_mut(c.name).expect("launched before");
        let port = session.port + cfg.local_shift;
        let remote = self.entries.lock().unwrap().get(c.name).expect("launched before").endpoint();
        let record = |pid| TunnelRecord {
            node: node.describe(),
            component: c.name.into(),
            local_port: port,
            remote_port: session.port,
            remote_socket: endpoint::socket_of(&remote).map(String::from),
            pid,
            started_at: journal::now(),
        };
        let write = |record: Option<TunnelRecord>| -> Result<(), SessionError> {
            let Some(dir) = &cfg.state_dir else { return Ok(()) };
            let written = match record {
                Some(r) => tunnels::add(dir, r),
                None => tunnels::forget(dir, &node.describe(), c.name),
            };
            written.map_err(|source| SessionError::Local {
                what: "write".into(),
                path: dir.join(tunnels::FILE).to_string(),
                source,
            })
        };
        write(Some(record(tunnels::PENDING)))?;
        let tunnel = node
            .forward(port, &remote)
            .map_err(|e| SessionError::Tunnel { component: c.name.into(), detail: e.to_string() })?;
        session.local_port = Some(tunnel.local_port());
        if let Some(socket) = endpoint::socket_of(&remote) {
            // An ssh forward to a socket listens locally even when the node's sshd refuses
            // every connection through it: Delve must answer through it.
            status::state_via(tunnel.local_port(), Duration::from_secs(10)).map_err(|e| SessionError::Tunnel {
                component: c.name.into(),
                detail: format!(
                    "Delve on {socket} does not answer through localhost:{port} ({e})\n  fix: the node's sshd \
                     must allow streamlocal forwarding (`AllowStreamLocalForwarding yes`, no `DisableForwarding` \
                     in its sshd_config)"
                ),
            })?;
        }
        let pid = tunnel.detach();
        session.tunnel_pid = pid;
        if pid.is_none() {
            self.reporter.warn(format!(
                "the forward to {}'s Delve on localhost:{port} ends when kdbg exits ({} has no detachable tunnel); \
                 attach while kdbg runs, or use `kdbg debug --expose` on a trusted network",
                c.name,
                node.describe()
            ));
        }
        write(pid.map(record))
    }

    /// How to attach to this node's sessions, and their VSCode entries (named after `node` when
    /// the run has several).
    pub(super) fn attach(&self, node: Option<&str>) -> (Attach, Vec<IdeEntry>) {
        let sessions = self.sessions.lock().unwrap();
        let sessions: Vec<Session> = self.components.iter().filter_map(|c| sessions.get(c.name).cloned()).collect();
        let built = self.deploy.built().map(|b| b.components.as_slice()).unwrap_or_default();
        let (attach, mut entries) = attach::attach(self.tree, &sessions, built, self.reporter);
        for e in &mut entries {
            e.node = node.map(String::from);
        }
        (attach, entries)
    }

    /// The `write-ide` step for the entries of every node of the run (this one alone, or all).
    pub(super) fn write_ide(&self, mut attach: Attach, entries: &[IdeEntry]) -> Ran {
        let args = self.cfg.ide.as_ref().expect("a write-ide step only with --ide");
        let ran = match attach::write_ide(self.tree, entries, args, self.reporter) {
            Ok(report) => {
                attach.ide = Some(report);
                Ran::Done
            }
            Err(e) => Ran::Warned(e),
        };
        *self.attach.lock().unwrap() = Some(attach);
        ran
    }
}

impl Runner for Debugging<'_> {
    type Error = DebugError;

    fn up_to_date(&self, step: &Step) -> Result<Option<String>, DebugError> {
        match step.id.kind {
            StepKind::Build | StepKind::Copy => Ok(self.deploy.up_to_date(step)?),
            _ => Ok(None),
        }
    }

    fn run(&self, step: &Step) -> Result<Ran, DebugError> {
        let id = &step.id;
        match id.kind {
            StepKind::Build | StepKind::Copy => return Ok(self.deploy.run(step)?),
            StepKind::WriteIde => {
                let (attach, entries) = self.attach(None);
                return Ok(self.write_ide(attach, &entries));
            }
            StepKind::CaptureArgs => self.capture(self.component(id))?,
            StepKind::Stop => self.stop(self.component(id))?,
            StepKind::Launch => self.launch(id, self.component(id))?,
            StepKind::Tunnel => self.tunnel(self.component(id))?,
            StepKind::Restore => unreachable!("a debug plan has no restore step"),
        }
        Ok(Ran::Done)
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
        match restore::restore(self.node, &rollback, reporter) {
            Ok(_) => self.reporter.warn(format!("rolled back {node}: it is as it was before `kdbg debug`")),
            Err(r) => self.reporter.warn(format!("rolling back {node} failed too: {r}")),
        }
    }
}
