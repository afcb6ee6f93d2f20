//! Fencing: a kdbg paused (SIGSTOP, a suspended laptop) past its lock's lease loses the node to
//! another kdbg; resumed, it changes nothing more and says so.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use super::Lab;
use crate::support::Tree;

#[test]
fn a_paused_holder_resumed_after_another_took_the_node_changes_nothing() {
    let lab = Lab::up("sessl");
    // A: a build held at the make gate, so A holds the node's lock while the test pauses it.
    lab.tree.append("pkg/healthz/healthz.go", "\n// held build\n");
    let lease = [("KDBG_LOCK_LEASE", "3")];
    let a = lab.debug(&["--via-make"]).env("KDBG_IT_MAKE_GATE", lab.tree.make_gate()).env(lease[0].0, lease[0].1);
    let mut cmd = a.cmd;
    let a = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn().unwrap();
    let started = kdbg_tests::sys::wait_for(Duration::from_secs(60), Duration::from_millis(50), || {
        (!lab.tree.make_runs().is_empty()).then_some(())
    });
    assert!(started.is_some(), "A never started make");
    kdbg_tests::sys::kill(a.id(), libc::SIGSTOP);

    // B, from another tree (A's build holds A's tree), waits out A's lease and starts a session.
    let other = Tree::fixture();
    let args: Vec<String> = ["debug", "apiserver", "--no-ide", "--port", &lab.port.to_string()]
        .iter()
        .map(|s| s.to_string())
        .chain(kdbg_tests::lab::target_args(&lab.node))
        .collect();
    let b = other.kdbg(&args).env("KDBG_STATE_DIR", lab.state.path()).env(lease[0].0, lease[0].1).success();
    assert!(b.stderr.contains("waiting for kdbg on"), "B did not wait for A:\n{}", b.stderr);
    let with_b = lab.snapshot();

    // A resumes and its make finishes: it must change nothing more.
    kdbg_tests::sys::kill(a.id(), libc::SIGCONT);
    lab.tree.open_make_gate();
    let out = a.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("lost the node lock of docker@"), "{stderr}");
    assert!(stderr.contains("changed nothing more"), "{stderr}");
    assert_eq!(lab.snapshot(), with_b, "A changed the node after losing its lock");
    let dlvs = lab.node_exes().iter().filter(|e| e.ends_with("/dlv")).count();
    assert_eq!(dlvs, 1, "one Delve (B's) on the node: {:?}", lab.node_exes());
    lab.hit_breakpoint();
    lab.restore();
    lab.assert_clean();
}
