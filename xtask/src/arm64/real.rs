//! `cargo xtask e2e arm64 --real-tree` (opt-in, not in `.ci/run`: each new platform is a cold Go
//! build of the real tree): Debian's kubernetes 1.20.2 built for linux/arm64 by kdbg. The
//! apiserver and the kubelet (cgo in that tree) without the C cross compiler: the error before
//! make; with `--static`: aarch64 binaries with DWARF, said so; with `gcc-aarch64-linux-gnu`
//! installed: the kubelet with cgo. Every stage is timed.

use anyhow::{ensure, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::e2e::Stages;

pub fn run(sh: &Shell, stages: &mut Stages) -> Result<()> {
    let cache = Utf8PathBuf::from(std::env::var("KDBG_E2E_CACHE").unwrap_or_else(|_| "/var/cache/kdbg-e2e".into()));
    stages.run("install packages", || {
        crate::setup::ensure_packages(sh)?;
        crate::setup::ensure_extra(sh, &[("/usr/bin/dpkg-source", "dpkg-dev")])
    })?;
    let source = stages.run("fetch kubernetes source (apt-get source kubernetes)", || {
        let tree = crate::e2e::source::fetch(sh, &cache)?;
        crate::e2e::source::patch_reflect2(sh, &tree)?;
        Ok(tree)
    })?;
    // A copy of its own: the real-cluster tier builds in the source tree with plain make.
    let tree = cache.join("arm64-real/kubernetes");
    stages.run("a copy of the tree for the arm64 builds (kept in the cache)", || {
        std::fs::create_dir_all(&tree)?;
        let (from, to) = (format!("{source}/"), format!("{tree}/"));
        cmd!(sh, "rsync -a --delete --exclude /_output {from} {to}").run()?;
        Ok(())
    })?;
    let kdbg = stages.run("build kdbg", || crate::e2e::build_tools(sh))?.join("kdbg");
    let build = |components: &[&str], extra: &[&str], env: &[(&str, &str)]| {
        let mut c = cmd!(
            sh,
            "{kdbg} build {components...} --platform linux/arm64 --src {tree} --kube-version v1.20.2 {extra...}"
        )
        .ignore_status();
        for (k, v) in env {
            c = c.env(k, v);
        }
        let out = c.output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{text}");
        anyhow::Ok((out.status.success(), text))
    };
    let arm = tree.join("_output/local/bin/linux/arm64");
    stages.run("the kubelet (cgo here) without aarch64-linux-gnu-gcc: the error, before make", || {
        let (ok, text) =
            build(&["apiserver", "kubelet"], &[], &[("KUBE_LINUX_ARM64_CC", "/nonexistent/aarch64-linux-gnu-gcc")])?;
        ensure!(!ok && text.contains("kubelet for linux/arm64: this tree builds it with cgo"), "{text}");
        ensure!(text.contains("--static") && !text.contains("running make"), "{text}");
        Ok(())
    })?;
    stages.run("kdbg build apiserver kubelet --platform linux/arm64 --static", || {
        let (ok, text) = build(&["apiserver", "kubelet"], &["--static"], &[])?;
        ensure!(ok && text.contains("building kubelet static"), "{text}");
        for name in ["kube-apiserver", "kubelet"] {
            describe(&arm.join(name), false)?;
        }
        Ok(())
    })?;
    stages.run("gcc-aarch64-linux-gnu installed; the kubelet with cgo", || {
        // Packages install without their recommends here: the arm64 libc headers are one of them.
        crate::setup::ensure_extra(
            sh,
            &[
                ("/usr/bin/aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
                ("/usr/aarch64-linux-gnu/include/stdio.h", "libc6-dev-arm64-cross"),
            ],
        )?;
        let (ok, text) = build(&["kubelet"], &[], &[])?;
        ensure!(ok, "{text}");
        describe(&arm.join("kubelet"), true)
    })
}

/// Checks `path` is an aarch64 ELF with DWARF, dynamically linked when `cgo`; prints what it is.
fn describe(path: &Utf8Path, cgo: bool) -> Result<()> {
    use object::Object;
    let bytes = std::fs::read(path)?;
    let file = object::File::parse(&*bytes)?;
    let dwarf = file.section_by_name(".debug_info").is_some();
    let dynamic = file.section_by_name(".interp").is_some();
    eprintln!("arm64-real: {path}: {:?}, DWARF {dwarf}, dynamic {dynamic}, {} bytes", file.architecture(), bytes.len());
    ensure!(file.architecture() == object::Architecture::Aarch64 && dwarf, "{path}: not an aarch64 ELF with DWARF");
    ensure!(dynamic == cgo, "{path}: dynamic {dynamic}, expected cgo {cgo}");
    Ok(())
}
