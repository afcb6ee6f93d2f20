//! The kdbg flows against the real cluster, through one target (`kind://` or `ssh://`): debug a
//! component, prove it works (breakpoint hit, the cluster answers), restore, and check the node is
//! exactly as before.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_core::dlv::DlvClient;
use xshell::{cmd, Shell};

use super::node::Cluster;
use super::{wait_until, Stages};

/// The apiserver's `/healthz` handler (GOPATH-mode trees vendor staging under k8s.io/kubernetes/vendor).
pub(super) const HEALTHZ_FN: &str =
    "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/server/healthz.handleRootHealth.func1";
/// Through Delve on localhost:`dlv_port`, a breakpoint in the `/healthz` handler is hit by a GET
/// of `https://127.0.0.1:<https_port>/healthz` in the node, which answers `ok` after continue.
pub(super) fn healthz_breakpoint(c: &Cluster, dlv_port: u16, https_port: u16) -> Result<()> {
    let container = c.container.clone();
    let at = breakpoint(dlv_port, HEALTHZ_FN, move || {
        let sh = Shell::new()?;
        let url = format!("https://127.0.0.1:{https_port}/healthz");
        let body = cmd!(sh, "docker exec {container} curl -sk --max-time 200 {url}").read()?;
        ensure!(body == "ok", "GET /healthz after continue answered {body:?}");
        Ok(())
    })?;
    eprintln!("e2e: stopped at {at}");
    ensure!(at.contains("handleRootHealth"), "stopped somewhere else: {at}");
    Ok(())
}

/// The kubelet's sync loop: one iteration at least every second.
pub(super) const SYNC_LOOP_FN: &str = "k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoopIteration";
pub(super) const SLOW: Duration = Duration::from_secs(240);

/// kdbg pointed at the cluster through one transport.
pub struct Kdbg<'a> {
    pub bin: Utf8PathBuf,
    pub tree: &'a Utf8Path,
    pub cluster: &'a Cluster,
    /// `kind://…` or `ssh://…` with its flags.
    pub target: Vec<String>,
    /// Names the transport in stage names.
    pub via: &'static str,
}

impl Kdbg<'_> {
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // `build` and `cache push|ls` need a tree, not a node.
        if !matches!(args.first(), Some(&"build") | Some(&"cache")) {
            v.extend(self.target.iter().cloned());
        }
        if matches!(args.first(), Some(&"build") | Some(&"cache") | Some(&"debug") | Some(&"trace")) {
            v.extend(["--src".into(), self.tree.to_string(), "--kube-version".into(), "v1.20.2".into()]);
        }
        v
    }
    pub fn run(&self, sh: &Shell, args: &[&str]) -> Result<()> {
        let bin = &self.bin;
        let args = self.args(args);
        cmd!(sh, "{bin} {args...}").run()?;
        Ok(())
    }
    /// Runs kdbg; returns its stdout (stderr goes to the log), failing if it failed.
    pub fn stdout(&self, sh: &Shell, args: &[&str]) -> Result<String> {
        let bin = &self.bin;
        let argv = self.args(args);
        Ok(cmd!(sh, "{bin} {argv...}").read()?)
    }
    /// Runs kdbg; returns what it printed (stdout and stderr), failing if it failed.
    pub(super) fn output(&self, sh: &Shell, args: &[&str]) -> Result<String> {
        let (ok, text) = self.attempt(sh, args)?;
        ensure!(ok, "kdbg {} failed", args.join(" "));
        Ok(text)
    }
    /// Runs kdbg; returns whether it succeeded and what it printed (stdout and stderr).
    pub(super) fn attempt(&self, sh: &Shell, args: &[&str]) -> Result<(bool, String)> {
        let bin = &self.bin;
        let argv = self.args(args);
        let out = cmd!(sh, "{bin} {argv...}").ignore_status().output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{text}");
        Ok((out.status.success(), text))
    }
    /// Runs kdbg with an environment variable; returns whether it succeeded.
    pub(super) fn run_env(&self, sh: &Shell, args: &[&str], key: &str, value: &str) -> Result<bool> {
        let bin = &self.bin;
        let args = self.args(args);
        Ok(cmd!(sh, "{bin} {args...}").env(key, value).ignore_status().output()?.status.success())
    }
    pub(super) fn stage<T>(&self, stages: &mut Stages, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        stages.run(&format!("[{}] {name}", self.via), f)
    }
}

/// Whatever happened, put the node back (`kdbg restore` needs nothing but the node).
pub struct RestoreGuard<'a>(pub &'a Kdbg<'a>);

impl Drop for RestoreGuard<'_> {
    fn drop(&mut self) {
        let Ok(sh) = Shell::new() else { return };
        eprintln!("e2e: restoring the node (kdbg restore {})", self.0.via);
        if let Err(e) = self.0.run(&sh, &["restore"]) {
            eprintln!("e2e: kdbg restore failed: {e:#}");
        }
    }
}

/// What must be identical before a debug session and after its restore.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NodeState {
    /// sha256 of every file in the manifests dir and of the kubelet's unit files.
    files: String,
    /// `systemctl is-active`/`is-enabled` of the kubelet.
    unit: String,
    /// The static pods' images, by pod.
    images: String,
    /// kdbg's systemd units and timers (the test's own `kdbg-images.service` among them) and the
    /// unit files of /etc/systemd/system.
    units: String,
}

pub(super) fn node_state(sh: &Shell, c: &Cluster) -> Result<NodeState> {
    node_state_in(sh, c, &c.container)
}

/// [`NodeState`] of one node container (a worker has no static pods: its manifests dir is empty).
pub(super) fn node_state_in(sh: &Shell, c: &Cluster, node: &str) -> Result<NodeState> {
    let files = c.sh_in(
        sh,
        node,
        "cd / && for f in etc/kubernetes/manifests/* lib/systemd/system/kubelet.service etc/systemd/system/kubelet.service.d/*; do [ -e \"$f\" ] && sha256sum \"$f\"; done; true",
    )?;
    let unit = c.sh_in(sh, node, "systemctl is-active kubelet; systemctl is-enabled kubelet; true")?;
    let images = c.kubectl(
        sh,
        "get pods -n kube-system -l tier=control-plane -o jsonpath='{range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}'",
    )?;
    let units = c.sh_in(
        sh,
        node,
        "systemctl list-units --all --plain --no-legend 'kdbg*' | awk '{print $1, $3}'; ls /etc/systemd/system; true",
    )?;
    Ok(NodeState { files, unit, images, units })
}

/// After a restore: the state is as before, the system pods run, and nothing of kdbg is left
/// on the node but its binaries.
pub(super) fn check_restored(sh: &Shell, c: &Cluster, before: &NodeState) -> Result<()> {
    check_restored_in(sh, c, &c.container, before)
}

/// [`check_restored`] after the node put itself back: `/var/log/kdbg` (what it did) may stay.
pub(super) fn check_restored_but_logs(sh: &Shell, c: &Cluster, before: &NodeState) -> Result<()> {
    restored_in(sh, c, &c.container, before, "/var/lib/kdbg")
}

/// [`check_restored`] for one node container of the cluster.
pub(super) fn check_restored_in(sh: &Shell, c: &Cluster, node: &str, before: &NodeState) -> Result<()> {
    restored_in(sh, c, node, before, "/var/lib/kdbg /var/log/kdbg")
}

/// The node as `before`, nothing of kdbg running, and nothing of kdbg's in `dirs` but its binaries.
fn restored_in(sh: &Shell, c: &Cluster, node: &str, before: &NodeState, dirs: &str) -> Result<()> {
    wait_until("kube-system's pods to run again", SLOW, || c.system_pods_running(sh))?;
    let after = node_state_in(sh, c, node)?;
    ensure!(after == *before, "{node} differs after restore:\nbefore: {before:#?}\nafter:  {after:#?}");
    let ps = c.sh_in(sh, node, "ps -eo args")?;
    ensure!(!ps.lines().any(|l| l.contains("/var/lib/kdbg/")), "kdbg's processes still run on the node:\n{ps}");
    // The node lock's file stays, as every flock file must (its owner record goes with the owner).
    let left = c.sh_in(
        sh,
        node,
        &format!(
            "find {dirs} -mindepth 1 -not -path '/var/lib/kdbg/bin*' -not -path /var/lib/kdbg/lock 2>/dev/null; true"
        ),
    )?;
    ensure!(left.trim().is_empty(), "kdbg left files on the node: {left}");
    Ok(())
}

pub(super) fn node_healthz(sh: &Shell, c: &Cluster, port: u16) -> bool {
    c.sh(sh, &format!("curl -sk --max-time 10 https://127.0.0.1:{port}/healthz")).is_ok_and(|b| b.trim() == "ok")
}

/// `component`'s local tunnel port in one node's `kdbg status --json` document.
pub(super) fn tunnel_in(doc: &serde_json::Value, component: &str) -> Option<u16> {
    let comps = doc["components"].as_array()?;
    let c = comps.iter().find(|c| c["component"] == component)?;
    u16::try_from(c["tunnel"].as_u64()?).ok()
}

/// Connects to Delve through the local forward on `port` (each component's default), breaks at `function`, triggers it, continues.
pub(super) fn breakpoint(
    port: u16,
    function: &str,
    trigger: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<String> {
    let addr = format!("127.0.0.1:{port}");
    let mut dlv =
        DlvClient::connect(&addr, Duration::from_secs(10)).with_context(|| format!("connecting to dlv at {addr}"))?;
    // Delve answers most calls only while the target is stopped.
    dlv.halt()?;
    let bp = dlv.create_breakpoint_function(function)?;
    dlv.continue_async()?;
    let trigger = std::thread::spawn(trigger);
    let state = dlv.wait_stopped(SLOW)?;
    let at = state
        .current_thread
        .as_ref()
        .map(|l| format!("{}:{} {}", l.file, l.line, l.function.as_deref().unwrap_or("?")))
        .unwrap_or_default();
    dlv.clear_breakpoint(bp.id)?;
    dlv.continue_async()?;
    trigger.join().expect("trigger thread")?;
    Ok(at)
}

pub fn apiserver(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = node_state(sh, c)?;
    if k.via == "kind://" {
        let what =
            "kdbg debug apiserver --match-node reads v1.20.2 off the node; Debian's tree has no git: a clear error";
        k.stage(stages, what, || {
            let (ok, said) = k.attempt(sh, &["debug", "apiserver", "--no-ide", "--match-node"])?;
            ensure!(!ok, "--match-node without a git clone succeeded");
            let read =
                format!("kube-apiserver on kind node {} runs v1.20.2 (the --version of its running", c.container);
            ensure!(said.contains(&read) && said.contains("is not a git clone"), "unexpected:\n{said}");
            ensure!(node_state(sh, c)? == before, "the node changed");
            Ok(())
        })?;
    }
    k.stage(stages, "kdbg debug apiserver", || k.run(sh, &["debug", "apiserver", "--no-ide"]))?;
    k.stage(stages, "debug kube-apiserver answers /healthz", || {
        wait_until("the debug kube-apiserver's /healthz", SLOW, || node_healthz(sh, c, 6443))
    })?;
    k.stage(stages, "breakpoint in the /healthz handler is hit over HTTPS", || healthz_breakpoint(c, 2345, 6443))?;
    k.stage(stages, "kubectl get pods -A through the debugged apiserver", || {
        let out = c.kubectl(sh, "get pods -A")?;
        ensure!(out.contains("kube-system") && out.contains("kube-proxy"), "unexpected pods:\n{out}");
        Ok(())
    })?;
    if k.via == "kind://" {
        super::trace::apiserver_request(sh, stages, k)?;
    }
    k.stage(stages, "kdbg restore -> the static pod runs again, node as before", || {
        k.run(sh, &["restore"])?;
        check_restored(sh, c, &before)
    })
}

pub fn scheduler_and_cm(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = node_state(sh, c)?;
    k.stage(stages, "kdbg debug scheduler cm --leader-elect=false", || {
        k.run(sh, &["debug", "scheduler", "cm", "--leader-elect=false", "--no-ide"])
    })?;
    k.stage(stages, "debug scheduler and controller-manager are healthy, without leader election", || {
        for port in [10259, 10257] {
            wait_until(&format!("/healthz on 127.0.0.1:{port} under dlv"), SLOW, || node_healthz(sh, c, port))?;
        }
        let ps = c.sh(sh, "ps -eo args")?;
        for name in ["kube-scheduler", "kube-controller-manager"] {
            let line = ps.lines().find(|l| l.starts_with("/var/lib/kdbg/bin/dlv") && l.contains(name));
            let line = line.with_context(|| format!("no dlv running {name}:\n{ps}"))?;
            ensure!(line.contains("--leader-elect=false"), "{name} runs without --leader-elect=false: {line}");
        }
        Ok(())
    })?;
    if k.via == "kind://" {
        super::trace::scheduler_schedule(sh, stages, k)?;
    }
    k.stage(stages, "kdbg restore -> scheduler and controller-manager from their manifests", || {
        k.run(sh, &["restore"])?;
        check_restored(sh, c, &before)
    })
}

/// The kubelet's process argv, read from `/proc` of the unit's main process.
fn kubelet_argv(sh: &Shell, c: &Cluster) -> Result<String> {
    kubelet_argv_in(sh, c, &c.container)
}

/// The `/proc` cmdline of the kubelet unit's MainPID on one node container.
pub(super) fn kubelet_argv_in(sh: &Shell, c: &Cluster, node: &str) -> Result<String> {
    c.sh_in(sh, node, "pid=$(systemctl show -p MainPID --value kubelet); tr '\\0' ' ' < /proc/$pid/cmdline")
}

pub fn kubelet(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = node_state(sh, c)?;
    let argv = kubelet_argv(sh, c)?;
    k.stage(stages, "kdbg debug kubelet (systemctl stop, dlv with the unit's argv)", || {
        k.run(sh, &["debug", "kubelet", "--no-ide"])
    })?;
    k.stage(stages, "breakpoint in the kubelet's sync loop is hit; the node stays Ready", || {
        let at = breakpoint(2348, SYNC_LOOP_FN, || Ok(()))?;
        eprintln!("e2e: stopped at {at}");
        ensure!(at.contains("syncLoopIteration"), "stopped somewhere else: {at}");
        wait_until("the node Ready under the debug kubelet", SLOW, || {
            c.kubectl(sh, "get nodes --no-headers").is_ok_and(|o| o.split_whitespace().nth(1) == Some("Ready"))
        })?;
        wait_until("kube-system's pods running under the debug kubelet", SLOW, || c.system_pods_running(sh))
    })?;
    k.stage(stages, "kdbg restore -> the unit's own kubelet, same argv, in seconds", || {
        let t = Instant::now();
        k.run(sh, &["restore"])?;
        eprintln!("e2e: kdbg restore took {:.1}s", t.elapsed().as_secs_f64());
        let again = kubelet_argv(sh, c)?;
        ensure!(again == argv, "the restored kubelet runs another argv:\nbefore: {argv}\nafter:  {again}");
        check_restored(sh, c, &before)
    })?;
    if k.via != "kind://" {
        // The unit-state logic is the same through every transport: once is enough.
        return Ok(());
    }
    k.stage(stages, "inactive kubelet: kdbg debug kubelet, restore leaves it inactive", || {
        c.sh(sh, "systemctl stop kubelet")?;
        let inactive = node_state(sh, c)?;
        let res = k.run(sh, &["debug", "kubelet", "--no-ide"]).and_then(|()| k.run(sh, &["restore"]));
        let state = c.sh(sh, "systemctl is-active kubelet; true")?;
        let files_same = node_state(sh, c).map(|s| s.files == inactive.files && s.unit == inactive.unit);
        c.sh(sh, "systemctl start kubelet")?;
        res?;
        ensure!(state == "inactive", "after restore the kubelet is {state}, it was inactive before debug");
        ensure!(files_same?, "the unit files or state differ after restore");
        check_restored(sh, c, &before)
    })
}

/// kdbg killed after the apiserver's manifest left the manifests dir: restore brings it back.
pub fn crash_apiserver(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = node_state(sh, c)?;
    k.stage(stages, "kdbg debug apiserver killed after the manifest moved; kdbg restore", || {
        let point = "stop:kube-apiserver#moved";
        let ok = k.run_env(sh, &["debug", "apiserver", "--no-ide"], kdbg_core::crash::ENV, point)?;
        ensure!(!ok, "kdbg was to be killed at {point} but exited normally");
        let manifests = c.sh(sh, "ls /etc/kubernetes/manifests")?;
        ensure!(!manifests.contains("kube-apiserver.yaml"), "the manifest did not move: {manifests}");
        k.run(sh, &["restore"])?;
        check_restored(sh, c, &before)
    })
}

/// Writes a key for the node's `docker` user; returns the `ssh://` target arguments.
pub fn ssh_target(sh: &Shell, c: &Cluster, dir: &Utf8Path) -> Result<Vec<String>> {
    let key = dir.join("id_ed25519");
    cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -C kdbg-e2e -f {key}").run()?;
    let public = std::fs::read_to_string(dir.join("id_ed25519.pub"))?;
    let script = format!(
        "install -d -m 700 -o docker -g docker /home/docker/.ssh && printf '%s' '{}' > /home/docker/.ssh/authorized_keys && chown docker:docker /home/docker/.ssh/authorized_keys && chmod 600 /home/docker/.ssh/authorized_keys",
        public.trim()
    );
    c.sh(sh, &script)?;
    let known = dir.join("known_hosts");
    let ip = &c.ip;
    wait_until("sshd in the node", Duration::from_secs(30), || {
        cmd!(sh, "ssh-keyscan -T 5 {ip}").quiet().ignore_stderr().read().is_ok_and(|s| !s.is_empty())
    })?;
    let keys = cmd!(sh, "ssh-keyscan -T 5 {ip}").quiet().ignore_stderr().read()?;
    std::fs::write(&known, keys)?;
    Ok(vec![
        "--target".into(),
        format!("ssh://docker@{ip}"),
        "--identity".into(),
        key.to_string(),
        "--ssh-option".into(),
        format!("UserKnownHostsFile={known}"),
    ])
}
