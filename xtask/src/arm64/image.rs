//! The arm64 node's image, built once into a cache outside the repository
//! (`/var/cache/kdbg-arm64/image-<key>/`, or `$KDBG_ARM64_CACHE`) and recorded in
//! `<cache>/image.json` for [`kdbg_tests::arm64::Arm64Image::from_cache`].
//!
//! The key hashes what the image is made of: the package lists below, the rootfs builder
//! (`rootfs.rs`) and the guest scripts; a second run with the same key does nothing. What goes in:
//! - qemu: Debian's `qemu-system-arm` and its shared libraries (amd64), `apt-get download`ed and
//!   unpacked with `dpkg-deb -x`, run with `LD_LIBRARY_PATH` and `-L`. Never installed: bookworm's
//!   `qemu-system-common` would remove this image's backports `qemu-utils`.
//! - the node: Debian arm64 packages ([`NODE_PACKAGES`] and their shared-library dependencies),
//!   through a private apt configuration ([`super::apt`]), made into an initramfs ([`super::rootfs`]).
//! - the arm64 Delve of that initramfs, copied out as `dlv` for kdbg's `--dlv linux/arm64=PATH`.
//! - an ssh key pair for `docker` (`id_ed25519`) and the node's host key (made on the host).

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_tests::arm64::Arm64Image;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use super::apt::Apt;
use super::rootfs;

/// What the node is made of (plus the shared libraries these depend on).
pub const NODE_PACKAGES: &[&str] = &[
    "linux-image-arm64",
    "busybox-static",
    "libc6",
    "openssh-server",
    "openssh-client",
    "openssh-sftp-server",
    "sudo",
    "delve",
    "kmod",
    // kdbg copies binaries zstd-compressed (and as deltas) when the node has zstd.
    "zstd",
];
/// `qemu-system-aarch64` and the shared libraries it needs that the base image lacks.
pub const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-arm",
    "qemu-system-common",
    "qemu-system-data",
    "libfdt1",
    "libcapstone4",
    "libpmem1",
    "librdmacm1",
    "libibverbs1",
    "libslirp0",
    "libvdeplug2",
    "libndctl6",
    "libdaxctl1",
    "libnl-3-200",
    "libnl-route-3-200",
];

/// Of a package's dependencies, what the node takes: shared libraries and the kernel image.
fn node_keeps(name: &str) -> bool {
    name.starts_with("lib") || name == "zlib1g" || name.starts_with("linux-image-")
}

pub fn cache_dir() -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(Arm64Image::default_cache()).expect("a UTF-8 cache path")
}

/// The image for this key, built first if the cache lacks it.
pub fn ensure(sh: &Shell, cache: &Utf8Path) -> Result<Arm64Image> {
    let dir = cache.join(format!("image-{}", key()));
    let record = dir.join("image.json");
    if record.is_file() {
        eprintln!("xtask: the arm64 node image is cached in {dir}");
        let image: Arm64Image = serde_json::from_slice(&std::fs::read(&record)?)?;
        std::fs::copy(&record, cache.join("image.json"))?;
        return Ok(image);
    }
    eprintln!(
        "xtask: building the arm64 node image into {dir} (qemu and Debian arm64 packages through private apt \
         configurations in {cache}; the system's apt sources and packages stay as they are)"
    );
    let tmp = cache.join(format!("image-{}.tmp", key()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let image = build(sh, cache, &tmp, &dir)?;
    std::fs::write(tmp.join("image.json"), serde_json::to_vec_pretty(&image)?)?;
    let stale = cache.read_dir_utf8()?.flatten().filter(|e| e.file_name().starts_with("image-") && e.path() != tmp);
    for stale in stale.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        std::fs::remove_dir_all(stale.path())?;
    }
    std::fs::rename(&tmp, &dir)?;
    std::fs::copy(&record, cache.join("image.json"))?;
    Ok(image)
}

/// Builds everything in `tmp`; the returned paths are those it will have as `dir`.
fn build(sh: &Shell, cache: &Utf8Path, tmp: &Utf8Path, dir: &Utf8Path) -> Result<Arm64Image> {
    let qemu_pkgs: Vec<String> = QEMU_PACKAGES.iter().map(|p| p.to_string()).collect();
    let amd64 = Apt::update(sh, cache, "amd64")?;
    eprintln!("xtask: fetching and unpacking qemu-system-aarch64 (not installed: unpacked into {dir}/qemu)");
    for deb in amd64.download(sh, &qemu_pkgs, &tmp.join("debs-amd64"))? {
        cmd!(sh, "dpkg-deb -x {deb} {tmp}/qemu").quiet().run()?;
    }
    let qemu_lib_path = format!("{dir}/qemu/usr/lib/x86_64-linux-gnu:{dir}/qemu/lib/x86_64-linux-gnu");
    let tmp_libs = qemu_lib_path.replace(dir.as_str(), tmp.as_str());
    let version =
        cmd!(sh, "{tmp}/qemu/usr/bin/qemu-system-aarch64 --version").env("LD_LIBRARY_PATH", tmp_libs).read()?;
    eprintln!("xtask: {}", version.lines().next().unwrap_or_default());

    let arm64 = Apt::update(sh, cache, "arm64")?;
    let names = arm64.closure(sh, NODE_PACKAGES, node_keeps)?;
    eprintln!("xtask: fetching {} Debian arm64 packages: {}", names.len(), names.join(" "));
    let debs = arm64.download(sh, &names, &tmp.join("debs-arm64"))?;
    let packages: Vec<String> = debs.iter().filter_map(|d| name_version(d)).collect();
    let root = tmp.join("rootfs");
    eprintln!("xtask: unpacking them into an initramfs (usrmerged; users, PAM, sshd, /init, the static-pod runner)");
    rootfs::populate(sh, &debs, &root, &tmp.join("vmlinuz"))?;
    std::fs::copy(root.join("usr/bin/dlv"), tmp.join("dlv")).context("the arm64 delve package has no usr/bin/dlv")?;
    let identity = tmp.join("id_ed25519");
    cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -C kdbg-arm64-docker -f {identity}").run()?;
    let host_key = rootfs::install_keys(sh, &root, &std::fs::read_to_string(identity.with_extension("pub"))?)?;
    rootfs::pack(sh, &root, &tmp.join("initrd.img"))?;
    for scratch in ["rootfs", "debs-amd64", "debs-arm64"] {
        std::fs::remove_dir_all(tmp.join(scratch))?;
    }
    ensure!(packages.iter().any(|p| p.starts_with("delve=")), "no delve among {packages:?}");
    Ok(Arm64Image {
        qemu: dir.join("qemu/usr/bin/qemu-system-aarch64").into(),
        qemu_lib_path,
        qemu_data: dir.join("qemu/usr/share/qemu").into(),
        kernel: dir.join("vmlinuz").into(),
        initrd: dir.join("initrd.img").into(),
        identity: dir.join("id_ed25519").into(),
        host_key: host_key.trim().to_string(),
        dlv: dir.join("dlv").into(),
        packages,
    })
}

/// `name=version` of a `name_version_arch.deb` file (`%3a` is the epoch's colon).
fn name_version(deb: &Utf8Path) -> Option<String> {
    let mut parts = deb.file_name()?.split('_');
    Some(format!("{}={}", parts.next()?, parts.next()?.replace("%3a", ":")))
}

/// The image key: a hash of the package lists, the rootfs builder and the guest scripts.
pub fn key() -> String {
    let mut h = Sha256::new();
    for part in NODE_PACKAGES.iter().chain(QEMU_PACKAGES).chain(rootfs::MODULES) {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(include_str!("rootfs.rs"));
    h.update(include_str!("image.rs"));
    for (path, text, mode) in rootfs::GUEST_FILES {
        h.update(format!("{path} {mode:o}\n{text}\0"));
    }
    hex::encode(&h.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_names_give_name_and_version() {
        assert_eq!(
            name_version(Utf8Path::new("/x/openssh-server_1%3a9.2p1-2+deb12u7_arm64.deb")).as_deref(),
            Some("openssh-server=1:9.2p1-2+deb12u7")
        );
    }
}
