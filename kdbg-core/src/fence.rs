//! Fencing: the node as a locked run sees it. Before every call the lock is checked; once the
//! node's end of it is gone (kdbg paused past the lease, a broken connection) another kdbg may
//! hold the node, so this one stops with "lost the node lock" and changes nothing more.

use camino::Utf8Path;

use crate::node::{CopyStats, Endpoint, Node, NodeError, NodeOutput, Privilege, Tunnel};
use crate::node_lock::{holder, lease, NodeLock};

#[derive(Clone, Copy)]
pub(crate) struct Fenced<'a> {
    pub node: &'a dyn Node,
    pub lock: &'a NodeLock,
}

impl Fenced<'_> {
    fn check(&self) -> Result<(), NodeError> {
        if !self.lock.is_lost() {
            return Ok(());
        }
        let now = holder(self.node).map(|h| format!(" (now held by {h})")).unwrap_or_default();
        Err(NodeError::LostLock { node: self.node.describe(), lease: lease().as_secs(), now })
    }
}

impl Node for Fenced<'_> {
    fn describe(&self) -> String {
        self.node.describe()
    }
    fn exec(&self, argv: &[&str], privilege: Privilege, stdin: &[u8]) -> Result<NodeOutput, NodeError> {
        self.check()?;
        self.node.exec(argv, privilege, stdin)
    }
    fn sh(&self, privilege: Privilege, script: &str, args: &[&str]) -> Result<NodeOutput, NodeError> {
        self.check()?;
        self.node.sh(privilege, script, args)
    }
    fn spawn(&self, argv: &[&str], privilege: Privilege) -> Result<std::process::Child, NodeError> {
        self.check()?;
        self.node.spawn(argv, privilege)
    }
    fn copy_to(&self, local: &Utf8Path, remote: &str, mode: u32) -> Result<CopyStats, NodeError> {
        self.check()?;
        self.node.copy_to(local, remote, mode)
    }
    fn copy_to_delta(
        &self,
        local: &Utf8Path,
        remote: &str,
        mode: u32,
        base: &Utf8Path,
    ) -> Result<CopyStats, NodeError> {
        self.check()?;
        self.node.copy_to_delta(local, remote, mode, base)
    }
    fn read_file(&self, path: &str, privilege: Privilege) -> Result<Option<Vec<u8>>, NodeError> {
        self.check()?;
        self.node.read_file(path, privilege)
    }
    fn write_file(&self, path: &str, bytes: &[u8], mode: u32, privilege: Privilege) -> Result<(), NodeError> {
        self.check()?;
        self.node.write_file(path, bytes, mode, privilege)
    }
    fn sha256s(&self, paths: &[&str]) -> Result<Vec<Option<String>>, NodeError> {
        self.check()?;
        self.node.sha256s(paths)
    }
    fn platform(&self) -> Result<(String, String), NodeError> {
        self.node.platform()
    }
    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        self.check()?;
        self.node.forward(local_port, to)
    }
    fn bytes_sent(&self) -> u64 {
        self.node.bytes_sent()
    }
    fn round_trips(&self) -> u64 {
        self.node.round_trips()
    }
}
