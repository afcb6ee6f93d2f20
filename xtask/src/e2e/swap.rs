//! The heart of the e2e tier: bring up the control plane, swap components for kdbg debug builds, hit a breakpoint, restore.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_core::dlv::DlvClient;
use kdbg_tests::TestNode;
use xshell::{cmd, Shell};

use super::cluster::{self, APISERVER_PORT, BINARIES};
use super::{copy_into, pki, wait_until, Stages, COMPONENTS};

/// The apiserver's `/healthz` handler (GOPATH-mode trees vendor staging under k8s.io/kubernetes/vendor).
const HEALTHZ_FN: &str = "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/server/healthz.handleRootHealth.func1";
const SLOW: Duration = Duration::from_secs(240);

pub struct Kdbg<'a> {
    pub bin: Utf8PathBuf,
    pub node: &'a TestNode,
    pub tree: &'a Utf8Path,
}

impl Kdbg<'_> {
    fn src_args(&self) -> Vec<String> {
        vec!["--src".into(), self.tree.to_string(), "--kube-version".into(), "v1.20.2".into()]
    }
    /// `kdbg <args>`: with the target flags unless it is `build`, with the tree flags if asked.
    fn run(&self, sh: &Shell, args: &[&str], with_src: bool) -> Result<()> {
        let bin = &self.bin;
        let target = if args.first() == Some(&"build") { vec![] } else { kdbg_tests::lab::target_args(self.node) };
        let src = if with_src { self.src_args() } else { vec![] };
        cmd!(sh, "{bin} {args...} {target...} {src...}").run()?;
        Ok(())
    }
}

/// Whatever happened, put the node back (`kdbg restore` reads the node's journal).
pub struct RestoreGuard<'a>(pub &'a Kdbg<'a>);

impl Drop for RestoreGuard<'_> {
    fn drop(&mut self) {
        let sh = Shell::new().expect("shell");
        eprintln!("e2e: restoring the node (kdbg restore)");
        if let Err(e) = self.0.run(&sh, &["restore"], false) {
            eprintln!("e2e: kdbg restore failed: {e:#}");
        }
    }
}

/// Certificates, kubeconfigs, release binaries and manifests into the node; waits for health.
/// Returns the host-side admin kubeconfig.
pub fn control_plane_up(sh: &Shell, node: &TestNode, release: &Utf8Path, scratch: &Utf8Path) -> Result<Utf8PathBuf> {
    let pki_dir = scratch.join("pki");
    let kubeconfigs = pki::generate(sh, &pki_dir, node.ip(), APISERVER_PORT)?;
    copy_tree(node, &pki_dir, pki::CERTS)?;
    for c in ["scheduler", "controller-manager"] {
        copy_into(node, &kubeconfigs.join(format!("{c}.conf")), &format!("/etc/kubernetes/{c}.conf"), 0o600)?;
    }
    for c in COMPONENTS {
        copy_into(node, &release.join(c), &format!("{BINARIES}/{c}"), 0o755)?;
    }
    let manifests = Utf8PathBuf::try_from(node.manifests_dir())?;
    std::fs::write(manifests.join("etcd.yaml"), cluster::etcd())?;
    std::fs::write(manifests.join("kube-apiserver.yaml"), cluster::apiserver(node.ip()))?;
    let healthz = format!("https://{}:{APISERVER_PORT}/healthz", node.ip());
    wait_until("the release kube-apiserver's /healthz", SLOW, || curl(sh, &healthz).is_ok_and(|b| b == "ok"))?;
    std::fs::write(manifests.join("kube-scheduler.yaml"), cluster::scheduler())?;
    std::fs::write(manifests.join("kube-controller-manager.yaml"), cluster::controller_manager())?;
    for port in [10259, 10257] {
        wait_until(&format!("/healthz on the node's 127.0.0.1:{port}"), SLOW, || node_healthz(node, port))?;
    }
    Ok(kubeconfigs.join("admin.conf"))
}

pub fn debug_apiserver(sh: &Shell, stages: &mut Stages, kdbg: &Kdbg, admin: &Utf8Path) -> Result<()> {
    let before = snapshot(kdbg.node)?;
    stages.run("kdbg build apiserver scheduler cm (debug build; cold on a fresh machine)", || {
        kdbg.run(sh, &["build", "apiserver", "scheduler", "cm"], true)
    })?;
    stages.run("kdbg debug apiserver (copy, capture args, stop, dlv, tunnel)", || {
        kdbg.run(sh, &["debug", "apiserver", "--no-ide"], true)
    })?;
    let healthz = format!("https://{}:{APISERVER_PORT}/healthz", kdbg.node.ip());
    stages.run("debug kube-apiserver answers /healthz", || {
        wait_until("the debug kube-apiserver's /healthz", SLOW, || curl(sh, &healthz).is_ok_and(|b| b == "ok"))
    })?;
    stages.run("breakpoint in the /healthz handler is hit, continue -> ok", || breakpoint_roundtrip(&healthz))?;
    stages.run("kubectl get namespaces through the debugged apiserver", || {
        let out = cmd!(sh, "kubectl --kubeconfig {admin} get namespaces").read()?;
        ensure!(out.contains("default") && out.contains("kube-system"), "unexpected namespaces:\n{out}");
        println!("{out}");
        Ok(())
    })?;
    stages.run("kdbg restore apiserver -> the original runs again", || {
        kdbg.run(sh, &["restore", "apiserver"], false)?;
        wait_until("the release kube-apiserver's /healthz after restore", SLOW, || {
            curl(sh, &healthz).is_ok_and(|b| b == "ok")
        })?;
        ensure!(snapshot(kdbg.node)? == before, "the manifests directory differs from before the debug session");
        let ps = kdbg.node.sh("ps -eo args")?;
        ensure!(!ps.contains("dlv"), "dlv still runs on the node:\n{ps}");
        ensure!(ps.contains(&format!("{BINARIES}/kube-apiserver")), "the release apiserver is not running:\n{ps}");
        Ok(())
    })
}

pub fn debug_scheduler_and_cm(sh: &Shell, stages: &mut Stages, kdbg: &Kdbg, _admin: &Utf8Path) -> Result<()> {
    let before = snapshot(kdbg.node)?;
    stages.run("kdbg debug scheduler cm --leader-elect=false", || {
        kdbg.run(sh, &["debug", "scheduler", "cm", "--leader-elect=false", "--no-ide"], true)
    })?;
    stages.run("debug scheduler and controller-manager are healthy, without leader election", || {
        for port in [10259, 10257] {
            wait_until(&format!("/healthz on 127.0.0.1:{port} under dlv"), SLOW, || node_healthz(kdbg.node, port))?;
        }
        let ps = kdbg.node.sh("ps -eo args")?;
        for c in ["kube-scheduler", "kube-controller-manager"] {
            let line = ps
                .lines()
                .find(|l| l.starts_with("/var/lib/kdbg/bin/dlv") && l.contains(&format!("/var/lib/kdbg/bin/{c}")));
            let line = line.with_context(|| format!("no dlv running {c}:\n{ps}"))?;
            ensure!(line.contains("--leader-elect=false"), "{c} runs without --leader-elect=false: {line}");
        }
        Ok(())
    })?;
    stages.run("kdbg restore -> scheduler and controller-manager run from their manifests", || {
        kdbg.run(sh, &["restore"], false)?;
        for port in [10259, 10257] {
            wait_until(&format!("/healthz on 127.0.0.1:{port} after restore"), SLOW, || node_healthz(kdbg.node, port))?;
        }
        ensure!(snapshot(kdbg.node)? == before, "the manifests directory differs from before the debug session");
        Ok(())
    })
}

fn breakpoint_roundtrip(healthz: &str) -> Result<()> {
    let addr = format!("127.0.0.1:{}", 2345);
    let mut dlv = DlvClient::connect(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to dlv through the tunnel at {addr}"))?;
    // Delve answers most calls only while the target is stopped.
    dlv.halt()?;
    let bp = dlv.create_breakpoint_function(HEALTHZ_FN)?;
    eprintln!("e2e: breakpoint {} at {HEALTHZ_FN}", bp.id);
    dlv.continue_async()?;
    let url = healthz.to_string();
    let request = std::thread::spawn(move || {
        let sh = Shell::new().expect("shell");
        cmd!(sh, "curl -sk --max-time 200 {url}").read()
    });
    let state = dlv.wait_stopped(SLOW)?;
    let at = state
        .current_thread
        .as_ref()
        .map(|l| format!("{}:{} {}", l.file, l.line, l.function.as_deref().unwrap_or("?")))
        .unwrap_or_default();
    eprintln!("e2e: stopped at {at}");
    ensure!(at.contains("handleRootHealth"), "stopped somewhere else: {at}");
    dlv.clear_breakpoint(bp.id)?;
    dlv.continue_async()?;
    let body = request.join().expect("request thread")?;
    ensure!(body == "ok", "GET /healthz after continue answered {body:?}");
    Ok(())
}

fn curl(sh: &Shell, url: &str) -> Result<String> {
    Ok(cmd!(sh, "curl -sk --max-time 10 {url}").quiet().ignore_stderr().read()?)
}

fn node_healthz(node: &TestNode, port: u16) -> bool {
    node.sh(&format!("curl -sk --max-time 10 https://127.0.0.1:{port}/healthz")).is_ok_and(|b| b.trim() == "ok")
}

/// Names and contents of the node's manifests directory.
fn snapshot(node: &TestNode) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(node.manifests_dir())? {
        let e = e?;
        files.insert(e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path())?);
    }
    Ok(files)
}

fn copy_tree(node: &TestNode, from: &Utf8Path, node_dir: &str) -> Result<()> {
    for e in from.read_dir_utf8()? {
        let e = e?;
        let p = e.path();
        if p.file_name() == Some("kubeconfigs") {
            continue;
        }
        let dst = format!("{node_dir}/{}", e.file_name());
        if p.is_dir() {
            copy_tree(node, p, &dst)?;
        } else {
            copy_into(node, p, &dst, if e.file_name().ends_with(".key") { 0o600 } else { 0o644 })?;
        }
    }
    Ok(())
}
