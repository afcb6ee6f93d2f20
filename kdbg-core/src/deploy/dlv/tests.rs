//! Choosing Delve: which release reads which Go and DWARF, unix sockets, the ELF, install hints.

use super::*;

fn dlv(version: &str, go: &str) -> Dlv {
    Dlv {
        path: "/x/dlv".into(),
        version: version.into(),
        go_version: Some(go.into()),
        arch: "amd64".into(),
        dynamic: false,
    }
}

#[test]
fn go_minor_versions() {
    assert_eq!(go_minor("go1.19.8"), Some(19));
    assert_eq!(go_minor("go1.25rc1"), Some(25));
    assert_eq!(go_minor("devel go1.26-abc"), None);
    assert_eq!(delve_minor("1.27.1"), Some(27));
}

#[test]
fn delve_must_know_the_go_release_and_read_its_dwarf() {
    let go127 = Needs::of_go("go1.27.3");
    assert_eq!((go127.dwarf, go127.requirement().as_str()), (5, "Delve 1.27–1.30 built with Go ≥ 1.25"));
    assert!(go127.unmet_by(&dlv("1.27.1", "go1.26.7")).is_none());
    let e = go127.unmet_by(&dlv("1.20.2", "go1.19.8")).unwrap();
    assert_eq!(e, "Delve 1.20.2 reads binaries of Go up to 1.20");
    let e = go127.unmet_by(&dlv("1.27.0", "go1.24.4")).unwrap();
    assert!(e.contains("built with go1.24.4, which cannot read DWARF 5"), "{e}");
    let go124 = Needs::of_go("go1.24.11");
    assert_eq!((go124.dwarf, go124.requirement().as_str()), (4, "Delve 1.24–1.27"));
    assert!(go124.unmet_by(&dlv("1.24.0", "go1.24.4")).is_none());
    assert!(Needs::of_go("go1.19.8").unmet_by(&dlv("1.20.2", "go1.19.8")).is_none());
    // Too new: Delve 1.24 refuses Go 1.19 binaries at launch, so it is refused here already.
    let e = Needs::of_go("go1.19.8").unmet_by(&dlv("1.24.0", "go1.24.4")).unwrap();
    assert_eq!(
        e,
        "Delve 1.24.0 refuses binaries of Go older than 1.21 (it supports the Go releases up to 3 before its own)"
    );
    assert!(Needs::of_go("go1.21.0").unmet_by(&dlv("1.24.0", "go1.24.4")).is_none());
}

#[test]
fn unix_sockets_from_delve_1_22_1() {
    assert_eq!(
        dlv("1.20.2", "go1.19.8").unix_socket_gap().as_deref(),
        Some("Delve 1.20.2 has no unix sockets; they need Delve ≥ 1.22.1")
    );
    assert!(dlv("1.22.0", "go1.22.0").unix_socket_gap().is_some());
    for v in ["1.22.1", "1.24.0", "1.27.1", "2.0.0"] {
        assert_eq!(dlv(v, "go1.24.4").unix_socket_gap(), None, "{v}");
    }
    assert!(dlv("unknown", "go1.24.4").unix_socket_gap().is_some());
}

#[test]
fn build_info_and_dwarf_come_from_the_elf() {
    // This test binary is Rust: no Go build info, which is an error naming the file.
    let me = Utf8PathBuf::from_path_buf(std::env::current_exe().unwrap()).unwrap();
    let e = needs_of(&me).unwrap_err().to_string();
    assert!(e.contains("no Go build info"), "{e}");
}

#[test]
fn missing_and_wrong_dlvs_say_how_to_install() {
    let e = find(Some(Utf8Path::new("/nonexistent/dlv"))).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/dlv does not exist")
            && e.contains("go install github.com/go-delve/delve/cmd/dlv@latest"),
        "{e}"
    );
    // `sh` is an executable, but not a dlv.
    let sh = find(Some(Utf8Path::new("/bin/sh"))).unwrap();
    let e = inspect(&sh, None).unwrap_err().to_string();
    assert!(e.starts_with("`/bin/sh version` failed") || e.contains("unexpected output"), "{e}");
}
