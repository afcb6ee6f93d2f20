//! Installs the Debian packages kdbg's tests and demo need, and puts Debian's Go on PATH.

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

/// (what must exist, Debian package that provides it, why it is needed)
const NEEDS: &[(&str, &str, &str)] = &[
    ("/usr/lib/go-1.19/bin/go", "golang-1.19-go", "builds the fixture and kubernetes"),
    ("/usr/bin/make", "make", "kubernetes' build entry point"),
    ("/usr/bin/git", "git", "tree versions"),
    ("/usr/bin/rsync", "rsync", "kubernetes' build copies binaries with it"),
    ("/usr/bin/dlv", "delve", "the debugger kdbg launches"),
    ("/usr/sbin/sshd", "openssh-server", "the test node's ssh server"),
    ("/usr/bin/ssh", "openssh-client", "kdbg's ssh transport"),
    ("/usr/bin/sudo", "sudo", "the test node's docker user"),
    ("/usr/sbin/ip", "iproute2", "the test node's network namespace"),
    ("/usr/bin/unshare", "util-linux", "the test node's mount namespace"),
    ("/usr/bin/etcd", "etcd-server", "the real-kubernetes tier"),
    ("/usr/bin/openssl", "openssl", "certificates for the real-kubernetes tier"),
    ("/usr/bin/zstd", "zstd", "compressed binary transfers to the node"),
    ("/usr/bin/chromium", "chromium", "renders `kdbg trace --report` pages in the trace test"),
    ("/usr/bin/curl", "curl", "the trace test's trigger"),
    ("/usr/bin/docker-registry", "docker-registry", "the OCI registry of the remote-cache tests, bench and real tier"),
    ("/usr/bin/htpasswd", "apache2-utils", "the test registry's htpasswd (bcrypt) entries"),
];

/// Installs whatever is missing, saying what and why; `apt-get update` runs once, first.
pub fn ensure_packages(sh: &Shell) -> Result<()> {
    let missing: Vec<_> = NEEDS.iter().filter(|(path, _, _)| !std::path::Path::new(path).exists()).collect();
    for (_, pkg, why) in &missing {
        eprintln!("xtask: installing {pkg} ({why})");
    }
    install(sh, &missing.iter().map(|(_, pkg, _)| *pkg).collect::<Vec<_>>())
}

/// Like `ensure_packages` for extra (program or path, package) pairs; a bare name is looked up on PATH.
pub fn ensure_extra(sh: &Shell, needs: &[(&str, &str)]) -> Result<()> {
    let present = |p: &str| {
        if p.starts_with('/') {
            std::path::Path::new(p).exists()
        } else {
            cmd!(sh, "sh -c 'command -v \"$1\"' sh {p}").quiet().ignore_stdout().run().is_ok()
        }
    };
    let missing: Vec<&str> = needs.iter().filter(|(p, _)| !present(p)).map(|(_, pkg)| *pkg).collect();
    for pkg in &missing {
        eprintln!("xtask: installing {pkg}");
    }
    install(sh, &missing)
}

fn install(sh: &Shell, names: &[&str]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "these Debian packages are missing and installing them needs root: sudo apt-get install -y {}",
            names.join(" ")
        );
    }
    static UPDATED: std::sync::Once = std::sync::Once::new();
    let mut update = Ok(());
    UPDATED.call_once(|| {
        eprintln!("xtask: apt-get update");
        update = cmd!(sh, "apt-get update -q").env("DEBIAN_FRONTEND", "noninteractive").run();
    });
    update?;
    eprintln!("xtask: apt-get install -y {}", names.join(" "));
    cmd!(sh, "apt-get install -y -q --no-install-recommends {names...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Puts Debian's Go first on PATH for every command this shell runs.
pub fn go_on_path(sh: &Shell) {
    let path = std::env::var("PATH").unwrap_or_default();
    if !path.split(':').any(|p| p == "/usr/lib/go-1.19/bin") {
        sh.set_var("PATH", format!("/usr/lib/go-1.19/bin:{path}"));
    }
}

/// Makes the shell's environment the process's own, for in-process kdbg runs.
pub fn export_env(sh: &Shell) {
    if let Some(path) = sh.var_os("PATH") {
        std::env::set_var("PATH", path);
    }
}

/// The end-to-end session test the toolchain matrix runs for each newer pair.
const MATRIX_TEST: &str = "session::debug_hits_a_breakpoint_through_the_tunnel_and_restore_puts_everything_back";

/// `cargo xtask test`: set up (Debian packages, the matrix's Go and Delve), check formatting and
/// lints, run every test of the workspace (Go 1.19 + Delve 1.20 on the 1.20-era fixture, and the
/// v1.30+-era tests with Go 1.27 + Delve 1.27), then the end-to-end session test once more for each
/// newer pair on the v1.30+-era fixture.
pub fn test(sh: &Shell, extra: &[String]) -> Result<()> {
    ensure_packages(sh)?;
    ensure_extra(sh, &[("unzip", "unzip"), ("pip", "python3-pip")])?;
    let pairs = crate::toolchains::ensure_all(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // rustfmt and clippy come with rustup's default profile; where one is missing it cannot be
    // fetched here, so say so and go on to the tests.
    let has = |tool: &str| cmd!(sh, "{cargo} {tool} --version").quiet().ignore_stdout().ignore_stderr().run().is_ok();
    if has("fmt") {
        eprintln!("xtask: cargo fmt --check");
        cmd!(sh, "{cargo} fmt --all --check").run()?;
    } else {
        eprintln!("xtask: warning: rustfmt is not installed (rustup component add rustfmt); skipping the format check");
    }
    if has("clippy") {
        eprintln!("xtask: cargo clippy -- -D warnings");
        cmd!(sh, "{cargo} clippy --workspace --all-targets --quiet -- -D warnings").run()?;
    } else {
        eprintln!("xtask: warning: clippy is not installed (rustup component add clippy); skipping the lints");
    }
    eprintln!("xtask: running the tests (unit tests, then the integration binary tests/it, which needs root for its test nodes)");
    cmd!(sh, "{cargo} test --workspace --all-targets {extra...}").run()?;
    for (go_bin, dlv) in pairs {
        let started = std::time::Instant::now();
        eprintln!("xtask: the session test with {go_bin}/go and {dlv} on the v1.30+-era fixture");
        cmd!(sh, "{cargo} test -q -p kdbg-tests --test it -- --exact {MATRIX_TEST}")
            .env("KDBG_TEST_GO", &go_bin)
            .env("KDBG_TEST_DLV", &dlv)
            .run()?;
        eprintln!("xtask: matrix pair done in {:.0}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
