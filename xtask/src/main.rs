//! Repository tasks: `cargo xtask test|e2e|bench|demo|toolchains|debug|kdbg`, one module per task.

mod apt;
mod arm64;
mod aside;
mod bench;
mod bench_deploy;
mod bench_pull;
mod bench_replay;
mod bench_watch;
mod demo;
mod e2e;
mod registry;
mod setup;
mod toolchains;

use std::process::ExitCode;

use anyhow::{bail, Result};
use camino::Utf8PathBuf;
use xshell::Shell;

const HELP: &str = "\
cargo xtask <task>

Tasks:
  demo               the main job: a full kdbg session on the built-in fixture tree
  test               install what the tests need (apt packages), then run every test
  e2e k8s [--only FLOW,...]
                     the real-cluster tier: kubeadm nodes, kdbg through kind:// and ssh://
                     (flows: apiserver, scheduler, kubelet, proxy, crash, modern, cache,
                     all-nodes)
  e2e arm64 [--real-tree]
                     the linux/arm64 tier: a Debian arm64 node under qemu (image cached in
                     /var/cache/kdbg-arm64), the fixture apiserver cross-built and debugged there;
                     --real-tree (opt-in): Debian's kubernetes 1.20.2 built for linux/arm64
  toolchains         install the matrix's Go and Delve into /var/cache/kdbg-toolchains
  bench [--only tree,deploy,replay,watch,pull] [--real-only]
                     measure kdbg against make and go list (pull: against a loopback
                     docker-registry); prints ratios
  debug <args...>    run kdbg from this repo, e.g. `cargo xtask debug apiserver`
  kdbg <args...>     run any kdbg subcommand from this repo
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let sh = &Shell::new()?;
    sh.change_dir(project_root());
    setup::go_on_path(sh);
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "demo" => demo::run(sh).map(|()| ExitCode::SUCCESS),
        "test" => setup::test(sh, &rest).map(|()| ExitCode::SUCCESS),
        "e2e" if rest.first().is_some_and(|t| t == "arm64") => arm64::run(sh, &rest[1..]).map(|()| ExitCode::SUCCESS),
        "e2e" => e2e::run(sh, &rest).map(|()| ExitCode::SUCCESS),
        "toolchains" => toolchains::ensure_all(sh).map(|_| ExitCode::SUCCESS),
        "bench" => bench::run(sh, &rest).map(|()| ExitCode::SUCCESS),
        "debug" => Ok(kdbg(sh, std::iter::once("debug".to_string()).chain(rest))),
        "kdbg" => Ok(kdbg(sh, rest)),
        "" | "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

/// Runs the kdbg CLI in-process, with Go on PATH.
fn kdbg(sh: &Shell, args: impl IntoIterator<Item = String>) -> ExitCode {
    setup::export_env(sh);
    kdbg_cli::main_with(std::iter::once("kdbg".to_string()).chain(args))
}

/// Where cargo puts binaries: `$CARGO_TARGET_DIR` when set, else `target/` in the workspace.
pub fn target_dir() -> Utf8PathBuf {
    match std::env::var("CARGO_TARGET_DIR") {
        Ok(dir) if !dir.is_empty() => project_root().join(dir),
        _ => project_root().join("target"),
    }
}

pub fn project_root() -> Utf8PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Utf8PathBuf::from(dir).parent().expect("xtask lives in the workspace").to_owned()
}
