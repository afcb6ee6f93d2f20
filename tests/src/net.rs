//! The node's network: a namespace `kdbg-NAME` and a veth pair on 10.213.N.0/24.
//!
//! The index N is reserved atomically by creating the host end `kdbgNh`: if
//! another node (of this or another process) has it, `ip link add` fails with
//! "File exists" and the next index is tried. Subnets that some other interface
//! of the host already uses are skipped.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::sys::{cmd, run};

/// Directory where `ip netns add` keeps its namespace files.
const NETNS_DIR: &str = "/run/netns";

/// The namespace of node `name`.
pub fn netns_name(name: &str) -> String {
    format!("kdbg-{name}")
}

/// True if the named network namespace exists.
pub fn netns_exists(netns: &str) -> bool {
    Path::new(NETNS_DIR).join(netns).exists()
}

/// The inode of a named network namespace (to recognise its processes).
pub fn netns_inode(netns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new(NETNS_DIR).join(netns)).ok().map(|m| m.ino())
}

/// What [`create`] set up.
#[derive(Clone, Debug)]
pub struct Net {
    pub index: u8,
    pub host_if: String,
    pub node_if: String,
    pub host_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
}

/// The host end of the veth pair for subnet index `n`.
pub fn host_if(n: u8) -> String {
    format!("kdbg{n}h")
}

/// Serialises `ip netns add` against the removal of an empty `/run/netns`.
struct NetnsLock {
    _file: File,
}

impl NetnsLock {
    fn take() -> Result<Self> {
        let file = File::open("/run").context("open /run")?;
        // SAFETY: flock on a valid fd owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("flock /run: {}", std::io::Error::last_os_error());
        }
        Ok(Self { _file: file })
    }
}

fn subnet_in_use(n: u8) -> bool {
    let prefix = format!("10.213.{n}.");
    let show = |args: &[&str]| {
        cmd("ip").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    show(&["-o", "-4", "addr", "show"]).contains(&prefix) || show(&["-4", "route", "show"]).contains(&prefix)
}

fn start_index(name: &str) -> u8 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % 250) as u8 + 1
}

/// Creates the namespace and the veth pair; on error nothing is left behind.
pub fn create(name: &str) -> Result<Net> {
    let netns = netns_name(name);
    {
        let _lock = NetnsLock::take()?;
        if netns_exists(&netns) {
            bail!("network namespace {netns} already exists");
        }
        run(cmd("ip").args(["netns", "add", &netns]))?;
    }
    match create_link(&netns, start_index(name)) {
        Ok(net) => Ok(net),
        Err(e) => {
            delete(&netns, None);
            Err(e)
        }
    }
}

fn create_link(netns: &str, start: u8) -> Result<Net> {
    for step in 0..250u16 {
        let n = ((u16::from(start) - 1 + step) % 250 + 1) as u8;
        if subnet_in_use(n) {
            continue;
        }
        let (host_if, node_if) = (host_if(n), format!("kdbg{n}n"));
        let out = cmd("ip")
            .args(["link", "add", &host_if, "type", "veth", "peer", "name", &node_if])
            .args(["netns", netns])
            .output()
            .context("run ip link add")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("File exists") {
                continue;
            }
            bail!("ip link add {host_if}: {}", err.trim());
        }
        let net =
            Net { index: n, host_ip: Ipv4Addr::new(10, 213, n, 1), ip: Ipv4Addr::new(10, 213, n, 2), host_if, node_if };
        if let Err(e) = configure(netns, &net) {
            let _ = cmd("ip").args(["link", "del", &net.host_if]).output();
            return Err(e);
        }
        return Ok(net);
    }
    bail!("no free subnet 10.213.N.0/24 for a test node")
}

fn configure(netns: &str, net: &Net) -> Result<()> {
    let host_cidr = format!("{}/24", net.host_ip);
    let node_cidr = format!("{}/24", net.ip);
    run(cmd("ip").args(["addr", "add", &host_cidr, "dev", &net.host_if]))?;
    run(cmd("ip").args(["link", "set", &net.host_if, "up"]))?;
    let inside = |args: &[&str]| run(cmd("ip").args(["-n", netns]).args(args)).map(drop);
    inside(&["addr", "add", &node_cidr, "dev", &net.node_if])?;
    inside(&["link", "set", &net.node_if, "up"])?;
    inside(&["link", "set", "lo", "up"])?;
    // No default route: the node reaches nothing but the host end of its veth.
    Ok(())
}

/// Deletes the namespace and the host end of the veth pair (if given), then
/// removes `/run/netns` if it is left empty (so the host looks as before the
/// first `ip netns add`). Errors are ignored: this must be idempotent.
pub fn delete(netns: &str, host_if: Option<&str>) {
    if let Some(host_if) = host_if {
        if Path::new("/sys/class/net").join(host_if).exists() {
            let _ = cmd("ip").args(["link", "del", host_if]).output();
        }
    }
    let Ok(_lock) = NetnsLock::take() else { return };
    if netns_exists(netns) {
        let _ = cmd("ip").args(["netns", "del", netns]).output();
    }
    let dir = Path::new(NETNS_DIR);
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if empty {
        if let Ok(c) = std::ffi::CString::new(NETNS_DIR) {
            // SAFETY: valid NUL-terminated path. A failure (not a mountpoint) is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(dir);
    }
}
