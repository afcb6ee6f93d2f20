//! Host-side preparation of a node's state directory before node-init starts:
//! directories, the `docker` user, ssh keys, sshd and client configs.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::layout::{self, Layout};
use crate::sys::{cmd, run, write_atomic};

/// Everything known about a node; stored as `node.json` in its state directory
/// and printed by `kdbg-testnode up --json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub netns: String,
    pub hostname: String,
    pub index: u8,
    pub ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub host_if: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub ssh_target: String,
    pub state_dir: PathBuf,
    pub root: PathBuf,
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub ssh_config: PathBuf,
    /// node-init's pid on the host, once it runs.
    pub init_pid: Option<u32>,
    pub init_start: Option<u64>,
    /// The process that owns the node (it goes when that process goes); `None`
    /// for a detached node (`kdbg-testnode up`), which only `down` removes.
    pub owner_pid: Option<u32>,
    pub owner_start: Option<u64>,
}

impl NodeInfo {
    /// A node not yet up: addresses and pids are filled in as it comes up. An
    /// `owned` node belongs to this process (it goes when the process goes).
    pub fn new(name: &str, hostname: Option<&str>, owned: bool, layout: &Layout) -> Self {
        let owner = owned.then(std::process::id);
        NodeInfo {
            name: name.to_owned(),
            netns: crate::net::netns_name(name),
            hostname: hostname.unwrap_or(name).to_owned(),
            index: 0,
            ip: Ipv4Addr::UNSPECIFIED,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_if: String::new(),
            user: layout::USER.to_owned(),
            uid: 0,
            gid: 0,
            ssh_target: String::new(),
            state_dir: layout.dir().to_path_buf(),
            root: layout.root(),
            identity: layout.identity(),
            known_hosts: layout.known_hosts(),
            ssh_config: layout.ssh_config(),
            init_pid: None,
            init_start: None,
            owner_pid: owner,
            owner_start: owner.and_then(crate::sys::start_time),
        }
    }

    /// Reads `node.json` of a state directory.
    pub fn load(layout: &Layout) -> Result<Self> {
        let path = layout.node_json();
        let text = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Writes `node.json`.
    pub fn save(&self, layout: &Layout) -> Result<()> {
        write_atomic(&layout.node_json(), &serde_json::to_vec_pretty(self)?)
    }

    /// The ssh options a client needs to log in to this node.
    pub fn ssh_args(&self) -> Vec<String> {
        [
            "-i".to_owned(),
            self.identity.display().to_string(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "ConnectTimeout=5".to_owned(),
        ]
        .into()
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("mkdir {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Creates the state directory's tree, users, keys and configs.
pub fn prepare(layout: &Layout, info: &mut NodeInfo) -> Result<()> {
    mkdir(layout.dir(), 0o755)?;
    for dir in layout::NODE_DIRS.iter().chain(layout::NODE_SUBDIRS) {
        mkdir(&layout.host_path(dir), 0o755)?;
    }
    for parent in layout::OVERLAY_PARENTS {
        let (upper, work) = layout.overlay(parent);
        mkdir(&upper, 0o755)?;
        mkdir(&work, 0o755)?;
    }
    mkdir(&layout.ssh_dir(), 0o700)?;
    mkdir(&layout.file_copy("/etc"), 0o755)?;
    write_users(layout, info)?;
    write_misc_files(layout, info)?;
    write_ssh(layout, info)?;
    let home = layout.host_path("/home/docker");
    for path in [home.clone(), home.join(".ssh"), home.join(".ssh/authorized_keys")] {
        std::os::unix::fs::chown(&path, Some(info.uid), Some(info.gid))?;
    }
    fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The first id >= 1000 that no line of a passwd/group-style file uses.
fn free_id(files: &[&str]) -> u32 {
    let used: Vec<u32> =
        files.iter().flat_map(|text| text.lines()).filter_map(|line| line.split(':').nth(2)?.parse().ok()).collect();
    (1000..).find(|id| !used.contains(id)).unwrap_or(1000)
}

fn without_user(text: &str, user: &str) -> String {
    let prefix = format!("{user}:");
    text.lines().filter(|l| !l.starts_with(&prefix)).fold(String::new(), |mut s, l| {
        let _ = writeln!(s, "{l}");
        s
    })
}

fn write_users(layout: &Layout, info: &mut NodeInfo) -> Result<()> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    let group = fs::read_to_string("/etc/group")?;
    let shadow = fs::read_to_string("/etc/shadow").unwrap_or_default();
    let user = layout::USER;
    let passwd = without_user(&passwd, user);
    info.uid = free_id(&[&passwd]);
    // Reuse the host's `docker` group (Docker's) if there is one.
    let existing_gid = group.lines().find(|l| l.starts_with("docker:")).and_then(|l| l.split(':').nth(2)?.parse().ok());
    info.gid = existing_gid.unwrap_or_else(|| free_id(&[&group]).max(info.uid));
    let mut group_out = String::new();
    for line in group.lines() {
        match line.split(':').next() {
            Some("sudo") => {
                let sep = if line.ends_with(':') { "" } else { "," };
                let _ = writeln!(group_out, "{line}{sep}{user}");
            }
            _ => {
                let _ = writeln!(group_out, "{line}");
            }
        }
    }
    if existing_gid.is_none() {
        let _ = writeln!(group_out, "{user}:x:{}:", info.gid);
    }
    let passwd = format!("{passwd}{user}:x:{}:{}:docker:/home/docker:/bin/bash\n", info.uid, info.gid);
    // `*`: no password, but not locked (sshd refuses locked `!` accounts).
    let shadow = format!("{}{user}:*:19000:0:99999:7:::\n", without_user(&shadow, user));
    fs::write(layout.file_copy("/etc/passwd"), passwd)?;
    fs::write(layout.file_copy("/etc/group"), group_out)?;
    fs::write(layout.file_copy("/etc/shadow"), shadow)?;
    fs::set_permissions(layout.file_copy("/etc/shadow"), fs::Permissions::from_mode(0o640))?;
    Ok(())
}

/// Writes the sudoers drop-in (mode 0440) into the node's `/etc/sudoers.d`.
pub fn write_sudoers(layout: &Layout) -> Result<()> {
    let path = layout.host_path(layout::SUDOERS_FILE);
    fs::write(&path, layout::SUDOERS_LINE)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o440))?;
    Ok(())
}

fn write_misc_files(layout: &Layout, info: &NodeInfo) -> Result<()> {
    write_sudoers(layout)?;
    let hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    let hosts = format!("{hosts}127.0.1.1\t{h}\n{ip}\t{h}\n", h = info.hostname, ip = info.ip);
    fs::write(layout.file_copy("/etc/hosts"), hosts)?;
    fs::write(layout.file_copy("/etc/hostname"), format!("{}\n", info.hostname))?;
    Ok(())
}

fn keygen(path: &Path, comment: &str) -> Result<String> {
    let _ = fs::remove_file(path);
    run(cmd("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path))?;
    let public = path.with_extension("pub");
    Ok(fs::read_to_string(&public).with_context(|| format!("read {}", public.display()))?.trim().to_owned())
}

fn write_ssh(layout: &Layout, info: &NodeInfo) -> Result<()> {
    let host_pub = keygen(&layout.host_key(), &format!("root@{}", info.hostname))?;
    let client_pub = keygen(&layout.identity(), "kdbg-testnode-client")?;
    let host_key_fields: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    fs::write(layout.known_hosts(), format!("{} {}\n", info.ip, host_key_fields.join(" ")))?;
    fs::write(layout.host_path("/home/docker/.ssh/authorized_keys"), format!("{client_pub}\n"))?;
    let sshd_config = format!(
        "# kdbg test node {name}\n\
         ListenAddress {ip}:22\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin no\n\
         AllowUsers {user}\n\
         AuthorizedKeysFile /home/docker/.ssh/authorized_keys\n\
         AllowTcpForwarding yes\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n\
         MaxStartups 100\n\
         MaxSessions 100\n\
         Subsystem sftp internal-sftp\n",
        name = info.name,
        ip = info.ip,
        host_key = layout.host_key().display(),
        pid = layout.sshd_pid().display(),
        user = layout::USER,
    );
    fs::write(layout.sshd_config(), sshd_config)?;
    let ssh_config = format!(
        "Host {netns} {ip}\n  HostName {ip}\n  User {user}\n  IdentityFile {id}\n  \
         IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  \
         BatchMode yes\n",
        netns = info.netns,
        ip = info.ip,
        user = layout::USER,
        id = layout.identity().display(),
        kh = layout.known_hosts().display(),
    );
    fs::write(layout.ssh_config(), ssh_config)?;
    Ok(())
}
