//! The arm64 node's root filesystem, made on the host from unpacked Debian arm64 packages: /usr
//! merged by hand, the kernel modules cut to the virtio network, the files a Debian install's
//! maintainer scripts would have written (users, PAM, sshd), kubeadm's paths, `/init`, the
//! static-pod runner, and the ssh keys; then packed into a newc cpio for `-initrd`.

use std::os::unix::fs::PermissionsExt;

use anyhow::{ensure, Context, Result};
use camino::Utf8Path;
use xshell::{cmd, Shell};

/// The kernel modules `/init` loads (the kernel has virtio-net only as modules).
pub const MODULES: &[&str] =
    &["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net"];
/// The guest's boot and runner scripts, in the image key (a change rebuilds the initramfs).
pub const GUEST_FILES: &[(&str, &str, u32)] = &[
    ("init", include_str!("guest/init.sh"), 0o755),
    ("etc/inittab", include_str!("guest/inittab"), 0o644),
    ("usr/local/sbin/kdbg-pod-runner", include_str!("guest/runner.sh"), 0o755),
    ("usr/local/share/kdbg/argv.awk", include_str!("guest/argv.awk"), 0o644),
];
const DOCKER_UID: u32 = 1000;

/// Unpacks `debs` into `root`, then makes it bootable (see the module doc). The kernel image is
/// moved out to `kernel`.
pub fn populate(sh: &Shell, debs: &[camino::Utf8PathBuf], root: &Utf8Path, kernel: &Utf8Path) -> Result<()> {
    for deb in debs {
        cmd!(sh, "dpkg-deb -x {deb} {root}").quiet().run()?;
    }
    let vmlinuz = root
        .join("boot")
        .read_dir_utf8()?
        .flatten()
        .map(|e| e.path().to_owned())
        .find(|p| p.file_name().is_some_and(|n| n.starts_with("vmlinuz-")))
        .context("the arm64 linux-image package has no /boot/vmlinuz-*")?;
    std::fs::rename(&vmlinuz, kernel)?;
    prune(sh, root)?;
    usrmerge(sh, root)?;
    write_files(root)?;
    Ok(())
}

/// Drops what a node without man pages and with six kernel modules does not need.
fn prune(sh: &Shell, root: &Utf8Path) -> Result<()> {
    let keep: Vec<String> = MODULES.iter().map(|m| format!("{m}.ko")).collect();
    let modules: Vec<_> =
        ["lib/modules", "usr/lib/modules"].iter().map(|d| root.join(d)).filter(|d| d.is_dir()).collect();
    let all = cmd!(sh, "find {modules...} -type f").quiet().read()?;
    let mut kept = 0;
    for file in all.lines() {
        let name = file.rsplit('/').next().unwrap_or_default();
        if keep.iter().any(|k| k == name) {
            kept += 1;
        } else {
            std::fs::remove_file(file)?;
        }
    }
    ensure!(kept == MODULES.len(), "the arm64 kernel package has {kept} of the modules {MODULES:?}");
    for dir in ["boot", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "usr/share/lintian"] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
    Ok(())
}

/// Moves `/bin`, `/sbin`, `/lib` under `/usr` and links them back (bookworm's packages still ship
/// files there; the arm64 loader is `/lib/ld-linux-aarch64.so.1`).
fn usrmerge(sh: &Shell, root: &Utf8Path) -> Result<()> {
    for dir in ["bin", "sbin", "lib"] {
        let top = root.join(dir);
        let usr = root.join("usr").join(dir);
        std::fs::create_dir_all(&usr)?;
        if top.is_dir() && !top.is_symlink() {
            cmd!(sh, "cp -a {top}/. {usr}/").quiet().run()?;
            std::fs::remove_dir_all(&top)?;
        }
        std::os::unix::fs::symlink(format!("usr/{dir}"), &top)?;
    }
    Ok(())
}

fn put(root: &Utf8Path, path: &str, text: &str, mode: u32) -> Result<()> {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("a file in a directory"))?;
    std::fs::write(&file, text).with_context(|| format!("writing {file}"))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// What maintainer scripts and the installer would have written, and the node's own files.
fn write_files(root: &Utf8Path) -> Result<()> {
    let files: &[(&str, &str, u32)] = &[
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n\
             docker:x:1000:1000:docker:/home/docker:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            0o644,
        ),
        // `*`: no password, but not locked (sshd refuses locked accounts even for keys).
        ("etc/shadow", "root:*:20000:0:99999:7:::\nsshd:*:20000:0:99999:7:::\ndocker:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n", 0o640),
        ("etc/group", "root:x:0:\nsudo:x:27:docker\ndocker:x:1000:\nnogroup:x:65534:\n", 0o644),
        ("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n", 0o644),
        ("etc/hosts", "127.0.0.1 localhost\n10.0.2.15 arm64-node\n", 0o644),
        ("etc/hostname", "arm64-node\n", 0o644),
        ("etc/sudoers.d/kdbg-docker", "docker ALL=(ALL) NOPASSWD:ALL\n", 0o440),
        // libpam-runtime's maintainer script writes these; without them sudo cannot start PAM.
        ("etc/pam.d/common-auth", "auth required pam_permit.so\n", 0o644),
        ("etc/pam.d/common-account", "account required pam_permit.so\n", 0o644),
        ("etc/pam.d/common-session", "session required pam_permit.so\n", 0o644),
        ("etc/pam.d/common-session-noninteractive", "session required pam_permit.so\n", 0o644),
        ("etc/pam.d/common-password", "password required pam_deny.so\n", 0o644),
        (
            "etc/ssh/sshd_config",
            "Port 22\nHostKey /etc/ssh/ssh_host_ed25519_key\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin no\nStrictModes no\n\
             UseDNS no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nMaxSessions 64\nMaxStartups 64\n\
             PidFile /run/sshd.pid\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
            0o644,
        ),
    ];
    for (path, text, mode) in files.iter().chain(GUEST_FILES) {
        put(root, path, text, *mode)?;
    }
    for dir in [
        "etc/kubernetes/manifests",
        "var/lib/kdbg",
        "var/lib/minikube/certs",
        "var/log/pods",
        "usr/local/bin",
        "root",
        "proc",
        "sys",
        "dev",
        "run",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// The ssh keys: the node's host key (made here, never on the node) and `docker`'s
/// `authorized_keys` holding `identity.pub`.
pub fn install_keys(sh: &Shell, root: &Utf8Path, identity_pub: &str) -> Result<String> {
    let host_key = root.join("etc/ssh/ssh_host_ed25519_key");
    let _ = std::fs::remove_file(&host_key);
    cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -C kdbg-arm64-node -f {host_key}").run()?;
    let home = root.join("home/docker");
    put(root, "home/docker/.ssh/authorized_keys", identity_pub, 0o600)?;
    for p in [home.join(".ssh/authorized_keys"), home.join(".ssh"), home.clone()] {
        std::os::unix::fs::chown(&p, Some(DOCKER_UID), Some(DOCKER_UID))?;
    }
    Ok(std::fs::read_to_string(host_key.with_extension("pub"))?)
}

/// Packs `root` into an uncompressed newc cpio (the kernel unpacks that fastest).
pub fn pack(sh: &Shell, root: &Utf8Path, out: &Utf8Path) -> Result<()> {
    let _cwd = sh.push_dir(root);
    let script = "find . -print0 | cpio --null --create --format=newc --quiet > \"$0\"";
    cmd!(sh, "sh -c {script} {out}").run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner's manifest parser (busybox awk on the node; the host's awk reads the same
    /// POSIX subset) on the manifest the fixture writes, with an env entry and a quote to escape.
    #[test]
    fn the_runner_reads_command_args_and_env_of_the_first_container() {
        let dir = tempfile::tempdir().unwrap();
        let (_, awk, _) = GUEST_FILES.iter().find(|(p, _, _)| p.ends_with("argv.awk")).unwrap();
        std::fs::write(dir.path().join("argv.awk"), awk).unwrap();
        let manifest =
            kdbg_tests::lab::apiserver_manifest(std::net::Ipv4Addr::new(10, 0, 2, 15), &[("GODEBUG", "it's")]).replace(
                "  hostNetwork: true",
                "    args:\n    - --v=2\n  - command:\n    - /second/container\n  hostNetwork: true",
            );
        std::fs::write(dir.path().join("m.yaml"), manifest).unwrap();
        let out = std::process::Command::new("awk")
            .arg("-f")
            .arg("argv.awk")
            .arg("m.yaml")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let words = String::from_utf8(out.stdout).unwrap();
        let expected =
            " 'GODEBUG=it'\\''s' '/var/lib/minikube/binaries/kube-apiserver' '--advertise-address=10.0.2.15' \
             '--allow-privileged=true' '--bind-address=10.0.2.15' '--client-ca-file=/var/lib/minikube/certs/ca.crt' \
             '--etcd-servers=http://127.0.0.1:2379' '--secure-port=8443' \
             '--service-account-issuer=https://kubernetes.default.svc.cluster.local' \
             '--service-account-key-file=/var/lib/minikube/certs/sa.pub' \
             '--service-account-signing-key-file=/var/lib/minikube/certs/sa.key' '--v=2'\n";
        assert_eq!(words, expected);
    }
}
