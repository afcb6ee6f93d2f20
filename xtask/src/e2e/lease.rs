//! The node puts itself back with no workstation (`--only lease`, `--only reboot`), through
//! `kind://`, on the tier's one cluster with its debug builds:
//! - lease: `kdbg debug apiserver kubelet --lease 20s`, then the workstation goes (its tunnels
//!   killed, no kdbg runs): the node's watchdog (a transient systemd timer) puts the apiserver's
//!   static pod and the kubelet's unit back; the node is as before, nothing of kdbg runs, only
//!   `/var/log/kdbg` holds what was done, and `kdbg status` tells it.
//! - reboot: `kdbg debug scheduler`, then `docker restart` of the node container: it boots with
//!   the original scheduler (kdbg-restore.service ran before the kubelet) and the journal closed.

use anyhow::{ensure, Result};
use xshell::{cmd, Shell};

use super::flows::{self, Kdbg};
use super::{wait_until, Stages};

/// Nothing of a session is left: no journal, no kdbg process, and no unit or timer of kdbg's (the
/// transient service that restored has ended too).
fn session_gone(sh: &Shell, k: &Kdbg) -> bool {
    let script = "[ ! -e /var/lib/kdbg/journal.json ] && ! ps -eo args | grep -q '^/var/lib/kdbg/' \
                  && [ ! -e /etc/systemd/system/kdbg-restore.service ] \
                  && ! systemctl list-units --all --plain --no-legend 'kdbg-lease*' | grep -q .";
    k.cluster.sh(sh, script).is_ok()
}

/// The node's record of its own restore, then `/var/log/kdbg` emptied for the next flows' checks.
fn take_record(sh: &Shell, k: &Kdbg) -> Result<String> {
    let record = k.cluster.sh(sh, "cat /var/log/kdbg/node-restore.json")?;
    let log = k.cluster.sh(sh, "cat /var/log/kdbg/node-restore.log")?;
    eprintln!("e2e: the node's restore log:\n{log}");
    k.cluster.sh(sh, "rm -rf /var/log/kdbg")?;
    Ok(record)
}

pub fn lease_expires(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = flows::node_state(sh, c)?;
    k.stage(stages, "kdbg debug apiserver kubelet --lease 20s (a transient systemd timer keeps the lease)", || {
        let said = k.stdout(sh, &["debug", "apiserver", "kubelet", "--no-ide", "--lease", "20s"])?;
        ensure!(said.contains("puts itself back in "), "no lease in kdbg debug's output:\n{said}");
        ensure!(said.contains("a restart of "), "no word on restarts:\n{said}");
        let timer =
            c.sh(sh, "systemctl is-active kdbg-lease.timer; systemctl is-enabled kdbg-restore.service; true")?;
        ensure!(timer.lines().collect::<Vec<_>>() == ["active", "enabled"], "timer and boot unit: {timer}");
        Ok(())
    })?;
    k.stage(stages, "the workstation goes (its tunnels killed): the node puts both back by itself", || {
        kill_tunnels(sh, k)?;
        wait_until("the node to put itself back", flows::SLOW * 2, || session_gone(sh, k))?;
        flows::check_restored_but_logs(sh, c, &before)?;
        let status = k.stdout(sh, &["status"])?;
        ensure!(status.contains("restored by the node at ") && status.contains(": the lease expired"), "{status}");
        let record = take_record(sh, k)?;
        ensure!(record.contains("\"why\":\"the lease expired\""), "{record}");
        ensure!(
            record.contains("kube-apiserver") && record.contains("kubelet") && record.contains("\"failed\":[]"),
            "{record}"
        );
        flows::check_restored(sh, c, &before)
    })
}

pub fn reboot(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let before = flows::node_state(sh, c)?;
    k.stage(stages, "kdbg debug scheduler; docker restart of the node: it boots with the original", || {
        k.run(sh, &["debug", "scheduler", "--no-ide", "--leader-elect=false"])?;
        let container = &c.container;
        cmd!(sh, "docker restart {container}").quiet().ignore_stdout().run()?;
        c.wait_booted(sh)?;
        wait_until("the apiserver after the restart", flows::SLOW, || flows::node_healthz(sh, c, 6443))?;
        wait_until("the session closed by the node", flows::SLOW, || session_gone(sh, k))?;
        // The workstation's forward outlived the session: the next command stops it.
        let status = k.stdout(sh, &["status"])?;
        ensure!(status.contains("nothing is under debug"), "{status}");
        ensure!(status.contains(": the node restarted (put back kube-scheduler)"), "{status}");
        let record = take_record(sh, k)?;
        ensure!(record.contains("\"why\":\"the node restarted\""), "{record}");
        flows::check_restored(sh, c, &before)
    })
}

/// Kills this workstation's forwards to the session's Delves (found by `kdbg status --json`).
fn kill_tunnels(sh: &Shell, k: &Kdbg) -> Result<()> {
    let doc: serde_json::Value = serde_json::from_str(&k.stdout(sh, &["status", "--json"])?)?;
    for c in ["kube-apiserver", "kubelet"] {
        let Some(port) = flows::tunnel_in(&doc, c) else { continue };
        let filter = format!("sport = :{port}");
        let ss = cmd!(sh, "ss -ltnpH {filter}").quiet().read().unwrap_or_default();
        for pid in ss.split("pid=").skip(1).filter_map(|s| s.split(',').next()) {
            cmd!(sh, "kill -9 {pid}").quiet().ignore_status().run()?;
        }
    }
    Ok(())
}
