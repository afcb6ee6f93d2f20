//! The `tunnel:<component>` step: a detached local forward to Delve, recorded in the
//! workstation's state directory before it starts (see [`tunnels::add`]).

use std::time::Duration;

use super::steps::{Debugging, Out};
use crate::component::Component;
use crate::plan::exec::Inputs;
use crate::session::{endpoint, journal, status, SessionError};
use crate::tunnels::{self, TunnelRecord};

impl Debugging<'_> {
    /// A detached local forward to Delve, recorded in the workstation's state directory (before
    /// it starts: see [`tunnels::add`]).
    pub(super) fn tunnel(&self, c: &'static Component, inputs: &Inputs<'_, Out>) -> Result<Out, SessionError> {
        let (node, cfg) = (self.node, self.cfg);
        let launched = inputs.iter().find_map(|(_, o)| match o {
            Out::Launched { session, entry } => Some((session, entry)),
            _ => None,
        });
        let (session, entry) = launched.expect("tunnel after its launch");
        let (mut session, entry) = (session.clone(), entry.clone());
        let port = session.port + cfg.local_shift;
        let remote = entry.endpoint();
        let record = |pid| TunnelRecord {
            node: node.describe(),
            component: c.name.into(),
            local_port: port,
            remote_port: session.port,
            remote_socket: endpoint::socket_of(&remote).map(String::from),
            pid,
            started_at: journal::now(),
        };
        let write = |record: Option<TunnelRecord>| self.record_tunnel(c, record);
        write(Some(record(tunnels::PENDING)))?;
        let tunnel = node
            .forward(port, &remote)
            .map_err(|e| SessionError::Tunnel { component: c.name.into(), detail: e.to_string() })?;
        session.local_port = Some(tunnel.local_port());
        if let Some(socket) = endpoint::socket_of(&remote) {
            answers_through(c, socket, tunnel.local_port(), port)?;
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
        write(pid.map(record))?;
        Ok(Out::Launched { session, entry })
    }

    /// Records the forward of `c` (`None`: forgets it) in the workstation's tunnel records.
    fn record_tunnel(&self, c: &Component, record: Option<TunnelRecord>) -> Result<(), SessionError> {
        let Some(dir) = &self.cfg.state_dir else { return Ok(()) };
        let written = match record {
            Some(r) => tunnels::add(dir, r),
            None => tunnels::forget(dir, &self.node.describe(), c.name),
        };
        written.map_err(|source| SessionError::Local {
            what: "write".into(),
            path: dir.join(tunnels::FILE).to_string(),
            source,
        })
    }
}

/// An ssh forward to a socket listens locally even when the node's sshd refuses every
/// connection through it: Delve must answer through it.
fn answers_through(c: &Component, socket: &str, local_port: u16, port: u16) -> Result<(), SessionError> {
    status::state_via(local_port, Duration::from_secs(10)).map(drop).map_err(|e| SessionError::Tunnel {
        component: c.name.into(),
        detail: format!(
            "Delve on {socket} does not answer through localhost:{port} ({e})\n  fix: the node's sshd must \
             allow streamlocal forwarding (`AllowStreamLocalForwarding yes`, no `DisableForwarding` in its \
             sshd_config)"
        ),
    })
}
