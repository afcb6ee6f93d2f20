//! The static-pod runner, driven like the kubelet: files in, processes out.

use std::time::Duration;

use anyhow::Result;
use kdbg_tests::PodState;

use super::{check, pod_yaml, up, wait};

const T: Duration = Duration::from_secs(5);

#[test]
fn runs_restarts_and_stops_a_static_pod() -> Result<()> {
    let node = up("pods")?;
    let manifest = node.manifests_dir().join("sleeper.yaml");
    let script = "echo started with $GREETING; exec sleep 1000";
    let yaml = pod_yaml("sleeper", &["sh", "-c", script]) + "    env:\n    - name: GREETING\n      value: hello\n";
    std::fs::write(&manifest, &yaml)?;
    let first = node.wait_pod_running("sleeper", T)?;
    let pid = first.pid.unwrap();
    check(&node, node.node_pid_alive(pid), "pod process not alive")?;
    assert_eq!(node.sh(&format!("cat /proc/{pid}/comm"))?.trim(), "sleep");
    wait(&node, 5, "pod log", || node.pod_log("sleeper").contains("started with hello"))?;

    // Killed: restarted (after a short backoff) with a new pid.
    node.sh(&format!("kill -9 {pid}"))?;
    let second = node.wait_pod("sleeper", T, "restarted", |p| p.state == PodState::Running && p.pid != Some(pid))?;
    assert_eq!(second.restarts, 1);
    assert!(second.last_exit.as_deref().unwrap_or("").contains("9"), "{second:?}");

    // Changed: the old process stops, the new spec runs.
    std::fs::write(&manifest, yaml.replace("exec sleep 1000", "exec sleep 1001"))?;
    let third = node.wait_pod("sleeper", T, "running the new spec", |p| {
        p.state == PodState::Running && p.argv.iter().any(|a| a.contains("sleep 1001"))
    })?;
    let old = second.pid.unwrap();
    wait(&node, 5, "old process gone", || !node.node_pid_alive(old))?;

    // Moved out of the manifests dir (what kdbg does to stop a component):
    // stopped, and nothing else runs in its place.
    std::fs::rename(&manifest, node.host_path("/etc/kubernetes/sleeper.yaml"))?;
    node.wait_pod_gone("sleeper", T)?;
    let pid = third.pid.unwrap();
    wait(&node, 5, "pod process gone", || !node.node_pid_alive(pid))?;
    assert_eq!(node.sh("pgrep -x sleep || true")?, "");
    Ok(())
}

#[test]
fn reads_every_file_but_dotfiles_like_the_kubelet() -> Result<()> {
    let node = up("files")?;
    let dir = node.manifests_dir();
    // A malformed manifest first: the runner logs it and goes on.
    std::fs::write(dir.join("broken.yaml"), "spec: [this is not\n")?;
    std::fs::write(dir.join("notes.txt"), "just some notes\n")?;
    std::fs::write(dir.join(".hidden.yaml"), pod_yaml("hidden", &["sleep", "1000"]))?;
    std::fs::write(dir.join("backup.yaml.bak"), pod_yaml("backup", &["sleep", "1000"]))?;
    node.wait_pod_running("backup", T)?;
    let broken = node.wait_pod("broken.yaml", T, "invalid", |p| p.state == PodState::Invalid)?;
    assert!(broken.error.is_some());
    node.wait_pod("notes.txt", T, "invalid", |p| p.state == PodState::Invalid)?;
    assert!(node.pod("hidden").is_none(), "{:?}", node.pods());

    // Same pod name in two files: the first (by file name) runs, the other is
    // rejected — until the first is moved out, then the backup takes over.
    std::fs::write(dir.join("dup.yaml"), pod_yaml("dup", &["sleep", "1002"]))?;
    std::fs::write(dir.join("dup.yaml.orig"), pod_yaml("dup", &["sleep", "1003"]))?;
    let dup = node.wait_pod_running("dup", T)?;
    assert!(dup.manifest.ends_with("/dup.yaml"), "{dup:?}");
    node.wait_pod("dup.yaml.orig", T, "rejected", |p| p.error.as_deref().unwrap_or("").contains("duplicate"))?;
    std::fs::remove_file(dir.join("dup.yaml"))?;
    node.wait_pod("dup", T, "run from the backup", |p| {
        p.state == PodState::Running && p.manifest.ends_with("/dup.yaml.orig")
    })?;

    // A command that does not exist crash-loops without hurting the runner.
    std::fs::write(dir.join("missing.yaml"), pod_yaml("missing", &["/no/such/binary"]))?;
    node.wait_pod("missing", T, "failing to start", |p| p.last_exit.as_deref().unwrap_or("").contains("cannot start"))?;
    std::fs::write(dir.join("late.yaml"), pod_yaml("late", &["sleep", "1000"]))?;
    node.wait_pod_running("late", T)?;
    Ok(())
}
