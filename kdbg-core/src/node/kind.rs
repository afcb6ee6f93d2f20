//! The kind transport: `docker exec -i` into the node container (kind nodes run everything as root).
//!
//! Copies stream through `docker exec -i` into the same receiver as every other transport (zstd,
//! temp file, checksum, rename), which `docker cp` could not make atomic. Port forwards are a
//! `socat` on the workstation that runs `docker exec … socat` in the node per connection, so the
//! forward outlives kdbg like an ssh one (without a workstation socat: a proxy thread in kdbg, which
//! ends with it). The real-cluster tier (`cargo xtask e2e k8s`) exercises it against a kind node.

use std::process::Stdio;

use super::shell::{ShellNode, Transport};
use super::tunnel::{ProcessTunnel, ProxyTunnel};
use super::{errors::Fixes, Endpoint, NodeError, NodeOutput, Privilege, Tunnel};
use crate::host::Cmd;

pub(crate) struct DockerTransport {
    pub cluster: String,
    pub container: String,
}

pub(crate) type KindNode = ShellNode<DockerTransport>;

/// The node container of `cluster`: `NODE`, or `<cluster>-control-plane`.
pub(crate) fn node(cluster: &str, node: Option<&str>) -> KindNode {
    let container = node.map_or_else(|| format!("{cluster}-control-plane"), str::to_string);
    ShellNode::new(DockerTransport { cluster: cluster.into(), container })
}

/// Every node container of `cluster` (kind's `io.x-k8s.kind.cluster` label): control-plane
/// nodes first, then the others, each group by name.
pub(crate) fn cluster_nodes(cluster: &str) -> Result<Vec<String>, NodeError> {
    let filter = format!("label=io.x-k8s.kind.cluster={cluster}");
    let format = r#"{{.Label "io.x-k8s.kind.role"}} {{.Names}}"#;
    let listed = Cmd::new("docker").args(["ps", "--filter", filter.as_str(), "--format", format]).read();
    let unreachable = |detail: String| NodeError::Unreachable {
        node: format!("kind cluster {cluster}"),
        detail,
        fix: format!("check that the cluster runs: `kind get nodes --name {cluster}` and `docker ps`"),
    };
    let text = listed.map_err(|e| unreachable(e.to_string()))?;
    let mut nodes: Vec<(bool, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(role, name)| (role != "control-plane", name.to_string()))
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        return Err(unreachable("no running container carries its label".into()));
    }
    Ok(nodes.into_iter().map(|(_, name)| name).collect())
}

impl Transport for DockerTransport {
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

    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        if which::which("socat").is_ok() {
            return self.socat_forward(local_port, to);
        }
        let cmd = self.proxy_backend(to);
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

impl DockerTransport {
    /// A forward that outlives kdbg: the workstation's `socat` listens on 127.0.0.1 and runs
    /// `docker exec … socat` into the node for each connection.
    fn socat_forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        let what = format!("forward localhost:{local_port} to {}'s {to}", self.container);
        let err = |detail: String| NodeError::other(self.describe(), what.clone(), detail);
        let port = match local_port {
            0 => super::tunnel::free_port().map_err(|e| err(e.to_string()))?,
            p => p,
        };
        let log_path = std::env::temp_dir().join(format!("kdbg-forward-{}-{port}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).map_err(|e| err(e.to_string()))?;
        let child = self
            .socat_command(port, to)
            .spawn_with(Stdio::null(), Stdio::null(), Stdio::from(log))
            .map_err(|e| err(e.to_string()))?;
        let tunnel = ProcessTunnel::start(child, port, &log_path).map_err(err);
        let _ = std::fs::remove_file(&log_path);
        Ok(Box::new(tunnel?))
    }

    /// The workstation's `socat` that listens on 127.0.0.1:`port` and, per connection, runs
    /// `docker exec -i NODE socat - TCP:127.0.0.1:P` (or `UNIX-CONNECT:PATH`) in the node.
    pub(crate) fn socat_command(&self, port: u16, to: &Endpoint) -> Cmd {
        Cmd::new("socat").arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork")).arg(format!(
            "EXEC:'docker exec -i {} socat - {}'",
            self.container,
            to.socat()
        ))
    }

    /// The proxy thread's backend (no socat on the workstation): `socat` in the node, its stdio
    /// piped through `docker exec -i`.
    pub(crate) fn proxy_backend(&self, to: &Endpoint) -> Cmd {
        self.command(&["socat", "-", &to.socat()], Privilege::Root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_exec_into_the_control_plane_by_default() {
        let n = node("dev", None);
        assert_eq!(n.transport.container, "dev-control-plane");
        assert_eq!(
            n.transport.command(&["sh", "-c", "echo $1", "x"], Privilege::Root).display(),
            "docker exec -i dev-control-plane sh -c 'echo $1' x"
        );
        assert_eq!(node("dev", Some("dev-worker2")).transport.container, "dev-worker2");
        let tcp = Endpoint::Loopback(2345);
        let sock = Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into());
        expect_test::expect![[r#"socat TCP-LISTEN:2345,bind=127.0.0.1,reuseaddr,fork 'EXEC:'\''docker exec -i dev-control-plane socat - TCP:127.0.0.1:2345'\'''"#]].assert_eq(&n.transport.socat_command(2345, &tcp).display());
        expect_test::expect![[r#"socat TCP-LISTEN:2345,bind=127.0.0.1,reuseaddr,fork 'EXEC:'\''docker exec -i dev-control-plane socat - UNIX-CONNECT:/var/lib/kdbg/run/kube-apiserver/dlv.sock'\'''"#]].assert_eq(&n.transport.socat_command(2345, &sock).display());
        expect_test::expect![
            "docker exec -i dev-control-plane socat - UNIX-CONNECT:/var/lib/kdbg/run/kube-apiserver/dlv.sock"
        ]
        .assert_eq(&n.transport.proxy_backend(&sock).display());
        let gone =
            NodeOutput { status: 1, stdout: vec![], stderr: b"Error: No such container: dev-control-plane\n".to_vec() };
        let e = n.transport.transport_failure(&gone).unwrap().to_string();
        assert!(e.contains("kind node dev-control-plane") && e.contains("kind get nodes --name dev"), "{e}");
    }
}
