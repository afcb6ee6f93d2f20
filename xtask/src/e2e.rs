//! `cargo xtask e2e k8s`: debug a real kube-apiserver (and scheduler, controller-manager) against
//! real etcd on a minikube-shaped test node, then restore it; every stage is timed.

mod cluster;
mod pki;
mod source;
mod swap;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_tests::{TestNode, TestNodeConfig};
use xshell::{cmd, Shell};

pub const COMPONENTS: &[&str] = &["kube-apiserver", "kube-scheduler", "kube-controller-manager"];

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("k8s") => k8s(sh),
        _ => bail!("usage: cargo xtask e2e k8s"),
    }
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
            println!("  {name:<60} {:>8.1} s", d.as_secs_f64());
        }
    }
}

fn k8s(sh: &Shell) -> Result<()> {
    let mut stages = Stages::default();
    let result = k8s_stages(sh, &mut stages);
    stages.print();
    result
}

fn k8s_stages(sh: &Shell, stages: &mut Stages) -> Result<()> {
    let cache = Utf8PathBuf::from(std::env::var("KDBG_E2E_CACHE").unwrap_or_else(|_| "/var/cache/kdbg-e2e".into()));
    stages.run("install packages", || {
        crate::setup::ensure_packages(sh)?;
        crate::setup::ensure_extra(
            sh,
            &[("/usr/bin/dpkg-source", "dpkg-dev"), ("kubectl", "kubernetes-client"), ("/usr/bin/curl", "curl")],
        )
    })?;
    let tree = stages.run("fetch kubernetes source (apt-get source kubernetes)", || source::fetch(sh, &cache))?;
    let release = cache.join("release");
    stages.run("release build of apiserver, scheduler, controller-manager", || {
        source::release_build(sh, &tree, &release, COMPONENTS)
    })?;
    let bins = stages.run("build kdbg and the test node", || build_tools(sh))?;
    let node = stages.run("test node up", || {
        let mut config = TestNodeConfig::unique("e2e").bin(bins.join("kdbg-testnode"));
        config.ready_timeout = Duration::from_secs(20);
        TestNode::up(config)
    })?;
    // Holds the generated PKI (private keys): removed on every exit path, after the restore.
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-e2e-").tempdir()?;
    let scratch = Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    let admin = stages.run("control plane up: etcd, kube-apiserver, scheduler, controller-manager", || {
        swap::control_plane_up(sh, &node, &release, &scratch)
    })?;
    let kdbg = swap::Kdbg { bin: bins.join("kdbg"), node: &node, tree: &tree };
    // From here on, every exit path restores the node.
    let _restore = swap::RestoreGuard(&kdbg);
    swap::debug_apiserver(sh, stages, &kdbg, &admin)?;
    swap::debug_scheduler_and_cm(sh, stages, &kdbg, &admin)?;
    Ok(())
}

fn build_tools(sh: &Shell) -> Result<Utf8PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd!(sh, "{cargo} build --quiet -p kdbg-cli -p kdbg-tests --bins").run()?;
    Ok(crate::target_dir().join("debug"))
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

pub fn copy_into(node: &TestNode, host_file: &Utf8Path, node_path: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dst = node.host_path(node_path);
    std::fs::create_dir_all(dst.parent().expect("absolute node path"))?;
    std::fs::copy(host_file, &dst).with_context(|| format!("copying {host_file} to the node's {node_path}"))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}
