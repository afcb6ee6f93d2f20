//! The session lease: a node whose workstation is gone (kdbg and every ssh of it SIGKILLed, the
//! node's sshd stopped) puts itself back once the lease passes
//! (with nothing of kdbg left but its logs and binaries), and the node's restore, killed at any
//! of its steps, is finished by the next run.

use std::time::Duration;

use kdbg_tests::sys::wait_for;

use super::Lab;

/// What kdbg keeps in `/var/lib/kdbg` between sessions: its binaries and the lock file.
fn kdbg_files(lab: &Lab) -> Vec<String> {
    let out = lab.node.sh("cd /var/lib/kdbg 2>/dev/null && find . -path ./bin -prune -o -print | sort").unwrap();
    out.lines().filter(|l| !matches!(*l, "." | "./bin" | "./lock" | "./lock.owner")).map(String::from).collect()
}

/// The workstation goes: every ssh of this lab's node on this host (kdbg's master connection,
/// the tunnel it left running) is SIGKILLed and the node's sshd refuses and drops every session.
fn workstation_gone(lab: &Lab) {
    let node = format!("@{}", lab.node.ip());
    let ours = |p: &u32| {
        kdbg_tests::sys::comm(*p).is_some_and(|c| c == "ssh")
            && std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.ends_with(node.as_bytes())))
    };
    let pids: Vec<u32> = kdbg_tests::sys::all_pids().into_iter().filter(ours).collect();
    assert!(!pids.is_empty(), "no ssh of this lab's node on this host");
    for pid in pids {
        kdbg_tests::sys::kill(pid, libc::SIGKILL);
    }
    lab.node.stop_sshd().unwrap();
}

#[test]
fn a_node_whose_workstation_is_gone_puts_itself_back_when_the_lease_passes() {
    let lab = Lab::up("sessw");
    let (before, files) = (lab.snapshot(), kdbg_files(&lab));
    let out = lab.debug(&["--lease", "6s"]).success();
    assert!(out.stdout.contains("puts itself back in "), "{}", out.stdout);
    assert!(
        out.stdout.contains("has no systemd: if it restarts during the session, run `kdbg restore`"),
        "{}",
        out.stdout
    );
    assert!(lab.journal().contains("\"seconds\": 6"), "{}", lab.journal());
    // A watchdog killed by hand comes back with the next renewal (here `kdbg status`).
    let loops = "pgrep -f '[w]atchdog.sh loop' || true";
    assert!(!lab.node.sh(loops).unwrap().trim().is_empty(), "no watchdog runs on the node");
    lab.node.sh("pkill -9 -f '[w]atchdog.sh loop'; true").unwrap();
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains(" was left; renewed: "), "{}", status.stdout);
    let again = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (!lab.node.sh(loops).unwrap().trim().is_empty()).then_some(())
    });
    assert!(again.is_some(), "kdbg status did not start the watchdog again");

    workstation_gone(&lab);
    let back = wait_for(Duration::from_secs(240), Duration::from_millis(250), || {
        let gone = !lab.node_exes().iter().any(|e| e.starts_with("/var/lib/kdbg/"));
        (gone && lab.snapshot() == before && kdbg_files(&lab) == files).then_some(())
    });
    let log = std::fs::read_to_string(lab.node.host_path("/var/log/kdbg/node-restore.log")).unwrap_or_default();
    assert!(back.is_some(), "the node did not put itself back: {:?}\nlog:\n{log}", kdbg_files(&lab));
    assert!(log.contains("restoring the node: the lease expired"), "{log}");
    assert!(log.contains("kdbg-restore: kube-apiserver runs again"), "{log}");

    lab.node.start_sshd().unwrap();
    lab.assert_clean();
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains("nothing is under debug"), "{}", status.stdout);
    assert!(status.stdout.contains("restored by the node at "), "{}", status.stdout);
    assert!(status.stdout.contains(": the lease expired (put back kube-apiserver)"), "{}", status.stdout);
    // The next session starts afresh (the record is the last session's).
    lab.debug(&["--lease", "none"]).success();
    assert!(!lab.kdbg(&["status"]).success().stdout.contains("restored by the node"));
    lab.restore();
    assert_eq!((lab.snapshot(), kdbg_files(&lab)), (before, files));
    lab.assert_clean();
}

#[test]
fn a_node_restore_killed_at_any_step_is_finished_by_the_next_one() {
    let lab = Lab::up("sessx");
    let (before, files) = (lab.snapshot(), kdbg_files(&lab));
    let out = lab.debug(&["--lease", "none"]).success();
    assert!(out.stdout.contains("lease: none (--lease none)"), "{}", out.stdout);
    let script = std::fs::read_to_string(lab.node.host_path("/var/lib/kdbg/restore.sh")).unwrap();
    let steps: Vec<&str> = script
        .lines()
        .flat_map(|l| l.split("step ").skip(1))
        .filter_map(|s| s.split([' ', ';']).next())
        .filter(|s| !s.is_empty() && !s.starts_with('"') && !s.starts_with('$') && !s.contains('('))
        .collect();
    assert_eq!(steps.first(), Some(&"stop:kube-apiserver"), "{steps:?}");
    assert_eq!(steps.last(), Some(&"journal"), "{steps:?}");
    assert!(
        steps.iter().any(|s| s.starts_with("put-back:")) && steps.iter().any(|s| s.starts_with("back:")),
        "{steps:?}"
    );

    for step in &steps {
        let run = format!("KDBG_NODE_RESTORE_KILL_AT={step} sh /var/lib/kdbg/watchdog.sh boot");
        assert!(lab.node.sh(&run).is_err(), "the run killed at {step} succeeded");
        // Killed at any step, the node still says what to put back, and how.
        assert!(lab.journal().contains("kube-apiserver"), "killed at {step}, the journal is gone");
        assert!(lab.node.host_path("/var/lib/kdbg/restore.sh").exists(), "killed at {step}");
    }
    // The next run finishes what the killed ones left.
    lab.node.sh("sh /var/lib/kdbg/watchdog.sh boot").unwrap();
    lab.wait_healthz();
    assert_eq!((lab.snapshot(), kdbg_files(&lab)), (before.clone(), files.clone()));
    // This workstation's forward outlived the session the node put back: the next command stops it.
    let status = lab.kdbg(&["status"]).success();
    assert!(status.stdout.contains(": the node restarted (put back kube-apiserver)"), "{}", status.stdout);
    assert!(status.stdout.contains("stopped this workstation's tunnel localhost:"), "{}", status.stdout);
    lab.assert_clean();

    // Killed half way, `kdbg restore` finishes it just as well: the same operations.
    lab.debug(&["--lease", "none"]).success();
    let put = steps.iter().find(|s| s.starts_with("put-back:")).unwrap();
    assert!(lab.node.sh(&format!("KDBG_NODE_RESTORE_KILL_AT={put} sh /var/lib/kdbg/watchdog.sh boot")).is_err());
    lab.restore();
    assert_eq!((lab.snapshot(), kdbg_files(&lab)), (before, files));
    lab.assert_clean();
}

/// The node's deadline (`/var/lib/kdbg/lease`: `EXPIRES SECONDS PERIOD`), if a lease runs.
fn deadline(lab: &Lab) -> Option<u64> {
    let text = std::fs::read_to_string(lab.node.host_path("/var/lib/kdbg/lease")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_running_watch_keeps_the_lease_and_its_end_lets_it_pass() {
    let lab = Lab::up("sessr");
    let before = lab.snapshot();
    lab.debug(&["--lease", "8s"]).success();
    let first = deadline(&lab).expect("a deadline on the node");
    let minute = Duration::from_secs(60);
    let mut w = crate::watch::child::Watcher::spawn(lab.kdbg(&["watch", "apiserver"]));
    w.wait_line("kdbg: ready", minute, |l| l == "kdbg: ready");
    // Renewed again and again: the deadline moves a whole lease past the first one, so the first
    // has passed meanwhile, and the session is still there.
    let kept = wait_for(minute, Duration::from_millis(200), || deadline(&lab).filter(|d| *d >= first + 8));
    assert!(kept.is_some(), "the watch did not renew the lease: {:?} (first {first})", deadline(&lab));
    assert!(lab.journal().contains("kube-apiserver"), "the node put itself back while the watch ran");
    // The workstation goes while the watch runs: kdbg and every ssh of it killed, the node cut off.
    drop(w);
    workstation_gone(&lab);
    let back = wait_for(Duration::from_secs(120), Duration::from_millis(250), || {
        (lab.snapshot() == before && !lab.node_exes().iter().any(|e| e.starts_with("/var/lib/kdbg/"))).then_some(())
    });
    assert!(back.is_some(), "the node did not put itself back once the watch ended");
    lab.node.start_sshd().unwrap();
    lab.kdbg(&["status"]).success();
    lab.assert_clean();
}
