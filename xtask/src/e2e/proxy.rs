//! The kube-proxy flow: a DaemonSet pod taken off one node and debugged with the pod's argv and
//! files, a breakpoint in its iptables sync, restore (the DaemonSet's spec byte for byte, its
//! secrets never in kdbg's output), and a kill after the DaemonSet change.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use xshell::{cmd, Shell};

use super::flows::{breakpoint, check_restored, node_state, Kdbg};
use super::node::Cluster;
use super::{wait_until, Stages};

/// kube-proxy's iptables sync: runs when a Service or EndpointSlice changes.
const PROXY_SYNC_FN: &str = "k8s.io/kubernetes/pkg/proxy/iptables.(*Proxier).syncProxyRules";

/// The kube-proxy DaemonSet's spec as JSON (`kubectl get ds -o json`'s `.spec`): the API server
/// owns `metadata`, so the spec is what must come back byte for byte.
fn proxy_ds_spec(sh: &Shell, c: &Cluster) -> Result<String> {
    c.kubectl(sh, "get daemonset -n kube-system kube-proxy -o jsonpath='{.spec}'")
}

/// The release kube-proxy's service-account token and CA, which must never leave the node.
fn proxy_secrets(sh: &Shell, c: &Cluster) -> Result<Vec<String>> {
    let dir = "/proc/$(pgrep -x kube-proxy | head -n 1)/root/var/run/secrets/kubernetes.io/serviceaccount";
    let token = c.sh(sh, &format!("cat {dir}/token"))?;
    let ca = c.sh(sh, &format!("sed -n 2p {dir}/ca.crt"))?;
    ensure!(token.len() > 100 && ca.len() > 40, "could not read kube-proxy's token and CA on the node");
    Ok(vec![token, ca])
}

pub fn proxy(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = node_state(sh, c)?;
    let spec = proxy_ds_spec(sh, c)?;
    let secrets = proxy_secrets(sh, c)?;
    let mut said = String::new();
    k.stage(stages, "kdbg debug proxy (DaemonSet pod off this node, Delve with the pod's argv and files)", || {
        said.push_str(&k.output(sh, &["debug", "proxy", "--no-ide"])?);
        let ps = c.sh(sh, "ps -eo args")?;
        let line = ps.lines().find(|l| l.starts_with("/var/lib/kdbg/bin/kube-proxy"));
        let line = line.with_context(|| format!("no debug kube-proxy runs:\n{ps}"))?;
        let node = &c.container;
        ensure!(
            line.contains("--config=/var/lib/kube-proxy/config.conf")
                && line.contains(&format!("--hostname-override={node}")),
            "the debug kube-proxy runs without the pod's expanded argv: {line}"
        );
        ensure!(
            !ps.lines().any(|l| l.starts_with("/usr/local/bin/kube-proxy")),
            "the pod's kube-proxy still runs:\n{ps}"
        );
        let ds = c.kubectl(sh, "get daemonset -n kube-system kube-proxy -o jsonpath='{.spec.updateStrategy.type}'")?;
        ensure!(ds == "OnDelete", "the DaemonSet's update strategy is {ds} under debug");
        said.push_str(&c.sh(sh, "cat /var/lib/kdbg/journal.json /var/log/kdbg/kube-proxy.log")?);
        Ok(())
    })?;
    let service = format!("kdbg-e2e-{}", k.via.trim_end_matches("://"));
    k.stage(stages, "breakpoint in syncProxyRules after kubectl create service; its iptables rules appear", || {
        let container = c.container.clone();
        let svc = service.clone();
        let at = breakpoint(2349, PROXY_SYNC_FN, move || {
            let sh = Shell::new()?;
            let kc = "--kubeconfig=/etc/kubernetes/admin.conf";
            cmd!(sh, "docker exec {container} kubectl {kc} create service clusterip {svc} --tcp=80:8080").run()?;
            Ok(())
        })?;
        eprintln!("e2e: stopped at {at}");
        ensure!(at.contains("syncProxyRules"), "stopped somewhere else: {at}");
        wait_until("the Service's iptables rules", Duration::from_secs(60), || {
            c.sh(sh, "iptables-save").is_ok_and(|r| r.contains(&format!("default/{service}")))
        })
    })?;
    k.stage(stages, "kdbg restore -> the DaemonSet spec as before, its pod Running and Ready on the node", || {
        said.push_str(&k.output(sh, &["restore"])?);
        ensure!(proxy_ds_spec(sh, c)? == spec, "the DaemonSet's spec differs after restore");
        check_restored(sh, c, &before)?;
        c.kubectl(sh, &format!("delete service {service}"))?;
        for s in &secrets {
            ensure!(!said.contains(s.as_str()), "kdbg's output, journal or log holds kube-proxy's token or CA");
        }
        Ok(())
    })?;
    k.stage(stages, "kdbg debug proxy killed after the DaemonSet change; kdbg restore", || {
        let point = "stop:kube-proxy#moved";
        let ok = k.run_env(sh, &["debug", "proxy", "--no-ide"], kdbg_core::crash::ENV, point)?;
        ensure!(!ok, "kdbg was to be killed at {point} but exited normally");
        ensure!(proxy_ds_spec(sh, c)? != spec, "the DaemonSet was not changed before the kill");
        k.run(sh, &["restore"])?;
        ensure!(proxy_ds_spec(sh, c)? == spec, "the DaemonSet's spec differs after restore");
        check_restored(sh, c, &before)
    })
}
