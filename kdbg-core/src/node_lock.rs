//! One kdbg changes a node at a time: an exclusive `flock` on `/var/lib/kdbg/lock`, held by a
//! small process on the node for as long as this kdbg holds the [`NodeLock`].
//!
//! ```text
//! kdbg ──stdin (a heartbeat line every 10 s)──▶ sh on the node: flock 9; read lines until EOF
//!      ◀─stdout: `kdbg-lock-busy OWNER` / `kdbg-lock-held`─
//! ```
//!
//! The lock cannot outlive its owner: when kdbg exits or is killed, its end of the pipe closes,
//! the node's `read` sees EOF and the process (and with it the lock) goes at once. When the
//! workstation vanishes without closing the connection, the missing heartbeat ends it after
//! [`LEASE`]. The owner (host, pid, command, since) is written beside the lock
//! (`/var/lib/kdbg/lock.owner`), so a second kdbg names who it waits for. `kdbg status` never
//! takes the lock. A node without `flock` or `timeout` runs unlocked, with a warning.

use std::io::{BufRead, BufReader, Write};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::layout::{KDBG_DIR, LOCK};
use crate::node::{Node, NodeError, Privilege};
use crate::report::Reporter;
use crate::session::journal::{self, Who};
use crate::session::SessionError;

/// How long the node keeps the lock of an owner it no longer hears from.
pub(crate) const LEASE: Duration = Duration::from_secs(60);

/// [`LEASE`], or `KDBG_LOCK_LEASE` seconds (at least 2: a heartbeat goes every second then).
pub(crate) fn lease() -> Duration {
    let env = std::env::var("KDBG_LOCK_LEASE").ok().and_then(|v| v.parse::<u64>().ok()).filter(|s| *s >= 2);
    env.map_or(LEASE, Duration::from_secs)
}

/// A heartbeat often enough that two may be lost within the lease.
fn heartbeat_every() -> Duration {
    HEARTBEAT.min(lease() / 3)
}
const HEARTBEAT: Duration = Duration::from_secs(10);

/// `$1` owner record, `$2` `wait`|`no-wait`, `$3` lease in seconds.
const HOLD: &str = r#"set -u
d=/var/lib/kdbg
for t in flock timeout; do command -v $t >/dev/null 2>&1 || { echo "kdbg-lock-unsupported $t"; exit 0; }; done
exec 9>>"$d/lock" || exit 1
if ! flock -n 9; then
  sleep 0.3
  echo "kdbg-lock-busy $(tr '\n' ' ' < "$d/lock.owner" 2>/dev/null)"
  [ "$2" = wait ] || exit 0
  flock 9 || exit 1
fi
printf '%s\n' "$1" > "$d/lock.owner.tmp" && mv -f "$d/lock.owner.tmp" "$d/lock.owner"
echo kdbg-lock-held
while timeout "$3" sh -c 'IFS= read -r _'; do :; done
rm -f "$d/lock.owner""#;

/// Who holds the node's lock now, without taking it (for `kdbg status`): `None` when it is free,
/// or cannot be told.
pub fn holder(node: &dyn Node) -> Option<String> {
    let script = r#"d=/var/lib/kdbg
[ -e "$d/lock.owner" ] && command -v flock >/dev/null 2>&1 || exit 0
exec 9>>"$d/lock"
flock -n 9 || cat "$d/lock.owner""#;
    let out = crate::node::root_sh(node, script, &[], "read the lock's owner").ok()?;
    let owner: Owner = serde_json::from_str(out.trim()).ok()?;
    Some(owner.describe())
}

/// Who holds the lock, as written beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    #[serde(flatten)]
    pub who: Who,
    /// What it runs, e.g. `debug kube-apiserver`.
    pub command: String,
    /// Unix seconds.
    pub since: u64,
}

impl Owner {
    /// `kdbg on HOST (pid N) running `kdbg debug kube-apiserver` since 3s`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "kdbg on {} (pid {}) running `kdbg {}` {}",
            self.who.host,
            self.who.pid,
            self.command,
            journal::since(self.since, journal::now())
        )
    }
}

/// The node-side holder (through ssh), the heartbeat's stop and the heartbeat thread.
type Holding = (Child, Sender<()>, JoinHandle<()>);

/// Held until dropped; dropping it (or kdbg's death) releases the node.
#[derive(Debug)]
pub struct NodeLock {
    held: Mutex<Option<Holding>>,
    /// The node it locks, as it describes itself.
    node: String,
    /// Set once the node's holder is seen gone: the lock is lost for good.
    lost: AtomicBool,
}

/// A node whose lock this kdbg holds: the proof every core function that changes a node takes
/// (`deploy_nodes`, `debug_nodes`, `restore`, a watch cycle), so none can be called unlocked.
#[derive(Clone, Copy)]
pub struct Locked<'a> {
    fenced: crate::fence::Fenced<'a>,
}

impl NodeLock {
    /// A lock that holds nothing, for unit tests on fake nodes.
    #[cfg(test)]
    pub(crate) fn fake(node: &dyn Node) -> NodeLock {
        NodeLock::new(None, node.describe())
    }

    fn new(held: Option<Holding>, node: String) -> NodeLock {
        NodeLock { held: Mutex::new(held), node, lost: AtomicBool::new(false) }
    }

    /// Whether the node's end of this lock is gone (kdbg was paused past the lease, or its
    /// connection broke): from then on another kdbg may hold the node.
    pub(crate) fn is_lost(&self) -> bool {
        if self.lost.load(Ordering::Relaxed) {
            return true;
        }
        let mut held = self.held.lock().unwrap();
        let gone = held.as_mut().is_some_and(|(child, ..)| !matches!(child.try_wait(), Ok(None)));
        if gone {
            self.lost.store(true, Ordering::Relaxed);
        }
        gone
    }
}

impl<'a> Locked<'a> {
    /// `node` under `lock`, which must be this node's.
    pub fn new(node: &'a dyn Node, lock: &'a NodeLock) -> Locked<'a> {
        assert_eq!(node.describe(), lock.node, "a node's lock proves nothing for another node");
        Locked { fenced: crate::fence::Fenced { node, lock } }
    }

    /// The node, fenced: every call first checks that this kdbg still holds the lock
    /// ([`crate::fence`]), so a kdbg that lost it changes nothing more.
    pub fn node(&self) -> &dyn Node {
        &self.fenced
    }
}

impl NodeLock {
    /// Takes the node's lock for `command` (`debug kube-apiserver`). When another kdbg holds it:
    /// with `wait`, says who and waits; without, fails naming the holder.
    pub fn acquire(
        node: &dyn Node,
        command: &str,
        wait: bool,
        reporter: &dyn Reporter,
    ) -> Result<NodeLock, SessionError> {
        // One plain round trip first: an unreachable node or a refused sudo is reported as such.
        let out = node.exec(&["mkdir", "-p", KDBG_DIR], Privilege::Root, &[])?;
        if !out.success() {
            let detail = out.stderr_str().trim().to_string();
            return Err(NodeError::other(node.describe(), format!("create {KDBG_DIR}"), detail).into());
        }
        let owner = Owner { who: Who::me(), command: command.into(), since: journal::now() };
        let record = serde_json::to_string(&owner).expect("the owner serializes");
        let lease = lease().as_secs().to_string();
        let how = if wait { "wait" } else { "no-wait" };
        let argv = ["sh", "-c", HOLD, "kdbg-lock", &record, how, &lease];
        let mut child = node.spawn(&argv, Privilege::Root)?;
        if !held_or_waited(node, &mut child, wait, reporter)? {
            return Ok(NodeLock::new(None, node.describe()));
        }
        let stdin = child.stdin.take().expect("piped");
        let (stop, beat) = heartbeat(stdin);
        Ok(NodeLock::new(Some((child, stop, beat)), node.describe()))
    }
}

/// Reads the node's answers until it holds the lock (`true`), says who it waits for, or fails
/// naming the holder (without `wait`). `false`: the node cannot lock (no `flock`/`timeout`),
/// with a warning.
fn held_or_waited(
    node: &dyn Node,
    child: &mut Child,
    wait: bool,
    reporter: &dyn Reporter,
) -> Result<bool, SessionError> {
    let lost = |detail: String| SessionError::from(NodeError::other(node.describe(), format!("lock {LOCK}"), detail));
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            let _ = child.wait().map_err(|e| lost(e.to_string()))?;
            return Err(lost(stderr.trim().to_string()));
        };
        if line == "kdbg-lock-held" {
            return Ok(true);
        }
        if let Some(tool) = line.strip_prefix("kdbg-lock-unsupported ") {
            let _ = child.wait();
            reporter.warn(format!(
                "{} has no `{tool}`: kdbg cannot lock it, so another kdbg could change it at the same time",
                node.describe()
            ));
            return Ok(false);
        }
        if let Some(record) = line.strip_prefix("kdbg-lock-busy") {
            let owner = serde_json::from_str::<Owner>(record.trim()).ok();
            // Waiting for ourselves would never end.
            if owner.as_ref().is_some_and(|o| o.who == Who::me()) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SessionError::LockedByThisRun { node: node.describe() });
            }
            let holder = owner.map(|o| o.describe()).unwrap_or_else(|| "another kdbg".to_string());
            if !wait {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SessionError::NodeBusy { node: node.describe(), holder });
            }
            reporter.info(format!(
                "waiting for {holder}: it is changing {} (lock {LOCK}; released when it ends, or {}s after its \
                 connection is lost)",
                node.describe(),
                lease().as_secs()
            ));
        }
    }
}

/// A heartbeat line on the node's stdin every [`HEARTBEAT`] until the sender is dropped; then
/// stdin is dropped, which is the release.
fn heartbeat(mut stdin: std::process::ChildStdin) -> (Sender<()>, JoinHandle<()>) {
    let (stop, beats) = mpsc::channel::<()>();
    let beat = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = beats.recv_timeout(heartbeat_every()) {
            if stdin.write_all(b"\n").and_then(|()| stdin.flush()).is_err() {
                return;
            }
        }
    });
    (stop, beat)
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        if let Some((mut child, stop, beat)) = self.held.get_mut().unwrap().take() {
            drop(stop);
            let _ = beat.join();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_names_host_pid_and_command() {
        let o = Owner { who: Who { host: "ws".into(), pid: 7 }, command: "debug kube-apiserver".into(), since: 0 };
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.starts_with(r#"{"host":"ws","pid":7,"#), "{text}");
        assert_eq!(serde_json::from_str::<Owner>(&text).unwrap(), o);
        assert!(o.describe().starts_with("kdbg on ws (pid 7) running `kdbg debug kube-apiserver` since "));
    }
}
