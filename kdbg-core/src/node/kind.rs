//! The kind transport: `docker exec -i` into the node container (kind nodes run everything as root).
//!
//! Copies stream through `docker exec -i` into the same receiver as every other transport (zstd,
//! temp file, checksum, rename), which `docker cp` could not make atomic. Port forwards are a
//! proxy in kdbg that runs `socat` in the node container per connection (kind's base image has
//! it). Not exercised by the integration tests (no docker engine there): the command lines are
//! checked as data below.

use std::process::Stdio;

use super::shell::{Runner, ShellNode};
use super::tunnel::ProxyTunnel;
use super::{errors::Fixes, NodeError, NodeOutput, Privilege, Tunnel};
use crate::host::Cmd;

pub struct DockerRunner {
    pub cluster: String,
    pub container: String,
}

pub type KindNode = ShellNode<DockerRunner>;

/// The node container of `cluster`: `NODE`, or `<cluster>-control-plane`.
pub fn node(cluster: &str, node: Option<&str>) -> KindNode {
    let container = node.map_or_else(|| format!("{cluster}-control-plane"), str::to_string);
    ShellNode::new(DockerRunner { cluster: cluster.into(), container })
}

impl Runner for DockerRunner {
    fn describe(&self) -> String {
        format!("kind node {}", self.container)
    }

    fn command(&self, argv: &[&str], _privilege: Privilege) -> Cmd {
        Cmd::new("docker").args(["exec", "-i", self.container.as_str()]).args(argv.iter().copied())
    }

    fn transport_failure(&self, out: &NodeOutput) -> Option<NodeError> {
        let stderr = out.stderr_str();
        let docker_said =
            ["Error: No such container", "Error response from daemon", "Cannot connect to the Docker daemon"];
        docker_said.iter().any(|p| stderr.contains(p)).then(|| NodeError::Unreachable {
            node: self.describe(),
            detail: stderr.trim().to_string(),
            fix: self.fixes().unreachable,
        })
    }

    fn fixes(&self) -> Fixes {
        Fixes {
            unreachable: format!(
                "check that the cluster runs: `kind get nodes --name {}` and `docker ps`; name another node with kind://{}/NODE",
                self.cluster, self.cluster
            ),
            ..Fixes::default()
        }
    }

    fn forward(&self, local_port: u16, remote_port: u16) -> Result<Box<dyn Tunnel>, NodeError> {
        let cmd = self.command(&["socat", "-", &format!("TCP:127.0.0.1:{remote_port}")], Privilege::Root);
        let tunnel = ProxyTunnel::start(local_port, move || {
            let mut child =
                cmd.spawn_with(Stdio::piped(), Stdio::piped(), Stdio::null()).map_err(std::io::Error::other)?;
            let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
            // The child ends when the client closes (socat sees EOF); reap it then.
            std::thread::spawn(move || child.wait());
            Ok((Box::new(stdout) as _, Box::new(stdin) as _))
        })
        .map_err(|e| NodeError::other(self.describe(), format!("listen on localhost:{local_port}"), e))?;
        Ok(Box::new(tunnel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_exec_into_the_control_plane_by_default() {
        let n = node("dev", None);
        assert_eq!(n.runner.container, "dev-control-plane");
        assert_eq!(
            n.runner.command(&["sh", "-c", "echo $1", "x"], Privilege::Root).display(),
            "docker exec -i dev-control-plane sh -c 'echo $1' x"
        );
        assert_eq!(node("dev", Some("dev-worker2")).runner.container, "dev-worker2");
        let gone =
            NodeOutput { status: 1, stdout: vec![], stderr: b"Error: No such container: dev-control-plane\n".to_vec() };
        let e = n.runner.transport_failure(&gone).unwrap().to_string();
        assert!(e.contains("kind node dev-control-plane") && e.contains("kind get nodes --name dev"), "{e}");
    }
}
