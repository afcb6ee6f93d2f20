//! `cargo xtask bench`, the watch part: how long `kdbg watch` takes from saving a file to the
//! new build running under Delve on a test node, and how much of that is kdbg's own.
//!
//! Each edit rewrites `cmd/kube-apiserver/app/zz_kdbg_bench.go`, a string the binary keeps (one
//! warm-up edit first: creating the file makes the cache run `go list`). Measured:
//! - edit->relaunched: from the write to `kdbg: ready` on watch's stdout (this process's clock).
//!   On the fixture the apiserver then serves its port again; on a real tree (no etcd on the test
//!   node) the session runs `--wait-for-debugger`, so "relaunched" means the new Delve listens.
//! - make: the `make` command kdbg runs, run alone after an equivalent edit (median). Watch
//!   itself replays make's captured `go` build after the first edit (the first creates the file,
//!   so it goes through make); the goal is edit->relaunched <= 0.75 x (make + copy).
//! - copy: kdbg's copy stage as watch reports it (zstd delta over ssh, checked on the node).
//! - start: Delve and the program starting, on the node's clock; not counted as kdbg's.
//! - kdbg overhead = edit->relaunched - the build watch ran (make or replay) - copy - start: the
//!   debounce, keys and hashing, journal writes, round trips and polling.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_core::flags::{self, Profile};
use kdbg_core::tree::{SourceTree, TreeSearch};
use kdbg_tests::{TestNode, TestNodeConfig};
use xshell::{cmd, Shell};

const EDITED: &str = "cmd/kube-apiserver/app/zz_kdbg_bench.go";
const SIGINT: i32 = 2;

/// Measures `kdbg` (a built binary) on `tree`; `label` names the tree in the output.
pub fn run(
    sh: &Shell,
    kdbg: &Utf8Path,
    tree: &Utf8Path,
    label: &str,
    replayed: Option<&crate::bench_replay::Replayed>,
) -> Result<()> {
    let fixture = std::fs::read_to_string(tree.join("README.md")).unwrap_or_default().starts_with("# Fixture:");
    let edits = if fixture { 5 } else { 3 };
    let mut config = TestNodeConfig::unique("benchw").bin(testnode(sh)?);
    config.ready_timeout = Duration::from_secs(20);
    let scratch = Utf8PathBuf::from(format!("/tmp/kdbg-bench-watch-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    eprintln!("bench watch ({label}): test node up");
    let node = if fixture {
        let copy = kdbg_tests::fixture::copy_to(scratch.as_std_path())?;
        let release = kdbg_tests::lab::release_build(&copy, "kube-apiserver")?;
        kdbg_tests::lab::apiserver_node(config, &release, &[])?.0
    } else {
        let node = TestNode::up(config)?;
        let manifest = kdbg_tests::lab::apiserver_manifest(node.ip(), &[]);
        std::fs::write(node.manifests_dir().join("kube-apiserver.yaml"), manifest)?;
        node
    };
    let lab = Lab { sh, kdbg, tree, node: &node, state: scratch.join("state") };
    let cleanup = Cleanup(&lab);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let hold: &[&str] = if fixture { &[] } else { &["--wait-for-debugger"] };
    eprintln!("bench watch ({label}): kdbg debug apiserver (a first debug build of a real tree takes minutes)");
    quietly(lab.kdbg(&[&["debug", "apiserver", "--no-ide", "--port", &port], hold].concat(), true, true))?;
    let cycles = measure(&lab, edits)?;
    eprintln!("bench watch ({label}): make alone");
    let make = median((1..=edits.min(3)).map(|i| make_alone(sh, tree, i)).collect::<Result<Vec<_>>>()?);
    drop(cleanup);
    report(&cycles, make, fixture, replayed);
    Ok(())
}

/// Runs `kdbg watch` and times one warm-up edit and then `edits` more.
fn measure(lab: &Lab, edits: usize) -> Result<Vec<Cycle>> {
    let mut watch = Watch::spawn(lab.kdbg(&["watch", "apiserver", "-v"], true, true).into())?;
    watch.wait(|l| l == "kdbg: ready", Duration::from_secs(120))?;
    let mut cycles = Vec::new();
    for i in 0..=edits {
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        std::fs::write(lab.tree.join(EDITED), bench_go(i))?;
        let cycle = watch.wait(|l| l.starts_with("cycle "), Duration::from_secs(1800))?;
        let detail = watch.wait(|l| l.starts_with("  ") && l.contains("; on the node: "), Duration::from_secs(10))?;
        watch.wait(|l| l.starts_with("kdbg: ready"), Duration::from_secs(10))?;
        let edit = t.elapsed().as_secs_f64();
        let c = Cycle::parse(&cycle, &detail, edit).with_context(|| format!("unexpected output: {cycle}\n{detail}"))?;
        if i > 0 {
            cycles.push(c);
        }
    }
    watch.stop()?;
    Ok(cycles)
}

fn report(cycles: &[Cycle], make: f64, fixture: bool, replayed: Option<&crate::bench_replay::Replayed>) {
    let m = |f: fn(&Cycle) -> f64| median(cycles.iter().map(f).collect());
    let (e, copy, start, debounce) = (m(|c| c.edit), m(|c| c.copy), m(|c| c.start), m(|c| c.debounce));
    let built = m(|c| c.make);
    let overhead = e - built - copy - start;
    let goal = make + copy;
    let relaunched = match fixture {
        true => "relaunched = the new apiserver serves its port under Delve",
        false => "relaunched = the new Delve listens (--wait-for-debugger: no etcd on the test node)",
    };
    println!("  kdbg watch apiserver, {} edits (medians; {relaunched}):", cycles.len());
    println!(
        "  edit->relaunched: {e:.2} s; build under kdbg {built:.2} s + copy {copy:.2} s; kdbg overhead {overhead:.2} s \
         ({:.0}% beyond build+transfer; goal <= 5%)",
        overhead * 100.0 / (built + copy)
    );
    let (keys, rtts, rest) = (m(|c| c.build - c.make), m(|c| c.relaunch - c.start), m(|c| c.edit - c.total));
    let own = debounce + keys + rtts + rest;
    println!("    not kdbg's: Delve + program start on the node {start:.2} s (node clock)");
    println!(
        "    kdbg's own, from watch's stage timings: {own:.2} s = {:.0}% ({:.0}% without the debounce): debounce \
         {debounce:.2} s, keys + output hash {keys:.2} s, relaunch round trips + journal {rtts:.2} s, the rest {rest:.2} s",
        own * 100.0 / goal,
        (own - debounce) * 100.0 / goal
    );
    println!(
        "    build under kdbg (make or replay, below) {built:.2} s, make alone {make:.2} s; \
         copy sent {} bytes per edit (zstd delta)",
        m(|c| c.bytes) as u64
    );
    let vias: Vec<&str> = cycles.iter().map(|c| c.via.as_str()).collect();
    println!("  watch cycle vs make + copy: {:.2} (goal <= 0.75); build path per edit: {}", e / goal, vias.join(", "));
    if let Some(r) = replayed {
        println!("    (the replay part of this run: make {:.2} s, replay {:.2} s)", r.make, r.replay);
    }
}

/// Runs a kdbg command, its output shown only when it fails.
fn quietly(cmd: xshell::Cmd<'_>) -> Result<()> {
    let out = cmd.quiet().ignore_status().output()?;
    if !out.status.success() {
        bail!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The `kdbg-testnode` binary `cargo xtask bench` built, or a debug build of it.
fn testnode(sh: &Shell) -> Result<Utf8PathBuf> {
    let release = crate::target_dir().join("release/kdbg-testnode");
    if release.is_file() {
        return Ok(release);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd!(sh, "{cargo} build --quiet -p kdbg-tests --bin kdbg-testnode").run()?;
    Ok(crate::target_dir().join("debug/kdbg-testnode"))
}

/// A file the binary keeps a string of, different for every `i`.
fn bench_go(i: usize) -> String {
    format!(
        "package app\n\n// Written by `cargo xtask bench` to measure kdbg watch; safe to delete.\n\n\
         var kdbgBench = \"kdbg bench edit {i:04}\"\n\nfunc init() {{\n\tif len(kdbgBench) == 0 {{\n\t\tprintln(kdbgBench)\n\t}}\n}}\n"
    )
}

/// The `make` kdbg runs, alone, after another edit of the bench file.
fn make_alone(sh: &Shell, tree: &Utf8Path, i: usize) -> Result<f64> {
    std::fs::write(tree.join(EDITED), bench_go(100 + i))?;
    let search = TreeSearch {
        explicit: Some(tree.to_owned()),
        kube_version: crate::bench::kube_version(tree),
        ..TreeSearch::default()
    };
    let t = SourceTree::find(&search)?;
    let args = flags::make_args(&flags::make_vars(t.debug_policy, Profile::Debug));
    let version_file = t.state_dir().join("version.env");
    let _d = sh.push_dir(tree);
    let _e = [
        sh.push_env("SOURCE_DATE_EPOCH", flags::SOURCE_DATE_EPOCH),
        sh.push_env("KUBE_GIT_VERSION_FILE", &version_file),
    ];
    let start = Instant::now();
    cmd!(sh, "make all WHAT=cmd/kube-apiserver {args...}").quiet().ignore_stdout().ignore_stderr().run()?;
    Ok(start.elapsed().as_secs_f64())
}

/// One cycle: what this process saw and what `kdbg watch` reported, in seconds.
struct Cycle {
    edit: f64,
    build: f64,
    /// The build path watch reported: `make` or `replay`.
    via: String,
    make: f64,
    copy: f64,
    bytes: f64,
    relaunch: f64,
    start: f64,
    total: f64,
    debounce: f64,
}

impl Cycle {
    /// `cycle N: build X.XXs, copy X.XXs (N bytes), relaunch X.XXs, total X.XXs` and
    /// `  make|replay X.XXs; on the node: Delve listening after X.XXs, serving after X.XXs; X.XXs debounce; ...`.
    fn parse(cycle: &str, detail: &str, edit: f64) -> Option<Cycle> {
        let listening = after(detail, "listening after ")?;
        Some(Cycle {
            edit,
            build: after(cycle, "build ")?,
            via: detail.split_whitespace().next()?.to_string(),
            make: after(detail.trim_start().split_once(' ')?.1, "")?,
            copy: after(cycle, "copy ")?,
            bytes: after(&cycle[cycle.find("copy ")?..], "(")?,
            relaunch: after(cycle, "relaunch ")?,
            start: after(detail, "serving after ").unwrap_or(0.0).max(listening),
            total: after(cycle, "total ")?,
            debounce: before(detail, "s debounce")?,
        })
    }
}

/// The number right after `marker` in `text`.
fn after(text: &str, marker: &str) -> Option<f64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?.parse().ok()
}

/// The number right before `marker` in `text`.
fn before(text: &str, marker: &str) -> Option<f64> {
    let head = &text[..text.find(marker)?];
    head.rsplit(|c: char| !(c.is_ascii_digit() || c == '.')).next()?.parse().ok()
}

/// The test node and how to run kdbg against it.
struct Lab<'a> {
    sh: &'a Shell,
    kdbg: &'a Utf8Path,
    tree: &'a Utf8Path,
    node: &'a TestNode,
    state: Utf8PathBuf,
}

impl Lab<'_> {
    /// `kdbg ARGS [--src TREE [--kube-version V]] [--target ... --identity ... --ssh-option ...]`.
    fn kdbg(&self, args: &[&str], tree: bool, target: bool) -> xshell::Cmd<'_> {
        let mut extra = Vec::new();
        if tree {
            extra.extend(["--src".to_string(), self.tree.to_string()]);
            extra.extend(
                crate::bench::kube_version(self.tree).map(|v| ["--kube-version".to_string(), v]).into_iter().flatten(),
            );
        }
        if target {
            extra.extend(kdbg_tests::lab::target_args(self.node));
        }
        let kdbg = self.kdbg;
        cmd!(self.sh, "{kdbg} {args...} {extra...}").env("KDBG_STATE_DIR", &self.state)
    }
}

/// Removes the bench file, restores the node, and rebuilds so the tree is as kdbg left it.
struct Cleanup<'a>(&'a Lab<'a>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.tree.join(EDITED));
        if let Err(e) = quietly(self.0.kdbg(&["restore"], false, true)) {
            eprintln!("bench watch: restore failed: {e}");
        }
        let _ = quietly(self.0.kdbg(&["build", "apiserver"], true, false));
        if let Some(scratch) = self.0.state.parent() {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// `kdbg watch` as a child; its stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn spawn(mut cmd: std::process::Command) -> Result<Watch> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("starting kdbg watch")?;
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
        Ok(Watch { child, lines, seen: Vec::new() })
    }

    fn wait(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                bail!(
                    "kdbg watch: no expected line within {}s; it printed:\n{}",
                    timeout.as_secs(),
                    self.seen.join("\n")
                );
            };
            self.seen.push(line.clone());
            if line.contains("failed") {
                bail!("kdbg watch: {line}");
            }
            if pred(&line) {
                return Ok(line);
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        kdbg_tests::sys::kill(self.child.id(), SIGINT);
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
