//! Tests of the path rules, checked by a port of Delve's own `SubstitutePath`.

use expect_test::{expect, Expect};

use super::*;
use crate::ide::{dwarf, fixture};

const WS: &str = "/home/dev/kubernetes";

/// Delve v1.20.2 `pkg/locspec.SubstitutePath` (unix paths), ported line by line.
fn delve_substitute(path: &str, rules: &[(String, String)]) -> String {
    for (from, to) in rules {
        if path == from {
            return to.clone();
        }
        let from = if !from.is_empty() && !from.ends_with('/') { format!("{from}/") } else { from.clone() };
        let to = if !to.is_empty() && !to.ends_with('/') { format!("{to}/") } else { to.clone() };
        if from.is_empty() && !path.starts_with('/') {
            return format!("{to}{path}");
        }
        if !from.is_empty() && path.starts_with(&from) {
            return path.replacen(&from, &to, 1);
        }
    }
    path.to_string()
}

/// Every file of every package maps both ways as VSCode + dlv-dap would map it.
fn assert_round_trips(m: &Mapping, packages: &[RecordedPackage], resolve: impl Fn(&str) -> Option<String>) {
    assert_eq!(m.unmapped, Vec::<String>::new());
    let ws = |t: &str| if t.is_empty() { WS.to_string() } else { format!("{WS}/{t}") };
    let to_server: Vec<_> = m.rules.iter().map(|r| (ws(&r.tree), r.recorded.clone())).collect();
    let to_client: Vec<_> = m.rules.iter().map(|r| (r.recorded.clone(), ws(&r.tree))).collect();
    for p in packages {
        let mut dirs = vec![p.tree_dir.clone()];
        dirs.extend(resolve(&p.tree_dir).filter(|r| *r != p.tree_dir));
        for f in &p.files {
            let server = format!("{}/{f}", p.recorded_dir);
            for d in &dirs {
                assert_eq!(delve_substitute(&format!("{WS}/{d}/{f}"), &to_server), server, "editor -> dlv for {d}/{f}");
            }
            let back = delve_substitute(&server, &to_client);
            assert!(dirs.iter().any(|d| back == format!("{WS}/{d}/{f}")), "dlv -> editor for {server}: {back}");
        }
    }
}

fn pkg(import_path: &str, tree_dir: &str, recorded_dir: &str, files: &[&str]) -> RecordedPackage {
    RecordedPackage {
        import_path: import_path.into(),
        tree_dir: tree_dir.into(),
        recorded_dir: recorded_dir.into(),
        files: files.iter().map(|f| f.to_string()).collect(),
    }
}

fn staging(dir: &str) -> Option<String> {
    dir.strip_prefix("vendor/k8s.io/")
        .filter(|r| r.starts_with("api/") || *r == "api" || r.starts_with("apiserver"))
        .map(|r| format!("staging/src/k8s.io/{r}"))
}

fn check(root_prefix: &str, packages: &[RecordedPackage], want: Expect) {
    let m = derive(root_prefix, packages, staging);
    assert_round_trips(&m, packages, staging);
    let text: String = m.rules.iter().map(|r| format!("{:?} -> {:?}\n", workspace(&r.tree), r.recorded)).collect();
    want.assert_eq(&text);
}

fn workspace(tree: &str) -> String {
    crate::ide::vscode::workspace_path(tree)
}

#[test]
fn trimpath_module_build_with_vendor_and_staging() {
    let packages = [
        pkg("k8s.io/api/core/v1", "vendor/k8s.io/api/core/v1", "k8s.io/api@v0.0.0/core/v1", &["types.go"]),
        pkg("k8s.io/klog/v2", "vendor/k8s.io/klog/v2", "k8s.io/klog/v2@v2.4.0", &["klog.go"]),
        pkg(
            "k8s.io/klog/v2/internal/buffer",
            "vendor/k8s.io/klog/v2/internal/buffer",
            "k8s.io/klog/v2@v2.4.0/internal/buffer",
            &["buffer.go"],
        ),
        pkg("github.com/spf13/pflag", "vendor/github.com/spf13/pflag", "github.com/spf13/pflag@v1.0.5", &["flag.go"]),
        pkg("k8s.io/kubernetes/pkg/healthz", "pkg/healthz", "k8s.io/kubernetes/pkg/healthz", &["healthz.go"]),
        pkg("main", "cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", &["apiserver.go"]),
    ];
    check(
        "k8s.io/kubernetes",
        &packages,
        expect![[r#"
            "${workspaceFolder}/vendor/github.com/spf13/pflag" -> "github.com/spf13/pflag@v1.0.5"
            "${workspaceFolder}/staging/src/k8s.io/api" -> "k8s.io/api@v0.0.0"
            "${workspaceFolder}/vendor/k8s.io/klog/v2" -> "k8s.io/klog/v2@v2.4.0"
            "${workspaceFolder}/vendor/k8s.io/api" -> "k8s.io/api@v0.0.0"
            "${workspaceFolder}" -> "k8s.io/kubernetes"
        "#]],
    );
}

#[test]
fn gopath_build_of_v1_20_with_main_recorded_apart_and_staging_through_vendor() {
    let p = "/src/k/_output/local/go/src/k8s.io/kubernetes";
    let packages = [
        pkg(
            "main",
            "cmd/kube-apiserver",
            "_output/local/go/src/k8s.io/kubernetes/cmd/kube-apiserver",
            &["apiserver.go"],
        ),
        pkg(
            "k8s.io/kubernetes/cmd/kube-apiserver/app",
            "cmd/kube-apiserver/app",
            &format!("{p}/cmd/kube-apiserver/app"),
            &["server.go"],
        ),
        pkg("k8s.io/kubernetes/pkg/healthz", "pkg/healthz", &format!("{p}/pkg/healthz"), &["healthz.go"]),
        pkg(
            "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/server",
            "vendor/k8s.io/apiserver/pkg/server",
            &format!("{p}/vendor/k8s.io/apiserver/pkg/server"),
            &["config.go"],
        ),
        pkg(
            "k8s.io/kubernetes/vendor/k8s.io/klog/v2",
            "vendor/k8s.io/klog/v2",
            &format!("{p}/vendor/k8s.io/klog/v2"),
            &["klog.go"],
        ),
        pkg(
            "k8s.io/kubernetes/vendor/github.com/spf13/pflag",
            "vendor/github.com/spf13/pflag",
            &format!("{p}/vendor/github.com/spf13/pflag"),
            &["flag.go"],
        ),
    ];
    check(
        p,
        &packages,
        expect![[r#"
            "${workspaceFolder}/cmd/kube-apiserver/apiserver.go" -> "_output/local/go/src/k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go"
            "${workspaceFolder}/staging/src/k8s.io/apiserver" -> "/src/k/_output/local/go/src/k8s.io/kubernetes/vendor/k8s.io/apiserver"
            "${workspaceFolder}" -> "/src/k/_output/local/go/src/k8s.io/kubernetes"
        "#]],
    );
}

#[test]
fn paths_recorded_relative_to_the_tree_map_by_an_empty_prefix() {
    let packages = [
        pkg("k8s.io/kubernetes/pkg/healthz", "pkg/healthz", "pkg/healthz", &["healthz.go"]),
        pkg("k8s.io/kubernetes/vendor/k8s.io/klog/v2", "vendor/k8s.io/klog/v2", "vendor/k8s.io/klog/v2", &["klog.go"]),
    ];
    check(
        "",
        &packages,
        expect![[r#"
            "${workspaceFolder}" -> ""
        "#]],
    );
}

#[test]
fn fixture_gopath_build_maps_every_recorded_file_of_the_tree() {
    let built = fixture::gopath_build("-trimpath={root}");
    let recorded = dwarf::recorded_sources(&built.binary).unwrap();
    let m = mapping(&recorded, &built.root);
    let resolve = |_: &str| None;
    assert_round_trips(&m, &recorded.packages, resolve);
    assert_eq!(m.rules.len(), 2, "{:#?}", m.rules);
    assert_eq!(m.rules[0].tree, "cmd/kube-apiserver/apiserver.go");
}
