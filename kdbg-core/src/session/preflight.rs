//! Checks before `kdbg debug` changes anything: ports free on the workstation and the node, and
//! warnings about versions and about pausing components others depend on.

use std::net::{Ipv4Addr, TcpListener};

use super::capture::Captured;
use super::{procs, SessionError};
use crate::component::Component;
use crate::node::Node;
use crate::node_version;
use crate::report::Reporter;
use crate::tree::SourceTree;
use crate::tunnels;

/// Delve's TCP port must be free on the node (checked once it is known that Delve listens on TCP:
/// see `session::endpoint`).
pub(crate) fn node_port(node: &dyn Node, c: &Component, port: u16) -> Result<(), SessionError> {
    let poll = procs::poll(node, &[])?;
    if let Some(l) = poll.listening(port) {
        let holder = procs::holder(node, l);
        let what = format!("{}'s Delve", c.name);
        return Err(SessionError::PortBusy { node: node.describe(), port, what, holder });
    }
    Ok(())
}

/// The tunnel's port must be free on this workstation (`state_dir`: where its tunnel records are).
pub(crate) fn local_port(
    node: &dyn Node,
    state_dir: Option<&camino::Utf8Path>,
    c: &Component,
    port: u16,
) -> Result<(), SessionError> {
    if let Some(dir) = state_dir {
        // A tunnel left from a session restored from elsewhere holds the port for nothing.
        let _ = tunnels::stop(dir, &node.describe(), &[c.name]);
    }
    if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
        return Err(SessionError::LocalPortBusy { component: c.name.into(), port });
    }
    Ok(())
}

/// Warns when the tree's version differs from what runs on the node ([`node_version::of_captured`]),
/// naming the way out: `--match-node` builds the node's version in a worktree.
pub(crate) fn warn_version(node: &dyn Node, tree: &SourceTree, cap: &Captured, reporter: &dyn Reporter) {
    let Some(running) = node_version::of_captured(node, cap) else { return };
    let (r, t) = (&running.version, &tree.version);
    if (r.major, r.minor, r.patch) != (t.major, t.minor, t.patch) {
        reporter.warn(format!(
            "{} on {} is {r} ({}), your tree is {t}: breakpoints may not match the code that runs, and flags \
             the node passes may not exist in your build; pass --match-node to build {r} in a git worktree \
             (or --at REF for another version)",
            cap.component.name,
            node.describe(),
            running.from,
        ));
    }
}

/// What pausing `c` at a breakpoint costs (`leader_elect_false`: `--leader-elect=false`).
pub(crate) fn warn_pausing(c: &Component, leader_elect_false: bool, reporter: &dyn Reporter) {
    if c.leader_elect && !leader_elect_false {
        reporter.warn(format!(
            "{0} takes part in leader election: paused at a breakpoint longer than its lease (15s by default) it \
             loses leadership and exits; pass --leader-elect=false to keep it running",
            c.name
        ));
    }
    if leader_elect_false && !c.leader_elect {
        reporter.warn(format!("{} has no --leader-elect flag; --leader-elect=false ignored for it", c.name));
    }
    match c.name {
        "kube-apiserver" => reporter.warn(
            "while kube-apiserver is paused, the cluster's API stops answering: controllers, kubectl and kubelets \
             stall, and nodes are marked NotReady after the node-monitor grace period (40s by default)"
                .into(),
        ),
        "kubelet" => reporter.warn(
            "while the kubelet is paused it stops reporting: its node becomes NotReady after the node-monitor \
             grace period (40s by default) and its pods are evicted after 5 minutes"
                .into(),
        ),
        _ => {}
    }
}
