//! `kdbg debug`: capture → build and deploy → stop → launch → tunnel, for one or more components,
//! rolling back what this run changed when a later step fails.

use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::attach::{self, Attach};
use super::capture::{self, Captured};
use super::crash::CrashAt;
use super::endpoint::{self, Listen};
use super::journal::{self, Entry, Journal, State, Who};
use super::launch::{self, LaunchSpec};
use super::restore::{self, RestoreConfig};
use super::tunnels::{self, TunnelRecord};
use super::{binary_path, dlv_path, preflight, stop, SessionError, LOG_DIR};
use crate::component::Component;
use crate::deploy::{self, DeployConfig, DeployError, DeployOutcome};
use crate::ide::vscode::TaskArgs;
use crate::node::Node;
use crate::plan::{Plan, StepKind};
use crate::report::{Reporter, StepStatus};
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
    pub timeouts: Timeouts,
    /// The workstation's state directory (tunnel records).
    pub state_dir: Option<Utf8PathBuf>,
    /// Write VSCode entries, whose tasks run this very session again with these arguments;
    /// `None`: `--no-ide`.
    pub ide: Option<TaskArgs>,
    pub crash: CrashAt,
}

/// What `kdbg debug` did.
#[derive(Debug, Clone)]
pub struct DebugOutcome {
    pub sessions: Vec<Session>,
    pub deploy: DeployOutcome,
    pub attach: Attach,
}

#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl DebugError {
    /// The node-level failure behind this error, for the CLI's exit code.
    pub fn node_error(&self) -> Option<&crate::node::NodeError> {
        match self {
            DebugError::Session(e) => e.node_error(),
            DebugError::Deploy(DeployError::Node(e)) => Some(e),
            DebugError::Deploy(_) => None,
        }
    }
}

/// One component under debug, as `kdbg debug` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Session {
    pub component: String,
    /// Delve on the node: `unix:/var/lib/kdbg/run/<component>/dlv.sock` or `127.0.0.1:2345`.
    pub listen: String,
    /// Why Delve listens on TCP, when it does.
    pub tcp_because: Option<String>,
    /// The IDE's port (on TCP also Delve's on the node).
    pub port: u16,
    /// Where the IDE attaches on this workstation (`localhost:<port>`), when tunneled.
    pub local_port: Option<u16>,
    pub dlv_pid: u32,
    pub tunnel_pid: Option<u32>,
    pub log: String,
    pub captured_from: String,
    pub args: Vec<String>,
}

/// The steps of `kdbg debug` added to a build/deploy plan.
pub fn plan(plan: &mut Plan, components: &[&'static Component], cfg: &DebugConfig) {
    for c in components {
        let name = c.name.to_string();
        // After the binary is on the node (or built, in a plan without copies) and dlv is there.
        let binary = [format!("copy:{name}"), format!("build:{name}")].into_iter().find(|id| plan.step(id).is_some());
        let dlv = ["copy:dlv", "provision-dlv"].into_iter().filter(|id| plan.step(id).is_some()).map(String::from);
        let before: Vec<String> = binary.into_iter().chain(dlv).collect();
        let capture = plan.add(StepKind::CaptureArgs { component: name.clone() }, &[], None, false, vec![]);
        let mut deps: Vec<&str> = before.iter().map(String::as_str).collect();
        deps.push(&capture);
        let stop = plan.add(StepKind::Stop { component: name.clone() }, &deps, None, false, vec![]);
        let launch = plan.add(StepKind::Launch { component: name.clone() }, &[&stop], None, false, vec![]);
        if cfg.tunnel {
            plan.add(StepKind::Tunnel { component: name.clone() }, &[&launch], None, false, vec![]);
        }
    }
    if cfg.ide.is_some() {
        let last: Vec<String> =
            components.iter().map(|c| format!("{}:{}", if cfg.tunnel { "tunnel" } else { "launch" }, c.name)).collect();
        plan.add(StepKind::WriteIde, &last.iter().map(String::as_str).collect::<Vec<_>>(), None, false, vec![]);
    }
}

/// `kdbg plan --debug`: the build steps, then what `kdbg debug` does with each component. Copies
/// are decided at run time by one sha256 round trip, so here they read "only if the node differs".
pub fn full_plan(mut plan: Plan, components: &[&'static Component]) -> Plan {
    for c in components {
        let build = format!("build:{}", c.name);
        let why = vec!["sent only if the node's sha256 differs (one round trip decides for all files)".to_string()];
        plan.add(StepKind::Copy { component: c.name.to_string() }, &[&build], None, false, why);
    }
    plan.add(StepKind::ProvisionDlv, &[], None, false, vec!["dlv is copied only if the node's sha256 differs".into()]);
    let cfg = DebugConfig { tunnel: true, ide: Some(TaskArgs::default()), ..DebugConfig::default() };
    self::plan(&mut plan, components, &cfg);
    plan
}

/// Runs a whole debug session start. Nothing on the node changes before every component was
/// captured and every port checked; a failure after the first change rolls this run back.
pub fn debug(
    tree: &SourceTree,
    components: &[&'static Component],
    node: &dyn Node,
    cfg: &DebugConfig,
    reporter: &dyn Reporter,
) -> Result<DebugOutcome, DebugError> {
    if cfg.expose {
        reporter.warn(
            "--expose: Delve listens on every interface of the node. Its API is unauthenticated: anyone who can \
             reach the port can run any code as root on the node. Use it only on a network you trust"
                .into(),
        );
    }
    let mut journal = journal::load(node)?;
    for c in components {
        if let Some(e) = journal.components.get(c.name) {
            let holder = e.holder();
            return Err(SessionError::Held { component: c.name.into(), node: node.describe(), holder }.into());
        }
    }
    let mut caps = Vec::new();
    for (i, c) in components.iter().enumerate() {
        let cap =
            step(reporter, &format!("capture-args:{}", c.name), || capture::capture(node, c, cfg.wait_for_debugger))?;
        cap.warnings.iter().for_each(|w| reporter.warn(w.clone()));
        preflight::warn_version(node, tree, &cap, reporter);
        preflight::warn_pausing(c, cfg, reporter);
        let port = cfg.port.map(|p| p + i as u16).unwrap_or(c.default_port);
        preflight::port(node, cfg, c, port)?;
        cfg.crash.point(&format!("capture-args:{}", c.name));
        caps.push((cap, port));
    }
    let deployed = deploy::deploy(tree, components, node, &cfg.deploy, reporter)?;
    components.iter().for_each(|c| cfg.crash.point(&format!("copy:{}", c.name)));

    let mut listens = Vec::new();
    for (cap, port) in &caps {
        listens.push(endpoint::choose(node, &deployed.dlv, cfg, cap.component, *port)?);
    }
    let mut sessions = Vec::new();
    for ((cap, port), listen) in caps.iter().zip(listens) {
        match start_one(node, &mut journal, cap, (*port, listen), cfg, reporter) {
            Ok(s) => sessions.push(s),
            Err(e) => {
                let rollback = RestoreConfig {
                    components: caps.iter().map(|(c, _)| c.component).collect(),
                    back_timeout: cfg.timeouts.back,
                    state_dir: cfg.state_dir.clone(),
                    crash: CrashAt::default(),
                    owner: Some(Who::me()),
                    from_node_state: false,
                };
                match restore::restore(node, &rollback, reporter) {
                    Ok(_) => reporter.warn("rolled back: the node is as it was before `kdbg debug`".into()),
                    Err(r) => reporter.warn(format!("rolling back failed too: {r}")),
                }
                return Err(e.into());
            }
        }
    }
    let attach = attach::attach(tree, &sessions, &deployed, cfg.ide.as_ref(), reporter);
    Ok(DebugOutcome { sessions, deploy: deployed, attach })
}

fn start_one(
    node: &dyn Node,
    journal: &mut Journal,
    cap: &Captured,
    (port, listen): (u16, Listen),
    cfg: &DebugConfig,
    reporter: &dyn Reporter,
) -> Result<Session, SessionError> {
    let c = cap.component;
    let binary = binary_path(c.name);
    let args = capture::debug_argv(&cap.argv, &binary, cfg.leader_elect_false && c.leader_elect);
    let now = journal::now();
    let mut entry = Entry {
        component: c.name.into(),
        state: State::Stopping,
        who: Who::me(),
        started_at: now,
        updated_at: now,
        how: cap.how.clone(),
        captured_from: cap.from.clone(),
        was_running: cap.pid.is_some(),
        args: args.clone(),
        env_names: cap.env.iter().map(|(k, _)| k.clone()).collect(),
        ports: cap.ports.clone(),
        binary: binary.clone(),
        dlv: dlv_path(),
        listen: listen.listen,
        tcp_because: listen.tcp_because,
        port,
        dlv_pid: None,
        log: format!("{LOG_DIR}/{}.log", c.name),
    };
    let id = |verb: &str| format!("{verb}:{}", c.name);
    step(reporter, &id("stop"), || stop::stop(node, cap, journal, &mut entry, cfg.timeouts.stop, &cfg.crash))?;

    let spec = LaunchSpec {
        dlv: entry.dlv.clone(),
        args,
        env: cap.env.clone(),
        working_dir: cap.working_dir.clone().unwrap_or_else(|| "/".into()),
        listen: entry.listen.clone(),
        run: !cfg.wait_for_debugger,
        log: entry.log.clone(),
        mounts: cap.how.bind_mounts(),
    };
    let dlv_pid = step(reporter, &id("launch"), || {
        entry.state = State::Launching;
        journal::put(node, journal, entry.clone())?;
        cfg.crash.point(&format!("{}#journal", id("launch")));
        if let Some(socket) = endpoint::socket_of(&entry.endpoint()) {
            endpoint::prepare(node, socket)?;
        }
        let pid = launch::spawn(node, &spec)?;
        cfg.crash.point(&format!("{}#spawned", id("launch")));
        launch::wait_listening(node, c.name, &spec, pid, cfg.timeouts.dlv)?;
        entry.state = State::Launched;
        entry.dlv_pid = Some(pid);
        journal::put(node, journal, entry.clone())?;
        if spec.run {
            launch::wait_serving(node, c.name, &spec, pid, &entry.ports, cfg.timeouts.serve, reporter)?;
        }
        Ok(pid)
    })?;
    cfg.crash.point(&id("launch"));

    let mut session = Session {
        component: c.name.into(),
        listen: entry.listen.clone(),
        tcp_because: entry.tcp_because.clone(),
        port,
        local_port: None,
        dlv_pid,
        tunnel_pid: None,
        log: entry.log.clone(),
        captured_from: cap.from.clone(),
        args: entry.args.clone(),
    };
    if cfg.tunnel {
        step(reporter, &id("tunnel"), || {
            let tunnel = node
                .forward(port, &entry.endpoint())
                .map_err(|e| SessionError::Tunnel { component: c.name.into(), detail: e.to_string() })?;
            session.local_port = Some(tunnel.local_port());
            if let Some(socket) = endpoint::socket_of(&entry.endpoint()) {
                answers(tunnel.local_port()).map_err(|e| SessionError::Tunnel {
                    component: c.name.into(),
                    detail: format!(
                        "Delve on {socket} does not answer through localhost:{port} ({e})\n  fix: the node's sshd \
                         must allow streamlocal forwarding (`AllowStreamLocalForwarding yes`, no `DisableForwarding` \
                         in its sshd_config)"
                    ),
                })?;
            }
            session.tunnel_pid = tunnel.detach();
            if session.tunnel_pid.is_none() {
                reporter.warn(format!(
                    "the forward to {}'s Delve on localhost:{port} ends when kdbg exits ({} has no detachable \
                     tunnel); attach while kdbg runs, or use `kdbg debug --expose` on a trusted network",
                    c.name,
                    node.describe()
                ));
            }
            if let (Some(dir), Some(pid)) = (&cfg.state_dir, session.tunnel_pid) {
                let record = TunnelRecord {
                    node: node.describe(),
                    component: c.name.into(),
                    local_port: port,
                    remote_port: port,
                    remote_socket: endpoint::socket_of(&entry.endpoint()).map(String::from),
                    pid,
                    started_at: journal::now(),
                };
                tunnels::add(dir, record).map_err(|source| SessionError::Local {
                    what: "write".into(),
                    path: dir.join(tunnels::FILE).to_string(),
                    source,
                })?;
            }
            Ok(())
        })?;
        cfg.crash.point(&id("tunnel"));
    }
    Ok(session)
}

/// Delve answers a state request through the forward on localhost:`port` (an ssh forward to a
/// socket listens locally even when the node's sshd refuses every connection through it).
fn answers(port: u16) -> Result<(), crate::dlv::DlvError> {
    let mut dlv = crate::dlv::DlvClient::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10))?;
    dlv.call_timeout = Duration::from_secs(10);
    dlv.state_nonblocking().map(drop)
}

/// Runs one step, reporting its start and outcome.
fn step<T>(reporter: &dyn Reporter, id: &str, f: impl FnOnce() -> Result<T, SessionError>) -> Result<T, SessionError> {
    reporter.step(id, StepStatus::Started);
    let started = Instant::now();
    let out = f();
    match &out {
        Ok(_) => reporter.step(id, StepStatus::Done { seconds: started.elapsed().as_secs_f64() }),
        Err(e) => reporter.step(id, StepStatus::Failed { error: e.to_string() }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_plan_chains_capture_stop_launch_tunnel_after_the_copy() {
        let mut p = Plan::default();
        let build = p.add(StepKind::Build { component: "kube-apiserver".into() }, &[], None, true, vec![]);
        p.add(StepKind::Copy { component: "kube-apiserver".into() }, &[&build], None, false, vec![]);
        p.add(StepKind::ProvisionDlv, &[], None, true, vec![]);
        let cfg = DebugConfig { tunnel: true, ide: Some(TaskArgs::default()), ..DebugConfig::default() };
        plan(&mut p, &[Component::lookup("apiserver").unwrap()], &cfg);
        expect_test::expect![[r#"
            1. build:kube-apiserver             up to date
            1. provision-dlv                    up to date
            1. capture-args:kube-apiserver      will run
            2. copy:kube-apiserver              will run  after build:kube-apiserver
            3. stop:kube-apiserver              will run  after copy:kube-apiserver, provision-dlv, capture-args:kube-apiserver
            4. launch:kube-apiserver            will run  after stop:kube-apiserver
            5. tunnel:kube-apiserver            will run  after launch:kube-apiserver
            6. write-ide                        will run  after tunnel:kube-apiserver
        "#]]
        .assert_eq(&p.render());
    }
}
