//! `cargo xtask e2e arm64`: the linux/arm64 tier. A real arm64 node under `qemu-system-aarch64`
//! (software emulation; this machine's KVM is x86), built once into a cache outside the
//! repository (see [`image`]) and booted through [`kdbg_tests::arm64::Arm64Node`]; the fixture
//! apiserver cross-built for linux/arm64 runs there as a static pod and the node's arm64 Delve
//! stops it at a breakpoint set from this host ([`smoke`]). Every stage is timed.

mod apt;
mod flow;
mod image;
mod real;
mod rootfs;
mod smoke;

use anyhow::{bail, Result};
use kdbg_tests::arm64::Arm64Node;
use xshell::Shell;

use crate::e2e::Stages;

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let real = match args {
        [] => false,
        [flag] if flag == "--real-tree" => true,
        _ => bail!("usage: cargo xtask e2e arm64 [--real-tree]"),
    };
    let mut stages = Stages::default();
    let result = match real {
        true => real::run(sh, &mut stages),
        false => stages_of(sh, &mut stages),
    };
    stages.print();
    result
}

fn stages_of(sh: &Shell, stages: &mut Stages) -> Result<()> {
    let cache = image::cache_dir();
    stages.run("host tools (Go 1.19, ssh, cpio)", || {
        crate::setup::ensure_extra(
            sh,
            &[
                ("/usr/lib/go-1.19/bin/go", "golang-1.19-go"),
                ("/usr/bin/ssh", "openssh-client"),
                ("/usr/bin/ssh-keygen", "openssh-client"),
                ("/usr/bin/cpio", "cpio"),
            ],
        )
    })?;
    let image =
        stages.run("arm64 node image: qemu, kernel, initramfs, Delve (cached)", || image::ensure(sh, &cache))?;
    eprintln!("arm64: kernel {}, initramfs {}", image.kernel.display(), image.initrd.display());
    eprintln!("arm64: Delve for linux/arm64 (kdbg --dlv linux/arm64=PATH): {}", image.dlv.display());
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-arm64-e2e-").tempdir()?;
    let scratch = camino::Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    let bin = scratch.join("kube-apiserver");
    stages.run("cross-build the fixture apiserver for linux/arm64 (Go 1.19, -N -l)", || {
        smoke::cross_build_apiserver(sh, &bin)
    })?;
    let node = stages.run("boot the arm64 node (until ssh answers sudo -n true)", || Arm64Node::boot(&image))?;
    let uname = node.ssh("uname -m")?;
    eprintln!("arm64: node {} is {}", node.ssh_target(), uname.trim());
    let api_port = stages.run("apiserver as a static pod on the node; /healthz ok through ssh", || {
        smoke::install_static_pod(&node, &bin)
    })?;
    let before = node.snapshot()?;
    smoke::breakpoint_through_delve(stages, &node, api_port)?;
    stages.run("the node is as it was (manifests, /var/lib/kdbg, processes)", || {
        smoke::same_node(&before, &node.snapshot()?)
    })?;
    let bin = stages.run("build kdbg", || crate::e2e::build_tools(sh))?.join("kdbg");
    let tree = stages.run("the fixture tree, to build for linux/arm64", || {
        std::fs::create_dir_all(scratch.join("src"))?;
        let root = kdbg_tests::fixture::copy_to(scratch.join("src").as_std_path())?;
        Ok(camino::Utf8PathBuf::try_from(root)?)
    })?;
    let state = scratch.join("state");
    let dlv = camino::Utf8PathBuf::try_from(image.dlv.clone())?;
    let k = flow::Kdbg { bin, tree, node: &node, dlv, state };
    flow::run(stages, &k, api_port)?;
    stages.run("tear down (qemu killed, temp files removed)", || {
        drop(node);
        Ok(())
    })
}
