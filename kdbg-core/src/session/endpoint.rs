//! Where Delve listens on the node, and the socket directory's life.
//!
//! Preferred: a unix socket, `/var/lib/kdbg/run/<component>/dlv.sock`, in a directory of mode 0700
//! owned by the login user (root for kind and local). The forward reaches it as that user (sshd's
//! streamlocal forward, or `socat UNIX-CONNECT:` through `docker exec`); no other local user of
//! the node can enter the directory, so none can reach Delve. Delve runs as root and creates the
//! socket as root, so once it listens kdbg hands the socket to the directory's owner (mode 0600).
//! Delve's same-user check (`--only-same-user`) applies to loopback TCP only (its
//! `sameuser.CanAccept` accepts every non-TCP listener in 1.20 through 1.27), so the socket needs
//! no `--only-same-user=false`; the TCP fallback does (sshd connects as the login user, Delve
//! runs as root).
//!
//! Fallback, with the reason kept in the journal for `kdbg status`: `127.0.0.1:PORT` when Delve
//! is older than 1.22.1, for the local target (the IDE connects on this host; a forward to a
//! socket would be a proxy that ends with kdbg), when the login user cannot enter
//! `/var/lib/kdbg`; `0.0.0.0:PORT` with `--expose`.

use super::listen::Listen;
use super::{preflight, SessionError};
use crate::component::Component;
use crate::deploy::Dlv;
use crate::layout::{socket_path, KDBG_DIR, RUN_DIR};
use crate::node::root_sh;
use crate::node::{Endpoint, Node, Privilege};

/// Where Delve listens, and why it is TCP when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub listen: Listen,
    pub tcp_because: Option<String>,
}

/// What the user asked of Delve's endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// `--expose`: every interface of the node.
    pub expose: bool,
    /// The IDE reaches the node through a forward (every target but `local`).
    pub tunnel: bool,
}

/// The first directory on the way to the socket that the login user cannot enter, if any.
const ENTER: &str = r#"for d; do [ ! -e "$d" ] || [ -x "$d" ] || { echo "$d"; exit 0; }; done"#;

/// Decides where `c`'s Delve listens (see the module doc). Changes nothing on the node; for TCP
/// the node's port must be free.
pub(crate) fn choose(
    node: &dyn Node,
    dlv: &Dlv,
    cfg: &Policy,
    c: &Component,
    port: u16,
) -> Result<Choice, SessionError> {
    let because = if cfg.expose {
        Some("--expose".to_string())
    } else if !cfg.tunnel {
        Some("the local target: the IDE connects on this host".into())
    } else if let Some(gap) = dlv.unix_socket_gap() {
        Some(gap)
    } else {
        let dirs = ["/var", "/var/lib", KDBG_DIR, RUN_DIR];
        let out = node.sh(Privilege::User, ENTER, &dirs)?;
        let closed = out.stdout_str().trim().to_string();
        (!closed.is_empty()).then(|| format!("the login user cannot enter {closed}"))
    };
    let Some(because) = because else {
        return Ok(Choice { listen: Listen::Unix { path: socket_path(c.name) }, tcp_because: None });
    };
    preflight::node_port(node, c, port)?;
    let listen = if cfg.expose { Listen::every_interface(port) } else { Listen::loopback(port) };
    Ok(Choice { listen, tcp_because: Some(because) })
}

/// Makes the socket's directory afresh: mode 0700, owned by the login user (whose ids are asked
/// as that user), inside `/var/lib/kdbg/run` (0755).
pub(crate) fn prepare(node: &dyn Node, socket: &str) -> Result<(), SessionError> {
    let ids = node.sh(Privilege::User, "echo $(id -u):$(id -g)", &[])?;
    let owner = ids.stdout_str().trim().to_string();
    let script = r#"set -eu
d=${1%/*}
mkdir -p -m 0755 "${d%/*}"
rm -rf "$d"
mkdir -m 0700 "$d"
chown "$2" "$d""#;
    root_sh(node, script, &[socket, &owner], &format!("create the socket directory for {socket}"))
        .map(drop)
        .map_err(SessionError::from)
}

/// Once Delve listens: the socket goes to the directory's owner, mode 0600 (Delve made it as root).
pub(crate) fn hand_over(node: &dyn Node, socket: &str) -> Result<(), SessionError> {
    let script = super::scripts::with(&[super::scripts::HAND_OVER], r#"hand_over "$1""#);
    root_sh(node, &script, &[socket], &format!("hand {socket} to the login user")).map(drop).map_err(SessionError::from)
}

/// Removes the socket's directory (and `/var/lib/kdbg/run` once empty); nothing there is fine.
pub(crate) fn remove(node: &dyn Node, socket: &str) -> Result<(), SessionError> {
    let script = r#"d=${1%/*}; rm -rf "$d" && { rmdir "${d%/*}" 2>/dev/null; true; }"#;
    root_sh(node, script, &[socket], &format!("remove {}", socket.rsplit_once('/').map_or(socket, |p| p.0)))
        .map(drop)
        .map_err(SessionError::from)
}

/// The socket of an endpoint, if it is one.
pub(crate) fn socket_of(endpoint: &Endpoint) -> Option<&str> {
    match endpoint {
        Endpoint::Socket(path) => Some(path),
        Endpoint::Loopback(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sits_in_its_components_directory_under_the_run_dir() {
        assert_eq!(socket_path("kube-apiserver"), "/var/lib/kdbg/run/kube-apiserver/dlv.sock");
        let e = Listen::Unix { path: socket_path("kubelet") }.endpoint();
        assert_eq!(socket_of(&e), Some("/var/lib/kdbg/run/kubelet/dlv.sock"));
        assert_eq!(socket_of(&Endpoint::Loopback(2345)), None);
    }
}
