//! Replay of make's captured `go` builds: body-only edits skip make byte-identically; anything generators or make read runs make.

use crate::support::Tree;

const FILE: &str = "pkg/healthz/healthz.go";

fn build(t: &Tree, args: &[&str]) -> serde_json::Value {
    let out = t.kdbg([&["build", "apiserver", "--json"], args].concat()).success();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn a_body_only_edit_replays_without_make_and_matches_make_byte_for_byte() {
    let (replayed, made) = (Tree::fixture(), Tree::fixture());
    for t in [&replayed, &made] {
        assert_eq!(build(t, &[])["via"], "make");
        t.append(FILE, "\nfunc kdbgReplayEdit() int { return 42 }\n");
    }
    let r = build(&replayed, &[]);
    assert_eq!(r["via"], "replay", "{r}");
    assert_eq!(replayed.make_runs().len(), 1, "a replay runs no make");
    let m = build(&made, &["--via-make"]);
    assert_eq!(m["via"], "make", "{m}");
    assert_eq!(made.make_runs().len(), 2);
    assert_eq!(r["components"][0]["sha256"], m["components"][0]["sha256"], "replay and make must give the same bytes");
    let on_disk = crate::support::sha256_file(&replayed.path("_output/local/bin/linux/amd64/kube-apiserver"));
    assert_eq!(r["components"][0]["sha256"], on_disk.as_str());
    // Replays chain, and a no-op after one is a hit.
    replayed.append(FILE, "\nfunc kdbgReplayEdit2() int { return 43 }\n");
    assert_eq!(build(&replayed, &[])["via"], "replay");
    let again = build(&replayed, &[]);
    assert_eq!(again["via"], serde_json::Value::Null);
    assert!(again["components"][0]["hit"].as_bool().unwrap());
}

/// What changes, the edit, and the build's extra arguments.
type Case<'a> = (&'a str, &'a dyn Fn(&Tree), &'a [&'a str]);

#[test]
fn generator_tags_makefile_hack_go_mod_and_flags_go_through_make() {
    let t = Tree::fixture();
    build(&t, &[]);
    let cases: &[Case] = &[
        ("a generator-tagged file", &|t| t.append(FILE, "\n// +k8s:deepcopy-gen=package\n"), &[]),
        ("the Makefile", &|t| t.append("Makefile", "\n# edit\n"), &[]),
        ("hack/", &|t| t.append("hack/lib/golang.sh", "\n# edit\n"), &[]),
        ("go.mod", &|t| t.append("go.mod", "\n// edit\n"), &[]),
        ("the flags", &|_| {}, &["--optimized"]),
    ];
    for (i, (what, edit, args)) in cases.iter().enumerate() {
        edit(&t);
        let v = build(&t, args);
        assert_eq!(v["via"], "make", "{what}: {v}");
        assert_eq!(t.make_runs().len(), i + 2, "{what}: make runs");
    }
}
