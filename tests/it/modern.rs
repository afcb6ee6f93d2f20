//! The v1.30+-era fixture (go.work, staging modules, `.go-version`) with the matrix's newest pair,
//! Go 1.27 and Delve 1.27: the Go is the one `.go-version` names or a clear error before any
//! make; keys hold across copies and see staging edits; a Delve that cannot read the binary is
//! refused before the node changes; VSCode's attach stops in the staging healthz handler.

use kdbg_tests::toolchain::Toolchain;

use crate::session::Lab;
use crate::support::{Tree, GO_BIN};

fn hit(components: &[serde_json::Value]) -> bool {
    components[0]["hit"].as_bool().unwrap()
}

#[test]
fn a_go_on_path_other_than_go_version_fails_before_make_and_go_flag_builds() {
    let newest = Toolchain::newest();
    let t = Tree::fixture_with(newest.clone());
    let want = newest.go_version();
    // Debian's Go 1.19 first on PATH, and a HOME with no Go releases installed.
    let path = format!("{}:{GO_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", t.bin.display());
    let home = t.scratch().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = t.kdbg(["build", "apiserver"]).env("PATH", &path).env("HOME", &home).failure(1);
    for part in [
        format!(".go-version asks for go{want}"),
        "is go1.19.8".into(),
        format!("fix: install Go {want} and pass --go"),
    ] {
        assert!(out.stderr.contains(&part), "{part:?} missing in:\n{}", out.stderr);
    }
    assert!(t.make_runs().is_empty(), "no make ran");
    assert!(!t.path("_output").exists(), "nothing changed in the tree");

    let go = newest.go_bin.join("go");
    let args = ["build", "apiserver", "--json", "--go", go.to_str().unwrap()];
    let out = t.kdbg(args).env("PATH", &path).env("HOME", &home).success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let binary = v["components"][0]["binary"].as_str().unwrap();
    let needs = kdbg_core::deploy::dlv::needs_of(camino::Utf8Path::new(binary)).unwrap();
    assert_eq!((needs.go_version.as_str(), needs.dwarf), (format!("go{want}").as_str(), 5));
    assert_eq!(t.make_runs().len(), 1);
    assert!(t.make_runs()[0].contains("DBG=1"), "{:?}", t.make_runs());
    assert!(!home.join("go/pkg/mod/golang.org").exists(), "no Go toolchain was downloaded");
}

#[test]
fn modern_keys_hold_across_copies_and_a_staging_edit_misses() {
    let a = Tree::fixture_with(Toolchain::newest());
    assert!(!hit(&a.build(&["apiserver"])));
    assert!(hit(&a.build(&["apiserver"])), "a no-op rebuild is a hit");
    assert_eq!(a.make_runs().len(), 1);
    let key = |t: &Tree| t.kdbg(["cache-key", "apiserver"]).success().stdout;
    let b = Tree::fixture_with(Toolchain::newest());
    assert_ne!(a.root, b.root);
    assert_eq!(key(&a), key(&b), "the same key for a fresh copy at another path");
    assert!(key(&a).starts_with("kdbg-v1-linux-amd64-go1.27.3-"), "{}", key(&a));

    a.append(a.healthz(), "\n// edit\n");
    let explain = a.kdbg(["cache-key", "apiserver", "--explain"]).success();
    assert!(explain.stderr.contains(&format!("modified: {}", a.healthz())), "{}", explain.stderr);
    assert!(!hit(&a.build(&["apiserver"])), "an edit under staging/ misses");
    assert_eq!(a.make_runs().len(), 1, "a body-only edit replays make's go build (workspace mode)");
}

#[test]
fn delve_1_20_is_refused_for_a_go_1_27_build_before_the_node_changes() {
    let lab = Lab::up_with("oldlve", Tree::fixture_with(Toolchain::newest()));
    let before = lab.snapshot();
    let out = lab.debug(&[]).env("KDBG_DLV", "/usr/bin/dlv").failure(1);
    for part in ["built with go1.27.3 (DWARF 5)", "/usr/bin/dlv (Delve 1.20.2", "Delve 1.27–1.30 built with Go ≥ 1.25"]
    {
        assert!(out.stderr.contains(part), "{part:?} missing in:\n{}", out.stderr);
    }
    assert_eq!(lab.snapshot(), before, "the manifests and the journal are untouched");
    let bin = lab.node.host_path("/var/lib/kdbg/bin");
    let copied: Vec<_> =
        std::fs::read_dir(&bin).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(copied.is_empty(), "nothing was copied to the node: {copied:?}");
    assert_eq!(lab.args(), lab.manifest_args(), "the original still serves");
}

#[test]
fn vscode_attach_stops_in_the_staging_healthz_handler_with_go_1_27_and_delve_1_27() {
    let lab = Lab::up_with("modern", Tree::fixture_with(Toolchain::newest()));
    let port = lab.port.to_string();
    let out = lab.kdbg(&["debug", "apiserver", "--port", &port]).success();
    assert!(out.stderr.contains("Delve 1.27.1"), "{}", out.stderr);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::dap_node::attach_and_break(&lab)));
    let restored = lab.kdbg(&["restore"]).output();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(restored.stdout.contains("the original runs again"), "{}\n{}", restored.stdout, restored.stderr);
    lab.assert_clean();
}
