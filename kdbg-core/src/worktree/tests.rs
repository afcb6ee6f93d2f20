//! Unit tests of `worktree` on throwaway git clones: refs, where worktrees go, reuse and prune.

use super::*;
use crate::report::{Event, Reporter};

struct Quiet;
impl Reporter for Quiet {
    fn report(&self, _: Event) {}
}

/// A clone with tags v1.20.1 and v1.20.2 (HEAD), `_output` ignored as in kubernetes.
fn clone() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap().join("kubernetes");
    std::fs::create_dir_all(&root).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(root.join(".gitignore"), "/_output/\n").unwrap();
    std::fs::write(root.join("flags.go"), "legacy\n").unwrap();
    run(&["init", "-q"]);
    run(&["add", "-A"]);
    run(&["commit", "-qm", "old"]);
    run(&["tag", "v1.20.1"]);
    std::fs::write(root.join("flags.go"), "new\n").unwrap();
    run(&["commit", "-qam", "new"]);
    run(&["tag", "v1.20.2"]);
    let root = root.canonicalize_utf8().unwrap();
    (dir, root)
}

fn status(root: &Utf8Path) -> String {
    git(root, &["status", "--porcelain", "--ignored=no"]).unwrap()
}

#[test]
fn a_missing_tag_names_it_and_the_fetch_command_and_creates_nothing() {
    let (_d, root) = clone();
    let err = ensure(&root, "v1.19.0", None, &Quiet).unwrap_err().to_string();
    assert!(err.contains("the tag v1.19.0 is not in the clone"), "{err}");
    assert!(err.contains(&format!("git -C {root} fetch origin tag v1.19.0")), "{err}");
    assert!(!root.join("_output").exists(), "nothing is created");
    let err = ensure(&root, "no-such-branch", None, &Quiet).unwrap_err().to_string();
    assert!(err.contains("the ref no-such-branch is not in the clone"), "{err}");
}

#[test]
fn a_ref_no_fetch_could_bring_is_named_without_a_fetch_command() {
    let (_d, root) = clone();
    for bad in ["", "HEAD~5", "v1.20.2:foo", "../../etc", "-x"] {
        let err = ensure(&root, bad, None, &Quiet).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{bad:?} names no tag, branch or commit of the clone {root}")), "{err}");
        assert!(!err.contains("fetch origin"), "{err}");
    }
    assert!(!root.join("_output").exists(), "nothing is created");
}

#[test]
fn a_worktree_is_made_once_reused_and_leaves_the_checkout_alone() {
    let (_d, root) = clone();
    let before = (status(&root), std::fs::metadata(root.join("flags.go")).unwrap().modified().unwrap());
    let w = ensure(&root, "v1.20.1", None, &Quiet).unwrap();
    assert!(w.created);
    assert_eq!(w.path, root.join("_output/kdbg/worktrees/v1.20.1"));
    assert_eq!(std::fs::read_to_string(w.path.join("flags.go")).unwrap(), "legacy\n");
    assert_eq!(clone_of(&w.path).unwrap(), root, "inside a worktree, --at belongs to the clone");
    let again = ensure(&root, "v1.20.1", None, &Quiet).unwrap();
    assert!(!again.created && again.path == w.path && again.record.commit == w.record.commit);
    let after = (status(&root), std::fs::metadata(root.join("flags.go")).unwrap().modified().unwrap());
    assert_eq!(before, after, "git status and mtimes of the checkout are unchanged");
    assert_eq!(status(&w.path), "", "kdbg's record is under the worktree's ignored _output");
}

#[test]
fn directory_names_stay_inside_the_worktrees_directory() {
    assert_eq!(dir_name("v1.20.1"), "v1.20.1");
    assert_eq!(dir_name("origin/release-1.34"), "origin_release-1.34");
    assert_eq!(dir_name(".."), "_..");
    assert_eq!(dir_name("HEAD~2"), "HEAD_2");
}

#[test]
fn a_tree_inside_another_repository_is_not_a_clone() {
    let (_d, root) = clone();
    let inner = root.join("vendored/kubernetes");
    std::fs::create_dir_all(&inner).unwrap();
    let err = clone_of(&inner).unwrap_err().to_string();
    assert!(err.contains("is not a git clone") && err.contains("--match-node"), "{err}");
}

#[test]
fn a_named_directory_and_an_unusual_ref_name() {
    let (d, root) = clone();
    let elsewhere = Utf8Path::from_path(d.path()).unwrap().join("trees");
    let w = ensure(&root, "main~1", Some(&elsewhere), &Quiet).unwrap();
    assert_eq!(w.path, elsewhere.canonicalize_utf8().unwrap().join("main_1"));
    assert_eq!(w.record.commit, resolve(&root, "v1.20.1").unwrap());
    std::fs::create_dir_all(elsewhere.join("v1.20.2")).unwrap();
    let err = ensure(&root, "v1.20.2", Some(&elsewhere), &Quiet).unwrap_err().to_string();
    assert!(err.contains("is not a kdbg worktree"), "{err}");
}

#[test]
fn prune_removes_old_unused_worktrees_and_keeps_used_or_edited_ones() {
    let (d, root) = clone();
    let state = Utf8Path::from_path(d.path()).unwrap().join("state");
    let old = ensure(&root, "v1.20.1", None, &Quiet).unwrap();
    let used = ensure(&root, "v1.20.2", None, &Quiet).unwrap();
    let edited = ensure(&root, "main", None, &Quiet).unwrap();
    std::fs::write(edited.path.join("flags.go"), "my debug print\n").unwrap();
    std::fs::create_dir_all(old.path.join(".vscode")).unwrap();
    std::fs::write(old.path.join(".vscode/launch.json"), "{}").unwrap();
    record(&state, &used.path, "kind node dev-control-plane", &["kube-apiserver"]).unwrap();
    let listed = list(&root, Some(&state)).unwrap();
    assert_eq!(listed.len(), 3);
    let in_use = listed.iter().find(|l| l.path == used.path).unwrap();
    assert_eq!(in_use.in_use, ["kube-apiserver on kind node dev-control-plane"]);
    assert!(listed.iter().all(|l| l.size > 0));

    // Used a moment ago: nothing is old enough.
    assert!(prune(&root, Some(&state), Duration::from_secs(3600), false).unwrap().is_empty());
    let dry = prune(&root, Some(&state), Duration::ZERO, true).unwrap();
    assert_eq!(dry.iter().filter(|p| p.kept.is_none()).count(), 1);
    assert!(old.path.exists(), "a dry run removes nothing");
    let pruned = prune(&root, Some(&state), Duration::ZERO, false).unwrap();
    let kept = |p: &Utf8Path| pruned.iter().find(|x| x.path == p).unwrap().kept.clone();
    assert_eq!(kept(&old.path), None);
    assert!(kept(&used.path).unwrap().contains("in use: kube-apiserver on kind node dev-control-plane"));
    assert!(kept(&edited.path).unwrap().contains("changes of yours (flags.go)"));
    assert!(!old.path.exists() && used.path.exists() && edited.path.exists());

    // Restore forgets the session: then it goes too.
    forget(&state, "kind node dev-control-plane", &[]).unwrap();
    let pruned = prune(&root, Some(&state), Duration::ZERO, false).unwrap();
    assert!(pruned.iter().any(|p| p.path == used.path && p.kept.is_none()));
    assert!(!used.path.exists());
    let names: Vec<String> = list(&root, None).unwrap().into_iter().map(|l| l.record.git_ref).collect();
    assert_eq!(names, ["main"]);
}

#[test]
fn a_worktrees_directory_in_the_checkout_must_be_one_git_ignores() {
    let (_d, root) = clone();
    for inside in [root.clone(), root.join("trees/new")] {
        let err = ensure(&root, "v1.20.1", Some(&inside), &Quiet).unwrap_err().to_string();
        assert!(err.contains("is inside the checkout") && err.contains("git status"), "{err}");
    }
    assert_eq!(status(&root), "", "nothing is created in the checkout");
    let ignored = root.join("_output/mine");
    let w = ensure(&root, "v1.20.1", Some(&ignored), &Quiet).unwrap();
    assert!(w.path.starts_with(ignored.canonicalize_utf8().unwrap()));
    let empty = Utf8Path::new("");
    let w = ensure(&root, "v1.20.2", Some(empty), &Quiet).unwrap();
    assert!(w.path.starts_with(root.join(DEFAULT_DIR)), "an empty --worktrees (KDBG_WORKTREES=) is the default");
    assert_eq!(status(&root), "");
}
