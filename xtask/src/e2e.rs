//! `cargo xtask e2e k8s`: the real-cluster tier. Debian's kubernetes 1.20.2 source, its release
//! binaries, a kind-shaped kubeadm node (systemd, containerd, the real kubelet) built and booted
//! locally, `kubeadm init`, then kdbg debugs the apiserver, scheduler, controller-manager and
//! kubelet through `kind://` and `ssh://` and restores each; a v1.30+-era clone (Go 1.27, Delve
//! 1.27 on a unix socket) debugs the scheduler at the node's own version (`--match-node`, a git
//! worktree) through `kind://`; the five debug builds are pushed to a loopback `docker-registry`
//! and an empty kdbg state pulls the scheduler for one flow (`cache`); then a worker joins and kdbg
//! debugs both nodes' kubelets at once (`--all-nodes`); every stage is timed.

mod cache;
mod flows;
mod images;
mod kindcli;
mod lease;
mod modern;
mod multinode;
mod node;
mod proxy;
mod rootfs;
pub(crate) mod source;
mod trace;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camino::Utf8PathBuf;
use xshell::{cmd, Shell};

/// Release binaries the cluster is made of.
pub const COMPONENTS: &[&str] =
    &["kube-apiserver", "kube-scheduler", "kube-controller-manager", "kube-proxy", "kubelet", "kubeadm", "kubectl"];
/// The kind cluster name; its node container is `<CLUSTER>-control-plane`.
const CLUSTER: &str = "kdbg-e2e";

/// One flow through one target.
type Flow = fn(&Shell, &mut Stages, &flows::Kdbg) -> Result<()>;

/// The flows `--only` can pick, in the order they run.
const FLOWS: &[&str] =
    &["apiserver", "scheduler", "kubelet", "proxy", "crash", "modern", "cache", "lease", "reboot", "all-nodes"];

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let usage = || format!("usage: cargo xtask e2e k8s [--only FLOW,...]   (flows: {})", FLOWS.join(", "));
    let only = match args {
        [k8s] if k8s == "k8s" => FLOWS.to_vec(),
        [k8s, flag, list] if k8s == "k8s" && flag == "--only" => {
            let picked: Vec<&str> = list.split(',').collect();
            if let Some(bad) = picked.iter().find(|f| !FLOWS.contains(f)) {
                bail!("unknown flow `{bad}`; {}", usage());
            }
            FLOWS.iter().copied().filter(|f| picked.contains(f)).collect()
        }
        _ => bail!("{}", usage()),
    };
    k8s(sh, &only)
}

/// Prints how long each stage took, as it goes and as a table at the end.
#[derive(Default)]
pub struct Stages(Vec<(String, Duration)>);

impl Stages {
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("\ne2e: == {name}");
        let t = Instant::now();
        let out = f().with_context(|| format!("stage `{name}` failed"));
        let took = t.elapsed();
        eprintln!("e2e: {name}: {} in {:.1}s", if out.is_ok() { "done" } else { "FAILED" }, took.as_secs_f64());
        self.0.push((name.to_string(), took));
        out
    }
    pub fn print(&self) {
        println!("\nstage timings:");
        for (name, d) in &self.0 {
            println!("  {name:<78} {:>8.1} s", d.as_secs_f64());
        }
        let total: Duration = self.0.iter().map(|(_, d)| *d).sum();
        println!("  {:<78} {:>8.1} s", "total", total.as_secs_f64());
    }
}

fn k8s(sh: &Shell, only: &[&str]) -> Result<()> {
    let mut stages = Stages::default();
    let result = k8s_stages(sh, &mut stages, only);
    stages.print();
    result
}

fn k8s_stages(sh: &Shell, stages: &mut Stages, only: &[&str]) -> Result<()> {
    let cache = Utf8PathBuf::from(std::env::var("KDBG_E2E_CACHE").unwrap_or_else(|_| "/var/cache/kdbg-e2e".into()));
    stages.run("install packages", || {
        crate::setup::ensure_packages(sh)?;
        crate::setup::ensure_extra(
            sh,
            &[
                ("/usr/bin/dpkg-source", "dpkg-dev"),
                ("/usr/sbin/debootstrap", "debootstrap"),
                ("/usr/bin/docker", "docker.io"),
                ("/usr/bin/ssh-keyscan", "openssh-client"),
                ("/usr/bin/socat", "socat"),
                (crate::registry::PROGRAM, "docker-registry"),
            ],
        )
    })?;
    let tree = stages.run("fetch kubernetes source (apt-get source kubernetes)", || {
        let tree = source::fetch(sh, &cache)?;
        source::patch_reflect2(sh, &tree)?;
        Ok(tree)
    })?;
    let release = cache.join("release");
    stages.run("release build of the control plane, kube-proxy, kubelet, kubeadm, kubectl", || {
        source::release_build(sh, &tree, &release, COMPONENTS)
    })?;
    let bins = stages.run("build kdbg", || build_tools(sh))?;
    let rootfs = stages.run("node rootfs (debootstrap, cached)", || rootfs::ensure(sh, &cache))?;
    let imgs = stages.run("container images from the release binaries", || {
        images::ensure(sh, &tree, &release, &rootfs, &cache.join("images"))
    })?;
    stages.run("node image into Docker", || node::build_image(sh, CLUSTER, &rootfs, &release, &imgs, &cache))?;
    let kind =
        stages.run("the real kind CLI: kind create cluster --image", || kindcli::attempt(sh, &cache, node::IMAGE))?;
    println!("e2e: {kind}");
    let mut cluster = stages.run("node container up (systemd, containerd, images imported)", || {
        let c = node::Cluster::start(sh, CLUSTER)?;
        c.wait_booted(sh)?;
        Ok(c)
    })?;
    stages.run("kubeadm init; node Ready; kube-system pods Running", || cluster.kubeadm_init(sh))?;
    stages.run("kubelet healthz moved to 10348 in its config file", || cluster.move_kubelet_healthz_port(sh, 10348))?;
    stages.run("kdbg build apiserver scheduler cm kubelet proxy (debug build)", || {
        let bin = bins.join("kdbg");
        cmd!(sh, "{bin} build apiserver scheduler cm kubelet proxy --src {tree} --kube-version v1.20.2").run()?;
        Ok(())
    })?;
    // Holds the ssh key for the node: removed on every exit path.
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-e2e-").tempdir()?;
    let scratch = Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    let ssh = stages.run("ssh access to the node's docker user", || flows::ssh_target(sh, &cluster, &scratch))?;
    let kind_target = vec!["--target".to_string(), format!("kind://{CLUSTER}")];
    for (via, target) in [("kind://", kind_target.clone()), ("ssh://", ssh)] {
        let k = flows::Kdbg { bin: bins.join("kdbg"), tree: &tree, cluster: &cluster, target, via };
        // From here on, every exit path restores the node.
        let _restore = flows::RestoreGuard(&k);
        let flows: [(&str, Flow); 8] = [
            ("apiserver", flows::apiserver),
            ("scheduler", flows::scheduler_and_cm),
            ("kubelet", flows::kubelet),
            ("proxy", proxy::proxy),
            ("crash", flows::crash_apiserver),
            ("modern", modern::scheduler_at_the_nodes_version_on_a_socket),
            ("cache", cache::scheduler_pulled),
            ("lease", lease::lease_expires),
        ];
        // The crash logic and the cache's pull are the same through every transport, and ssh's
        // socket forward is run by the fast tier: once, through kind://, is enough for those.
        let kind_only = ["crash", "modern", "cache", "lease"];
        for (name, flow) in flows {
            if only.contains(&name) && (!kind_only.contains(&name) || via == "kind://") {
                flow(sh, stages, &k)?;
            }
        }
    }
    if only.contains(&"reboot") {
        // Last on the one-node cluster: a restarted container could come back on another address.
        let k =
            flows::Kdbg { bin: bins.join("kdbg"), tree: &tree, cluster: &cluster, target: kind_target, via: "kind://" };
        let _restore = flows::RestoreGuard(&k);
        lease::reboot(sh, stages, &k)?;
    }
    if !only.contains(&"all-nodes") {
        println!("e2e: {kind}");
        return Ok(());
    }
    stages.run("a worker joins (kubeadm join); both nodes Ready", || cluster.join_worker(sh, CLUSTER))?;
    let all = vec!["--target".to_string(), format!("kind://{CLUSTER}"), "--all-nodes".to_string()];
    let k =
        flows::Kdbg { bin: bins.join("kdbg"), tree: &tree, cluster: &cluster, target: all, via: "kind:// --all-nodes" };
    let _restore = flows::RestoreGuard(&k);
    multinode::kubelet_all_nodes(sh, stages, &k, CLUSTER)?;
    println!("e2e: {kind}");
    Ok(())
}

pub(crate) fn build_tools(sh: &Shell) -> Result<Utf8PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd!(sh, "{cargo} build --quiet -p kdbg-cli --bins").run()?;
    Ok(crate::target_dir().join("debug"))
}

/// Runs `sh -c SCRIPT sh ARGS...` with its output in `log`; on failure the error holds the log's
/// last lines.
pub fn run_logged(sh: &Shell, script: &str, args: &[&str], log: &camino::Utf8Path) -> Result<()> {
    let wrapped = format!("{{ {script}; }} > \"$0\" 2>&1");
    if cmd!(sh, "sh -c {wrapped} {log} {args...}").run().is_ok() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(25).collect();
    bail!("last lines of {log}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("timed out after {}s waiting for {what}", timeout.as_secs())
}
