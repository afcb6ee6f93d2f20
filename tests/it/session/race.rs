//! Two kdbg at once on one node: one session comes up, the other waits and then refuses naming
//! it; `--no-wait` refuses at once, `status` never waits (and names who holds the node), and a
//! killed holder frees the node.

use std::os::unix::process::CommandExt;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use super::Lab;
use crate::support::Run;

fn start(run: Run) -> Child {
    let mut cmd = run.cmd;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn().unwrap()
}

fn text(out: &Output) -> (i32, String) {
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `KDBG_RACE_RUNS` (default 20) times: two `kdbg debug apiserver` started together.
#[test]
fn two_debugs_at_once_one_session_and_the_other_names_it() {
    let lab = Lab::up("sessr");
    let before = lab.snapshot();
    let runs: usize = std::env::var("KDBG_RACE_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let (mut waited, mut refused) = (0, 0);
    for i in 0..runs {
        let (a, b) = (start(lab.debug(&[])), start(lab.debug(&[])));
        let pids = [a.id(), b.id()];
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let (winner, loser) = match (outs[0].status.success(), outs[1].status.success()) {
            (true, false) => (0, 1),
            (false, true) => (1, 0),
            _ => panic!("run {i}: not exactly one session:\n{}\n---\n{}", text(&outs[0]).1, text(&outs[1]).1),
        };
        let (code, stderr) = text(&outs[loser]);
        let first = format!("kdbg on {} (pid {})", kdbg_core::session::journal::Who::me().host, pids[winner]);
        assert_eq!(code, 1, "run {i}: {stderr}");
        assert!(stderr.contains("already under debug") && stderr.contains(&first), "run {i}: {first} in:\n{stderr}");
        if stderr.contains(&format!("waiting for {first} running `kdbg debug kube-apiserver`")) {
            waited += 1;
        } else {
            refused += 1;
        }
        lab.hit_breakpoint();
        lab.restore();
        assert_eq!(lab.snapshot(), before, "run {i}: the node is byte-identical after restore");
    }
    eprintln!("{runs} races: the second waited {waited} times, found the session already up {refused} times");
    lab.assert_clean();
}

#[test]
fn no_wait_refuses_status_answers_and_a_killed_holder_frees_the_node() {
    let lab = Lab::up("sessw");
    let before = lab.snapshot();
    // A build held at the make gate (never opened): the first kdbg holds the node's lock meanwhile.
    lab.tree.append("pkg/healthz/healthz.go", "\n// held build\n");
    let mut first = start(lab.debug(&["--via-make"]).env("KDBG_IT_MAKE_GATE", lab.tree.make_gate()));
    let started = kdbg_tests::sys::wait_for(Duration::from_secs(60), Duration::from_millis(50), || {
        (!lab.tree.make_runs().is_empty()).then_some(())
    });
    assert!(started.is_some(), "the first kdbg never started make");
    let holder = format!(
        "kdbg on {} (pid {}) running `kdbg debug kube-apiserver`",
        kdbg_core::session::journal::Who::me().host,
        first.id()
    );

    let busy = lab.debug(&["--no-wait"]).failure(1);
    assert!(busy.stderr.contains(&format!("is being changed by {holder}")), "{}", busy.stderr);
    assert!(busy.stderr.contains("without --no-wait"), "{}", busy.stderr);
    let busy = lab.kdbg(&["restore", "--no-wait"]).failure(1);
    assert!(busy.stderr.contains(&format!("is being changed by {holder}")), "{}", busy.stderr);
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains("nothing is under debug"), "{}", status.stdout);
    let names = status.stdout.contains(&holder) && status.stdout.contains("lock: it is changing the node now");
    assert!(names, "status names who changes the node:\n{}", status.stdout);
    assert!(first.try_wait().unwrap().is_none(), "status answered while the first still holds the node");

    // SIGKILL for kdbg alone (its make waits on): the node is free within seconds, not a lease.
    kdbg_tests::sys::kill(first.id(), libc::SIGKILL);
    first.wait().unwrap();
    let freed = kdbg_tests::sys::wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let out = lab.kdbg(&["restore", "--no-wait"]).output();
        (out.code == 0).then_some(out)
    });
    assert!(freed.is_some(), "a killed holder keeps the node locked");
    // SAFETY: signals the process group the test started (the waiting make).
    unsafe { libc::kill(-(first.id() as i32), libc::SIGKILL) };
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();
}
