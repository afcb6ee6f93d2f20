//! Checks before `kdbg debug` changes anything: ports free on the workstation and the node, and
//! warnings about versions and about pausing components others depend on.

use std::net::{Ipv4Addr, TcpListener};

use super::capture::Captured;
use super::debug::DebugConfig;
use super::{procs, tunnels, SessionError};
use crate::component::{Component, Launch};
use crate::node::Node;
use crate::report::Reporter;
use crate::tree::{KubeVersion, SourceTree};

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

/// The tunnel's port must be free on this workstation.
pub(crate) fn port(node: &dyn Node, cfg: &DebugConfig, c: &Component, port: u16) -> Result<(), SessionError> {
    if cfg.tunnel {
        if let Some(dir) = &cfg.state_dir {
            // A tunnel left from a session restored from elsewhere holds the port for nothing.
            let _ = tunnels::stop(dir, &node.describe(), &[c.name]);
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            return Err(SessionError::LocalPortBusy { component: c.name.into(), port });
        }
    }
    Ok(())
}

/// Warns when the tree's version differs from what runs on the node (image tag, or the systemd
/// binary's `--version`).
pub(crate) fn warn_version(node: &dyn Node, tree: &SourceTree, cap: &Captured, reporter: &dyn Reporter) {
    let running = cap.version.clone().or_else(|| {
        if !matches!(cap.component.launch, Launch::Systemd { .. }) {
            return None;
        }
        let out = node.exec(&[&cap.argv[0], "--version"], crate::node::Privilege::Root, &[]).ok()?;
        out.stdout_str().split_whitespace().find(|w| w.starts_with('v')).map(String::from)
    });
    let Some(running) = running.as_deref().and_then(KubeVersion::parse) else { return };
    let t = &tree.version;
    if (running.major, running.minor, running.patch) != (t.major, t.minor, t.patch) {
        reporter.warn(format!(
            "{} on {} is {running}, your tree is {t}: breakpoints may not match the code that runs as you expect",
            cap.component.name,
            node.describe()
        ));
    }
}

pub(crate) fn warn_pausing(c: &Component, cfg: &DebugConfig, reporter: &dyn Reporter) {
    if c.leader_elect && !cfg.leader_elect_false {
        reporter.warn(format!(
            "{0} takes part in leader election: paused at a breakpoint longer than its lease (15s by default) it \
             loses leadership and exits; pass --leader-elect=false to keep it running",
            c.name
        ));
    }
    if cfg.leader_elect_false && !c.leader_elect {
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
