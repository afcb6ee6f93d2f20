//! Recovery without a journal: a journal removed or unreadable mid-session, and `kdbg restore`
//! (`--from-node-state`) puts the apiserver back from what kdbg left on the node; `doctor` sees it.

use super::Lab;

const JOURNAL: &str = "/var/lib/kdbg/journal.json";
const BACKUP: &str = "/var/lib/kdbg/backup/kube-apiserver.yaml";
const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

#[test]
fn a_lost_journal_is_recovered_from_what_kdbg_left_on_the_node() {
    let lab = Lab::up("sessj");
    let before = lab.snapshot();
    lab.debug(&[]).success();
    std::fs::remove_file(lab.node.host_path(JOURNAL)).unwrap();

    // `debug` names the way out, not `status` (which has nothing to show without a journal).
    let debug = lab.debug(&[]).failure(1);
    assert!(debug.stderr.contains(&format!("parked in kdbg's backup {BACKUP}")), "{}", debug.stderr);
    assert!(debug.stderr.contains("`kdbg restore --from-node-state`"), "{}", debug.stderr);

    let doctor = lab.kdbg(&["doctor"]).failure(1);
    let found = format!("kdbg's backup {BACKUP} while {MANIFEST} is missing");
    assert!(doctor.stdout.contains("✗ leftovers") && doctor.stdout.contains(&found), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("a debug process (pid"), "{}", doctor.stdout);
    assert!(doctor.stdout.contains("fix: `kdbg restore --target ssh://docker@"), "{}", doctor.stdout);

    let restored = lab.restore();
    for e in [&format!("found, with no journal entry: {found}"), &format!("put {MANIFEST} back from {BACKUP}")] {
        assert!(restored.stdout.contains(e.as_str()), "{e:?} in:\n{}", restored.stdout);
    }
    assert!(
        restored.stdout.contains("killed the debug processes") && restored.stdout.contains("the original runs again")
    );
    assert_eq!(lab.snapshot(), before, "the manifests directory is byte-identical");
    lab.assert_clean();
    assert!(!lab.node.host_path(BACKUP).exists());
    let doctor = lab.kdbg(&["doctor"]).success();
    assert!(doctor.stdout.contains("✓ leftovers nothing left by kdbg on the node"), "{}", doctor.stdout);
}

#[test]
fn an_unreadable_journal_is_kept_aside_and_the_node_state_restored() {
    let lab = Lab::up("sessu");
    let before = lab.snapshot();
    lab.debug(&[]).success();
    std::fs::write(lab.node.host_path(JOURNAL), "{ \"schema\": 1, \"compo").unwrap();

    for args in [&["status"][..], &["restore"], &["debug", "apiserver", "--no-ide"]] {
        let out = lab.kdbg(args).failure(1);
        assert!(out.stderr.contains(&format!("the journal {JOURNAL} on docker@")), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("`kdbg restore --from-node-state` keeps it aside"), "{args:?}: {}", out.stderr);
    }
    let doctor = lab.kdbg(&["doctor"]).failure(1);
    assert!(doctor.stdout.contains("✗ leftovers") && doctor.stdout.contains("--from-node-state"), "{}", doctor.stdout);

    let restored = lab.kdbg(&["restore", "--from-node-state"]).success();
    assert!(restored.stderr.contains(&format!("kept it as {JOURNAL}.unreadable.")), "{}", restored.stderr);
    assert!(restored.stdout.contains(&format!("put {MANIFEST} back from {BACKUP}")), "{}", restored.stdout);
    let kept: Vec<_> = std::fs::read_dir(lab.node.host_path("/var/lib/kdbg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal.json.unreadable."))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let aside = lab.node.host_path(format!("/var/lib/kdbg/{}", kept[0]));
    assert_eq!(std::fs::read_to_string(aside).unwrap(), "{ \"schema\": 1, \"compo", "kept, never deleted");
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();
}
