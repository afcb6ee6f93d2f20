//! `cargo xtask bench`: kdbg against the manual recipe, as ratios measured in the same run.
//!
//! Always on the fixture tree; also on a real kubernetes tree when `KDBG_BENCH_SRC` points at one.
//! Timings are medians of a few runs of whole processes; nothing here asserts a time.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

/// Which parts to run: `cargo xtask bench [--only tree,deploy,replay,watch,pull] [--real-only]`.
struct Parts {
    only: Option<Vec<String>>,
    real_only: bool,
}

impl Parts {
    fn parse(args: &[String]) -> Result<Parts> {
        let mut parts = Parts { only: None, real_only: false };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--only" => parts.only = it.next().map(|v| v.split(',').map(String::from).collect()),
                "--real-only" => parts.real_only = true,
                other => anyhow::bail!(
                    "unknown bench argument `{other}`: use --only tree,deploy,replay,watch,pull and --real-only"
                ),
            }
        }
        Ok(parts)
    }
    fn has(&self, part: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|p| p == part))
    }
}

pub fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let parts = Parts::parse(args)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: building kdbg (release)");
    cmd!(sh, "{cargo} build --quiet --release -p kdbg-cli -p kdbg-tests --bins").run()?;
    let kdbg = crate::target_dir().join("release/kdbg");
    let testnode = crate::target_dir().join("release/kdbg-testnode");
    let scratch_dir = tempfile::Builder::new().prefix("kdbg-bench-").tempdir()?;
    let scratch = Utf8PathBuf::try_from(scratch_dir.path().to_owned())?;
    println!("machine: {}", machine());
    let real = std::env::var("KDBG_BENCH_SRC").ok();
    ensure!(!parts.real_only || real.is_some(), "--real-only needs KDBG_BENCH_SRC set to a kubernetes tree");
    if !parts.real_only {
        let fixture = Utf8PathBuf::try_from(kdbg_tests::fixture::copy_to(scratch.as_std_path())?)?;
        println!();
        println!("== fixture tree ({fixture})");
        tree(sh, &parts, &kdbg, &testnode, &fixture, 5)?;
    }
    if let Some(src) = real {
        println!();
        println!("== KDBG_BENCH_SRC={src}");
        tree(sh, &parts, &kdbg, &testnode, Utf8Path::new(&src), 2)?;
    } else {
        println!();
        println!("(set KDBG_BENCH_SRC to a kubernetes checkout to measure a real tree too)");
    }
    Ok(())
}

/// Every selected part on one tree; `runs` is how many times each timing is taken.
fn tree(sh: &Shell, parts: &Parts, kdbg: &Utf8Path, testnode: &Utf8Path, src: &Utf8Path, runs: usize) -> Result<()> {
    if parts.has("tree") {
        tree_bench(sh, kdbg, src, runs)?;
    }
    if parts.has("deploy") {
        crate::bench_deploy::run(sh, kdbg, testnode, src, &kube_version_args(src))?;
    }
    let replayed = match parts.has("replay") {
        true => Some(crate::bench_replay::run(sh, kdbg, src, runs)?),
        false => None,
    };
    if parts.has("watch") {
        crate::bench_watch::run(sh, kdbg, src, if runs > 2 { "fixture" } else { "KDBG_BENCH_SRC" }, replayed.as_ref())?;
    }
    if parts.has("pull") {
        crate::bench_pull::run(sh, kdbg, src)?;
    }
    Ok(())
}

fn tree_bench(sh: &Shell, kdbg: &Utf8Path, tree: &Utf8Path, runs: usize) -> Result<()> {
    let _dir = sh.push_dir(tree);
    let version = &kube_version_args(tree);
    // Warm both: kdbg's build and make's.
    eprintln!("bench: warming up (first builds can take minutes on a real tree)");
    cmd!(sh, "{kdbg} build apiserver {version...}").quiet().ignore_stdout().run()?;
    cmd!(sh, "make all WHAT=cmd/kube-apiserver GOLDFLAGS=").quiet().ignore_stdout().ignore_stderr().run()?;
    cmd!(sh, "{kdbg} build apiserver {version...}").quiet().ignore_stdout().run()?;

    let noop = median(runs, || {
        let out = cmd!(sh, "{kdbg} build apiserver --json {version...}").quiet().ignore_stderr().read()?;
        ensure!(out.contains("\"hit\":true"), "kdbg no-op was not a hit: {out}");
        Ok(())
    })?;
    let make = median(runs.min(3), || {
        cmd!(sh, "make all WHAT=cmd/kube-apiserver GOLDFLAGS=").quiet().ignore_stdout().ignore_stderr().run()?;
        Ok(())
    })?;
    row("no-op: kdbg build apiserver", noop);
    row("no-op: make all WHAT=cmd/kube-apiserver GOLDFLAGS=''", make);
    println!("  ratio make/kdbg: {:.0}x (goal >= 100x, kdbg <= 0.15 s)", make.as_secs_f64() / noop.as_secs_f64());

    let state = tree.join("_output/kdbg/state.json");
    let cold = median(runs, || {
        let _ = std::fs::remove_file(&state);
        cmd!(sh, "{kdbg} cache-key apiserver {version...}").quiet().ignore_stdout().run()?;
        Ok(())
    })?;
    let golist = go_list_time(sh, tree, runs)?;
    row("cold: kdbg cache-key apiserver (no kdbg state)", cold);
    row("cold: go list -deps ./cmd/kube-apiserver", golist);
    println!("  ratio cache-key/go list: {:.2} (goal: cold key <= 2 s)", cold.as_secs_f64() / golist.as_secs_f64());
    cmd!(sh, "{kdbg} build apiserver {version...}").quiet().ignore_stdout().run()?;
    Ok(())
}

/// `go list -deps` the way the tree's own build would run it.
fn go_list_time(sh: &Shell, tree: &Utf8Path, runs: usize) -> Result<Duration> {
    let gopath_mode =
        std::fs::read_to_string(tree.join("hack/lib/init.sh")).unwrap_or_default().contains("GO111MODULE=off");
    let link = tree.join("_output/local/go/src/k8s.io/kubernetes");
    // The environment kdbg lists the apiserver in: kubernetes links it statically.
    let _cgo = sh.push_env("CGO_ENABLED", "0");
    median(runs, || {
        if gopath_mode {
            let gopath = tree.join("_output/local/go");
            let _d = sh.push_dir(&link);
            let _e = [
                sh.push_env("GOPATH", gopath.as_str()),
                sh.push_env("GO111MODULE", "off"),
                sh.push_env("PWD", link.as_str()),
            ];
            cmd!(sh, "go list -e -deps ./cmd/kube-apiserver").quiet().ignore_stdout().run()?;
        } else {
            cmd!(sh, "go list -e -deps -mod=vendor ./cmd/kube-apiserver").quiet().ignore_stdout().run()?;
        }
        Ok(())
    })
}

/// A tree without git history (Debian's source package) needs its version said: read it from
/// `debian/changelog` (`kubernetes (1.20.5+really1.20.2-1.1)` -> `v1.20.2`).
pub fn kube_version(tree: &Utf8Path) -> Option<String> {
    if tree.join(".git").exists() || !tree.join("debian/changelog").exists() {
        return None;
    }
    let changelog = std::fs::read_to_string(tree.join("debian/changelog")).ok()?;
    let v = changelog.split(['(', ')']).nth(1)?.split("really").last()?;
    Some(format!("v{}", v.split('-').next().unwrap_or(v)))
}

pub fn kube_version_args(tree: &Utf8Path) -> Vec<String> {
    kube_version(tree).map(|v| vec!["--kube-version".to_string(), v]).unwrap_or_default()
}

fn median(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn row(what: &str, d: Duration) {
    println!("  {what:<58} {:>9.3} s", d.as_secs_f64());
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}
