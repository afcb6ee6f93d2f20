//! A test node running the fixture's release-built kube-apiserver from a kubeadm-shaped static pod: what the demo, the session tests and the benches debug.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{TestNode, TestNodeConfig};

/// The apiserver's port on the node (each node has its own network namespace).
pub const API_PORT: u16 = 8443;
/// Where the original, release-built apiserver lives on the node (minikube keeps binaries there).
pub const RELEASE_BIN: &str = "/var/lib/minikube/binaries/kube-apiserver";
/// Debian's Go, which builds the 1.20-era fixture (and the release binary the node runs).
pub const GO_BIN: &str = crate::toolchain::DEFAULT_GO_BIN;

/// `make all WHAT=cmd/<name>` with the default (release) flags in `tree`: stripped and
/// optimised, what a cluster runs. Returns the binary.
pub fn release_build(tree: &Path, name: &str) -> Result<PathBuf> {
    let out = std::process::Command::new("make")
        .args(["all", &format!("WHAT=cmd/{name}")])
        .current_dir(tree)
        .env("PATH", format!("{GO_BIN}:/usr/bin:/bin"))
        .output()
        .context("running make")?;
    if !out.status.success() {
        bail!("make all WHAT=cmd/{name} failed in {}:\n{}", tree.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(tree.join(format!("_output/bin/{name}")))
}

/// The apiserver's static pod as kubeadm v1.20 writes it (minikube's paths), serving plain HTTP
/// (the fixture's stand-in for TLS) on the node's address; `env` entries are added to the container.
pub fn apiserver_manifest(ip: std::net::Ipv4Addr, env: &[(&str, &str)]) -> String {
    let mut env_yaml = String::new();
    if !env.is_empty() {
        env_yaml.push_str("    env:\n");
        for (k, v) in env {
            env_yaml.push_str(&format!("    - name: {k}\n      value: {v}\n"));
        }
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    \
         kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {ip}:{API_PORT}\n  \
         labels:\n    component: kube-apiserver\n    tier: control-plane\n  name: kube-apiserver\n  \
         namespace: kube-system\nspec:\n  containers:\n  - command:\n    - {RELEASE_BIN}\n    \
         - --advertise-address={ip}\n    - --allow-privileged=true\n    - --bind-address={ip}\n    \
         - --client-ca-file=/var/lib/minikube/certs/ca.crt\n    - --etcd-servers=http://127.0.0.1:2379\n    \
         - --secure-port={API_PORT}\n    - --service-account-issuer=https://kubernetes.default.svc.cluster.local\n    \
         - --service-account-key-file=/var/lib/minikube/certs/sa.pub\n    \
         - --service-account-signing-key-file=/var/lib/minikube/certs/sa.key\n{env_yaml}    \
         image: registry.k8s.io/kube-apiserver:v1.20.2\n    imagePullPolicy: IfNotPresent\n    \
         name: kube-apiserver\n  hostNetwork: true\n  priorityClassName: system-node-critical\nstatus: {{}}\n"
    )
}

/// `--target ssh://docker@IP --identity KEY --ssh-option UserKnownHostsFile=KH`: how kdbg reaches `node`.
pub fn target_args(node: &TestNode) -> Vec<String> {
    vec![
        "--target".into(),
        node.ssh_target(),
        "--identity".into(),
        node.identity().display().to_string(),
        "--ssh-option".into(),
        format!("UserKnownHostsFile={}", node.known_hosts().display()),
    ]
}

/// [`target_args`] for several nodes in one kdbg run: each node's `--target`, the first one's
/// `--identity`, the others' keys as `IdentityFile` options, and every node's host key.
pub fn targets_args(nodes: &[&TestNode]) -> Vec<String> {
    let mut out: Vec<String> = nodes.iter().flat_map(|n| ["--target".to_string(), n.ssh_target()]).collect();
    out.extend(["--identity".to_string(), nodes[0].identity().display().to_string()]);
    for n in &nodes[1..] {
        out.extend(["--ssh-option".to_string(), format!("IdentityFile={}", n.identity().display())]);
    }
    let known: Vec<String> = nodes.iter().map(|n| n.known_hosts().display().to_string()).collect();
    out.extend(["--ssh-option".to_string(), format!("UserKnownHostsFile={}", known.join(" "))]);
    out
}

/// The arguments a manifest gives its container (`- --flag=value` lines).
pub fn manifest_args(manifest: &str) -> Vec<String> {
    manifest.lines().filter_map(|l| l.trim().strip_prefix("- --")).map(|a| format!("--{a}")).collect()
}

/// Brings a node up with `release_bin` installed as the original apiserver and its manifest in
/// place, and waits until it serves `/healthz`.
pub fn apiserver_node(config: TestNodeConfig, release_bin: &Path, env: &[(&str, &str)]) -> Result<(TestNode, String)> {
    let node = TestNode::up(config)?;
    let bin = node.host_path(RELEASE_BIN);
    std::fs::create_dir_all(bin.parent().expect("absolute"))?;
    std::fs::copy(release_bin, &bin).context("installing the release apiserver on the node")?;
    let manifest = apiserver_manifest(node.ip(), env);
    std::fs::write(node.manifests_dir().join("kube-apiserver.yaml"), &manifest)?;
    wait_healthz(&node, Duration::from_secs(60))?;
    Ok((node, manifest))
}

/// A plain HTTP/1.0 GET to the node's apiserver; the whole response, headers included.
pub fn get(node: &TestNode, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(node.ip(), API_PORT).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The body of a response from [`get`].
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

pub fn wait_healthz(node: &TestNode, timeout: Duration) -> Result<()> {
    let ok = crate::sys::wait_for(timeout, Duration::from_millis(50), || {
        get(node, "/healthz").ok().filter(|r| body(r) == "ok")
    });
    match ok {
        Some(_) => Ok(()),
        None => bail!("the apiserver on {} does not serve /healthz\n{}", node.ip(), node.logs()),
    }
}

/// The fixture's healthz handler (relative to `tree`), whichever era the tree is.
pub fn healthz_file(tree: &Path) -> &'static str {
    crate::fixture::Era::of(tree).healthz()
}

/// The line of the fixture's healthz handler that carries the breakpoint marker.
pub fn breakpoint_line(tree: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(tree.join(healthz_file(tree)))?;
    let n = text.lines().position(|l| l.contains("kdbg-fixture: breakpoint here")).context("no breakpoint marker")?;
    Ok(n as u32 + 1)
}
