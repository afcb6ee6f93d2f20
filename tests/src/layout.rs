//! Where a node's files live on the host, and which node paths they back.
//!
//! Everything of node `NAME` lives in the state directory `/tmp/kdbg-testnode-NAME`:
//!
//! ```text
//! node.json          NodeInfo: addresses, pids, owner (read by `down`, `exec`, the sweep)
//! root/...           the node's own directories, bind-mounted over NODE_DIRS
//! files/etc/...      edited copies of passwd, shadow, group, hosts, hostname
//! overlay/P/{upper,work}   overlayfs layers over OVERLAY_PARENTS: missing
//!                    mountpoints (/etc/kubernetes, /home/docker, ...) and whatever
//!                    the node writes under /etc, /var, /usr, ... stay in the node
//! ssh/               host key, client key, known_hosts, sshd_config, ssh_config
//! *.log, init.pid    node-init, sshd and runner logs; node-init's host pid
//! ```

use std::path::{Path, PathBuf};

/// The login user on the node (as on minikube).
pub const USER: &str = "docker";
/// Directories overlaid in the node so that mountpoints can be created in them.
/// Directories the node sees as the host's but writes to its own upper layer:
/// what a test (or kdbg) writes there never reaches the host.
pub const OVERLAY_PARENTS: &[&str] = &["/etc", "/var", "/home", "/run", "/root", "/opt", "/usr"];
/// The node's own empty `/tmp` (a tmpfs); the state directory stays visible in it.
pub const NODE_TMP: &str = "/tmp";
/// Node directories backed by `root()/<path>` on the host (parents first).
pub const NODE_DIRS: &[&str] = &[
    "/etc/kubernetes",
    "/etc/sudoers.d",
    "/var/lib/minikube",
    "/var/lib/kdbg",
    "/var/lib/kubelet",
    "/var/lib/kdbg-testnode",
    "/var/log",
    "/home/docker",
    "/run/sshd",
];
/// Subdirectories created inside the node directories.
pub const NODE_SUBDIRS: &[&str] =
    &["/etc/kubernetes/manifests", "/var/lib/minikube/certs", "/var/log/pods", "/home/docker/.ssh"];
/// Node files replaced by edited copies from `files/`.
pub const NODE_FILES: &[&str] = &["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hosts", "/etc/hostname"];
/// The static pod manifests directory, as the node sees it.
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
/// Where the runner appends each pod's output (`<pod-name>.log`).
pub const POD_LOGS: &str = "/var/log/pods";
/// The runner's state file, as the node sees it.
pub const PODS_STATE: &str = "/var/lib/kdbg-testnode/pods.json";
/// The sudoers drop-in that gives `docker` passwordless sudo.
pub const SUDOERS_FILE: &str = "/etc/sudoers.d/kdbg-docker";
/// Its contents.
pub const SUDOERS_LINE: &str = "docker ALL=(ALL) NOPASSWD:ALL\n";
/// Prefix of every state directory.
pub const STATE_PREFIX: &str = "/tmp/kdbg-testnode-";

/// Paths of one node's state directory.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of node `name`.
    pub fn for_name(name: &str) -> Self {
        Self::at(PathBuf::from(format!("{STATE_PREFIX}{name}")))
    }

    /// The layout rooted at an existing state directory.
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Host path of the node's own directories (`root()/etc/kubernetes`, ...).
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Host path backing a node path under `root()`.
    pub fn host_path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let rel = node_path.as_ref().strip_prefix("/").unwrap_or(node_path.as_ref());
        self.root().join(rel)
    }

    /// Host path of the edited copy of a node file (e.g. `/etc/passwd`).
    pub fn file_copy(&self, node_path: &str) -> PathBuf {
        self.dir.join("files").join(node_path.trim_start_matches('/'))
    }

    /// The `upper` and `work` directories of the overlay over `parent`.
    pub fn overlay(&self, parent: &str) -> (PathBuf, PathBuf) {
        let base = self.dir.join("overlay").join(parent.trim_start_matches('/').replace('/', "-"));
        (base.join("upper"), base.join("work"))
    }

    /// Directory of ssh keys and configs.
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }
    /// The client's private key.
    pub fn identity(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }
    /// known_hosts with the node's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }
    /// The node sshd's host key.
    pub fn host_key(&self) -> PathBuf {
        self.ssh_dir().join("ssh_host_ed25519_key")
    }
    /// The node sshd's configuration.
    pub fn sshd_config(&self) -> PathBuf {
        self.ssh_dir().join("sshd_config")
    }
    /// An ssh client config with a `Host` entry for the node.
    pub fn ssh_config(&self) -> PathBuf {
        self.ssh_dir().join("config")
    }
    /// sshd's pid file (a pid in the node's pid namespace).
    pub fn sshd_pid(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    /// NodeInfo as JSON.
    pub fn node_json(&self) -> PathBuf {
        self.dir.join("node.json")
    }
    /// node-init's pid as the host sees it.
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    /// node-init's output.
    pub fn init_log(&self) -> PathBuf {
        self.dir.join("init.log")
    }
    /// sshd's output.
    pub fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
    /// The static-pod runner's output.
    pub fn runner_log(&self) -> PathBuf {
        self.dir.join("runner.log")
    }
}

/// Names become netns names, hostnames and path components: keep them tame.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    anyhow::ensure!(ok, "bad node name {name:?}: use 1-40 of [a-z0-9-], not starting with '-'");
    Ok(())
}
