//! Choosing the Go: versions, installed releases, the GOROOT of the selected Go.

use super::*;

#[test]
fn versions_match_exactly_or_by_minor() {
    assert_eq!(matches("go1.27.3", "1.27.3"), Match::Exact);
    assert_eq!(matches("go1.27.2", "1.27.3"), Match::Minor);
    assert_eq!(matches("go1.27.2", "1.27"), Match::Exact);
    assert_eq!(matches("go1.24.11", "1.27.3"), Match::No);
    assert_eq!(matches("go1.19.8", "1.19.8"), Match::Exact);
}

#[test]
fn installed_releases_are_found_in_sdk_and_toolchain_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    for goroot in ["sdk/go1.27.3", "golang.org/toolchain@v0.0.1-go1.24.11.linux-amd64", "sdk/other"] {
        std::fs::create_dir_all(root.join(goroot).join("bin")).unwrap();
        std::fs::write(root.join(goroot).join("bin/go"), "").unwrap();
    }
    let found = installed(&[root.join("sdk"), root.join("golang.org")]);
    let rel: Vec<&str> = found.iter().map(|p| p.strip_prefix(root).unwrap().as_str()).collect();
    assert_eq!(rel, ["sdk/go1.27.3/bin/go", "golang.org/toolchain@v0.0.1-go1.24.11.linux-amd64/bin/go"]);
}

#[test]
fn the_goroot_is_the_selected_gos_not_the_one_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    for g in ["given", "onpath"] {
        std::fs::create_dir_all(root.join(g).join("bin")).unwrap();
        std::fs::create_dir_all(root.join(g).join("src/net/http")).unwrap();
        std::fs::write(root.join(g).join("bin/go"), "").unwrap();
    }
    let real = |p: Utf8PathBuf| p.canonicalize_utf8().unwrap();
    // No go on PATH, --go given (its bin directory, the binary or the GOROOT).
    let nothing = GoSearch { path: "/nonexistent".into(), ..GoSearch::default() };
    for given in ["given/bin", "given/bin/go", "given"] {
        let search = GoSearch { explicit: Some(root.join(given)), ..nothing.clone() };
        assert_eq!(goroot_in(None, &search).unwrap(), real(root.join("given")), "{given}");
    }
    // Another Go on PATH does not win over --go.
    let search =
        GoSearch { explicit: Some(root.join("given")), path: root.join("onpath/bin").to_string(), ..nothing.clone() };
    assert_eq!(goroot_in(Some(root), &search).unwrap(), real(root.join("given")));
    let search = GoSearch { path: root.join("onpath/bin").to_string(), ..nothing.clone() };
    assert_eq!(goroot_in(Some(root), &search).unwrap(), real(root.join("onpath")));
    // None at all: said once, with what to pass.
    let e = goroot_in(None, &nothing).unwrap_err();
    assert!(e.contains("no `go` on PATH") && e.contains("fix: pass --go"), "{e}");
}

#[test]
fn a_tree_asking_for_a_go_nobody_has_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    std::fs::write(root.join(".go-version"), "1.99.1\n").unwrap();
    let search = GoSearch { path: "/nonexistent".into(), ..GoSearch::default() };
    let e = select(root, &search).unwrap_err().to_string();
    assert!(e.contains(".go-version asks for go1.99.1, but there is no go on PATH"), "{e}");
    assert!(e.contains("fix: install Go 1.99.1 and pass --go"), "{e}");
}
