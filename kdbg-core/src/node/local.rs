//! The local transport: this host is the node (a kubeadm cluster on the workstation itself).

use std::net::{Ipv4Addr, TcpStream};

use super::shell::{ShellNode, Transport};
use super::tunnel::{Direct, ProxyTunnel};
use super::{Endpoint, NodeError, Privilege, Tunnel};
use crate::host::Cmd;

/// Runs node commands as local processes; `sudo -n` for root commands unless kdbg is root.
pub(crate) struct LocalTransport {
    root: bool,
}

pub(crate) type LocalNode = ShellNode<LocalTransport>;

pub(crate) fn node() -> LocalNode {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    ShellNode::new(LocalTransport { root })
}

impl Transport for LocalTransport {
    fn describe(&self) -> String {
        "this host (local)".into()
    }

    fn command(&self, argv: &[&str], privilege: Privilege) -> Cmd {
        if privilege == Privilege::Root && !self.root {
            Cmd::new("sudo").args(["-n", "--"]).args(argv.iter().copied())
        } else {
            Cmd::new(argv[0]).args(argv[1..].iter().copied())
        }
    }

    fn compress(&self) -> bool {
        false
    }

    /// A port on this host needs no forward; a socket gets a proxy thread (it ends with kdbg, which
    /// is one reason `kdbg debug` keeps Delve on TCP for the local target).
    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        let to = to.clone();
        if let Endpoint::Loopback(port) = to {
            if local_port == port || local_port == 0 {
                return Ok(Box::new(Direct(port)));
            }
        }
        let tunnel = ProxyTunnel::start(local_port, move || match &to {
            Endpoint::Loopback(port) => {
                let s = TcpStream::connect((Ipv4Addr::LOCALHOST, *port))?;
                Ok((Box::new(s.try_clone()?) as _, Box::new(s) as _))
            }
            Endpoint::Socket(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)?;
                Ok((Box::new(s.try_clone()?) as _, Box::new(s) as _))
            }
        })
        .map_err(|e| NodeError::other(self.describe(), format!("listen on localhost:{local_port}"), e))?;
        Ok(Box::new(tunnel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::BIN_DIR;
    use crate::node::Node;

    #[test]
    fn root_commands_use_sudo_only_when_not_root() {
        let user = LocalTransport { root: false };
        assert_eq!(user.command(&["id", "-u"], Privilege::Root).display(), "sudo -n -- id -u");
        assert_eq!(user.command(&["id", "-u"], Privilege::User).display(), "id -u");
        let root = LocalTransport { root: true };
        assert_eq!(root.command(&["id", "-u"], Privilege::Root).display(), "id -u");
    }

    /// The shared `Node` methods, on this host: files, hashes in one round trip, atomic copies.
    #[test]
    fn shell_node_methods_work_here() {
        let dir = tempfile::tempdir().unwrap();
        let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
        let node = ShellNode::new(LocalTransport { root: true }); // no sudo needed in a temp dir
        let (a, missing) = (dir.join("sub/a"), dir.join("missing"));
        node.write_file(a.as_str(), b"hello", 0o600, Privilege::User).unwrap();
        assert_eq!(node.read_file(a.as_str(), Privilege::User).unwrap().unwrap(), b"hello");
        assert_eq!(node.read_file(missing.as_str(), Privilege::User).unwrap(), None);
        let before = node.round_trips();
        let shas = node.sha256s(&[a.as_str(), missing.as_str()]).unwrap();
        assert_eq!(node.round_trips(), before + 1);
        assert_eq!(shas[0].as_deref(), Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        assert_eq!(shas[1], None);
        let src = dir.join("src");
        std::fs::write(&src, vec![7u8; 300_000]).unwrap();
        let dst = dir.join("bin/tool");
        let stats = node.copy_to(&src, dst.as_str(), 0o755).unwrap();
        assert_eq!((stats.file_bytes, stats.wire_bytes), (300_000, 300_000));
        assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 300_000]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dst).unwrap().permissions().mode() & 0o777, 0o755);
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("bin")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers, ["tool"]);
        assert_eq!(node.platform().unwrap().0, "linux");
        assert!(BIN_DIR.starts_with("/var/lib/kdbg"));
    }
}
