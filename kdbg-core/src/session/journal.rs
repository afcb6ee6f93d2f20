//! The journal on the node (`/var/lib/kdbg/journal.json`): what kdbg changed and how to undo it.
//!
//! It is written (atomically, fsynced) BEFORE each change, so a kdbg killed at any point leaves a
//! journal that `kdbg restore` — from this or any other workstation — can act on. It holds paths,
//! hashes, pids and arguments, never the contents of files (certificates and keys stay where the
//! manifest points) and never environment values (only their names).
//!
//! Schema 2 (this kdbg writes it): Delve's listen address is a typed value ([`Listen`]), each
//! entry names the session that owns it ([`SessionId`]), and the journal carries the session's
//! lease ([`Lease`], see `session::lease`). Schema-1 journals are read and upgraded ([`v1`]); a newer schema
//! is an error.

pub(crate) mod v1;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::listen::Listen;
use super::SessionError;
use crate::layout::JOURNAL;
use crate::node::{Endpoint, Node, Privilege};

/// Version of the journal's JSON.
pub(crate) const JOURNAL_SCHEMA: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub schema: u32,
    /// The session's lease on the node; `None`: no lease (the session lasts until `kdbg restore`).
    pub lease: Option<Lease>,
    /// By component name.
    pub components: BTreeMap<String, Entry>,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal { schema: JOURNAL_SCHEMA, lease: None, components: BTreeMap::new() }
    }
}

/// How long a session may go without its workstation: the node holds the deadline, the
/// workstation renews it (not the node lock's heartbeat, see `session::node_lock`). Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its length, as chosen (`--lease`).
    pub seconds: u64,
    pub expires_at: u64,
    pub renewed_at: u64,
}

/// The kdbg run a journal entry belongs to: one id per process that starts sessions, so a kdbg
/// can tell its own entries from another's (a pid alone may be reused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub String);

impl SessionId {
    /// This process's session: 16 hex digits, random (std's hasher keys come from the OS).
    pub fn mine() -> SessionId {
        static MINE: OnceLock<SessionId> = OnceLock::new();
        MINE.get_or_init(|| {
            let random = std::collections::hash_map::RandomState::new();
            SessionId(format!("{:016x}", random.hash_one((std::process::id(), SystemTime::now()))))
        })
        .clone()
    }

    /// The session of a schema-1 entry, which named none: the kdbg run `who` names (`v1:HOST:PID`).
    pub(crate) fn of_v1(who: &Who) -> SessionId {
        SessionId(format!("v1:{}:{}", who.host, who.pid))
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a component is in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// About to stop the original (its manifest may be in the backup directory already).
    Stopping,
    /// The original is gone; Delve not started yet.
    Stopped,
    /// About to start Delve (it may be running without its pid recorded).
    Launching,
    /// Delve runs the debug build (`dlv_pid`).
    Launched,
    /// `kdbg restore` is putting it back.
    Restoring,
}

/// How the original runs, and what kdbg moved to stop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum How {
    StaticPod {
        /// `/etc/kubernetes/manifests/kube-apiserver.yaml`.
        manifest: String,
        /// sha256 of the manifest as kdbg found it; restore puts exactly these bytes back.
        sha256: String,
        /// Its permission bits.
        mode: u32,
        /// Where it waits meanwhile, outside the kubelet's directory.
        backup: String,
    },
    /// A DaemonSet's pod, kept off this node by a spec change (see `session::daemonset`).
    DaemonSet {
        namespace: String,
        name: String,
        /// This node's name in the cluster.
        node: String,
        /// The pod kdbg deleted.
        pod: String,
        /// `spec.updateStrategy` and `spec.template.spec.affinity` as found (JSON): what restore
        /// writes back.
        update_strategy: String,
        affinity: Option<String>,
        /// What the debug build sees at the pod's paths.
        mounts: Vec<PodMount>,
        /// Where the pod's copied files wait on the node (removed by restore).
        files: String,
        /// Mount-point directories kdbg created on the node (removed by restore).
        created: Vec<String>,
    },
    Systemd {
        unit: String,
        /// `systemctl is-active` said `active` before kdbg stopped it: restore starts it only then.
        #[serde(default = "yes")]
        active: bool,
        /// `systemctl is-enabled` before the session (`enabled`, `disabled`, ...); restore checks it.
        #[serde(default)]
        enabled: Option<String>,
    },
}

/// A path of a DaemonSet pod reproduced for the debug build: `source` on the node is
/// bind-mounted at `target` in Delve's private mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMount {
    pub source: String,
    pub target: String,
    /// `source` is a node-side copy of the pod's files (else a hostPath).
    pub copied: bool,
}

fn yes() -> bool {
    true
}

impl How {
    /// The bind mounts Delve's namespace needs (DaemonSet pods), `(source, target)`.
    pub(crate) fn bind_mounts(&self) -> Vec<(String, String)> {
        match self {
            How::DaemonSet { mounts, .. } => mounts.iter().map(|m| (m.source.clone(), m.target.clone())).collect(),
            _ => Vec::new(),
        }
    }

    /// What putting the original back means, for messages: `its manifest … is back in place`.
    pub(crate) fn back_phrase(&self) -> String {
        match self {
            How::StaticPod { manifest, .. } => format!("its manifest {manifest} is back in place"),
            How::Systemd { unit, active: true, .. } => format!("{unit} was started again"),
            How::Systemd { unit, .. } => format!("{unit} was left inactive, as kdbg found it"),
            How::DaemonSet { namespace, name, node, .. } => {
                format!("the DaemonSet {namespace}/{name} may run its pod on {node} again")
            }
        }
    }
}

/// Who started a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// The workstation's hostname.
    pub host: String,
    pub pid: u32,
}

impl Who {
    pub fn me() -> Who {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let host = if ok { String::from_utf8_lossy(&buf[..end]).into_owned() } else { "unknown".into() };
        Who { host, pid: std::process::id() }
    }
}

/// One component under debug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub component: String,
    pub state: EntryState,
    pub who: Who,
    /// The session that owns this entry (schema 2; a schema-1 entry's is derived from `who`).
    pub session: SessionId,
    /// Unix seconds.
    pub started_at: u64,
    pub updated_at: u64,
    pub how: How,
    /// Where the arguments came from: `process 1234`, `manifest`, `unit`.
    pub captured_from: String,
    /// The original ran when kdbg came (restore waits for it to run again only then).
    pub was_running: bool,
    /// The debug build's argv: the captured one with argv[0] replaced.
    pub args: Vec<String>,
    /// Names of the environment variables passed on (values stay out of the journal).
    pub env_names: Vec<String>,
    /// Ports the component serves on.
    pub ports: Vec<u16>,
    /// The debug build and Delve on the node.
    pub binary: String,
    pub dlv: String,
    /// Where Delve listens on the node: `/var/lib/kdbg/run/<component>/dlv.sock`, or
    /// `127.0.0.1:2345` (see `session::endpoint`).
    pub listen: Listen,
    /// Why Delve listens on TCP, when it does (`Delve 1.20.2 has no unix sockets ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_because: Option<String>,
    /// Where the IDE attaches on the workstation (`localhost:<port>`); on TCP also Delve's port.
    pub port: u16,
    pub dlv_pid: Option<u32>,
    /// Delve's and the component's output.
    pub log: String,
    /// The tree the debug build came from (absent in journals of kdbg before 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<BuiltFrom>,
}

/// Where a debug build came from: the workstation's tree, its version and commit, and the
/// `--at` ref when it is a kdbg worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltFrom {
    pub tree: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The platform the binary was built for (`linux/arm64`); absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl BuiltFrom {
    pub(crate) fn of(tree: &crate::tree::SourceTree, platform: &crate::platform::Platform) -> BuiltFrom {
        BuiltFrom {
            tree: tree.root.to_string(),
            version: tree.version.text.clone(),
            commit: tree.commit.clone(),
            at: tree.at.clone(),
            platform: Some(platform.to_string()),
        }
    }
}

impl Entry {
    /// What a forward to this Delve reaches on the node.
    pub(crate) fn endpoint(&self) -> Endpoint {
        self.listen.endpoint()
    }

    /// `kdbg on HOST (pid N) since T, Delve on 127.0.0.1:2345`, for messages.
    pub(crate) fn holder(&self) -> String {
        format!(
            "kdbg on {} (pid {}) {}, Delve on {}, state {:?}",
            self.who.host,
            self.who.pid,
            since(self.started_at, now()),
            self.listen,
            self.state
        )
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `since 3m12s` (how long ago `then` was).
pub fn since(then: u64, now: u64) -> String {
    let s = now.saturating_sub(then);
    match s {
        0..=59 => format!("since {s}s"),
        60..=3599 => format!("since {}m{:02}s", s / 60, s % 60),
        _ => format!("since {}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Reads the node's journal; an absent journal is an empty one.
pub(crate) fn load(node: &dyn Node) -> Result<Journal, SessionError> {
    let Some(bytes) = node.read_file(JOURNAL, Privilege::Root)? else {
        return Ok(Journal::default());
    };
    parse(&bytes).map_err(|detail| SessionError::Journal { node: node.describe(), path: JOURNAL.into(), detail })
}

/// A journal's JSON, in this schema or upgraded from schema 1; `Err(what is wrong)`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Journal, String> {
    #[derive(Deserialize)]
    struct Schema {
        schema: u32,
    }
    let Schema { schema } = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match schema {
        1 => serde_json::from_slice::<v1::Journal>(bytes).map(v1::Journal::upgrade),
        JOURNAL_SCHEMA => serde_json::from_slice(bytes),
        _ => return Err(format!("schema {schema} (this kdbg knows {JOURNAL_SCHEMA})")),
    }
    .map_err(|e| e.to_string())
}

/// Renames an unreadable journal to `journal.json.unreadable.<unix seconds>` beside it (never
/// deletes it); returns the new path.
pub(crate) fn keep_aside(node: &dyn Node) -> Result<String, SessionError> {
    let aside = format!("{JOURNAL}.unreadable.{}", now());
    let out = node.exec(&["mv", "-n", JOURNAL, &aside], Privilege::Root, &[])?;
    if !out.success() {
        let detail = format!("cannot rename it to {aside}: {}", out.stderr_str().trim());
        return Err(SessionError::Journal { node: node.describe(), path: JOURNAL.into(), detail });
    }
    Ok(aside)
}

#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;
