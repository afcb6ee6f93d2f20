//! Builds and nodes of another platform than the Go toolchain's (issue 24): the same tree built
//! for linux/amd64 and linux/arm64 keeps two keys and two binaries side by side, replay works per
//! platform, a cgo component without its cross compiler fails before make, and a node of another
//! platform without a Delve for it is refused before it changes.

use object::Object;

use crate::session::Lab;
use crate::support::{sha256_file, Tree};

const KUBE: &str = "--kube-version=v1.20.2";

/// The ELF machine of a file and whether it carries DWARF.
fn elf(path: &std::path::Path) -> (object::Architecture, bool) {
    let bytes = std::fs::read(path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    (file.architecture(), file.section_by_name(".debug_info").is_some())
}

#[test]
fn one_tree_builds_for_two_platforms_side_by_side_and_replays_per_platform() {
    let tree = Tree::fixture();
    fn arm(args: &[&'static str]) -> Vec<&'static str> {
        [&["build", "apiserver", KUBE, "--platform", "linux/arm64"], args].concat()
    }
    let out = tree.kdbg(arm(&[])).success();
    assert!(out.stdout.contains("built"), "{}", out.stdout);
    let arm_bin = tree.path("_output/local/bin/linux/arm64/kube-apiserver");
    assert_eq!(elf(&arm_bin), (object::Architecture::Aarch64, true), "an aarch64 ELF with DWARF");
    tree.kdbg(["build", "apiserver", KUBE]).success();
    let host_bin = tree.path("_output/local/bin/linux/amd64/kube-apiserver");
    assert_eq!(elf(&host_bin).0, object::Architecture::X86_64);

    // Two keys, both hits: switching platforms rebuilds nothing.
    let runs = tree.make_runs().len();
    assert!(tree.kdbg(arm(&[])).success().stdout.contains("up to date"));
    assert!(tree.kdbg(["build", "apiserver", KUBE]).success().stdout.contains("up to date"));
    assert_eq!(tree.make_runs().len(), runs, "no make for either platform");
    let arm_key = tree.kdbg(["cache-key", "apiserver", KUBE, "--platform", "linux/arm64", "--explain"]).success();
    let host_key = tree.kdbg(["cache-key", "apiserver", KUBE]).success();
    assert!(arm_key.stdout.starts_with("kdbg-v1-linux-arm64-"), "{}", arm_key.stdout);
    assert!(host_key.stdout.starts_with("kdbg-v1-linux-amd64-"), "{}", host_key.stdout);
    assert!(arm_key.stderr.contains("kube-apiserver (for linux/arm64, static):"), "{}", arm_key.stderr);

    // A body edit replays make's captured arm64 `go` call, byte-identical to make's build.
    let healthz = tree.healthz();
    let text = std::fs::read_to_string(tree.path(healthz)).unwrap();
    tree.write(healthz, &text.replacen("\"ok\"", "\"ok, arm64\"", 1));
    let replayed = tree.kdbg(arm(&[])).success();
    assert!(replayed.stdout.contains("replayed"), "{}", replayed.stdout);
    let by_replay = sha256_file(&arm_bin);
    std::fs::remove_file(&arm_bin).unwrap();
    tree.kdbg(arm(&["--via-make"])).success();
    assert_eq!(sha256_file(&arm_bin), by_replay, "replay and make give the same arm64 bytes");
}

#[test]
fn a_cgo_component_without_its_cross_compiler_fails_before_make_and_static_builds_it() {
    let tree = Tree::fixture();
    let kubelet = ["build", "kubelet", KUBE, "--platform", "linux/arm64"];
    // The tree links the kubelet with cgo; its cross compiler is missing (golang.sh's override
    // names one that does not exist: no package is removed for the test).
    let missing = "/nonexistent/aarch64-linux-gnu-gcc";
    let err = tree.kdbg(kubelet).env("KUBE_LINUX_ARM64_CC", missing).failure(1).stderr;
    assert!(err.contains("kubelet for linux/arm64: this tree builds it with cgo"), "{err}");
    assert!(err.contains(&format!("the C cross compiler {missing} is missing")), "{err}");
    assert!(err.contains("--static") && err.contains("KUBE_STATIC_OVERRIDES=kubelet"), "{err}");
    assert!(tree.make_runs().is_empty(), "nothing ran before the error");
    // Where the default compiler is not installed, the error names its Debian package.
    let cc = std::process::Command::new("sh").args(["-c", "command -v aarch64-linux-gnu-gcc"]).output().unwrap();
    if !cc.status.success() {
        let err = tree.kdbg(kubelet).env_remove("KUBE_LINUX_ARM64_CC").failure(1).stderr;
        assert!(err.contains("apt-get install gcc-aarch64-linux-gnu"), "{err}");
    }
    let out = tree.kdbg([&kubelet[..], &["--static"]].concat()).env("KUBE_LINUX_ARM64_CC", missing).success();
    assert!(out.stderr.contains("building kubelet static (KUBE_STATIC_OVERRIDES, --static)"), "{}", out.stderr);
    assert!(tree.make_runs().iter().any(|m| m.contains("WHAT=cmd/kubelet")));
    assert_eq!(elf(&tree.path("_output/local/bin/linux/arm64/kubelet")).0, object::Architecture::Aarch64);
}

/// The lab node says it is an arm64 machine (`uname` bind-mounted over in its own mount
/// namespace): kdbg builds for linux/arm64 and wants a Delve for it.
fn arm64_looking(lab: &Lab) {
    let fake = "#!/bin/sh\ncase \"$1\" in -m) echo aarch64 ;; -s) echo Linux ;; *) echo Linux ;; esac\n";
    std::fs::write(lab.node.host_path("/var/lib/kdbg-testnode/fake-uname"), fake).unwrap();
    lab.node.sh("chmod 755 /var/lib/kdbg-testnode/fake-uname && mount --bind /var/lib/kdbg-testnode/fake-uname \"$(command -v uname)\"").unwrap();
    assert_eq!(lab.node.sh("uname -m").unwrap().trim(), "aarch64");
}

#[test]
fn an_arm64_node_without_an_arm64_delve_is_refused_before_it_changes() {
    let lab = Lab::up("xarm");
    arm64_looking(&lab);
    let before = lab.snapshot();
    let home = tempfile::tempdir().unwrap();
    let err = lab.debug(&[KUBE]).env("HOME", home.path()).env("GOPATH", home.path()).env_remove("KDBG_DLV").output();
    assert_ne!(err.code, 0, "{}", err.stdout);
    let text = &err.stderr;
    assert!(text.contains("no Delve for linux/arm64 nodes"), "{text}");
    assert!(
        text.contains("GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go install github.com/go-delve/delve/cmd/dlv@"),
        "{text}"
    );
    assert!(text.contains(&format!("{}/go/bin/linux_arm64/dlv", home.path().display())), "the searched paths: {text}");
    assert!(text.contains("--dlv linux/arm64=PATH"), "{text}");
    assert_eq!(lab.snapshot(), before, "nothing changed on the node");

    // This machine's amd64 Delve named for arm64 nodes is refused by its ELF, never copied.
    let amd64 = lab.tree.toolchain.dlv.clone();
    let named = format!("linux/arm64={}", amd64.display());
    let err = lab.debug(&[KUBE, "--dlv", &named]).output();
    assert_ne!(err.code, 0);
    assert!(err.stderr.contains("is a dlv for amd64") && err.stderr.contains("linux/arm64"), "{}", err.stderr);
    assert!(!lab.node.host_path("/var/lib/kdbg/bin/dlv").exists(), "no amd64 Delve on an arm64 node");
    assert_eq!(lab.snapshot(), before);
}
