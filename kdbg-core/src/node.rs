//! Nodes: the `Node` trait every node access goes through, and its transports (ssh, minikube, kind, local).
//!
//! A node is where a component runs: a minikube VM or container, a kind node container, a kubeadm
//! VM reached over ssh, or this host. Everything kdbg does there goes through [`Node`], so the
//! session logic is the same for every transport and can be tested against the test node.
//!
//! Transports: [`ssh`] (the system OpenSSH client, one ControlMaster connection per run),
//! [`local`], [`kind`] (`docker exec`), [`minikube`] (discovers ip, key and user, then ssh).
//! All of them run node commands as local processes and share one implementation of the
//! `Node` methods on top of that ([`shell::ShellNode`] over a [`shell::Transport`]); copies go
//! through [`copy`] (zstd stream, delta against what the node holds, atomic rename).
//! [`target::Target`] parses `--target` strings and connects.

pub mod copy;
mod errors;
pub(crate) mod kind;
pub(crate) mod local;
pub(crate) mod minikube;
pub(crate) mod shell;
pub mod ssh;
pub mod target;
mod tunnel;

use std::time::Duration;

use camino::Utf8Path;
use serde::Serialize;

/// Whether a node command needs root. Transports add `sudo -n` for non-root logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    User,
    Root,
}

/// The result of a command on the node.
#[derive(Debug, Clone, Default)]
pub struct NodeOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl NodeOutput {
    pub(crate) fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub(crate) fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// What one copy cost, counted at the transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyStats {
    /// Size of the file copied.
    pub file_bytes: u64,
    /// Bytes that crossed the wire (after compression).
    pub wire_bytes: u64,
    /// How the bytes were encoded.
    pub method: copy::Method,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot reach {node}: {detail}\n  fix: {fix}")]
    Unreachable { node: String, detail: String, fix: String },
    #[error("{node} refused the login: {detail}\n  fix: {fix}")]
    Auth { node: String, detail: String, fix: String },
    #[error("the host key of {node} is not the one ssh knows: {detail}\n  fix: {fix}")]
    HostKey { node: String, detail: String, fix: String },
    #[error("sudo is not allowed without a password for the login on {node}\n  fix: give the user passwordless sudo on the node (minikube's `docker` user has it), or log in as root")]
    SudoDenied { node: String },
    #[error("{node} has no room left in {path} ({detail})\n  fix: free space on the node (e.g. `df -h {path}`), then run kdbg again; the node's previous files are intact")]
    DiskFull { node: String, path: String, detail: String },
    #[error("`{cmd}` failed on {node} (exit {status}): {stderr}")]
    Command { node: String, cmd: String, status: i32, stderr: String },
    #[error("failed to {what} on {node}: {detail}")]
    Other { node: String, what: String, detail: String },
    #[error("lost the node lock of {node}{now}: this kdbg was paused or cut off longer than the {lease} s lease and another kdbg may have changed the node since; this kdbg changed nothing more\n  fix: `kdbg status` shows what is under debug now")]
    LostLock { node: String, lease: u64, now: String },
}

impl NodeError {
    /// Every node failure is the node's: unreachable, a refused login or sudo, a command that failed.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        crate::exit::ExitClass::NodeFailed
    }
}

/// Where a forward ends on the node: a port on its loopback, or a unix socket (Delve ≥ 1.22.1
/// listens on one in a directory only the login user and root can enter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Loopback(u16),
    Socket(String),
}

impl Endpoint {
    /// The far end of `ssh -L 127.0.0.1:PORT:<this>`: `127.0.0.1:2345` or the socket's path.
    pub(crate) fn ssh_target(&self) -> String {
        match self {
            Endpoint::Loopback(port) => format!("127.0.0.1:{port}"),
            Endpoint::Socket(path) => path.clone(),
        }
    }

    /// socat's address for it: `TCP:127.0.0.1:2345` or `UNIX-CONNECT:/path`.
    pub(crate) fn socat(&self) -> String {
        match self {
            Endpoint::Loopback(port) => format!("TCP:127.0.0.1:{port}"),
            Endpoint::Socket(path) => format!("UNIX-CONNECT:{path}"),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Loopback(port) => write!(f, "127.0.0.1:{port}"),
            Endpoint::Socket(path) => write!(f, "unix:{path}"),
        }
    }
}

/// A forwarded port: `localhost:local` on the workstation reaches an [`Endpoint`] on the node for
/// as long as the value lives.
pub trait Tunnel: Send {
    fn local_port(&self) -> u16;
    /// Leave the forward running after kdbg exits (the IDE still needs it); returns a way to stop
    /// it later, in words and as a pid when there is one.
    fn detach(self: Box<Self>) -> Option<u32>;
}

/// Everything kdbg does on a node. Implementations must be cheap to call repeatedly (reuse one
/// connection) and count the bytes they send.
pub trait Node: Send + Sync {
    /// How messages name this node, e.g. `docker@192.168.49.2` or `kind-control-plane`.
    fn describe(&self) -> String;

    /// Runs `argv` (no shell) on the node, with `stdin` fed to it.
    fn exec(&self, argv: &[&str], privilege: Privilege, stdin: &[u8]) -> Result<NodeOutput, NodeError>;

    /// Runs a POSIX `sh` script on the node as root or the login user, its arguments as `$1…`
    /// (never interpolated into the script): the one way kdbg runs a node-side script.
    fn sh(&self, privilege: Privilege, script: &str, args: &[&str]) -> Result<NodeOutput, NodeError> {
        let mut argv = vec!["sh", "-c", script, "kdbg"];
        argv.extend_from_slice(args);
        self.exec(&argv, privilege, &[])
    }

    /// Starts `argv` on the node and returns at once: a long-lived node process with stdin,
    /// stdout and stderr piped; closing its stdin is how kdbg (or kdbg's death) ends it.
    fn spawn(&self, argv: &[&str], privilege: Privilege) -> Result<std::process::Child, NodeError>;

    /// Copies a local file to `remote` atomically (temp file in the same directory, fsync,
    /// rename): a reader sees the old file or the new one, never part of one.
    fn copy_to(&self, local: &Utf8Path, remote: &str, mode: u32) -> Result<CopyStats, NodeError>;

    /// Like [`copy_to`](Node::copy_to), where `base` is a local file with the bytes the node holds
    /// at `remote` now: a transport may send a delta against it. A wrong base costs a failed copy,
    /// never a wrong file (the node checks the sha256 of what it assembled before the rename).
    fn copy_to_delta(
        &self,
        local: &Utf8Path,
        remote: &str,
        mode: u32,
        base: &Utf8Path,
    ) -> Result<CopyStats, NodeError> {
        let _ = base;
        self.copy_to(local, remote, mode)
    }

    /// Reads a whole file, `None` if it does not exist.
    fn read_file(&self, path: &str, privilege: Privilege) -> Result<Option<Vec<u8>>, NodeError>;

    /// Writes a whole file atomically and durably (temp, fsync, rename, fsync of the directory).
    fn write_file(&self, path: &str, bytes: &[u8], mode: u32, privilege: Privilege) -> Result<(), NodeError>;

    /// sha256 of several files in one round trip; `None` for a file that does not exist.
    fn sha256s(&self, paths: &[&str]) -> Result<Vec<Option<String>>, NodeError>;

    /// The node's platform as Go names it: (`linux`, `amd64`).
    fn platform(&self) -> Result<(String, String), NodeError>;

    /// Forwards `localhost:local_port` (0: any free port) to `to` on the node.
    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError>;

    /// Bytes sent to the node so far by this value (commands, stdin, copies).
    fn bytes_sent(&self) -> u64;

    /// Round trips made so far (one per command or copy).
    fn round_trips(&self) -> u64;
}

/// How long kdbg waits for a node to answer before saying it cannot reach it.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl NodeError {
    /// "failed to {what} on {node}: {detail}".
    /// A disk that refuses writes gets the fix said (a raw script error alone does not help).
    pub(crate) fn other(node: impl Into<String>, what: impl Into<String>, detail: impl std::fmt::Display) -> NodeError {
        let detail = with_disk_fix(detail.to_string());
        NodeError::Other { node: node.into(), what: what.into(), detail }
    }
}

/// `detail` with the fix for a node disk that refuses writes (read-only, full), when it says so.
fn with_disk_fix(detail: String) -> String {
    let fix = match &detail {
        d if d.contains("Read-only file system") => {
            "the node's disk is read-only there: kdbg keeps its lock, journal, backups and binaries under \
             /var/lib/kdbg; mount a writable volume (or a tmpfs) at /var/lib/kdbg"
        }
        d if d.contains("No space left on device") => {
            "the node's disk is full: free space under /var/lib/kdbg (`df -h /var/lib/kdbg` on the node)"
        }
        _ => return detail,
    };
    format!("{}\n  fix: {fix}", detail.trim_end())
}

/// [`Node::sh`] that must succeed: its stdout, or an error naming `what` and the script's stderr.
pub(crate) fn sh_ok(
    node: &dyn Node,
    privilege: Privilege,
    script: &str,
    args: &[&str],
    what: &str,
) -> Result<String, NodeError> {
    let out = node.sh(privilege, script, args)?;
    if !out.success() {
        return Err(NodeError::Command {
            node: node.describe(),
            cmd: what.into(),
            status: out.status,
            stderr: with_disk_fix(out.stderr_str().trim().to_string()),
        });
    }
    Ok(out.stdout_str())
}

/// [`sh_ok`] as root: the node-side script every change to the node runs through.
pub(crate) fn root_sh(node: &dyn Node, script: &str, args: &[&str], what: &str) -> Result<String, NodeError> {
    sh_ok(node, Privilege::Root, script, args, what)
}

/// Quotes `arg` for a POSIX shell (the remote login shell, `sh -c`): a word that stays one word.
pub fn sh_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// An argv as one shell command line (what ssh and `minikube ssh` send).
pub(crate) fn sh_join(argv: &[&str]) -> String {
    argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod other_tests {
    #[test]
    fn a_read_only_or_full_disk_says_the_fix() {
        let e = super::NodeError::other(
            "n1",
            "lock /var/lib/kdbg/lock",
            "sh: 3: cannot create /var/lib/kdbg/lock: Read-only file system\n",
        );
        let text = e.to_string();
        assert!(text.contains("Read-only file system\n  fix: the node's disk is read-only"), "{text}");
        assert!(super::NodeError::other("n1", "copy", "No space left on device").to_string().contains("disk is full"));
        assert!(!super::NodeError::other("n1", "copy", "boom").to_string().contains("fix:"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_words_whole() {
        assert_eq!(sh_join(&["sh", "-c", "echo \"$1\" it's", "x y"]), r#"sh -c 'echo "$1" it'\''s' 'x y'"#);
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("/var/lib/kdbg/bin/kube-apiserver"), "/var/lib/kdbg/bin/kube-apiserver");
    }

    #[test]
    fn endpoints_name_their_far_end() {
        // Delve's listen values and the endpoints derived from them: `session::listen`.
        let sock = Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into());
        assert_eq!(sock.ssh_target(), "/var/lib/kdbg/run/kube-apiserver/dlv.sock");
        assert_eq!(sock.socat(), "UNIX-CONNECT:/var/lib/kdbg/run/kube-apiserver/dlv.sock");
        assert_eq!(sock.to_string(), "unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock");
        let tcp = Endpoint::Loopback(2345);
        assert_eq!((tcp.ssh_target(), tcp.socat()), ("127.0.0.1:2345".into(), "TCP:127.0.0.1:2345".into()));
    }
}
