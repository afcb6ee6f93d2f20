//! The node's root filesystem: a Debian 12 `debootstrap` with systemd, containerd, runc, the CNI
//! plugins, iptables and sshd, kept as a tar in the e2e cache and keyed by what it includes.

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

/// Debian packages the node has besides `minbase`, and why.
const PACKAGES: &[(&str, &str)] = &[
    ("systemd", "PID 1, as on every kind, minikube and kubeadm node"),
    ("systemd-sysv", "/sbin/init"),
    ("dbus", "systemctl talks to systemd through it"),
    ("containerd", "the container runtime the kubelet drives over CRI"),
    ("runc", "containerd's OCI runtime"),
    ("containernetworking-plugins", "the bridge CNI that makes the node Ready"),
    ("iptables", "kube-proxy's Service rules"),
    ("conntrack", "kube-proxy clears stale conntrack entries"),
    ("ethtool", "the kubelet and CNI query interfaces"),
    ("socat", "kdbg's kind transport forwards ports with it"),
    ("zstd", "kdbg sends binaries zstd-compressed"),
    ("openssh-server", "the ssh:// target"),
    ("sudo", "the ssh login user's way to root"),
    ("iproute2", "ip, ss"),
    ("procps", "ps, pkill"),
    ("kmod", "modprobe for kube-proxy"),
    ("curl", "health checks from inside the node"),
    ("ca-certificates", "TLS trust roots"),
];

/// What the rootfs is built from; its hash names the cached tar.
fn recipe() -> String {
    let pkgs: Vec<&str> = PACKAGES.iter().map(|(p, _)| *p).collect();
    format!("debootstrap --variant=minbase bookworm\ninclude={}\nuser=docker sudo\nv1\n", pkgs.join(","))
}

/// The rootfs as a directory under `cache`, debootstrapped once (about 90 s) and reused.
pub fn ensure(sh: &Shell, cache: &Utf8Path) -> Result<Utf8PathBuf> {
    let key = &hex::encode(Sha256::digest(recipe()))[..16];
    let dir = cache.join(format!("rootfs-{key}"));
    if dir.join(".kdbg-complete").exists() {
        eprintln!("e2e: using the node rootfs at {dir}");
        return Ok(dir);
    }
    crate::setup::ensure_extra(sh, &[("/usr/sbin/debootstrap", "debootstrap")])?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing the incomplete rootfs {dir}"))?;
    }
    let include = PACKAGES.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(",");
    eprintln!("e2e: debootstrap of Debian 12 (minbase + {include}) into {dir}; about 90 s");
    let log = cache.join("debootstrap.log");
    let script = r#"debootstrap --variant=minbase --include="$1" bookworm "$2""#;
    super::run_logged(sh, script, &[include.as_str(), dir.as_str()], &log)
        .context("debootstrap failed (is the Debian mirror reachable?)")?;
    // The ssh:// target logs in as `docker` with passwordless sudo, as on minikube.
    cmd!(sh, "chroot {dir} useradd --create-home --shell /bin/bash docker").run()?;
    std::fs::write(dir.join("etc/sudoers.d/docker"), "docker ALL=(ALL) NOPASSWD:ALL\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("etc/sudoers.d/docker"), std::fs::Permissions::from_mode(0o440))?;
    // Services that make no sense in a container node, or would fight the kubelet.
    for unit in ["apt-daily.timer", "apt-daily-upgrade.timer", "systemd-timesyncd.service"] {
        let _ = cmd!(sh, "chroot {dir} systemctl disable {unit}").quiet().ignore_stderr().ignore_stdout().run();
    }
    std::fs::write(dir.join(".kdbg-complete"), recipe())?;
    Ok(dir)
}

/// Copies `path` (absolute, inside `root`) and the shared libraries it loads into `into`,
/// keeping symlinks as symlinks; `root` is `/` for this host's files.
pub fn add_with_libs(sh: &Shell, root: &Utf8Path, path: &str, into: &Utf8Path) -> Result<()> {
    add_file(root, path, into)?;
    let ldd = if root == "/" {
        cmd!(sh, "ldd {path}").quiet().ignore_status().read()?
    } else {
        cmd!(sh, "chroot {root} /usr/bin/ldd {path}").quiet().ignore_status().read()?
    };
    for lib in ldd.lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/'))) {
        add_file(root, lib, into)?;
    }
    Ok(())
}

/// Copies one file, and every symlink on the way to it, from `root` into `into`.
fn add_file(root: &Utf8Path, path: &str, into: &Utf8Path) -> Result<()> {
    let rel = path.trim_start_matches('/');
    let src = root.join(rel);
    let dst = into.join(rel);
    if dst.symlink_metadata().is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(dst.parent().expect("a file has a parent"))?;
    let meta = src.symlink_metadata().with_context(|| format!("reading {src}"))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&src)?;
        std::os::unix::fs::symlink(&target, &dst)?;
        let target = Utf8PathBuf::try_from(target)?;
        let resolved =
            if target.is_absolute() { target } else { Utf8Path::new(path).parent().expect("absolute").join(target) };
        return add_file(root, resolved.as_str(), into);
    }
    std::fs::copy(&src, &dst).with_context(|| format!("copying {src}"))?;
    Ok(())
}
