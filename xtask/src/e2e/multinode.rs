//! The two-node flow: a worker joins the cluster, `kdbg debug kubelet --all-nodes` through
//! `kind://` debugs both nodes' kubelets in one run, a breakpoint is hit in each through its own
//! tunnel port, and `kdbg restore --all-nodes` puts both back; then kdbg is killed once both nodes
//! have changed, and each node is restored on its own (`kind://CLUSTER/NODE`).

use anyhow::{ensure, Context, Result};
use xshell::Shell;

use super::flows::{self, Kdbg, NodeState};
use super::{wait_until, Stages};

pub fn kubelet_all_nodes(sh: &Shell, stages: &mut Stages, k: &Kdbg, cluster: &str) -> Result<()> {
    let c = k.cluster;
    let nodes = c.nodes();
    let before = node_states(sh, k, &nodes)?;
    k.stage(stages, "kdbg debug kubelet --all-nodes (both nodes in one run)", || {
        k.run(sh, &["debug", "kubelet", "--no-ide"])
    })?;
    k.stage(stages, "a breakpoint in each node's kubelet sync loop is hit through its own tunnel port", || {
        let ports = tunnel_ports(sh, k, &nodes)?;
        ensure!(ports.windows(2).all(|w| w[0] != w[1]), "the nodes share a tunnel port: {ports:?}");
        for (node, port) in nodes.iter().zip(ports) {
            let at = flows::breakpoint(port, flows::SYNC_LOOP_FN, || Ok(()))?;
            eprintln!("e2e: {node} (localhost:{port}) stopped at {at}");
            ensure!(at.contains("syncLoopIteration"), "{node} stopped somewhere else: {at}");
        }
        wait_until("every node Ready under the debug kubelets", flows::SLOW, || all_ready(sh, k))
    })?;
    k.stage(stages, "kdbg restore --all-nodes -> each node's own kubelet, same argv", || {
        k.run(sh, &["restore"])?;
        check_each_restored(sh, k, &nodes, &before)
    })?;
    k.stage(stages, "kdbg killed once both nodes changed; each node restored on its own", || {
        let point = format!("tunnel:kubelet@{}", nodes[0]);
        let ok = k.run_env(sh, &["debug", "kubelet", "--no-ide"], kdbg_core::crash::ENV, &point)?;
        ensure!(!ok, "kdbg was to be killed at {point} but exited normally");
        for node in &nodes {
            let running = c.sh_in(sh, node, "ps -eo args")?;
            ensure!(
                running.lines().any(|l| l.starts_with("/var/lib/kdbg/bin/dlv")),
                "no Delve runs on {node} after the kill at {point}:\n{running}"
            );
        }
        for node in &nodes {
            let one = Kdbg {
                bin: k.bin.clone(),
                tree: k.tree,
                cluster: c,
                target: vec!["--target".into(), format!("kind://{cluster}/{node}")],
                via: k.via,
            };
            one.run(sh, &["restore"])?;
        }
        check_each_restored(sh, k, &nodes, &before)
    })
}

/// Each node's [`NodeState`] and its kubelet's argv.
fn node_states(sh: &Shell, k: &Kdbg, nodes: &[String]) -> Result<Vec<(NodeState, String)>> {
    let c = k.cluster;
    nodes.iter().map(|n| Ok((flows::node_state_in(sh, c, n)?, flows::kubelet_argv_in(sh, c, n)?))).collect()
}

fn check_each_restored(sh: &Shell, k: &Kdbg, nodes: &[String], before: &[(NodeState, String)]) -> Result<()> {
    let c = k.cluster;
    for (node, (state, argv)) in nodes.iter().zip(before) {
        let again = flows::kubelet_argv_in(sh, c, node)?;
        ensure!(again == *argv, "{node}'s restored kubelet runs another argv:\nbefore: {argv}\nafter:  {again}");
        flows::check_restored_in(sh, c, node, state)?;
    }
    wait_until("every node Ready again", flows::SLOW, || all_ready(sh, k))
}

fn all_ready(sh: &Shell, k: &Kdbg) -> bool {
    k.cluster.kubectl(sh, "get nodes --no-headers").is_ok_and(|o| {
        o.lines().count() == k.cluster.nodes().len() && o.lines().all(|l| l.split_whitespace().nth(1) == Some("Ready"))
    })
}

/// Each node's local tunnel port to its kubelet's Delve, from `kdbg status --all-nodes --json`.
fn tunnel_ports(sh: &Shell, k: &Kdbg, nodes: &[String]) -> Result<Vec<u16>> {
    let out = k.stdout(sh, &["status", "--json"])?;
    let doc: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("kdbg status --json: {out}"))?;
    let docs = doc["nodes"].as_array().with_context(|| format!("no `nodes` in kdbg status --json: {out}"))?;
    nodes
        .iter()
        .map(|n| {
            let d = docs.iter().find(|d| d["node"].as_str().is_some_and(|s| s.contains(n.as_str())));
            let d = d.with_context(|| format!("{n} is not in kdbg status --json: {out}"))?;
            flows::tunnel_in(d, "kubelet")
                .with_context(|| format!("no kubelet tunnel for {n} in kdbg status --json: {out}"))
        })
        .collect()
}
