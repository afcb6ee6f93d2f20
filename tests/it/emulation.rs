//! A component that runs under user-mode emulation is refused by `kdbg debug` before the node
//! changes (issue 24 point 4): a test node's static pod runs the fixture apiserver, cross-built
//! for linux/arm64 through the tree's `KUBE_BUILD_PLATFORMS`, as
//! `qemu-aarch64-static /var/lib/minikube/binaries/kube-apiserver ...` (Delve would hang at its
//! first breakpoint there, go-delve/delve#2812).
//!
//! Fetches Debian's `qemu-user-static` .deb once (`apt-get download qemu-user-static`, about
//! 60 MB, from the system's apt sources) and unpacks it with `dpkg-deb -x` into
//! `<toolchain cache>/qemu-user-static` (default `/var/cache/kdbg-toolchains`). It is never
//! installed: installing it would register binfmt_misc handlers for the whole machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use kdbg_tests::lab::{self, RELEASE_BIN};
use kdbg_tests::{TestNode, TestNodeConfig};

use crate::support::{Tree, GO_BIN};

/// Where the emulator goes on the node (one of the node's own directories).
const QEMU_ON_NODE: &str = "/var/lib/minikube/binaries/qemu-aarch64-static";

/// `qemu-aarch64-static` from Debian's `qemu-user-static`, fetched and unpacked on first use.
fn qemu_aarch64_static() -> PathBuf {
    let dir = kdbg_tests::toolchain::cache_dir().join("qemu-user-static");
    let bin = dir.join("root/usr/bin/qemu-aarch64-static");
    if bin.is_file() {
        return bin;
    }
    eprintln!(
        "fetching Debian's qemu-user-static .deb (`apt-get download`, ~60 MB) into {}; unpacked with `dpkg-deb -x`, never installed",
        dir.display()
    );
    std::fs::create_dir_all(kdbg_tests::toolchain::cache_dir()).unwrap();
    let staging = tempfile::tempdir_in(kdbg_tests::toolchain::cache_dir()).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.current_dir(staging.path()).output().unwrap();
        assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    };
    run(Command::new("apt-get").args(["download", "qemu-user-static"]));
    let deb = std::fs::read_dir(staging.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    let deb = deb.expect("apt-get download wrote a .deb");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg("root"));
    // Another test run may have won the race; either copy is the same package.
    if std::fs::rename(staging.path(), &dir).is_ok() {
        std::mem::forget(staging);
    }
    assert!(bin.is_file(), "{} is missing after unpacking", bin.display());
    bin
}

/// The 1.20-era fixture's apiserver built by `make all KUBE_BUILD_PLATFORMS=linux/arm64`.
fn arm64_apiserver(scratch: &Path) -> PathBuf {
    let root = kdbg_tests::fixture::copy_to(scratch).unwrap();
    let out = Command::new("make")
        .args(["all", "WHAT=cmd/kube-apiserver", "KUBE_BUILD_PLATFORMS=linux/arm64"])
        .current_dir(&root)
        .env("PATH", format!("{GO_BIN}:/usr/bin:/bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    root.join("_output/local/bin/linux/arm64/kube-apiserver")
}

/// The manifests and the journal: what must stay as it was.
fn snapshot(node: &TestNode) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(node.manifests_dir())
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files.push(("<journal>".into(), std::fs::read(node.host_path("/var/lib/kdbg/journal.json")).unwrap_or_default()));
    files
}

#[test]
fn an_apiserver_run_by_qemu_user_is_refused_before_the_node_changes() {
    let qemu = qemu_aarch64_static();
    let scratch = tempfile::tempdir().unwrap();
    let apiserver = arm64_apiserver(scratch.path());

    let node = TestNode::up(TestNodeConfig::unique("emu").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let bin = node.host_path(RELEASE_BIN);
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(&apiserver, &bin).unwrap();
    std::fs::copy(&qemu, node.host_path(QEMU_ON_NODE)).unwrap();
    let manifest = lab::apiserver_manifest(node.ip(), &[]);
    let native = format!("  - command:\n    - {RELEASE_BIN}\n");
    assert!(manifest.contains(&native), "{manifest}");
    let emulated = manifest.replace(&native, &format!("  - command:\n    - {QEMU_ON_NODE}\n    - {RELEASE_BIN}\n"));
    std::fs::write(node.manifests_dir().join("kube-apiserver.yaml"), &emulated).unwrap();
    lab::wait_healthz(&node, std::time::Duration::from_secs(60)).unwrap();

    let tree = Tree::fixture();
    let state = tempfile::tempdir().unwrap();
    let before = snapshot(&node);
    let args = ["debug", "apiserver", "--no-ide"].map(String::from).into_iter().chain(lab::target_args(&node));
    let out = tree.kdbg(args).env("KDBG_STATE_DIR", state.path()).failure(1);
    for part in [
        "kdbg cannot debug kube-apiserver",
        "the node runs its binaries under emulation",
        &format!("runs under qemu-aarch64-static ({QEMU_ON_NODE} is mapped in /proc/"),
        "Delve cannot set breakpoints in an emulated process (go-delve/delve#2812)",
        "fix: run the node from an image of the host's own platform (linux/amd64)",
    ] {
        assert!(out.stderr.contains(part), "{part:?} missing in:\n{}", out.stderr);
    }
    assert_eq!(snapshot(&node), before, "the manifests and the journal are untouched");
    let copied = std::fs::read_dir(node.host_path("/var/lib/kdbg/bin")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(copied, 0, "nothing was copied to the node");
    assert_eq!(lab::body(&lab::get(&node, "/healthz").unwrap()), "ok", "the emulated original still serves");
    node.down().unwrap();
}
