//! Tests of the test node harness itself: ssh and sudo, private filesystem and
//! loopback, the static-pod runner, faults, and teardown that leaves nothing.

mod faults;
mod lifecycle;
mod runner;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use kdbg_tests::{TestNode, TestNodeConfig};

/// The harness binary cargo built for these tests.
pub const TESTNODE_BIN: &str = env!("CARGO_BIN_EXE_kdbg-testnode");

/// Brings up a node with a unique name starting with `prefix`.
pub fn up(prefix: &str) -> Result<TestNode> {
    TestNode::up(TestNodeConfig::unique(prefix).bin(TESTNODE_BIN))
}

/// A static pod manifest running `argv` (as kubeadm writes them, abridged).
pub fn pod_yaml(name: &str, argv: &[&str]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\n\
         spec:\n  hostNetwork: true\n  containers:\n  - name: {name}\n    \
         image: registry.k8s.io/{name}:v0.0.0\n    command: {}\n",
        serde_json::to_string(argv).unwrap()
    )
}

/// Connects, reads until the server closes; the greeting of a `listen` helper.
fn greet(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// A `kdbg-testnode listen` process inside the node.
struct Listener<'a> {
    node: &'a TestNode,
    nsenter: Child,
    node_pid: u32,
}

impl Listener<'_> {
    /// Starts `kdbg-testnode listen --addr ADDR` inside the node; returns once
    /// it listens.
    fn start<'a>(node: &'a TestNode, addr: &str) -> Result<Listener<'a>> {
        let mut nsenter = node
            .command(TESTNODE_BIN)
            .args(["listen", "--addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(nsenter.stdout.take().unwrap()).read_line(&mut line)?;
        let node_pid = line.trim().rsplit(' ').next().unwrap_or("").parse();
        let Ok(node_pid) = node_pid else {
            bail!("listener on {addr} did not start: {line:?}");
        };
        Ok(Listener { node, nsenter, node_pid })
    }

    /// Kills the listener inside the node (killing `nsenter` instead would
    /// orphan it to whatever reaper the host has).
    fn stop(mut self) -> Result<()> {
        self.node.sh(&format!("kill {}", self.node_pid))?;
        self.nsenter.wait()?;
        Ok(())
    }
}

#[test]
fn ssh_as_docker_with_passwordless_sudo() -> Result<()> {
    let node = up("ssh")?;
    assert!(node.ssh_target().starts_with("ssh://docker@10.213."));
    assert_eq!(node.ssh_target(), format!("ssh://docker@{}", node.ip()));
    std::fs::write(node.manifests_dir().join("probe.yaml"), pod_yaml("probe", &["sleep", "1000"]))?;
    let out = node.ssh("id -un; hostname; sudo -n ls /etc/kubernetes/manifests")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "ssh failed: {out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["docker", node.name(), "probe.yaml"], "{out:?}");

    // The generated client config works too, by host alias.
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(node.ssh_config())
        .args([node.netns(), "sudo -n id -u"])
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");

    // scp (sftp) puts files where kdbg puts binaries.
    let local = node.state_dir().join("scp-me");
    std::fs::write(&local, "payload\n")?;
    let out = std::process::Command::new("scp")
        .args(node.ssh_args())
        .arg(&local)
        .arg(format!("docker@{}:/home/docker/scp-me", node.ip()))
        .stdin(Stdio::null())
        .output()?;
    ensure!(out.status.success(), "scp: {out:?}");
    assert_eq!(std::fs::read_to_string(node.host_path("/home/docker/scp-me"))?, "payload\n");

    // An ssh stdio forward reaches a listener on the node's loopback (what
    // kdbg does for dlv).
    let listener = Listener::start(&node, "127.0.0.1:23450")?;
    let out = node.ssh_command().args(["-W", "127.0.0.1:23450"]).output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kdbg-testnode\n", "{out:?}");
    listener.stop()
}

#[test]
fn node_filesystem_is_its_own() -> Result<()> {
    let host_paths = lifecycle::host_paths();
    let node = up("fs")?;
    // Host -> node: a file written under root() is the node's.
    std::fs::write(node.host_path("/etc/kubernetes/from-host"), "h\n")?;
    assert_eq!(node.sh("cat /etc/kubernetes/from-host")?, "h\n");
    // Node -> host side, and never into the host's own /etc/kubernetes.
    let out = node.ssh("echo n | sudo -n tee /etc/kubernetes/from-node >/dev/null")?;
    ensure!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(node.host_path("/etc/kubernetes/from-node"))?, "n\n");
    assert!(!Path::new("/etc/kubernetes/from-node").exists());
    assert!(!Path::new("/etc/kubernetes/from-host").exists());
    // kubeadm's and minikube's paths exist in the node, and only there.
    node.sh("test -d /var/lib/minikube/certs && test -d /var/lib/kubelet && test -d /var/lib/kdbg")?;
    assert_eq!(node.sh("stat -c %U /home/docker")?.trim(), "docker");
    assert!(node.sh("getent passwd docker")?.contains("/home/docker:/bin/bash"));
    assert!(!std::fs::read_to_string("/etc/passwd")?.contains("docker:x:"));
    // Whatever else the node writes stays in the node, and its /tmp is its own.
    let elsewhere = ["/tmp", "/usr/local/bin", "/root", "/var/tmp", "/opt"].map(|d| format!("{d}/kdbg-node-only"));
    node.sh(&format!("touch {}", elsewhere.join(" ")))?;
    for path in &elsewhere {
        assert!(!Path::new(path).exists(), "{path} reached the host");
    }
    let host_tmp = format!("/tmp/kdbg-host-only-{}", std::process::id());
    std::fs::write(&host_tmp, "")?;
    let seen = node.exec(["test", "-e", &host_tmp])?.status.success();
    std::fs::remove_file(&host_tmp)?;
    assert!(!seen, "the node sees the host's /tmp");
    assert_eq!(lifecycle::host_paths(), host_paths, "the node changed host paths");
    // Its own pid namespace: the runner is a child of the node's pid 1.
    assert_eq!(node.sh("cat /proc/1/comm")?.trim(), "kdbg-testnode");
    drop(node);
    assert_eq!(lifecycle::host_paths(), host_paths);
    Ok(())
}

#[test]
fn loopback_inside_is_unreachable_from_host() -> Result<()> {
    let node = up("net")?;
    let local = Listener::start(&node, "127.0.0.1:23451")?;
    let public = Listener::start(&node, &format!("{}:23452", node.ip()))?;
    // Inside the node, both answer.
    let probe = "exec 3<>/dev/tcp/$0/$1 && cat <&3";
    let out = node.exec(["bash", "-c", probe, "127.0.0.1", "23451"])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kdbg-testnode\n", "{out:?}");
    // From the host: the node-IP listener answers...
    assert_eq!(greet(SocketAddr::from((node.ip(), 23452)))?, "kdbg-testnode\n");
    // ...the loopback one cannot be reached by any address.
    let refused = greet(SocketAddr::from((node.ip(), 23451)));
    assert!(refused.is_err(), "node loopback reachable via node IP: {refused:?}");
    if let Ok(text) = greet(SocketAddr::from(([127, 0, 0, 1], 23451))) {
        assert_ne!(text, "kdbg-testnode\n", "node loopback reachable via host loopback");
    }
    // And the node has no route but its own link (checked, not tried).
    let routes = node.sh("ip -4 route show")?;
    let net = format!("10.213.{}.0/24 ", node.info().index);
    assert!(routes.lines().all(|l| l.starts_with(&net)), "node routes: {routes}");
    local.stop()?;
    public.stop()
}

/// Fails with the node's logs if `cond` is false.
pub fn check(node: &TestNode, cond: bool, what: &str) -> Result<()> {
    if !cond {
        bail!("{what}\n{}", node.logs());
    }
    Ok(())
}

/// Waits for a condition on the node, with the node's logs on timeout.
pub fn wait(node: &TestNode, secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let ok = kdbg_tests::sys::wait_for(Duration::from_secs(secs), Duration::from_millis(50), || f().then_some(()));
    ok.with_context(|| format!("timed out: {what}\n{}", node.logs()))
}
