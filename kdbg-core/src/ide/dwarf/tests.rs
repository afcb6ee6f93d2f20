//! Tests of DWARF reading: compile units in, packages and prefixes out, and real fixture builds.

use camino::Utf8Path;

use super::*;
use crate::ide::fixture;

fn unit(name: &str, producer: &str, files: &[&str]) -> Unit {
    Unit { name: name.into(), producer: producer.into(), files: files.iter().map(|f| f.to_string()).collect() }
}

const DEBUG: &str = "Go cmd/compile go1.19.8; -N -l regabi";

#[test]
fn trimpath_module_build_records_module_paths_and_versions() {
    let units = vec![
        unit("runtime", DEBUG, &["runtime/proc.go"]),
        unit(
            "k8s.io/kubernetes/pkg/healthz",
            DEBUG,
            &["k8s.io/kubernetes/pkg/healthz/healthz.go", "net/http/server.go"],
        ),
        unit("k8s.io/klog/v2", DEBUG, &["k8s.io/klog/v2@v2.4.0/klog.go"]),
        unit("main", DEBUG, &["k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go"]),
    ];
    let r = from_units(Utf8Path::new("/b"), units).unwrap();
    assert_eq!(r.root_prefix, "k8s.io/kubernetes");
    assert_eq!(r.optimizations_disabled, Some(true));
    assert_eq!(r.go_version.as_deref(), Some("go1.19.8"));
    let got: Vec<_> = r.packages.iter().map(|p| (&*p.import_path, &*p.tree_dir, &*p.recorded_dir)).collect();
    assert_eq!(
        got,
        [
            ("k8s.io/klog/v2", "vendor/k8s.io/klog/v2", "k8s.io/klog/v2@v2.4.0"),
            ("k8s.io/kubernetes/pkg/healthz", "pkg/healthz", "k8s.io/kubernetes/pkg/healthz"),
            ("main", "cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
        ]
    );
    assert_eq!(r.packages[1].files, ["healthz.go"], "inlined files of other packages are not the package's own");
    assert_eq!(r.recorded_file("pkg/healthz/healthz.go"), "k8s.io/kubernetes/pkg/healthz/healthz.go");
}

#[test]
fn gopath_build_records_the_link_and_vendor_under_the_main_module() {
    let p = "/src/k/_output/local/go/src/k8s.io/kubernetes";
    let units = vec![
        unit("k8s.io/kubernetes/pkg/healthz", "Go cmd/compile go1.15.5; regabi", &[&format!("{p}/pkg/healthz/h.go")]),
        unit(
            "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/server",
            "",
            &[&format!("{p}/vendor/k8s.io/apiserver/pkg/server/s.go")],
        ),
        unit("main", "", &["_output/local/go/src/k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go"]),
    ];
    let r = from_units(Utf8Path::new("/b"), units).unwrap();
    assert_eq!(r.root_prefix, p);
    assert_eq!(r.optimizations_disabled, Some(false));
    let got: Vec<_> = r.packages.iter().map(|p| (&*p.tree_dir, &*p.recorded_dir)).collect();
    assert_eq!(
        got,
        [
            ("pkg/healthz", &*format!("{p}/pkg/healthz")),
            ("vendor/k8s.io/apiserver/pkg/server", &*format!("{p}/vendor/k8s.io/apiserver/pkg/server")),
            ("cmd/kube-apiserver", "_output/local/go/src/k8s.io/kubernetes/cmd/kube-apiserver"),
        ]
    );
}

#[test]
fn a_binary_without_the_main_module_is_refused() {
    let err = from_units(Utf8Path::new("/bin/x"), vec![unit("main", DEBUG, &["/x/main.go"])]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/bin/x has no package of k8s.io/kubernetes in its DWARF; is it a kubernetes component?"
    );
}

#[test]
fn fixture_debug_build_records_trimmed_module_paths() {
    let built = fixture::make(&["DBG=1"]);
    let r = recorded_sources(&built.binary).unwrap();
    assert_eq!(r.root_prefix, "k8s.io/kubernetes");
    assert_eq!(r.optimizations_disabled, Some(true));
    let healthz = r.packages.iter().find(|p| p.import_path == "k8s.io/kubernetes/pkg/healthz").unwrap();
    assert_eq!(
        (&*healthz.recorded_dir, &*healthz.files),
        ("k8s.io/kubernetes/pkg/healthz", &["healthz.go".to_string()][..])
    );
    let klog = r.packages.iter().find(|p| p.import_path == "k8s.io/klog/v2").unwrap();
    assert_eq!((&*klog.tree_dir, &*klog.recorded_dir), ("vendor/k8s.io/klog/v2", "k8s.io/klog/v2@v2.4.0"));
}

#[test]
fn fixture_gopath_build_like_make_in_v1_20_records_the_gopath_link() {
    // hack/lib/golang.sh of v1.20 with GOGCFLAGS='all=-N -l': -gcflags "all=-N -l -trimpath=$KUBE_ROOT".
    let built = fixture::gopath_build("all=-N -l -trimpath={root}");
    let r = recorded_sources(&built.binary).unwrap();
    assert_eq!(r.root_prefix, "_output/local/go/src/k8s.io/kubernetes");
    assert_eq!(r.optimizations_disabled, Some(true));

    // With GOLDFLAGS='' only: -gcflags " -trimpath=$KUBE_ROOT" reaches the main package alone.
    let built = fixture::gopath_build("-trimpath={root}");
    let r = recorded_sources(&built.binary).unwrap();
    assert_eq!(r.root_prefix, format!("{}/_output/local/go/src/k8s.io/kubernetes", built.root));
    assert_eq!(r.optimizations_disabled, Some(false));
    let main = r.packages.iter().find(|p| p.import_path == "main").unwrap();
    assert_eq!(main.recorded_dir, "_output/local/go/src/k8s.io/kubernetes/cmd/kube-apiserver");
    let klog = r.packages.iter().find(|p| p.import_path.ends_with("klog/v2")).unwrap();
    assert_eq!(klog.tree_dir, "vendor/k8s.io/klog/v2");
}

#[test]
fn a_stripped_release_build_has_no_dwarf() {
    let built = fixture::make(&[]);
    let err = recorded_sources(&built.binary).unwrap_err();
    assert!(matches!(err, DwarfError::NoDwarf { .. }), "{err}");
    assert!(err.to_string().ends_with(
        "has no DWARF debug information (release builds strip it with -ldflags '-s -w'); rebuild it with `kdbg build`"
    ));
}

#[test]
fn a_missing_binary_is_a_read_error_naming_it() {
    let err = recorded_sources(Utf8Path::new("/nonexistent/kube-apiserver")).unwrap_err();
    assert!(err.to_string().starts_with("failed to read /nonexistent/kube-apiserver: "), "{err}");
}
