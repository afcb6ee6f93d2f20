//! Reading the static-pod runner's state from the host, and waiting on it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::layout;
use crate::manifest::{PodState, PodStatus, PodsFile};
use crate::node::TestNode;
use crate::sys::{self, wait_for};

impl TestNode {
    /// The runner's current view of every manifest (empty until it first wrote).
    pub fn pods(&self) -> Vec<PodStatus> {
        let path = self.host_path(layout::PODS_STATE);
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<PodsFile>(&bytes).ok())
            .map(|file| file.pods)
            .unwrap_or_default()
    }

    /// The entry of the pod called `name`, if any.
    pub fn pod(&self, name: &str) -> Option<PodStatus> {
        self.pods().into_iter().find(|p| p.name == name)
    }

    /// Waits until the pod called `name` satisfies `pred`; its status then.
    pub fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&PodStatus) -> bool,
    ) -> Result<PodStatus> {
        wait_for(timeout, Duration::from_millis(50), || self.pods().into_iter().find(|p| p.name == name && pred(p)))
            .with_context(|| {
                format!("pod {name} not {what} within {timeout:?}; pods: {:#?}\n{}", self.pods(), self.logs())
            })
    }

    /// Waits until pod `name` runs; its status (with its node pid) then.
    pub fn wait_pod_running(&self, name: &str, timeout: Duration) -> Result<PodStatus> {
        self.wait_pod(name, timeout, "running", |p| p.state == PodState::Running)
    }

    /// Waits until the runner no longer knows pod `name` (its process is gone).
    pub fn wait_pod_gone(&self, name: &str, timeout: Duration) -> Result<()> {
        wait_for(timeout, Duration::from_millis(50), || self.pod(name).is_none().then_some(()))
            .with_context(|| format!("pod {name} still there after {timeout:?}: {:?}", self.pod(name)))
    }

    /// The pod's output so far (`/var/log/pods/NAME.log` on the node).
    pub fn pod_log(&self, name: &str) -> String {
        let path = self.host_path(Path::new(layout::POD_LOGS).join(format!("{name}.log")));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The host pid of a process given by its pid inside the node.
    pub fn host_pid(&self, node_pid: u32) -> Option<u32> {
        let init = self.init_pid().to_string();
        let pid_ns = sys::ns_inode(&init, "pid")?;
        sys::all_pids().into_iter().find(|&pid| {
            sys::ns_inode(&pid.to_string(), "pid") == Some(pid_ns)
                && std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("NSpid:"))?.to_owned();
                    line.split_whitespace().last()?.parse::<u32>().ok()
                }) == Some(node_pid)
        })
    }

    /// True if a process with this node pid runs in the node (zombies excluded).
    pub fn node_pid_alive(&self, node_pid: u32) -> bool {
        self.host_pid(node_pid).is_some_and(sys::is_alive)
    }
}
