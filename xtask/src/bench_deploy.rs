//! `cargo xtask bench`, deploy part: bytes sent to a test node on a no-op deploy and after a
//! one-file change, and the wall time of a two-node deploy against twice a one-node one.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use camino::Utf8Path;
use kdbg_tests::{TestNode, TestNodeConfig};
use serde_json::Value;
use xshell::{cmd, Shell};

/// A one-line code change inside the apiserver's `/healthz` handler, per tree shape: (file, line to
/// insert the edit after).
fn edit_point(tree: &Utf8Path) -> (String, &'static str) {
    let real = "staging/src/k8s.io/apiserver/pkg/server/healthz/healthz.go";
    if tree.join(real).exists() {
        (real.into(), "return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {")
    } else {
        ("pkg/healthz/healthz.go".into(), "func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {")
    }
}

pub fn run(sh: &Shell, kdbg: &Utf8Path, testnode: &Utf8Path, tree: &Utf8Path, version: &[String]) -> Result<()> {
    let _dir = sh.push_dir(tree);
    let node = TestNode::up(TestNodeConfig::unique("bench").bin(testnode))?;
    let target = &kdbg_tests::lab::target_args(&node);
    let deploy = || -> Result<Value> {
        let out = cmd!(sh, "{kdbg} deploy apiserver --json {target...} {version...}").quiet().read()?;
        serde_json::from_str(&out).context("kdbg deploy --json")
    };
    let first = deploy()?;
    let noop = deploy()?;
    let (file, anchor) = edit_point(tree);
    let path = tree.join(&file);
    let original = std::fs::read_to_string(&path)?;
    let edited = original.replacen(anchor, &format!("{anchor}\n\t\t_ = r.URL.Path // kdbg bench edit"), 1);
    ensure!(edited != original, "no edit point in {path}");
    std::fs::write(&path, edited)?;
    let changed = deploy();
    std::fs::write(&path, original)?;
    let changed = changed?;

    let apiserver = |v: &Value| {
        v["files"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == "kube-apiserver"))
            .cloned()
            .unwrap_or_default()
    };
    let (a0, a1, a2) = (apiserver(&first), apiserver(&noop), apiserver(&changed));
    println!("  deploy, first: {} B binary sent as {} B ({})", a0["file_bytes"], a0["wire_bytes"], a0["method"]);
    println!(
        "  deploy, no-op: {} B of binaries, {} B in all (commands), {} round trip(s) to decide",
        a1["wire_bytes"], noop["bytes_sent"], noop["decide_round_trips"]
    );
    let (wire, size) = (a2["wire_bytes"].as_f64().unwrap_or(0.0), a2["file_bytes"].as_f64().unwrap_or(1.0));
    println!(
        "  deploy after a one-line change in {file}: {wire} B sent for a {size} B binary = {:.1}% ({}; goal <= 45%)",
        100.0 * wire / size,
        a2["method"]
    );
    drop(node);
    two_nodes(sh, kdbg, testnode, version)
}

/// A deploy to two fresh nodes in one run against twice the deploy to one fresh node: the copies
/// of the two nodes run concurrently (the build is cached by then, so copies are the work).
fn two_nodes(sh: &Shell, kdbg: &Utf8Path, testnode: &Utf8Path, version: &[String]) -> Result<()> {
    let up = |name: &str| TestNode::up(TestNodeConfig::unique(name).bin(testnode));
    let (one, a, b) = (up("bench1")?, up("bench2a")?, up("bench2b")?);
    let timed = |target: Vec<String>| -> Result<f64> {
        let t = Instant::now();
        cmd!(sh, "{kdbg} deploy apiserver --json {target...} {version...}").quiet().ignore_stdout().run()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let single = timed(kdbg_tests::lab::target_args(&one))?;
    let double = timed(kdbg_tests::lab::targets_args(&[&a, &b]))?;
    println!(
        "  deploy to two fresh nodes in one run: {double:.2} s vs twice one node {:.2} s = {:.2} (copies run concurrently)",
        2.0 * single,
        double / (2.0 * single)
    );
    Ok(())
}
