//! `kdbg status`: what the node's journal holds, whether Delve still runs, and what the debugged
//! program does (running / halted where / exited), asked of Delve over JSON-RPC through a tunnel.

use std::time::Duration;

use camino::Utf8Path;
use serde::{Serialize, Serializer};

use super::journal::{self, Entry};
use super::{procs, SessionError};
use crate::dlv::{DebuggerState, DlvClient, DlvRpcError};
use crate::node::{Endpoint, Node};
use crate::tunnels;

/// One component under debug. As JSON (`kdbg status --json`): the journal entry in its schema-1
/// shape (Delve's `--listen` string, no session id; see `journal::v1`), then the fields below.
#[derive(Debug, Clone)]
pub struct ComponentStatus {
    pub entry: Entry,
    /// Delve's process is alive and listens (on its socket or port).
    pub dlv_up: bool,
    /// Delve's unix socket on the node, when it listens on one (else `tcp_because` says why not).
    pub socket: Option<String>,
    /// `running`, `halted at pkg/healthz/healthz.go:29`, `exited (status 1)`, or why it is unknown.
    pub program: String,
    /// The tunnel this workstation holds to it, if any: `localhost:<port>`.
    pub tunnel: Option<u16>,
}

impl Serialize for ComponentStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            entry: journal::v1::Entry,
            dlv_up: bool,
            socket: &'a Option<String>,
            program: &'a str,
            tunnel: Option<u16>,
        }
        let ComponentStatus { entry, dlv_up, socket, program, tunnel } = self;
        Json { entry: entry.into(), dlv_up: *dlv_up, socket, program, tunnel: *tunnel }.serialize(s)
    }
}

/// Reads the journal and asks each Delve for its state.
pub fn status(node: &dyn Node, state_dir: Option<&Utf8Path>) -> Result<Vec<ComponentStatus>, SessionError> {
    let journal = journal::load(node)?;
    let records = state_dir.and_then(|d| tunnels::load(d).ok()).unwrap_or_default();
    let mut out = Vec::new();
    for entry in journal.components.into_values() {
        let poll = procs::poll(node, &entry.dlv_pid.into_iter().collect::<Vec<_>>())?;
        let endpoint = entry.endpoint();
        let dlv_up = !poll.alive.is_empty() && poll.serves(&endpoint);
        let tunnel = records
            .iter()
            .find(|r| r.node == node.describe() && r.component == entry.component && r.alive())
            .map(|r| r.local_port);
        let program = if dlv_up { program_state(node, &endpoint, tunnel) } else { "Delve is not running".into() };
        let socket = entry.listen.socket().map(String::from);
        out.push(ComponentStatus { entry, dlv_up, socket, program, tunnel });
    }
    Ok(out)
}

/// Stops this workstation's tunnels to `node` whose session is over (put back by the node itself,
/// or restored from another workstation): those of components not in `live`, the ones the node's
/// journal holds. `(component, local port)` of each.
pub fn stop_ended_tunnels(
    node: &dyn Node,
    state_dir: &Utf8Path,
    live: &[&str],
) -> Result<Vec<(String, u16)>, SessionError> {
    let stopped = tunnels::stop_ended(state_dir, &node.describe(), live).map_err(|source| SessionError::Local {
        what: "update".into(),
        path: state_dir.join(tunnels::FILE).to_string(),
        source,
    })?;
    Ok(stopped.into_iter().map(|t| (t.component, t.local_port)).collect())
}

/// Delve's state, asked through a forward on localhost:`port`; `timeout` bounds the connect and
/// the call.
pub(crate) fn state_via(port: u16, timeout: Duration) -> Result<DebuggerState, DlvRpcError> {
    let mut dlv = DlvClient::connect(&format!("127.0.0.1:{port}"), timeout)?;
    dlv.call_timeout = timeout;
    dlv.state_nonblocking()
}

/// Asks Delve through the workstation's tunnel, or through a short-lived one.
fn program_state(node: &dyn Node, endpoint: &Endpoint, tunnel: Option<u16>) -> String {
    let (local, _temporary) = match tunnel {
        Some(p) => (p, None),
        None => match node.forward(0, endpoint) {
            Ok(t) => (t.local_port(), Some(t)),
            Err(e) => return format!("unknown (no tunnel: {e})"),
        },
    };
    match state_via(local, Duration::from_secs(5)) {
        Err(e) => format!("unknown ({e})"),
        Ok(s) if s.exited => format!("exited (status {})", s.exit_status),
        Ok(s) if s.running => "running".into(),
        Ok(s) => match s.current_thread {
            Some(l) => format!("halted at {}:{}", l.file, l.line),
            None => "halted".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::journal::testdata;

    /// `kdbg status --json` reads as it did before journal schema 2, byte for byte: from each
    /// schema-1 journal, what the kdbg before printed for it.
    #[test]
    fn status_json_is_unchanged_by_journal_schema_2() {
        for (name, v1, before) in testdata::ALL {
            let journal = journal::parse(v1.as_bytes()).unwrap();
            let states: Vec<ComponentStatus> = journal
                .components
                .into_values()
                .map(|entry| {
                    let socket = entry.listen.socket().map(String::from);
                    ComponentStatus { entry, dlv_up: true, socket, program: "running".into(), tunnel: Some(40001) }
                })
                .collect();
            let doc = serde_json::json!({ "node": "docker@192.168.49.2", "components": states });
            assert_eq!(serde_json::to_string_pretty(&doc).unwrap() + "\n", before, "{name}");
        }
    }
}
