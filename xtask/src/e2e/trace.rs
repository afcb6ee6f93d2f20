//! `kdbg trace` against the real cluster: the apiserver's `request` tour for a namespace create
//! and the scheduler's `schedule` tour for a pod, each checked from kdbg's `--json` timeline.

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::flows::Kdbg;
use super::Stages;
use xshell::Shell;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Runs a tour with its trigger on the node; returns kdbg's JSON timeline.
fn trace(sh: &Shell, k: &Kdbg, component: &str, tour: &str, trigger: &str) -> Result<Value> {
    let out = k.stdout(sh, &["trace", component, tour, "--on-node", "--for", "20", "--json", "--run", trigger])?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("kdbg trace --json printed:\n{out}"))?;
    let t = v["timeline"].clone();
    for h in t["hits"].as_array().into_iter().flatten() {
        eprintln!(
            "e2e:   #{} w{} {} {}:{} {}",
            h["seq"], h["waypoint"], h["waypoint_name"], h["file"], h["line"], h["captures"]
        );
    }
    ensure!(t["left_set"].as_array().is_some_and(Vec::is_empty), "kdbg left breakpoints set: {}", t["left_set"]);
    Ok(t)
}

/// Hits whose captures mention `needle`, as waypoint indexes in the order they came.
fn waypoints_mentioning(t: &Value, needle: &str) -> Vec<u64> {
    let hits = t["hits"].as_array().map(Vec::as_slice).unwrap_or_default();
    hits.iter().filter(|h| h["captures"].to_string().contains(needle)).filter_map(|h| h["waypoint"].as_u64()).collect()
}

/// The length of the longest strictly increasing subsequence: the tour's waypoints in order,
/// with other requests' hits (which stop at the same breakpoints while one request is paused
/// at a waypoint) allowed in between.
fn longest_in_order(v: &[u64]) -> usize {
    let mut best = vec![1usize; v.len()];
    for i in 0..v.len() {
        for j in 0..i {
            if v[j] < v[i] {
                best[i] = best[i].max(best[j] + 1);
            }
        }
    }
    best.into_iter().max().unwrap_or(0)
}

pub fn apiserver_request(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    stages.run("[kind://] kdbg trace apiserver request --run 'kubectl create namespace kdbg-tour'", || {
        let t = trace(sh, k, "apiserver", "request", &format!("{KUBECTL} create namespace kdbg-tour"))?;
        // The create walks the tour in order; other namespace requests (kubectl's own reads, the
        // namespace controller) come before, after and in between, each from the start of the chain.
        let seen = waypoints_mentioning(&t, "namespaces");
        let longest = longest_in_order(&seen);
        ensure!(longest >= 6, "no 6 waypoints capturing `namespaces` came in the tour's order: {seen:?}");
        let ns = k.cluster.kubectl(sh, "get namespace kdbg-tour -o name")?;
        ensure!(ns == "namespace/kdbg-tour", "the namespace was not created: {ns}");
        k.cluster.kubectl(sh, "delete namespace kdbg-tour --wait=false")?;
        ensure!(
            k.cluster.sh(sh, "curl -sk --max-time 10 https://127.0.0.1:6443/healthz")? == "ok",
            "the apiserver stopped serving after the trace"
        );
        Ok(())
    })
}

pub fn scheduler_schedule(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    stages.run("[kind://] kdbg trace scheduler schedule --run 'kubectl run kdbg-tour'", || {
        let run =
            format!("{KUBECTL} run kdbg-tour --image=k8s.gcr.io/pause:3.2 --image-pull-policy=Never --restart=Never");
        let t = trace(sh, k, "scheduler", "schedule", &run)?;
        let seen = waypoints_mentioning(&t, "kdbg-tour");
        ensure!(!seen.is_empty(), "no waypoint captured the pod kdbg-tour: {}", t["hits"]);
        let node = k.cluster.kubectl(sh, "get pod kdbg-tour -o jsonpath={.spec.nodeName}")?;
        ensure!(node == k.cluster.container, "the pod was not bound to the node: {node:?}");
        k.cluster.kubectl(sh, "delete pod kdbg-tour --wait=false")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tour_is_found_in_order_between_other_requests_hits() {
        // A GET (0, 1, 2, 7) finishing while the create (0..=7) waits at waypoint 2.
        assert_eq!(super::longest_in_order(&[0, 1, 2, 0, 1, 2, 7, 3, 4, 5, 6, 7, 0, 1, 2, 7]), 8);
        assert_eq!(super::longest_in_order(&[0, 1, 2, 7, 0, 1, 2, 7]), 4);
        assert_eq!(super::longest_in_order(&[]), 0);
    }
}
