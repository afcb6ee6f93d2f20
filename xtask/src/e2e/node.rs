//! A real kubeadm node, kind-shaped: the Debian rootfs plus the tree's kubelet, kubeadm and
//! kubectl and the locally built images, imported into Docker and run as a container named and
//! labelled like a kind node, with systemd as PID 1 and containerd inside; then `kubeadm init`.
//!
//! Why the node is not `--privileged`, as kind runs it: this machine's capability bounding set
//! lacks CAP_SYS_RESOURCE, so Docker cannot grant "all capabilities" (`runc create failed: unable
//! to apply caps: operation not permitted`). The node runs with every other capability, a private
//! cgroup namespace, seccomp/apparmor unconfined and `systempaths=unconfined`; its entrypoint
//! ([`files`]) remounts the cgroup v1 controllers read-write and creates `/dev/kmsg`, then execs
//! systemd, and containerd runs with `restrict_oom_score_adj = true`. The kind CLI always passes
//! `--privileged`, so on this machine it cannot start a node (see `super::kindcli`).

mod files;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use super::images::{self, Images};
use super::wait_until;

pub const IMAGE: &str = "kdbg-e2e-node:v1.20.2";

/// Writes the node's extra files into `overlay` (binaries, units, configs, image tars).
pub fn overlay(cluster: &str, release: &Utf8Path, imgs: &Images, overlay: &Utf8Path) -> Result<()> {
    let put = |path: &str, text: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dst = overlay.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dst.parent().expect("absolute"))?;
        std::fs::write(&dst, text)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    for bin in ["kubelet", "kubeadm", "kubectl"] {
        std::fs::create_dir_all(overlay.join("usr/bin"))?;
        std::fs::copy(release.join(bin), overlay.join("usr/bin").join(bin))
            .with_context(|| format!("copying {bin}"))?;
    }
    put("/usr/lib/systemd/system/kubelet.service", files::KUBELET_UNIT, 0o644)?;
    put("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", files::KUBEADM_DROPIN, 0o644)?;
    put("/usr/lib/systemd/system/kdbg-images.service", files::IMAGES_UNIT, 0o644)?;
    put("/etc/containerd/config.toml", &files::containerd_config(images::PAUSE), 0o644)?;
    put("/etc/cni/net.d/10-kdbg-bridge.conflist", files::CNI_BRIDGE, 0o644)?;
    put("/usr/local/bin/kdbg-node-entrypoint", files::ENTRYPOINT, 0o755)?;
    put("/kdbg/kubeadm.yaml", &files::kubeadm_config(cluster, images::KUBE_VERSION, &imgs.etcd_tag), 0o644)?;
    // kind reads the node's Kubernetes version from here.
    put("/kind/version", images::KUBE_VERSION, 0o644)?;
    let wants = overlay.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    for unit in ["kubelet.service", "kdbg-images.service"] {
        std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), wants.join(unit))?;
    }
    std::fs::create_dir_all(overlay.join("kdbg/images"))?;
    for tar in &imgs.tars {
        std::fs::hard_link(tar, overlay.join("kdbg/images").join(tar.file_name().expect("a file")))
            .or_else(|_| std::fs::copy(tar, overlay.join("kdbg/images").join(tar.file_name().unwrap())).map(drop))?;
    }
    Ok(())
}

/// `docker import` of the rootfs with the overlay on top: a hard-linked copy of the rootfs in
/// `stage` (cheap, and the cached rootfs is never written), the overlay copied over it with links
/// broken, then one tar stream (Docker refuses duplicate paths in one).
pub fn import(sh: &Shell, rootfs: &Utf8Path, overlay: &Utf8Path, stage: &Utf8Path) -> Result<()> {
    let root = stage.join("root");
    // A node image left by an interrupted run would stay behind untagged.
    let _ = cmd!(sh, "docker rmi {IMAGE}").quiet().ignore_stdout().ignore_stderr().run();
    cmd!(sh, "cp -al {rootfs} {root}").run()?;
    cmd!(sh, "rm -f {root}/.kdbg-complete").run()?;
    cmd!(sh, "cp -a --remove-destination {overlay}/. {root}/").run()?;
    let script = r#"tar -c --numeric-owner -C "$1" . | docker import -c 'ENTRYPOINT ["/usr/local/bin/kdbg-node-entrypoint"]' -c 'ENV container=docker' - "$2" >/dev/null"#;
    cmd!(sh, "sh -c {script} sh {root} {IMAGE}").run()?;
    Ok(())
}

/// A running node container and the Docker network it is on; removed (with its `/var` volume,
/// the network and the image) when dropped.
pub struct Cluster {
    pub container: String,
    pub network: String,
    pub ip: String,
    /// Worker node containers, joined by [`Cluster::join_worker`].
    pub workers: Vec<String>,
}

impl Cluster {
    /// Starts the control-plane node container (see [`run_node`]) on a network of its own.
    pub fn start(sh: &Shell, name: &str) -> Result<Cluster> {
        let container = format!("{name}-control-plane");
        let network = format!("{name}-net");
        let _ = cmd!(sh, "docker network rm {network}").quiet().ignore_stderr().ignore_stdout().run();
        cmd!(sh, "docker network create {network}").quiet().ignore_stdout().run()?;
        let started = run_node(sh, name, &container, &network, "control-plane");
        let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
        let ip = cmd!(sh, "docker inspect -f {format} {container}").read().unwrap_or_default();
        let cluster = Cluster { container, network, ip, workers: Vec::new() };
        started?;
        Ok(cluster)
    }

    /// Starts `<name>-worker` the same way, joins it with `kubeadm join` (the join command and
    /// its token are made on the control plane and reach the worker on stdin: never printed, never
    /// in a workstation argv) and waits until every node is Ready and the worker runs its kube-proxy pod.
    pub fn join_worker(&mut self, sh: &Shell, name: &str) -> Result<String> {
        let worker = format!("{name}-worker");
        let started = run_node(sh, name, &worker, &self.network, "worker");
        self.workers.push(worker.clone());
        started?;
        self.wait_booted_in(sh, &worker)?;
        let join = self.sh(sh, "kubeadm token create --print-join-command")?;
        let script = format!(
            "{} --cri-socket=/run/containerd/containerd.sock --skip-phases=preflight --v=1 >/var/log/kdbg-e2e-join.log 2>&1 || {{ tail -30 /var/log/kdbg-e2e-join.log | grep -vi token; exit 1; }}",
            join.trim()
        );
        let out = cmd!(sh, "docker exec -i {worker} sh").stdin(script).ignore_status().output()?;
        ensure!(
            out.status.success(),
            "kubeadm join on {worker} failed:\n{}{}\n--- kubelet journal:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.sh_in(sh, &worker, "journalctl -u kubelet --no-pager | tail -30").unwrap_or_default()
        );
        wait_until("both nodes to be Ready", Duration::from_secs(180), || {
            self.kubectl(sh, "get nodes --no-headers").is_ok_and(|o| {
                o.lines().count() == 1 + self.workers.len()
                    && o.lines().all(|l| l.split_whitespace().nth(1) == Some("Ready"))
            })
        })?;
        let field = format!("spec.nodeName={worker}");
        wait_until(&format!("kube-proxy Running on {worker}"), Duration::from_secs(180), || {
            self.kubectl(
                sh,
                &format!("get pods -n kube-system -l k8s-app=kube-proxy --field-selector {field} --no-headers"),
            )
            .is_ok_and(|o| o.split_whitespace().nth(2) == Some("Running"))
        })?;
        println!("e2e: {}", self.kubectl(sh, "get nodes -o wide")?);
        Ok(worker)
    }

    /// Every node container: the control plane first, then the workers.
    pub fn nodes(&self) -> Vec<String> {
        std::iter::once(self.container.clone()).chain(self.workers.iter().cloned()).collect()
    }

    /// `sh -c SCRIPT` inside the node, as root.
    pub fn sh(&self, sh: &Shell, script: &str) -> Result<String> {
        self.sh_in(sh, &self.container, script)
    }

    /// `sh -c SCRIPT` inside one node container of the cluster, as root.
    pub fn sh_in(&self, sh: &Shell, container: &str, script: &str) -> Result<String> {
        Ok(cmd!(sh, "docker exec {container} sh -c {script}").quiet().read()?)
    }

    /// Waits for systemd, containerd and the image import in the control-plane node.
    pub fn wait_booted(&self, sh: &Shell) -> Result<()> {
        self.wait_booted_in(sh, &self.container)
    }

    fn wait_booted_in(&self, sh: &Shell, node: &str) -> Result<()> {
        wait_until("systemd in the node to finish booting", Duration::from_secs(120), || {
            self.sh_in(sh, node, "systemctl is-system-running").is_ok_and(|s| s == "running" || s == "degraded")
                || self.sh_in(sh, node, "systemctl is-active kdbg-images.service").is_ok_and(|s| s == "active")
        })?;
        wait_until("the image import into containerd", Duration::from_secs(180), || {
            self.sh_in(sh, node, "systemctl is-active kdbg-images.service").is_ok_and(|s| s == "active")
        })
        .with_context(|| self.sh_in(sh, node, "journalctl -u kdbg-images --no-pager | tail -20").unwrap_or_default())?;
        let failed = self.sh_in(sh, node, "systemctl --failed --no-legend --plain")?;
        if !failed.is_empty() {
            eprintln!("e2e: failed units in {node} (not fatal):\n{failed}");
        }
        Ok(())
    }

    /// `kubeadm init`, then waits until the node is Ready and kube-system's pods run.
    pub fn kubeadm_init(&self, sh: &Shell) -> Result<()> {
        let c = &self.container;
        // Preflight would fail on what a container node lacks (swap accounting, crictl); CoreDNS
        // has no local image and nothing here needs cluster DNS.
        let out = cmd!(
            sh,
            "docker exec {c} kubeadm init --config=/kdbg/kubeadm.yaml --skip-phases=preflight,addon/coredns --v=1"
        )
        .ignore_status()
        .output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = text.lines().filter(|l| !l.starts_with('\t')).rev().take(30).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        ensure!(
            out.status.success(),
            "kubeadm init failed:\n{tail}\n--- kubelet journal:\n{}",
            self.sh(sh, "journalctl -u kubelet --no-pager | tail -40").unwrap_or_default()
        );
        let ok = text.lines().find(|l| l.contains("initialized successfully")).unwrap_or("(no success line)");
        println!("e2e: kubeadm init: {}", ok.trim());
        wait_until("the node to be Ready", Duration::from_secs(180), || {
            self.kubectl(sh, "get nodes --no-headers").is_ok_and(|o| o.split_whitespace().nth(1) == Some("Ready"))
        })?;
        println!("e2e: {}", self.kubectl(sh, "get nodes -o wide")?);
        // One node: it runs workloads too (the scheduler's tour binds a pod), as kind's does.
        self.kubectl(sh, "taint nodes --all node-role.kubernetes.io/master-")?;
        wait_until("kube-system's pods to run", Duration::from_secs(240), || self.system_pods_running(sh))?;
        println!("e2e: {}", self.kubectl(sh, "get pods -n kube-system -o wide")?);
        Ok(())
    }

    /// Moves the kubelet's healthz port off its default in its config file (not its flags), as
    /// clusters may: kdbg must wait for the ports the original really listened on.
    pub fn move_kubelet_healthz_port(&self, sh: &Shell, port: u16) -> Result<()> {
        let f = "/var/lib/kubelet/config.yaml";
        self.sh(
            sh,
            &format!(
                "if grep -q '^healthzPort:' {f}; then sed -i 's/^healthzPort: .*/healthzPort: {port}/' {f}; \
                 else echo 'healthzPort: {port}' >> {f}; fi && systemctl restart kubelet"
            ),
        )?;
        wait_until(&format!("the kubelet's healthz on 127.0.0.1:{port}"), Duration::from_secs(120), || {
            self.sh(sh, &format!("curl -s --max-time 5 http://127.0.0.1:{port}/healthz")).is_ok_and(|b| b == "ok")
        })?;
        wait_until("kube-system's pods to run", Duration::from_secs(120), || self.system_pods_running(sh))
    }

    /// `kubectl` inside the node with the admin kubeconfig (credentials never leave the node).
    pub fn kubectl(&self, sh: &Shell, args: &str) -> Result<String> {
        self.sh(sh, &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf {args}"))
    }

    /// Every control-plane mirror pod and kube-proxy is Running and ready.
    pub fn system_pods_running(&self, sh: &Shell) -> bool {
        let Ok(out) = self.kubectl(sh, "get pods -n kube-system --no-headers") else { return false };
        let want = ["etcd-", "kube-apiserver-", "kube-controller-manager-", "kube-scheduler-", "kube-proxy-"];
        want.iter().all(|w| {
            out.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 3
                    && f[0].starts_with(w)
                    && f[2] == "Running"
                    && f[1].split_once('/').is_some_and(|(a, b)| a == b)
            })
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Ok(sh) = Shell::new() else { return };
        if std::env::var_os("KDBG_E2E_KEEP").is_some() {
            eprintln!(
                "e2e: KDBG_E2E_KEEP is set: the nodes stay; remove them with `docker rm -f -v {}; docker network rm {}; docker rmi {IMAGE}`",
                self.nodes().join(" "),
                self.network
            );
            return;
        }
        eprintln!(
            "e2e: removing the node containers {}, their volumes, network {} and image",
            self.nodes().join(" "),
            self.network
        );
        let n = &self.network;
        for c in self.nodes() {
            let _ = cmd!(sh, "docker rm -f -v {c}").quiet().ignore_stdout().run();
        }
        let _ = cmd!(sh, "docker network rm {n}").quiet().ignore_stdout().run();
        let _ = cmd!(sh, "docker rmi {IMAGE}").quiet().ignore_stdout().ignore_stderr().run();
    }
}

/// Builds the node image into Docker from the rootfs, the release binaries and the image tars.
pub fn build_image(
    sh: &Shell,
    cluster: &str,
    rootfs: &Utf8Path,
    release: &Utf8Path,
    imgs: &Images,
    cache: &Utf8Path,
) -> Result<()> {
    let stage = tempfile::Builder::new().prefix("kdbg-node-stage-").tempdir_in(cache)?;
    let dir = Utf8PathBuf::try_from(stage.path().to_owned())?;
    overlay(cluster, release, imgs, &dir.join("overlay"))?;
    import(sh, rootfs, &dir.join("overlay"), &dir)
}

/// Runs one node container of cluster `cluster` the way kind runs its nodes, minus `--privileged`
/// (see the module doc): systemd as PID 1, `/var` on a volume for containerd's overlayfs, a
/// private cgroup namespace whose controllers the entrypoint makes writable, kind's labels.
fn run_node(sh: &Shell, cluster: &str, container: &str, network: &str, role: &str) -> Result<()> {
    let _ = cmd!(sh, "docker rm -f -v {container}").quiet().ignore_stderr().ignore_stdout().run();
    let cluster_label = format!("io.x-k8s.kind.cluster={cluster}");
    let role_label = format!("io.x-k8s.kind.role={role}");
    let rule = "a *:* rwm";
    cmd!(
        sh,
        "docker run -d --name {container} --hostname {container} --network {network}
         --label {cluster_label} --label {role_label}
         --cgroupns=private --cap-add ALL --cap-drop SYS_RESOURCE
         --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined
         --device-cgroup-rule {rule}
         --tmpfs /tmp --tmpfs /run --volume /var
         {IMAGE}"
    )
    .quiet()
    .ignore_stdout()
    .run()?;
    Ok(())
}
