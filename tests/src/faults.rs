//! Breaking a node on purpose, for fault tests: no sudo, a full disk, no sshd.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::layout::{self, Layout};
use crate::node::TestNode;
use crate::setup;
use crate::sys::{self, kill, wait_for, wait_gone};

impl TestNode {
    /// Takes `docker`'s sudo rights away (removes the node's sudoers drop-in):
    /// `sudo -n` then fails as on a node without passwordless sudo.
    pub fn deny_sudo(&self) -> Result<()> {
        let path = self.host_path(layout::SUDOERS_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Gives `docker` passwordless sudo again.
    pub fn allow_sudo(&self) -> Result<()> {
        setup::write_sudoers(&Layout::at(self.state_dir().to_path_buf()))
    }

    /// Mounts a tmpfs of `size` (e.g. `"64k"`, `"1m"`) at `node_path` inside the
    /// node (creating the directory), hiding what was there. The host-side
    /// [`host_path`](Self::host_path) no longer shows the node's view of it.
    pub fn small_tmpfs(&self, node_path: impl AsRef<Path>, size: &str) -> Result<()> {
        let path = node_path.as_ref();
        let path_str = path.to_str().context("non-UTF-8 path")?;
        anyhow::ensure!(path.is_absolute(), "small_tmpfs needs an absolute node path");
        anyhow::ensure!(size.chars().all(|c| c.is_ascii_alphanumeric()), "bad tmpfs size {size:?}");
        self.exec(["mkdir", "-p", path_str])?;
        let out = self.exec([
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "kdbg-testnode-tmpfs",
            path_str,
        ])?;
        if !out.status.success() {
            bail!("mount tmpfs on {path_str}: {}", sys::output_text(&out));
        }
        self.tmpfs.lock().unwrap().push(path.to_path_buf());
        Ok(())
    }

    /// Fills the file system at `node_path`, which must be (under) a
    /// [`small_tmpfs`](Self::small_tmpfs) — never the host's disk.
    pub fn fill_disk(&self, node_path: impl AsRef<Path>) -> Result<()> {
        let path = self.fill_file(node_path.as_ref())?;
        let path = path.to_str().context("non-UTF-8 path")?;
        // dd stops with "No space left on device": that is the point.
        let _ = self.exec(["dd", "if=/dev/zero", &format!("of={path}"), "bs=4k"])?;
        let out = self.exec(["sh", "-c", "echo x >> \"$1\"", "sh", path])?;
        if out.status.success() {
            bail!("{path}: disk not full after filling it");
        }
        Ok(())
    }

    /// Frees what [`fill_disk`](Self::fill_disk) took.
    pub fn free_disk(&self, node_path: impl AsRef<Path>) -> Result<()> {
        let path = self.fill_file(node_path.as_ref())?;
        self.exec([Path::new("rm"), Path::new("-f"), &path])?;
        Ok(())
    }

    fn fill_file(&self, node_path: &Path) -> Result<PathBuf> {
        let tmpfs = self.tmpfs.lock().unwrap();
        let Some(mount) = tmpfs.iter().find(|m| node_path.starts_with(m)) else {
            bail!(
                "fill_disk({}): not under a small_tmpfs ({tmpfs:?}); refusing to fill a real disk",
                node_path.display()
            );
        };
        Ok(mount.join(".kdbg-testnode-fill"))
    }

    /// Host pids of the node's sshd processes (listener and sessions).
    fn sshd_pids(&self) -> Vec<u32> {
        let init = self.init_pid().to_string();
        let Some(pid_ns) = sys::ns_inode(&init, "pid") else {
            return Vec::new();
        };
        sys::all_pids()
            .into_iter()
            .filter(|&p| sys::ns_inode(&p.to_string(), "pid") == Some(pid_ns))
            .filter(|&p| sys::comm(p).is_some_and(|c| c == "sshd"))
            .collect()
    }

    /// Stops the node's sshd and drops every ssh session: the node becomes
    /// unreachable (connections are refused).
    pub fn stop_sshd(&self) -> Result<()> {
        let pids = self.sshd_pids();
        for &pid in &pids {
            kill(pid, libc::SIGTERM);
        }
        if !wait_gone(&pids, Duration::from_secs(3)) {
            for &pid in &pids {
                kill(pid, libc::SIGKILL);
            }
            wait_gone(&pids, Duration::from_secs(2));
        }
        let addr = SocketAddr::from((self.ip(), 22));
        wait_for(Duration::from_secs(3), Duration::from_millis(20), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err().then_some(())
        })
        .context("sshd still accepts connections")
    }

    /// Starts sshd again after [`stop_sshd`](Self::stop_sshd) and waits until
    /// ssh works.
    pub fn start_sshd(&self) -> Result<()> {
        let layout = Layout::at(self.state_dir().to_path_buf());
        let script = format!(
            "/usr/sbin/sshd -D -e -f '{}' >>'{}' 2>&1 </dev/null &",
            layout.sshd_config().display(),
            layout.sshd_log().display()
        );
        self.sh(&script)?;
        wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            self.ssh("true").ok()?.status.success().then_some(())
        })
        .context("ssh does not work after start_sshd")
    }
}
