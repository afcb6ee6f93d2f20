//! `cargo xtask bench`, the replay part: a one-line change in the apiserver's healthz handler
//! built by replaying make's captured `go` build, against make, and the same edit both ways
//! compared byte for byte (a difference fails the bench).
//!
//! Per round `i`: edit A(i) -> `kdbg build` (must replay; timed), edit B(i) -> `kdbg build
//! --via-make` (timed: make with the same kdbg around it), edit A(i) again -> `kdbg build
//! --via-make`, whose binary must have the replay's sha256. The handler's file is restored and
//! rebuilt at the end. `KDBG_BENCH_ROUNDS` overrides the number of rounds.

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use camino::Utf8Path;
use xshell::{cmd, Shell};

/// The healthz handler of each layout: kubernetes' staging copy, then the 1.20-era fixture's.
const HANDLERS: &[&str] = &["staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go", "pkg/healthz/healthz.go"];
/// The literal a round rewrites (its first occurrence is in the handler's body).
const OK: &str = "\"ok\")";

/// Medians of the timed builds, in seconds.
pub struct Replayed {
    pub make: f64,
    pub replay: f64,
}

pub fn run(sh: &Shell, kdbg: &Utf8Path, tree: &Utf8Path, rounds: usize) -> Result<Replayed> {
    let rounds = std::env::var("KDBG_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(rounds);
    let rel = HANDLERS.iter().find(|h| tree.join(h).is_file()).context("no healthz handler in the tree")?;
    let path = tree.join(rel);
    let original = std::fs::read_to_string(&path)?;
    ensure!(original.contains(OK), "{path} has no {OK} to edit");
    let edit = |tag: &str| std::fs::write(&path, original.replacen(OK, &format!("\"ok {tag}\")"), 1));
    let version = &crate::bench::kube_version_args(tree);
    let _dir = sh.push_dir(tree);
    let build = |via_make: bool| -> Result<(f64, serde_json::Value)> {
        let force: &[&str] = if via_make { &["--via-make"] } else { &[] };
        let t = Instant::now();
        let out = cmd!(sh, "{kdbg} build apiserver --json {force...} {version...}").quiet().ignore_stderr().read()?;
        Ok((t.elapsed().as_secs_f64(), serde_json::from_str(&out)?))
    };
    eprintln!("bench replay: settling the tree's build (a make once more if make rewrote inputs)");
    build(false)?;
    build(false)?;
    let (mut makes, mut replays) = (Vec::new(), Vec::new());
    let result = (|| -> Result<()> {
        for i in 0..rounds {
            edit(&format!("kdbg-bench-a{i}"))?;
            let (replay_s, r) = build(false)?;
            ensure!(r["via"] == "replay", "a body-only edit of {rel} did not replay: {r}");
            edit(&format!("kdbg-bench-b{i}"))?;
            let (make_s, m) = build(true)?;
            ensure!(m["via"] == "make", "--via-make did not run make: {m}");
            edit(&format!("kdbg-bench-a{i}"))?;
            let (_, same) = build(true)?;
            let (a, b) = (&r["components"][0]["sha256"], &same["components"][0]["sha256"]);
            if a != b {
                bail!("replay and make built different bytes for the same edit of {rel}: {a} vs {b}");
            }
            println!(
                "  round {}: replay {replay_s:.2} s, make {make_s:.2} s, same edit both ways: sha256 {a} (equal)",
                i + 1
            );
            makes.push(make_s);
            replays.push(replay_s);
        }
        Ok(())
    })();
    std::fs::write(&path, &original)?;
    build(false)?;
    result?;
    let (make, replay) = (crate::bench_watch::median(makes), crate::bench_watch::median(replays));
    row("one-line edit of the healthz handler: kdbg build --via-make", make);
    row("one-line edit of the healthz handler: kdbg build (replay)", replay);
    println!(
        "  ratio replay/make: {:.2} (goal <= 0.70); replay and make gave the same sha256 in every round",
        replay / make
    );
    Ok(Replayed { make, replay })
}

fn row(what: &str, s: f64) {
    println!("  {what:<58} {s:>9.3} s");
}
