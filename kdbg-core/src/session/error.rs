//! What can go wrong in a debug session, each error saying what happened and what to do.

use crate::node::NodeError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{node} is being changed by {holder}\n  fix: wait until it is done, or run again without --no-wait to wait for it; `kdbg status` shows what is under debug")]
    NodeBusy { node: String, holder: String },
    #[error("{node}'s lock is already held by this very kdbg: the same node is named twice (two spellings of one --target?)\n  fix: name each node once")]
    LockedByThisRun { node: String },
    #[error("{component} on {node} is already under debug: {holder}\n  fix: `kdbg restore {component}` with the same --target puts it back (from any workstation)")]
    Held { component: String, node: String, holder: String },
    #[error("{component} runs on {node} (pid {pid}) but not from a static pod manifest: {path} is missing\n  fix: kdbg stops static pods by moving their manifest out of the kubelet's directory; it will not kill a process it cannot restart")]
    ManifestMissing { component: String, node: String, path: String, pid: u32 },
    #[error("{component} does not run on {node} and it has no manifest at {path}\n  fix: is this the control-plane node? (`kdbg status --target ...` shows what kdbg holds)")]
    NotOnNode { component: String, node: String, path: String },
    #[error("{component}'s manifest {path} on {node} is parked in kdbg's backup {backup}, but no journal names a session (the journal was lost?)\n  fix: `kdbg restore --from-node-state` puts it back from what kdbg left on the node (`kdbg doctor` lists it)")]
    ParkedWithoutJournal { component: String, node: String, path: String, backup: String },
    #[error("{component} is not running on {node} (its manifest {path} is there, but no process runs it)\n  fix: look at why it does not start (kubelet logs); to debug its start-up, run `kdbg debug {component} --wait-for-debugger`")]
    NotRunning { component: String, node: String, path: String },
    #[error("{component}'s manifest {path} on {node} cannot be used: {detail}\n  fix: repair the manifest (the kubelet cannot run it either); kdbg changed nothing")]
    Malformed { component: String, node: String, path: String, detail: String },
    #[error("port {port} is busy on {node}{}: kdbg needs it for {what}\n  fix: pass --port with a free port, or stop what holds it (`kdbg status` shows kdbg's own sessions)", holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    PortBusy { node: String, port: u16, what: String, holder: Option<String> },
    #[error("{} needs ports up to {last}, past 65535: each further component takes the next port and each further node 100 more\n  fix: pass a lower --port", if *.nodes > 1 { format!("{} component(s) on {} nodes from port {first}", .components, .nodes) } else { format!("{} component(s) from port {first}", .components) })]
    PortsPastTheEnd { first: u16, last: u32, components: usize, nodes: usize },
    #[error("local port {port} is busy on this workstation: the tunnel to {component}'s Delve needs it\n  fix: pass --port with a free port, or stop what listens on localhost:{port}")]
    LocalPortBusy { component: String, port: u16 },
    #[error("{path} is missing on {node}\n  fix: {fix}")]
    NotDeployed { node: String, path: String, fix: String },
    #[error("{component} did not stop on {node} within {seconds}s ({waiting})\n  {}", if *.put_back { "it was put back: the node is as it was" } else { "and putting it back failed: run `kdbg restore` with the same --target" })]
    StopTimeout { component: String, node: String, seconds: u64, waiting: String, put_back: bool },
    #[error("Delve did not start {component} on {node}: {detail}\n  its log ({log}):\n{tail}")]
    Dlv { component: String, node: String, detail: String, log: String, tail: String },
    #[error("kdbg cannot debug {component} on {node}: {why}")]
    Unsupported { component: String, node: String, why: String },
    #[error("the journal {path} on {node} is unreadable: {detail}\n  fix: `kdbg restore --from-node-state` keeps it aside (renamed, never deleted) and puts back what kdbg left on the node, found by looking at it")]
    Journal { node: String, path: String, detail: String },
    #[error("cannot put {component} back on {node}, so nothing was changed: {detail}")]
    CannotPutBack { component: String, node: String, detail: String },
    #[error("cannot put {component} back on {node}: {detail}\n  the journal still holds it; fix what is said, then run `kdbg restore` again")]
    Restore { component: String, node: String, detail: String },
    #[error("{component} did not come back on {node} within {seconds}s after restore: {detail}")]
    NotBack { component: String, node: String, seconds: u64, detail: String },
    #[error("failed to open the tunnel to {component}'s Delve: {detail}")]
    Tunnel { component: String, detail: String },
    #[error("failed to {what} {path}: {source}")]
    Local { what: String, path: String, source: std::io::Error },
}

impl SessionError {
    /// The class of the node-level failure behind this error (unreachable, refused login, sudo
    /// denied, ...); the rest are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            SessionError::Node(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }
}
