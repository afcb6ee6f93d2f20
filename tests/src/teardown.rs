//! Tearing a node down, by name, idempotently: node-init and every process in the
//! node's namespaces, the network namespace and veth, `/run/netns` if we left it
//! empty, and the state directory. The node's mounts live only in its mount
//! namespace and vanish with its last process.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::layout::{Layout, STATE_PREFIX};
use crate::net;
use crate::setup::NodeInfo;
use crate::sys::{self, all_pids, kill, ns_inode, same_process, wait_gone};

/// A node's namespaces (`net`, `mnt`, `pid`), held open: an open namespace
/// cannot be freed, so its inode number cannot be reused by another node's new
/// namespace while we match processes against it. Never includes one of our own
/// namespaces (so a recycled pid can never make us kill the host).
pub struct Namespaces {
    inodes: HashSet<u64>,
    _pins: Vec<File>,
}

impl Namespaces {
    /// The namespaces of node-init (if `info` names a live one in the node's
    /// netns) and the netns `netns`.
    pub fn of(info: Option<&NodeInfo>, netns: &str) -> Self {
        let mut pins = Vec::new();
        let netns_file = File::open(Path::new("/run/netns").join(netns)).ok();
        let netns_ino = netns_file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.ino());
        pins.extend(netns_file);
        if let Some(pid) = info.and_then(|i| i.init_pid.filter(|&p| same_process(p, i.init_start))) {
            // Trust node-init's namespaces only if it is in the node's netns (or
            // the netns file is already gone).
            if netns_ino.is_none() || ns_inode(&pid.to_string(), "net") == netns_ino {
                for kind in ["net", "mnt", "pid"] {
                    pins.extend(File::open(format!("/proc/{pid}/ns/{kind}")).ok());
                }
            }
        }
        let own: Vec<u64> =
            ["net", "mnt", "pid", "pid_for_children"].iter().filter_map(|kind| ns_inode("self", kind)).collect();
        let pins: Vec<File> =
            pins.into_iter().filter(|f| f.metadata().is_ok_and(|m| !own.contains(&m.ino()))).collect();
        let inodes = pins.iter().filter_map(|f| f.metadata().ok()).map(|m| m.ino()).collect();
        Self { inodes, _pins: pins }
    }

    /// True if `inode` is one of the node's namespaces.
    pub fn contains(&self, inode: u64) -> bool {
        self.inodes.contains(&inode)
    }

    /// True if no namespace of the node was found.
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// Host pids of every live process in one of these namespaces.
    pub fn processes(&self) -> Vec<u32> {
        let me = std::process::id();
        all_pids()
            .into_iter()
            .filter(|&pid| pid != me && sys::is_alive(pid))
            .filter(|&pid| {
                let pid = pid.to_string();
                ["net", "mnt", "pid"].iter().any(|kind| ns_inode(&pid, kind).is_some_and(|i| self.inodes.contains(&i)))
            })
            .collect()
    }
}

/// Tears node `name` down. Safe to call for a node that is half built, already
/// gone, or was never there.
pub fn by_name(name: &str) -> Result<()> {
    crate::layout::validate_name(name)?;
    let layout = Layout::for_name(name);
    let info = NodeInfo::load(&layout).ok();
    let netns = net::netns_name(name);
    let namespaces = Namespaces::of(info.as_ref(), &netns);

    // 1. node-init ends the node's processes itself, then exits.
    if let Some(info) = &info {
        if let Some(pid) = info.init_pid.filter(|&p| same_process(p, info.init_start)) {
            if ns_inode(&pid.to_string(), "net").is_some_and(|n| namespaces.contains(n)) {
                kill(pid, libc::SIGTERM);
                if !wait_gone(&[pid], Duration::from_secs(5)) {
                    kill(pid, libc::SIGKILL);
                    wait_gone(&[pid], Duration::from_secs(2));
                }
            }
        }
    }
    // 2. Whatever is still in the node's namespaces (nsenter'ed processes, the
    //    `unshare` parent, a node whose init died).
    if !namespaces.is_empty() {
        for _ in 0..50 {
            let left = namespaces.processes();
            if left.is_empty() {
                break;
            }
            for &pid in &left {
                kill(pid, libc::SIGKILL);
            }
            wait_gone(&left, Duration::from_millis(200));
        }
        let left = namespaces.processes();
        if !left.is_empty() {
            bail!("node {name}: processes {left:?} survive SIGKILL");
        }
    }
    drop(namespaces); // let them go: the mounts vanish with the mount namespace
                      // 3. Network.
    net::delete(&netns, info.as_ref().map(|i| i.host_if.as_str()));
    if let Some(info) = &info {
        let link = Path::new("/sys/class/net").join(&info.host_if);
        sys::wait_for(Duration::from_secs(2), Duration::from_millis(20), || (!link.exists()).then_some(()));
    }
    // 4. Files.
    match std::fs::remove_dir_all(layout.dir()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => bail!("remove {}: {e}", layout.dir().display()),
        _ => Ok(()),
    }
}

/// True if the node's owner is gone: the node is a leftover of a killed test.
pub fn is_stale(info: &NodeInfo) -> bool {
    match info.owner_pid {
        Some(pid) => !same_process(pid, info.owner_start),
        None => info.init_pid.is_some_and(|p| !same_process(p, info.init_start)),
    }
}

/// Names of every node with a state directory on this host.
pub fn list_nodes() -> Vec<String> {
    let (dir, prefix) = STATE_PREFIX.rsplit_once('/').unwrap_or(("/tmp", STATE_PREFIX));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().to_str()?.to_owned();
                    name.strip_prefix(prefix).map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Tears down nodes left behind by test processes that died (SIGKILL, abort):
/// their node-init noticed and ended their processes, but the netns, veth and
/// state directory remain.
pub fn sweep_stale() {
    for name in list_nodes() {
        let Ok(info) = NodeInfo::load(&Layout::for_name(&name)) else {
            continue;
        };
        if is_stale(&info) {
            if let Err(e) = by_name(&name) {
                eprintln!("kdbg-testnode: cannot remove stale node {name}: {e:#}");
            }
        }
    }
}
