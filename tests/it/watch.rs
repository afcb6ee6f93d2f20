//! `kdbg watch` on a test node with the fixture tree, real dlv and real sshd: an edit inside the
//! apiserver's closure is built once, copied, relaunched under a new Delve on the same port and
//! served; a broken build keeps the session; an edit outside the closure builds nothing.

pub(crate) mod child;

use std::time::Duration;

use serde_json::Value;

use crate::session::Lab;
use crate::support::sha256_file;
use child::Watcher;

const HEALTHZ: &str = "pkg/healthz/healthz.go";
const NOSNIFF: &str = r#"w.Header().Set("X-Content-Type-Options", "nosniff")"#;
const NODE_BIN: &str = "/var/lib/kdbg/bin/kube-apiserver";

/// Restores the node when the test ends, passing or not (the watcher is dropped, so killed, first).
struct RestoreOnDrop<'a>(&'a Lab);

impl Drop for RestoreOnDrop<'_> {
    fn drop(&mut self) {
        let out = self.0.kdbg(&["restore"]).output();
        if out.code != 0 {
            eprintln!("restore after the test failed:\n{}", out.stderr);
        }
    }
}

/// The journal's entry for the apiserver: (Delve's pid, Delve's port).
fn delve(lab: &Lab) -> (u64, u64) {
    let j: Value = serde_json::from_str(&lab.journal()).expect("a journal");
    let e = &j["components"]["kube-apiserver"];
    (e["dlv_pid"].as_u64().unwrap_or(0), e["port"].as_u64().unwrap())
}

#[test]
fn watch_rebuilds_relaunches_and_serves_an_edit_keeps_the_session_on_errors_and_skips_other_files() {
    let lab = Lab::up("watch");
    lab.debug(&[]).success();
    let _restore = RestoreOnDrop(&lab);
    let (dlv0, port0) = delve(&lab);
    let sha0 = sha256_file(&lab.node.host_path(NODE_BIN));
    let makes0 = lab.tree.make_runs().len();
    let minute = Duration::from_secs(60);

    let mut w = Watcher::spawn(lab.kdbg(&["watch", "apiserver", "-v"]));
    let watching = w.wait_line("the watching line", minute, |l| l.starts_with("watching "));
    assert!(watching.contains("kube-apiserver"), "{watching}");
    w.wait_line("kdbg: ready", minute, |l| l == "kdbg: ready");
    assert_eq!(lab.tree.make_runs().len(), makes0, "nothing changed since kdbg debug: no build at start");

    // An edit inside the closure: a new response header.
    let text = std::fs::read_to_string(lab.tree.path(HEALTHZ)).unwrap();
    let edited = text.replace(NOSNIFF, &format!("{NOSNIFF}\n\tw.Header().Set(\"X-Kdbg-Watch\", \"edited\")"));
    assert_ne!(edited, text);
    lab.tree.write(HEALTHZ, &edited);
    let start = w.wait_line("kdbg: start", minute, |l| l.starts_with("kdbg: start"));
    assert!(start.contains("cycle 1") && start.contains(HEALTHZ), "{start}");
    let cycle = w.wait_line("the cycle's timings", 2 * minute, |l| l.starts_with("cycle 1: "));
    for stage in ["build ", "copy ", " bytes), relaunch ", "total "] {
        assert!(cycle.contains(stage), "{cycle}");
    }
    w.wait_line("kdbg: ready", minute, |l| l.starts_with("kdbg: ready"));
    let makes = lab.tree.make_runs();
    assert_eq!(makes.len(), makes0, "a body edit replays make's go build, no make: {makes:?}");
    let sha1 = sha256_file(&lab.node.host_path(NODE_BIN));
    assert_ne!(sha1, sha0, "a new binary on the node");
    assert_eq!(sha1, sha256_file(&lab.tree.path("_output/bin/kube-apiserver")), "the one just built");
    let (dlv1, port1) = delve(&lab);
    assert!(dlv1 != 0 && dlv1 != dlv0 && port1 == port0, "Delve relaunched on the same port: {dlv0} -> {dlv1}");
    let exes = lab.node_procs();
    assert!(exes.iter().any(|(p, e)| u64::from(*p) == dlv1 && e == "/var/lib/kdbg/bin/dlv"), "{exes:?}");
    let response = lab.get("/healthz").unwrap();
    assert!(response.contains("X-Kdbg-Watch: edited") && response.ends_with("\r\n\r\nok"), "{response}");
    assert_eq!(lab.args(), lab.manifest_args(), "the same arguments as the session's");

    // A broken build: shown, and the session keeps running the previous build.
    lab.tree.write(HEALTHZ, &edited.replace("func (h *Handler) ServeHTTP", "func (h *Handler) ServeHTTP("));
    let ready = w.wait_line("kdbg: ready after the failure", 2 * minute, |l| l.starts_with("kdbg: ready"));
    assert!(ready.contains("cycle 2 failed"), "{ready}");
    let stderr = w.wait_stderr("the session keeps running the previous build", minute);
    assert!(stderr.contains("cycle 2: build failed") && stderr.contains("healthz.go:"), "make's tail: {stderr}");
    assert_eq!(delve(&lab).0, dlv1, "Delve was left alone");
    assert!(lab.get("/healthz").unwrap().contains("X-Kdbg-Watch: edited"));

    // Back to the good source: the cache has its binary, which the node holds: nothing to do.
    let makes = lab.tree.make_runs().len();
    lab.tree.write(HEALTHZ, &edited);
    w.wait_line("no change", minute, |l| l.starts_with("no change to kube-apiserver"));
    // Files outside the apiserver's closure: another component's package (its directory is not
    // even watched), then a test file beside a closure file (watched; the key ignores it).
    lab.tree.append("pkg/scheduler/framework/framework.go", "\n// edited by the watch test\n");
    lab.tree.append("pkg/healthz/healthz_test.go", "\n// edited by the watch test\n");
    let line = w.wait_line("no change", minute, |l| l.starts_with("no change to kube-apiserver"));
    assert!(line.ends_with(": pkg/healthz/healthz_test.go"), "{line}");
    assert_eq!(lab.tree.make_runs().len(), makes, "no make for files outside the closure");
    assert_eq!(delve(&lab).0, dlv1);

    // Ctrl-C: the session keeps running, and kdbg says how to restore it.
    assert_eq!(w.interrupt(minute), 0, "stderr:\n{}", w.stderr());
    let stderr = w.wait_stderr("when done:", minute);
    assert!(stderr.contains("when done: kdbg restore kube-apiserver --target ssh://docker@"), "{stderr}");
    assert!(!w.stdout.iter().any(|l| l.starts_with("cycle 3")), "{:?}", w.stdout);
    assert!(lab.get("/healthz").unwrap().contains("X-Kdbg-Watch: edited"));
    assert_eq!(delve(&lab).0, dlv1);
    drop(w);

    // Again with --restore-on-exit; the test hook ends it after its start-up sync (no cycles).
    let out = lab.kdbg(&["watch", "apiserver", "--restore-on-exit"]).env("KDBG_TEST_WATCH_CYCLES", "0").success();
    assert!(
        out.stdout.contains("kube-apiserver: ") && out.stdout.contains("the original runs again"),
        "{}",
        out.stdout
    );
    lab.assert_clean();
    // Without a session there is nothing to watch.
    let out = lab.kdbg(&["watch", "apiserver"]).failure(1);
    assert!(out.stderr.contains("kube-apiserver is not under debug on docker@"), "{}", out.stderr);
    assert!(out.stderr.contains("fix: start a session first (`kdbg debug kube-apiserver`"), "{}", out.stderr);
    drop(_restore);
}

/// A watch cycle is a plan whose steps are crash points: kdbg killed after the cycle's copy, or
/// after its relaunch, leaves a node that `kdbg restore` puts back byte for byte.
#[test]
fn a_kill_after_a_watch_cycle_step_is_undone_by_restore() {
    let lab = Lab::up("watchf");
    let before = lab.snapshot();
    let text = std::fs::read_to_string(lab.tree.path(HEALTHZ)).unwrap();
    for (i, point) in ["copy:kube-apiserver", "launch:kube-apiserver"].iter().enumerate() {
        lab.debug(&[]).success();
        // The node now differs from the tree: watch's start-up cycle copies and relaunches.
        lab.tree.write(HEALTHZ, &text.replace(NOSNIFF, &format!("{NOSNIFF}\n\tw.Header().Set(\"X-Kill\", \"{i}\")")));
        let out = lab
            .kdbg(&["watch", "apiserver"])
            .env("KDBG_TEST_WATCH_CYCLES", "1")
            .env(kdbg_core::crash::ENV, point)
            .output();
        assert_eq!(out.code, -1, "{point}: kdbg watch was not killed there:\n{}", out.stderr);
        lab.restore();
        assert_eq!(lab.snapshot(), before, "after a kill at {point}");
        lab.assert_clean();
    }
}
