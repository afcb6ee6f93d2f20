//! Replay of make's captured `go` builds: body-only edits skip make byte-identically; anything
//! generators or make read runs make. Each case runs on the 1.20-era fixture (GOPATH layout, Go
//! under test) and on the v1.30+-era one (workspace mode, go.work, Go 1.27).

use kdbg_tests::toolchain::Toolchain;

use crate::support::Tree;

fn build(t: &Tree, args: &[&str]) -> serde_json::Value {
    let out = t.kdbg([&["build", "apiserver", "--json"], args].concat()).success();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn a_body_only_edit_replays_without_make_and_matches_make_byte_for_byte() {
    body_only_edit_replays(Tree::fixture);
}

#[test]
fn modern_a_body_only_edit_under_staging_replays_and_matches_make_byte_for_byte() {
    body_only_edit_replays(|| Tree::fixture_with(Toolchain::newest()));
}

/// One tree (a debug build without `-trimpath` records the tree's absolute path): edit A replays;
/// edit B goes through make; edit A again through make must give the replay's bytes.
fn body_only_edit_replays(tree: fn() -> Tree) {
    let t = tree();
    let file = t.healthz();
    let original = std::fs::read_to_string(t.path(file)).unwrap();
    let edit = |n: u32| t.write(file, &format!("{original}\nfunc kdbgReplayEdit() int {{ return {n} }}\n"));
    assert_eq!(build(&t, &[])["via"], "make");
    edit(42);
    let r = build(&t, &[]);
    assert_eq!(r["via"], "replay", "{r}");
    assert_eq!(t.make_runs().len(), 1, "a replay runs no make");
    let on_disk = crate::support::sha256_file(&t.path("_output/local/bin/linux/amd64/kube-apiserver"));
    assert_eq!(r["components"][0]["sha256"], on_disk.as_str());
    edit(43);
    assert_eq!(build(&t, &["--via-make"])["via"], "make");
    edit(42);
    let m = build(&t, &["--via-make"]);
    assert_eq!(m["via"], "make", "{m}");
    assert_eq!(t.make_runs().len(), 3);
    assert_eq!(r["components"][0]["sha256"], m["components"][0]["sha256"], "replay and make must give the same bytes");
    // Replays chain, and a no-op after one is a hit.
    edit(44);
    assert_eq!(build(&t, &[])["via"], "replay");
    edit(45);
    assert_eq!(build(&t, &[])["via"], "replay");
    let again = build(&t, &[]);
    assert_eq!(again["via"], serde_json::Value::Null);
    assert!(again["components"][0]["hit"].as_bool().unwrap());
    assert_eq!(t.make_runs().len(), 3);
}

/// What changes, the edit, and the build's extra arguments.
type Case<'a> = (&'a str, &'a dyn Fn(&Tree), &'a [&'a str]);

#[test]
fn generator_tags_makefile_hack_go_mod_and_flags_go_through_make() {
    changes_make_reads_go_through_make(Tree::fixture(), &[("the flags", &|_| {}, &["--optimized"])]);
}

#[test]
fn modern_generator_tags_makefile_hack_go_mod_and_go_work_go_through_make() {
    // Its make keeps DWARF only with DBG=1 (no --optimized): go.work stands in for the flags.
    let go_work: Case = ("go.work", &|t| t.append("go.work", "\n// edit\n"), &[]);
    changes_make_reads_go_through_make(Tree::fixture_with(Toolchain::newest()), &[go_work]);
}

fn changes_make_reads_go_through_make(t: Tree, more: &[Case]) {
    build(&t, &[]);
    let file = t.healthz();
    let tagged = move |t: &Tree| t.append(file, "\n// +k8s:deepcopy-gen=package\n");
    let cases: &[Case] = &[
        ("a generator-tagged file", &tagged, &[]),
        ("the Makefile", &|t| t.append("Makefile", "\n# edit\n"), &[]),
        ("hack/", &|t| t.append("hack/lib/golang.sh", "\n# edit\n"), &[]),
        ("go.mod", &|t| t.append("go.mod", "\n// edit\n"), &[]),
    ];
    for (i, (what, edit, args)) in cases.iter().chain(more).enumerate() {
        edit(&t);
        let v = build(&t, args);
        assert_eq!(v["via"], "make", "{what}: {v}");
        assert_eq!(t.make_runs().len(), i + 2, "{what}: make runs");
    }
}
