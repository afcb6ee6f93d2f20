//! A static pod's manifest changed by hand during a session: kdbg's parked copy edited, or a
//! manifest put back into the kubelet's directory. `kdbg restore` changes nothing and names the
//! way out, which works: `kdbg restore --keep-current` keeps what is in place now.

use super::Lab;

const BACKUP: &str = "/var/lib/kdbg/backup/kube-apiserver.yaml";

/// Delve and the debug build still run on the node (restore stopped nothing).
fn still_debugging(lab: &Lab) -> bool {
    lab.node_exes().iter().any(|e| e.starts_with("/var/lib/kdbg/"))
}

#[test]
fn an_edited_parked_manifest_stops_nothing_and_keep_current_is_the_way_out() {
    let lab = Lab::up("sessm");
    lab.debug(&[]).success();
    let backup = lab.node.host_path(BACKUP);
    let edited = format!("{}# edited while parked\n", std::fs::read_to_string(&backup).unwrap());
    std::fs::write(&backup, &edited).unwrap();

    for args in [&["restore"][..], &["restore", "--from-node-state"]] {
        let out = lab.kdbg(args).failure(1);
        assert!(out.stderr.contains("so nothing was changed") && out.stderr.contains("was changed"), "{}", out.stderr);
        assert!(out.stderr.contains("kdbg restore --keep-current"), "{}", out.stderr);
        assert!(still_debugging(&lab), "{args:?} stopped the debug build before refusing");
    }
    // The way out: the user's version into the manifests directory, then --keep-current.
    std::fs::write(lab.manifest_path(), &edited).unwrap();
    let out = lab.kdbg(&["restore", "--keep-current"]).success();
    assert!(out.stdout.contains("--keep-current"), "{}", out.stdout);
    assert!(!backup.exists());
    assert_eq!(std::fs::read_to_string(lab.manifest_path()).unwrap(), edited);
    lab.wait_healthz();
    lab.assert_clean();
    assert!(!lab.journal().contains("kube-apiserver"), "{}", lab.journal());
}

#[test]
fn a_manifest_put_back_by_hand_stops_nothing_and_keep_current_keeps_it() {
    let lab = Lab::up("sessk");
    lab.debug(&[]).success();
    let mine = format!("{}# put back by hand\n", lab.manifest());
    std::fs::write(lab.manifest_path(), &mine).unwrap();

    for _ in 0..2 {
        let out = lab.kdbg(&["restore"]).failure(1);
        assert!(out.stderr.contains("put back or edited by hand"), "{}", out.stderr);
        assert!(out.stderr.contains("kdbg restore --keep-current"), "{}", out.stderr);
        assert!(still_debugging(&lab));
    }
    let debug = lab.debug(&[]).failure(1);
    assert!(debug.stderr.contains("already under debug"), "{}", debug.stderr);

    let log = lab.node.host_path("/var/log/kdbg/kube-apiserver.log");
    assert!(log.exists(), "the session's log is there while it runs");
    lab.kdbg(&["restore", "--keep-current"]).success();
    assert!(!log.exists(), "--keep-current leaves the session's log behind");
    assert_eq!(std::fs::read_to_string(lab.manifest_path()).unwrap(), mine);
    lab.wait_healthz();
    lab.assert_clean();
    // No dead end: the component can be debugged again, and restore then puts the user's back.
    let before = lab.snapshot();
    lab.debug(&[]).success();
    lab.restore();
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();
}
