//! The workstation's record of the tunnels kdbg left running for IDEs (`tunnels.json` in the
//! state directory), so `kdbg restore` can stop them. The node's journal cannot hold them: a pid
//! means something only on the workstation that started it.

use std::io;

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::node::Endpoint;
use crate::statefile;
use crate::workstation;

pub(crate) const FILE: &str = "tunnels.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TunnelRecord {
    /// The node, as `Node::describe` names it.
    pub node: String,
    pub component: String,
    pub local_port: u16,
    /// Delve's port on the node (on a socket: the IDE's port, as `kdbg debug` records it).
    pub remote_port: u16,
    /// Delve's socket on the node, when it listens on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_socket: Option<String>,
    pub pid: u32,
    pub started_at: u64,
}

impl TunnelRecord {
    /// What the forward reaches on the node.
    pub(crate) fn endpoint(&self) -> Endpoint {
        match &self.remote_socket {
            Some(path) => Endpoint::Socket(path.clone()),
            None => Endpoint::Loopback(self.remote_port),
        }
    }

    /// The recorded process still runs and still looks like this forward (not a reused pid).
    pub(crate) fn alive(&self) -> bool {
        let source = workstation::Source::here();
        self.pid != PENDING && workstation::process(source, self.pid).is_some_and(|p| self.is(&p))
    }

    /// Does this process look like this forward?
    fn is(&self, p: &workstation::Process) -> bool {
        let to = self.endpoint();
        // `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:REMOTE …` or `… -L 127.0.0.1:LOCAL:/path/dlv.sock …`
        let forward = format!("127.0.0.1:{}:{}", self.local_port, to.ssh_target());
        let ssh = p.args.contains(&forward);
        // `socat TCP-LISTEN:LOCAL,… EXEC:'docker exec -i NODE socat - TCP:127.0.0.1:REMOTE'` (kind;
        // `UNIX-CONNECT:PATH` for a socket)
        let listen = format!("TCP-LISTEN:{},", self.local_port);
        let line = p.line();
        let socat = p.args.iter().any(|a| a.starts_with(&listen)) && line.ends_with(&format!(" {}'", to.socat()));
        ssh || socat
    }

    /// The processes of this forward: the recorded one, or, when kdbg was stopped between
    /// recording the forward and learning its pid ([`PENDING`]), any process that looks like it.
    fn processes(&self) -> Vec<u32> {
        if self.alive() {
            return vec![self.pid];
        }
        let all = workstation::processes(workstation::Source::here());
        all.iter().filter(|p| self.is(p)).map(|p| p.pid).collect()
    }
}

/// The pid of a forward recorded before it is started (see [`add`]).
pub(crate) const PENDING: u32 = 0;

pub(crate) fn load(dir: &Utf8Path) -> io::Result<Vec<TunnelRecord>> {
    statefile::load(dir, FILE)
}

/// Records a tunnel (replacing any record of the same node and component): first with the pid
/// [`PENDING`], before the forward starts, so that a kdbg killed while starting it leaves a record
/// that `kdbg restore` stops the forward by; then with the forward's pid.
pub(crate) fn add(dir: &Utf8Path, record: TunnelRecord) -> io::Result<()> {
    statefile::update(dir, FILE, |records: &mut Vec<TunnelRecord>| {
        records.retain(|r| !(r.node == record.node && r.component == record.component));
        records.push(record);
    })
}

/// Forgets the record of a forward that ends with kdbg (no detachable tunnel).
pub(crate) fn forget(dir: &Utf8Path, node: &str, component: &str) -> io::Result<()> {
    statefile::update(dir, FILE, |records: &mut Vec<TunnelRecord>| {
        records.retain(|r| !(r.node == node && r.component == component))
    })
}

/// Stops the tunnels to `node` (for `components`, all when empty) and forgets them; returns those
/// that were still running.
pub(crate) fn stop(dir: &Utf8Path, node: &str, components: &[&str]) -> io::Result<Vec<TunnelRecord>> {
    let mine =
        |r: &TunnelRecord| r.node == node && (components.is_empty() || components.contains(&r.component.as_str()));
    statefile::update(dir, FILE, |records: &mut Vec<TunnelRecord>| {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(records).into_iter().partition(mine);
        *records = kept;
        gone.iter().flat_map(stop_one).collect()
    })
}

/// Stops the tunnels to `node` whose session is over (their component is not in `live`, the
/// components the node's journal holds): a session the node put back by itself leaves its
/// workstation's forward behind.
pub(crate) fn stop_ended(dir: &Utf8Path, node: &str, live: &[&str]) -> io::Result<Vec<TunnelRecord>> {
    let ended: Vec<String> = load(dir)?
        .into_iter()
        .filter(|r| r.node == node && !live.contains(&r.component.as_str()))
        .map(|r| r.component)
        .collect();
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    stop(dir, node, &ended.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Signals the processes of `r` and waits (a second at most) for them to go; returns them.
fn stop_one(r: &TunnelRecord) -> Vec<TunnelRecord> {
    let pids = r.processes();
    for &pid in &pids {
        if let Ok(pid) = i32::try_from(pid) {
            // SAFETY: signals one process that `processes` just identified as this forward.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let mut stopped = Vec::new();
    for pid in pids {
        for _ in 0..50 {
            let source = workstation::Source::here();
            if !workstation::process(source, pid).is_some_and(|p| r.is(&p)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stopped.push(TunnelRecord { pid, ..r.clone() });
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forwards of a macOS workstation, as `ps` shows them (recorded): found by the same
    /// rules, though `ps` splits arguments at blanks.
    #[test]
    fn forwards_are_recognised_in_recorded_ps_output() {
        let ps = "4242 ssh -N -o ControlMaster=no -L 127.0.0.1:2345:127.0.0.1:2345 docker@192.168.49.2\n\
                  4300 socat TCP-LISTEN:2346,bind=127.0.0.1,reuseaddr,fork EXEC:'docker exec -i kind-control-plane \
                  socat - UNIX-CONNECT:/var/lib/kdbg/run/kube-scheduler/dlv.sock'\n";
        let procs: Vec<workstation::Process> = ps
            .lines()
            .map(|l| {
                let mut w = l.split_whitespace();
                let pid = w.next().unwrap().parse().unwrap();
                workstation::Process { pid, args: w.map(String::from).collect() }
            })
            .collect();
        let record = |local, remote, socket: Option<&str>| TunnelRecord {
            node: "n".into(),
            component: "c".into(),
            local_port: local,
            remote_port: remote,
            remote_socket: socket.map(String::from),
            pid: PENDING,
            started_at: 0,
        };
        assert!(record(2345, 2345, None).is(&procs[0]));
        assert!(!record(2346, 2345, None).is(&procs[0]));
        assert!(record(2346, 0, Some("/var/lib/kdbg/run/kube-scheduler/dlv.sock")).is(&procs[1]));
        assert!(!record(2346, 0, Some("/var/lib/kdbg/run/kube-apiserver/dlv.sock")).is(&procs[1]));
    }

    /// A record of `child`, once it runs (until the child has exec'd, its command line is still
    /// this test's); `alive` is asserted.
    fn running(
        child: &std::process::Child,
        node: &str,
        (local, remote): (u16, u16),
        socket: Option<&str>,
    ) -> TunnelRecord {
        let rec = TunnelRecord {
            node: node.into(),
            component: "kube-apiserver".into(),
            local_port: local,
            remote_port: remote,
            remote_socket: socket.map(String::from),
            pid: child.id(),
            started_at: 0,
        };
        for _ in 0..100 {
            if rec.alive() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(rec.alive());
        rec
    }

    /// A process that holds `args` in its command line and sleeps, never forking: a shell's
    /// `sleep` child has the shell's command line until it execs, and a scan by command line
    /// would find it too.
    fn lookalike() -> std::process::Command {
        let mut perl = std::process::Command::new("perl");
        perl.args(["-e", "sleep 30", "--"]);
        perl
    }

    /// A process with the command line of kdbg's socat forward from `local` to kind node
    /// `node`'s 127.0.0.1:`remote`, and its record.
    fn kind_forward(node: &str, (local, remote): (u16, u16)) -> (std::process::Child, TunnelRecord) {
        let child = lookalike()
            .arg(format!("TCP-LISTEN:{local},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("EXEC:'docker exec -i {node} socat - TCP:127.0.0.1:{remote}'"))
            .spawn()
            .unwrap();
        let rec = running(&child, &format!("kind node {node}"), (local, remote), None);
        (child, rec)
    }

    #[test]
    fn a_kind_forward_by_socat_is_recognised_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let (mut child, rec) = kind_forward("dev-control-plane", (23451, 2345));
        assert!(!TunnelRecord { remote_port: 2346, ..rec.clone() }.alive());
        let sock = Some("/var/lib/kdbg/run/kube-apiserver/dlv.sock".to_string());
        assert!(!TunnelRecord { remote_socket: sock, ..rec.clone() }.alive(), "a socket forward is another one");
        add(dir, rec.clone()).unwrap();
        assert_eq!(stop(dir, "kind node dev-control-plane", &[]).unwrap(), [rec]);
        assert!(!child.wait().unwrap().success(), "the forward was not signalled");
    }

    #[test]
    fn a_forward_recorded_before_its_pid_was_known_is_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let (mut child, rec) = kind_forward("dev-worker", (23453, 2346));
        // kdbg was killed after starting the forward, before recording its pid.
        let pending = TunnelRecord { pid: PENDING, ..rec.clone() };
        assert!(!pending.alive());
        add(dir, pending).unwrap();
        assert_eq!(stop(dir, "kind node dev-worker", &["kube-apiserver"]).unwrap(), [rec]);
        assert!(!child.wait().unwrap().success(), "the forward was not signalled");
        assert!(load(dir).unwrap().is_empty());
    }

    #[test]
    fn an_ssh_forward_to_a_socket_is_recognised() {
        let socket = "/var/lib/kdbg/run/kube-apiserver/dlv.sock";
        let mut child =
            lookalike().args(["-N", "-L", &format!("127.0.0.1:23452:{socket}"), "docker@10.0.0.2"]).spawn().unwrap();
        let rec = running(&child, "docker@10.0.0.2", (23452, 23452), Some(socket));
        assert_eq!(rec.endpoint(), Endpoint::Socket(socket.into()));
        assert!(!TunnelRecord { remote_socket: None, ..rec.clone() }.alive(), "not a forward to 127.0.0.1:23452");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn records_replace_and_stop_only_their_node() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        let rec = |node: &str, c: &str| TunnelRecord {
            node: node.into(),
            component: c.into(),
            local_port: 1,
            remote_port: 2,
            remote_socket: None,
            pid: u32::MAX - 1,
            started_at: 0,
        };
        add(dir, rec("a", "x")).unwrap();
        add(dir, rec("a", "x")).unwrap();
        add(dir, rec("b", "x")).unwrap();
        assert_eq!(load(dir).unwrap().len(), 2);
        // Not running: nothing stopped, but the record is forgotten.
        assert!(stop(dir, "a", &[]).unwrap().is_empty());
        assert_eq!(load(dir).unwrap(), [rec("b", "x")]);
    }
}
