//! Teardown leaves the host as it was: on drop, on panic, when the owning
//! process is killed, and through the `kdbg-testnode` CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use kdbg_tests::{layout::Layout, sys, teardown, NodeInfo};

use super::{pod_yaml, up, TESTNODE_BIN};

/// Host paths a node must never create or remove: whether each exists.
pub fn host_paths() -> Vec<(&'static str, bool)> {
    [
        "/etc/kubernetes",
        "/etc/sudoers.d/kdbg-docker",
        "/var/lib/minikube",
        "/var/lib/kdbg",
        "/var/lib/kubelet",
        "/var/lib/kdbg-testnode",
        "/home/docker",
        "/run/sshd",
        "/run/mount",
    ]
    .into_iter()
    .map(|p| (p, Path::new(p).exists()))
    .collect()
}

/// What a node puts on the host, to check it is gone afterwards.
struct Footprint {
    netns: String,
    host_if: String,
    state_dir: PathBuf,
    /// Every process in the node while it ran: (host pid, start time).
    processes: Vec<(u32, Option<u64>)>,
}

impl Footprint {
    fn of(info: &NodeInfo) -> Self {
        let footprint = Footprint {
            netns: info.netns.clone(),
            host_if: info.host_if.clone(),
            state_dir: info.state_dir.clone(),
            processes: teardown::Namespaces::of(Some(info), &info.netns)
                .processes()
                .into_iter()
                .map(|pid| (pid, sys::start_time(pid)))
                .collect(),
        };
        // node-init, sshd, the runner, and the `unshare` parent at least.
        assert!(footprint.processes.len() >= 4, "{:?}", footprint.processes);
        footprint
    }

    fn assert_gone(&self) -> Result<()> {
        let netns = Command::new(sys::tool("ip")).args(["netns", "list"]).output()?;
        let netns = String::from_utf8_lossy(&netns.stdout);
        ensure!(!netns.lines().any(|l| l.split_whitespace().next() == Some(&self.netns)), "netns left: {netns}");
        ensure!(!Path::new("/sys/class/net").join(&self.host_if).exists(), "veth {} left", self.host_if);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let state = self.state_dir.display().to_string();
        ensure!(!mounts.contains(&self.netns) && !mounts.contains(&state), "mounts left: {mounts}");
        ensure!(!self.state_dir.exists(), "state dir {state} left");
        let left: Vec<_> = self.processes.iter().filter(|(pid, start)| sys::same_process(*pid, *start)).collect();
        ensure!(left.is_empty(), "processes of the node left: {left:?}");
        Ok(())
    }
}

#[test]
fn teardown_leaves_nothing_behind() -> Result<()> {
    let before = host_paths();
    let node = up("down")?;
    // Give teardown work: a pod, an ssh session, a process that joined the node.
    std::fs::write(node.manifests_dir().join("p.yaml"), pod_yaml("p", &["sleep", "1000"]))?;
    node.wait_pod_running("p", Duration::from_secs(5))?;
    let mut session = node.ssh_command().arg("sleep 1000").stderr(Stdio::null()).spawn()?;
    let mut joined = node.command("sleep").arg("1000").spawn()?;
    super::wait(&node, 5, "three sleeps in the node", || {
        node.sh("pgrep -cx sleep || true").is_ok_and(|n| n.trim() == "3")
    })?;
    let footprint = Footprint::of(node.info());
    assert!(footprint.processes.len() >= 8, "{:?}", footprint.processes);
    node.down()?;
    footprint.assert_gone()?;
    assert_eq!(host_paths(), before);
    // Our children were in the node (nsenter) or talked to it (ssh): they end.
    joined.wait()?;
    session.wait()?;
    // Idempotent.
    teardown::by_name(&footprint.netns["kdbg-".len()..])?;
    Ok(())
}

#[test]
fn teardown_on_panic() -> Result<()> {
    let mut footprint = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let node = up("panic").unwrap();
        footprint = Some(Footprint::of(node.info()));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    footprint.context("node did not come up")?.assert_gone()
}

#[test]
fn node_of_a_killed_process_is_removed() -> Result<()> {
    // `up --foreground` owns its node like a test process does; kill it outright.
    let name = format!("killed-{}", std::process::id());
    let mut owner = Command::new(TESTNODE_BIN)
        .args(["up", "--foreground", "--json", "--name", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut json = String::new();
    let mut stdout = BufReader::new(owner.stdout.take().unwrap());
    while stdout.read_line(&mut json)? > 0 && !json.ends_with("}\n") {}
    let info: NodeInfo = serde_json::from_str(&json).with_context(|| format!("up printed {json:?}"))?;
    let footprint = Footprint::of(&info);
    owner.kill()?;
    owner.wait()?;
    // node-init notices its owner is gone and ends the node's processes...
    let init = info.init_pid.unwrap();
    ensure!(sys::wait_gone(&[init], Duration::from_secs(5)), "node-init outlived its owner");
    // ...and the next `up` (here: its sweep) removes the rest.
    assert!(teardown::is_stale(&NodeInfo::load(&Layout::for_name(&name))?));
    teardown::sweep_stale();
    footprint.assert_gone()
}

#[test]
fn cli_up_exec_down() -> Result<()> {
    let name = format!("cli-{}", std::process::id());
    let cli = |args: &[&str]| -> Result<std::process::Output> {
        let out = Command::new(TESTNODE_BIN).args(args).stdin(Stdio::null()).output()?;
        ensure!(out.status.success(), "kdbg-testnode {args:?}: {}", sys::output_text(&out));
        Ok(out)
    };
    let out = cli(&["up", "--name", &name, "--json"])?;
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let info: NodeInfo = serde_json::from_value(value.clone())?;
    let footprint = Footprint::of(&info);
    let guard = DownOnDrop(name.clone());
    // `up` returned, its process is gone, the node stays.
    let out = cli(&["exec", "--name", &name, "--", "cat", "/etc/hostname"])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), name);
    let ssh_args: Vec<String> = serde_json::from_value(value["ssh_args"].clone())?;
    let out = Command::new("ssh")
        .args(&ssh_args)
        .arg(format!("docker@{}", info.ip))
        .arg("sudo -n cat /etc/hostname")
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), name, "{out:?}");
    let list = cli(&["list"])?;
    assert!(String::from_utf8_lossy(&list.stdout).contains(&format!("{name}\tssh://docker@")));
    // A second `up` of the same name refuses.
    let again = Command::new(TESTNODE_BIN).args(["up", "--name", &name]).output()?;
    assert!(!again.status.success());
    cli(&["down", "--name", &name])?;
    footprint.assert_gone()?;
    cli(&["down", "--name", &name])?;
    drop(guard);
    Ok(())
}

/// Removes a CLI-made node if the test fails half way.
struct DownOnDrop(String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = teardown::by_name(&self.0);
    }
}
