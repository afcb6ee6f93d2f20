//! The fixture trees build for other platforms the way kubernetes' `hack/lib/golang.sh` of their
//! era does (issue 24 point 6): `KUBE_BUILD_PLATFORMS` picks GOOS/GOARCH and the output
//! directory, the static binaries build with `CGO_ENABLED=0`, a cgo binary cross-built needs
//! the era's cross C compiler (and says so when it is missing), and `KUBE_STATIC_OVERRIDES` /
//! `KUBE_CGO_OVERRIDES` move the kubelet between the two. Runs `make` on copies of the fixtures
//! on this linux/amd64 machine and reads the ELF headers of what it wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use kdbg_tests::toolchain::Toolchain;
use object::read::elf::{FileHeader, ProgramHeader};

use crate::support::Tree;

/// What an ELF file is: its machine and whether it asks for a dynamic loader (cgo's libc).
#[derive(Debug, PartialEq, Eq)]
struct Elf {
    machine: &'static str,
    dynamic: bool,
}

fn elf(path: &Path) -> Elf {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data).expect("a 64-bit ELF");
    let endian = header.endian().unwrap();
    let machine = match header.e_machine(endian) {
        object::elf::EM_AARCH64 => "aarch64",
        object::elf::EM_X86_64 => "x86-64",
        other => panic!("{}: unexpected ELF machine {other}", path.display()),
    };
    let segments = header.program_headers(endian, &*data).unwrap();
    let dynamic = segments.iter().any(|p| p.p_type(endian) == object::elf::PT_INTERP);
    Elf { machine, dynamic }
}

const ARM64_STATIC: Elf = Elf { machine: "aarch64", dynamic: false };
const AMD64_STATIC: Elf = Elf { machine: "x86-64", dynamic: false };
const AMD64_CGO: Elf = Elf { machine: "x86-64", dynamic: true };

struct Make {
    out: std::process::Output,
}

impl Make {
    fn ok(&self) -> bool {
        self.out.status.success()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

/// `make all WHAT=<what> <vars...>` in `t` with its toolchain's Go first on PATH.
fn make(t: &Tree, what: &str, vars: &[&str]) -> Make {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", t.toolchain.go_bin.display());
    let mut cmd = Command::new("/usr/bin/make");
    cmd.arg("all").arg(format!("WHAT={what}")).args(vars).current_dir(&t.root).env("PATH", path);
    for k in ["GOFLAGS", "GOTOOLCHAIN", "GOOS", "GOARCH", "CGO_ENABLED", "CC", "GOROOT"] {
        cmd.env_remove(k);
    }
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KUBE_") {
            cmd.env_remove(k);
        }
    }
    Make { out: cmd.output().expect("make runs") }
}

fn bin(t: &Tree, platform: &str, name: &str) -> PathBuf {
    t.path(&format!("_output/local/bin/{platform}/{name}"))
}

/// Whether Debian's `aarch64-linux-gnu-gcc` is on PATH (it is not installed here; with it the
/// cgo kubelet builds instead of failing).
fn cross_gcc_installed() -> bool {
    Command::new("sh").args(["-c", "command -v aarch64-linux-gnu-gcc"]).output().is_ok_and(|o| o.status.success())
}

/// The kubelet built with cgo for linux/arm64: fails naming the cross compiler, or, where it is
/// installed, is a dynamic aarch64 binary.
#[track_caller]
fn assert_cgo_arm64_kubelet(t: &Tree, m: &Make) {
    if cross_gcc_installed() {
        assert!(m.ok(), "{}", m.stderr());
        assert_eq!(elf(&bin(t, "linux/arm64", "kubelet")), Elf { machine: "aarch64", dynamic: true });
    } else {
        assert!(!m.ok(), "the cgo kubelet cannot build without a cross compiler:\n{}", m.stderr());
        let err = m.stderr();
        assert!(err.contains(r#"C compiler "aarch64-linux-gnu-gcc" not found"#), "{err}");
        assert!(!bin(t, "linux/arm64", "kubelet").exists(), "no kubelet was written");
    }
}

#[test]
fn the_1_20_fixture_cross_builds_through_kube_build_platforms() {
    let t = Tree::fixture_with(Toolchain::debian());
    let m = make(&t, "cmd/kube-apiserver", &["KUBE_BUILD_PLATFORMS=linux/arm64"]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/arm64", "kube-apiserver")), ARM64_STATIC);
    assert!(m.stderr().contains("CC=aarch64-linux-gnu-gcc"), "the era's cross compiler:\n{}", m.stderr());
    assert!(!t.path("_output/bin").exists(), "_output/bin links only the host's platform");

    assert_cgo_arm64_kubelet(&t, &make(&t, "cmd/kubelet", &["KUBE_BUILD_PLATFORMS=linux/arm64"]));
    let m = make(&t, "cmd/kubelet", &["KUBE_BUILD_PLATFORMS=linux/arm64", "KUBE_LINUX_ARM64_CC=/nonexistent/gcc"]);
    assert!(!m.ok() && m.stderr().contains(r#"C compiler "/nonexistent/gcc" not found"#), "{}", m.stderr());

    let m = make(&t, "cmd/kubelet", &["KUBE_BUILD_PLATFORMS=linux/arm64", "KUBE_STATIC_OVERRIDES=kubelet"]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/arm64", "kubelet")), ARM64_STATIC);

    // Both platforms in one make; the host's keeps its cgo kubelet and gets _output/bin.
    let platforms = "KUBE_BUILD_PLATFORMS=linux/amd64 linux/arm64";
    let m = make(&t, "cmd/kubelet cmd/kube-proxy", &[platforms, "KUBE_STATIC_OVERRIDES=kubelet"]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/amd64", "kubelet")), AMD64_STATIC);
    assert_eq!(elf(&bin(&t, "linux/arm64", "kube-proxy")), ARM64_STATIC);
    let m = make(&t, "cmd/kubelet", &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/amd64", "kubelet")), AMD64_CGO, "natively the kubelet uses cgo");
    assert_eq!(std::fs::read_link(t.path("_output/bin")).unwrap(), Path::new("local/bin/linux/amd64"));

    // KUBE_CGO_OVERRIDES wins over KUBE_STATIC_LIBRARIES: kube-proxy now needs the cross compiler.
    let m = make(&t, "cmd/kube-proxy", &["KUBE_BUILD_PLATFORMS=linux/arm64", "KUBE_CGO_OVERRIDES=kube-proxy"]);
    if !cross_gcc_installed() {
        assert!(!m.ok() && m.stderr().contains("aarch64-linux-gnu-gcc"), "{}", m.stderr());
    }
}

#[test]
fn the_modern_fixture_cross_builds_with_a_static_kubelet_and_kube_cgo_overrides() {
    let t = Tree::fixture_with(Toolchain::newest());
    let m = make(&t, "cmd/kube-apiserver cmd/kubelet", &["KUBE_BUILD_PLATFORMS=linux/arm64"]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/arm64", "kube-apiserver")), ARM64_STATIC);
    assert_eq!(elf(&bin(&t, "linux/arm64", "kubelet")), ARM64_STATIC, "the kubelet is static by default");

    std::fs::remove_file(bin(&t, "linux/arm64", "kubelet")).unwrap();
    assert_cgo_arm64_kubelet(
        &t,
        &make(&t, "cmd/kubelet", &["KUBE_BUILD_PLATFORMS=linux/arm64", "KUBE_CGO_OVERRIDES=kubelet"]),
    );

    let m = make(&t, "cmd/kubelet", &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/amd64", "kubelet")), AMD64_STATIC);
    let m = make(&t, "cmd/kubelet", &["KUBE_CGO_OVERRIDES=kubelet"]);
    assert!(m.ok(), "{}", m.stderr());
    assert_eq!(elf(&bin(&t, "linux/amd64", "kubelet")), AMD64_CGO, "KUBE_CGO_OVERRIDES forces cgo");
    assert_eq!(std::fs::read_link(t.path("_output/bin")).unwrap(), Path::new("local/bin/linux/amd64"));
}
