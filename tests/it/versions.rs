//! Version switching on a fixture clone with two tags whose apiservers differ (v1.20.1 still has
//! `--legacy-flag`, v1.20.2 removed it): `--match-node` builds the node's version in a worktree
//! and comes up with the node's own arguments, `--at` switches without rebuilding, a missing tag
//! is an error that creates nothing, and `kdbg worktrees` lists and prunes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::session::{Lab, Original};
use kdbg_tests::toolchain::Toolchain;

use crate::support::Tree;

const SERVER: &str = "cmd/kube-apiserver/app/server.go";
const SECURE_PORT: &str = "\tsecurePort := fs.Int(";

fn git(root: &Path, args: &[&str]) -> String {
    kdbg_tests::fixture::git(root, args).unwrap()
}

/// History `old` (the tree with `edit`) → `new` (without), the checkout at `new`.
fn older_tag(tree: &Tree, old: &str, new: &str, edit: impl FnOnce(&Tree)) {
    edit(tree);
    git(&tree.root, &["commit", "-qam", &format!("{old}: as it was")]);
    git(&tree.root, &["tag", "-f", old]);
    git(&tree.root, &["revert", "--no-edit", "HEAD"]);
    git(&tree.root, &["tag", "-f", new]);
}

/// v1.20.1 still has `--legacy-flag`; v1.20.2, the checkout, removed it.
fn two_tags(tree: &Tree) {
    older_tag(tree, "v1.20.1", "v1.20.2", |tree| {
        let text = std::fs::read_to_string(tree.path(SERVER)).unwrap();
        assert!(text.contains(SECURE_PORT), "the fixture's apiserver flags moved: {SERVER}");
        let legacy = format!("\tfs.Bool(\"legacy-flag\", false, \"removed in v1.20.2\")\n{SECURE_PORT}");
        tree.write(SERVER, &text.replacen(SECURE_PORT, &legacy, 1));
    });
}

/// What a cluster at v1.20.1 runs: a release build of that tag (from a clone, as a release is).
fn release_of(tree: &Tree, tag: &str) -> PathBuf {
    let dir = tree.scratch().join(format!("release-{tag}"));
    let clone = dir.join("kubernetes");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["clone", "-q", "--branch", tag, tree.root.to_str().unwrap(), "kubernetes"]);
    kdbg_tests::lab::release_build(&clone, "kube-apiserver").unwrap()
}

/// The checkout as the user sees it: `git status` and every tracked file's mtime.
fn checkout(root: &Path) -> (String, BTreeMap<String, std::time::SystemTime>) {
    let status = git(root, &["status", "--porcelain"]);
    let files = git(root, &["ls-files"]);
    let times = files.lines().map(|f| (f.to_string(), std::fs::metadata(root.join(f)).unwrap().modified().unwrap()));
    (status, times.collect())
}

/// `kdbg ARGS` in the lab's tree with its workstation state (no target: `worktrees` has none).
fn kdbg_here(lab: &Lab, args: &[&str]) -> crate::support::Run {
    lab.tree.kdbg(args).env("KDBG_STATE_DIR", lab.state.path())
}

#[test]
fn match_node_builds_the_nodes_version_in_a_worktree_and_at_switches_without_rebuilding() {
    let tree = Tree::fixture();
    two_tags(&tree);
    let original = Original {
        binary: release_of(&tree, "v1.20.1"),
        args: vec!["--legacy-flag=true".into()],
        tag: "v1.20.1".into(),
    };
    let lab = Lab::up_running("vers", tree, Some(original));
    let root = lab.tree.root.clone();
    let worktree = root.join("_output/kdbg/worktrees/v1.20.1");
    let before = checkout(&root);
    let node_before = lab.snapshot();
    assert!(lab.manifest_args().contains(&"--legacy-flag=true".to_string()));

    // Without --match-node: the skew warning names the way out; the v1.20.2 build exits on the
    // node's --legacy-flag and the run is rolled back.
    let skewed = lab.debug(&[]).output();
    assert_ne!(skewed.code, 0, "a v1.20.2 build cannot take --legacy-flag:\n{}", skewed.stderr);
    assert!(skewed.stderr.contains("kube-apiserver on docker@"), "{}", skewed.stderr);
    assert!(skewed.stderr.contains("is v1.20.1 (the --version of its running binary (pid "), "{}", skewed.stderr);
    assert!(skewed.stderr.contains("your tree is v1.20.2") && skewed.stderr.contains("pass --match-node"));
    assert!(skewed.stderr.contains("legacy-flag"), "the build's own complaint is shown:\n{}", skewed.stderr);
    lab.wait_healthz();
    assert_eq!(lab.snapshot(), node_before, "rolled back");
    assert!(!worktree.exists());

    // --match-node: the node's version, from a worktree, with the node's own arguments.
    let port = lab.port.to_string();
    let matched = lab.kdbg(&["debug", "apiserver", "--port", &port, "--match-node"]).success();
    assert!(
        matched.stderr.contains("--match-node: kube-apiserver on docker@")
            && matched.stderr.contains("runs v1.20.1 (the --version of its running binary"),
        "{}",
        matched.stderr
    );
    assert!(matched.stderr.contains("checking out v1.20.1"), "{}", matched.stderr);
    assert!(!matched.stderr.contains("your tree is"), "no skew left: {}", matched.stderr);
    assert!(worktree.join("_output/bin/kube-apiserver").exists());
    assert_eq!(lab.args(), lab.manifest_args(), "the debug build runs with the node's own arguments");
    lab.hit_breakpoint_built_in(&worktree, lab.port);
    // The IDE entries are the worktree's: VSCode opens it, and its substitutePath maps into it.
    let launch = std::fs::read_to_string(worktree.join(".vscode/launch.json")).unwrap();
    assert!(launch.contains("kdbg: attach kube-apiserver") && launch.contains("${workspaceFolder}"), "{launch}");
    assert!(!root.join(".vscode").exists(), "the checkout gets no IDE entries");
    let wt = worktree.to_str().unwrap();
    let status = lab.kdbg(&["status"]).success();
    let built = format!(
        "built from v1.20.1 (worktree at --at v1.20.1, commit {}",
        &git(&root, &["rev-parse", "v1.20.1^{commit}"])[..12]
    );
    assert!(status.stdout.contains(&built) && status.stdout.contains(wt), "{}", status.stdout);
    let json = lab.kdbg(&["status", "--json"]).success();
    assert!(
        json.stdout.contains("\"at\": \"v1.20.1\"") || json.stdout.contains("\"at\":\"v1.20.1\""),
        "{}",
        json.stdout
    );

    // Watch from the checkout would put v1.20.2 into a v1.20.1 session: refused, naming --at.
    let other = lab.kdbg(&["watch", "apiserver"]).failure(1);
    assert!(
        other.stderr.contains("runs a build of v1.20.1 from ")
            && other.stderr.contains("kdbg watch kube-apiserver --at v1.20.1"),
        "{}",
        other.stderr
    );

    // In use: listed so, never pruned.
    let listed = kdbg_here(&lab, &["worktrees"]).success();
    assert!(listed.stdout.contains("v1.20.1") && listed.stdout.contains("in use: kube-apiserver on docker@"));
    let pruned = kdbg_here(&lab, &["worktrees", "prune", "--older-than", "0"]).success();
    assert!(pruned.stdout.contains("kept") && pruned.stdout.contains("in use"), "{}", pruned.stdout);
    assert!(worktree.exists());
    lab.restore();
    lab.assert_clean();

    // Switching: each ref builds once in its worktree, then never again; the checkout is untouched.
    let at = |r: &str| lab.tree.build(&["apiserver", "--at", r])[0]["hit"].as_bool().unwrap();
    assert!(at("v1.20.1"), "debug built v1.20.1 already");
    let makes = lab.tree.make_runs().len();
    assert!(!at("v1.20.2"));
    assert_eq!(lab.tree.make_runs().len(), makes + 1);
    for r in ["v1.20.1", "v1.20.2", "v1.20.1", "v1.20.2"] {
        assert!(at(r), "{r} is a cache hit in its worktree");
    }
    assert_eq!(lab.tree.make_runs().len(), makes + 1, "switching back and forth rebuilds nothing");
    let key = |extra: &[&str]| lab.tree.kdbg([&["cache-key", "apiserver"], extra].concat()).success().stdout;
    assert_eq!(key(&["--at", "v1.20.2"]), key(&[]), "the checkout is at v1.20.2: same sources, same key");
    assert_ne!(key(&["--at", "v1.20.1"]), key(&[]));
    assert_eq!(checkout(&root), before, "git status and mtimes of the checkout are unchanged");

    // A missing tag: named, with the fetch command; nothing is created, nothing runs.
    let trees = || std::fs::read_dir(root.join("_output/kdbg/worktrees")).unwrap().count();
    let (n, makes) = (trees(), lab.tree.make_runs().len());
    let missing = lab.debug(&["--at", "v1.19.0"]).failure(1);
    assert!(missing.stderr.contains("the tag v1.19.0 is not in the clone"), "{}", missing.stderr);
    assert!(missing.stderr.contains("fetch origin tag v1.19.0"), "{}", missing.stderr);
    git(&root, &["tag", "-d", "v1.20.1"]);
    let gone = lab.debug(&["--match-node"]).failure(1);
    assert!(
        gone.stderr.contains("the tag v1.20.1 is not in the clone") && gone.stderr.contains("never builds a nearby")
    );
    assert_eq!((trees(), lab.tree.make_runs().len()), (n, makes));
    assert_eq!(lab.snapshot(), node_before, "the node is untouched");
    git(&root, &["tag", "v1.20.1", "v1.20.2~1"]);

    // No session left: both go.
    let listed = kdbg_here(&lab, &["worktrees", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(v["worktrees"].as_array().unwrap().len(), 2, "{}", listed.stdout);
    assert!(kdbg_here(&lab, &["worktrees", "prune"]).success().stdout.contains("no kdbg worktree"), "used today");
    let pruned = kdbg_here(&lab, &["worktrees", "prune", "--older-than", "0"]).success();
    assert_eq!(pruned.stdout.matches("removed ").count(), 2, "{}", pruned.stdout);
    assert!(!worktree.exists());
    assert!(kdbg_here(&lab, &["worktrees"]).success().stdout.contains("no kdbg worktrees"));
    assert_eq!(checkout(&root), before);
}

/// Each worktree builds with the Go its own `.go-version` names: the modern fixture at v1.36.0
/// pins Go 1.27.3 (first on PATH), its v1.35.0 pins Go 1.24.11 (installed as ~/sdk/go1.24.11).
#[test]
fn each_worktree_builds_with_the_go_its_version_pins() {
    let newest = Toolchain::newest();
    let tree = Tree::fixture_with(newest.clone());
    let older = kdbg_tests::toolchain::GO[0];
    older_tag(&tree, "v1.35.0", "v1.36.0", |t| t.write(".go-version", &format!("{older}\n")));
    let home = tree.scratch().join("home");
    std::fs::create_dir_all(home.join("sdk")).unwrap();
    let goroot = kdbg_tests::toolchain::go_bin(older).parent().unwrap().to_owned();
    std::os::unix::fs::symlink(goroot, home.join(format!("sdk/go{older}"))).unwrap();
    let go_of = |extra: &[&str]| {
        let out = tree.kdbg([&["build", "apiserver", "--json"], extra].concat()).env("HOME", &home).success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let binary = v["components"][0]["binary"].as_str().unwrap().to_string();
        kdbg_core::deploy::dlv::needs_of(camino::Utf8Path::new(&binary)).unwrap().go_version
    };
    assert_eq!(go_of(&["--at", "v1.35.0"]), format!("go{older}"));
    assert_eq!(go_of(&[]), format!("go{}", newest.go_version()));
    let key = tree.kdbg(["cache-key", "apiserver", "--at", "v1.35.0"]).env("HOME", &home).success().stdout;
    assert!(key.starts_with(&format!("kdbg-v1-linux-amd64-go{older}-")), "{key}");
}
