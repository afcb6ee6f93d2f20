//! The terminal table, a failed trigger's error, and the source-mapping warnings.

use camino::{Utf8Path, Utf8PathBuf};
use kdbg_core::trace::{Capture, TimedHit, Timeline, TriggerOutcome};

use super::{path_map, table, trigger_failed};
use crate::config::SrcArgs;

fn hit(seq: usize, file: &str) -> TimedHit {
    TimedHit {
        seq,
        waypoint: seq,
        waypoint_name: format!("waypoint {seq}"),
        function: "net/http.(*ServeMux).ServeHTTP".into(),
        goroutine: 1234,
        ms: 12,
        recorded_file: file.into(),
        file: None,
        line: 2868,
        captures: vec![Capture { expr: "r.URL.Path".into(), value: "\"/healthz\"".into() }],
    }
}

#[test]
fn the_table_fits_the_longest_path_so_captured_lines_up() {
    let long = "/home/me/go/src/k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/endpoints/filters/authentication.go";
    let rows = table(&[hit(1, "net/http/server.go"), hit(2, long)]);
    assert_eq!(rows.len(), 3);
    let col: Vec<usize> = rows.iter().map(|r| r.find("CAPTURED").or_else(|| r.find("r.URL.Path")).unwrap()).collect();
    assert!(col.iter().all(|c| *c == col[0]), "{rows:#?}");
    assert!(rows[2].contains(&format!("{long}:2868  r.URL.Path")), "{rows:#?}");
    // Waypoints are numbered from 1, as in the report and --json.
    assert!(rows[1].contains(" 1. waypoint 1 "), "{rows:#?}");
}

#[test]
fn a_failed_trigger_fails_the_trace_with_its_status_and_error_text() {
    let mut t = timeline();
    t.trigger =
        Some(TriggerOutcome { command: "kubectl get x".into(), exit_code: Some(1), output: "a\nerror: no x\n".into() });
    let e = trigger_failed(&t).unwrap_err().to_string();
    assert!(e.starts_with("the trigger `kubectl get x` failed (exit 1):\n    a\n    error: no x\n  fix:"), "{e}");
    t.trigger.as_mut().unwrap().exit_code = Some(0);
    assert!(trigger_failed(&t).is_ok());
}

fn timeline() -> Timeline {
    Timeline {
        component: "kube-apiserver".into(),
        node: "n".into(),
        tour: kdbg_core::trace::tour::find("kube-apiserver", "healthz").unwrap(),
        resolved: vec![],
        unresolved: vec![],
        trigger: None,
        hits: vec![],
        left_set: vec![],
    }
}

fn src(root: &Utf8Path, go: Utf8PathBuf) -> SrcArgs {
    SrcArgs {
        src: Some(root.to_owned()),
        kube_version: None,
        go: Some(go),
        via_make: false,
        at: None,
        worktrees: None,
        platform: None,
        static_cgo: false,
    }
}

#[test]
fn a_git_less_tree_warns_with_the_real_reason_and_the_stdlib_comes_from_go() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let tree = root.join("kubernetes");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("go.mod"), "module k8s.io/kubernetes\n").unwrap();
    std::fs::write(tree.join("Makefile"), "").unwrap();
    let goroot = root.join("go");
    std::fs::create_dir_all(goroot.join("bin")).unwrap();
    std::fs::create_dir_all(goroot.join("src")).unwrap();
    std::fs::write(goroot.join("bin/go"), "").unwrap();
    let comp = kdbg_core::component::Component::lookup("apiserver").unwrap();
    let (map, warnings) = path_map(&src(&tree, goroot.join("bin/go")), comp);
    assert_eq!(map.goroot, Some(goroot.canonicalize_utf8().unwrap()), "--go's GOROOT: {warnings:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("it has no git history") && warnings[0].contains("--kube-version"), "{warnings:?}");
    assert!(!warnings[0].contains("no kubernetes tree found"), "{warnings:?}");
}
