//! `kdbg build` and `kdbg cache-key` on the fixture tree with real Go: hits, misses, reproducibility, bad input.

mod capture;
mod errors;
mod links;
mod replay;
mod rewritten;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{sha256_file, Tree};

fn hit(components: &[serde_json::Value], name: &str) -> bool {
    let c = components.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name} in {components:?}"));
    c["hit"].as_bool().unwrap()
}

#[test]
fn second_build_is_a_hit_and_runs_no_make() {
    let t = Tree::fixture();
    let first = t.build(&["apiserver"]);
    assert!(!hit(&first, "kube-apiserver"));
    assert_eq!(t.make_runs().len(), 1);
    assert!(t.make_runs()[0].contains("WHAT=cmd/kube-apiserver"), "{:?}", t.make_runs());
    let second = t.build(&["apiserver"]);
    assert!(hit(&second, "kube-apiserver"));
    assert_eq!(t.make_runs().len(), 1, "a no-op build must not run make");
    assert_eq!(first[0]["sha256"], second[0]["sha256"]);
    assert_eq!(first[0]["key"], second[0]["key"]);
}

#[test]
fn only_closure_changes_miss() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    let mut runs = 1;
    let mut expect = |what: &str, edit: &dyn Fn(&Tree), args: &[&str], want_hit: bool| {
        edit(&t);
        let got = hit(&t.build(&[&["apiserver", "--via-make"], args].concat()), "kube-apiserver");
        assert_eq!(got, want_hit, "{what}: expected hit={want_hit}");
        runs += usize::from(!want_hit);
        assert_eq!(t.make_runs().len(), runs, "{what}: make runs");
    };
    expect(
        "scheduler-private package",
        &|t| t.append("pkg/scheduler/framework/framework.go", "\n// edit\n"),
        &[],
        true,
    );
    expect("a _test.go file", &|t| t.append("pkg/healthz/healthz_test.go", "\n// edit\n"), &[], true);
    expect("a windows-only file", &|t| t.append("pkg/util/flags/flags_windows.go", "\n// edit\n"), &[], true);
    expect("an editor swap file", &|t| t.write("pkg/healthz/.healthz.go.swp", "x"), &[], true);
    expect("a closure file", &|t| t.append("pkg/healthz/healthz.go", "\n// edit\n"), &[], false);
    expect("a new file in a closure package", &|t| t.write("pkg/healthz/extra.go", "package healthz\n"), &[], false);
    expect("the embedded file", &|t| t.append("cmd/kube-apiserver/app/banner.txt", "!\n"), &[], false);
    expect("the flag set (--optimized)", &|_| {}, &["--optimized"], false);
    expect("the flag set back", &|_| {}, &[], false);
    expect("nothing", &|_| {}, &[], true);
}

#[test]
fn same_source_gives_same_bytes_and_make_clean_rebuilds() {
    let t = Tree::fixture();
    let first = t.build(&["apiserver", "scheduler"]);
    assert_eq!(t.make_runs().len(), 1, "one make for both components");
    assert!(t.make_runs()[0].contains("WHAT=cmd/kube-apiserver cmd/kube-scheduler"), "{:?}", t.make_runs());
    std::process::Command::new("make").arg("clean").current_dir(&t.root).output().unwrap();
    assert!(!t.path("_output").exists());
    let second = t.build(&["apiserver", "scheduler"]);
    assert!(!hit(&second, "kube-apiserver") && !hit(&second, "kube-scheduler"), "output gone: must rebuild");
    assert_eq!(t.make_runs().len(), 2);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["sha256"], b["sha256"], "same inputs, same bytes: {}", a["name"]);
        assert_eq!(a["key"], b["key"]);
    }
    let bin = second[0]["binary"].as_str().unwrap();
    assert_eq!(sha256_file(bin.as_ref()), second[0]["sha256"].as_str().unwrap());
}

#[test]
fn corrupt_state_warns_and_rebuilds() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    t.write("_output/kdbg/state.json", "{\"schema\": 1, \"index\": [tru");
    let out = t.kdbg(["build", "apiserver"]).success();
    assert!(out.stderr.contains("warning: ignoring corrupt build state"), "{}", out.stderr);
    assert_eq!(t.make_runs().len(), 2, "no trusted record: rebuild");
    assert!(hit(&t.build(&["apiserver"]), "kube-apiserver"));
}

#[test]
fn cache_key_is_the_same_for_a_fresh_copy_and_after_a_build() {
    let a = Tree::fixture();
    let key = |t: &Tree| t.kdbg(["cache-key", "apiserver", "scheduler"]).success().stdout.trim().to_string();
    let fresh = key(&a);
    assert!(fresh.starts_with("kdbg-v1-linux-amd64-go1.19.8-"), "{fresh}");
    let b = Tree::fixture();
    // Other mtimes whatever the file system's clock granularity: 2001-09-09 for every file.
    set_mtimes(&b.root, UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    assert_ne!(a.root, b.root);
    assert_eq!(key(&b), fresh, "another path, other mtimes, same key");
    a.build(&["apiserver", "scheduler"]);
    assert_eq!(key(&a), fresh, "a build changes no input");
    a.append("pkg/healthz/healthz.go", "\n// edit\n");
    let out = a.kdbg(["cache-key", "apiserver", "--explain"]).success();
    assert!(out.stderr.contains("modified: pkg/healthz/healthz.go"), "{}", out.stderr);
    assert_ne!(key(&a), fresh);
}

#[test]
fn unknown_component_lists_the_known_ones() {
    let t = Tree::fixture();
    let out = t.kdbg(["build", "etcd"]).failure(2);
    assert!(out.stderr.contains("unknown component `etcd`"), "{}", out.stderr);
    assert!(out.stderr.contains("kube-apiserver (apiserver)"), "{}", out.stderr);
}

#[test]
fn src_that_is_not_a_tree_is_refused_with_a_fix() {
    let t = Tree::fixture();
    let out = t.kdbg(["build", "apiserver", "--src", "/tmp"]).failure(1);
    assert!(out.stderr.contains("/tmp is not a kubernetes source tree"), "{}", out.stderr);
    assert!(out.stderr.contains("--src"), "{}", out.stderr);
}

#[test]
fn missing_go_is_named_with_a_fix() {
    let t = Tree::fixture();
    let out = t.kdbg(["build", "apiserver"]).env("PATH", format!("{}:/usr/bin:/bin", t.bin.display())).failure(1);
    assert!(out.stderr.contains("`go` was not found on PATH"), "{}", out.stderr);
    assert!(out.stderr.contains("export PATH=/usr/lib/go-1.19/bin:$PATH"), "{}", out.stderr);
}

#[test]
fn failed_make_shows_its_tail_and_keeps_binary_and_record() {
    let t = Tree::fixture();
    let good = t.build(&["apiserver"]);
    let state = std::fs::read(t.path("_output/kdbg/state.json")).unwrap();
    let original = std::fs::read_to_string(t.path("pkg/healthz/healthz.go")).unwrap();
    t.append("pkg/healthz/healthz.go", "\nfunc broken( {\n");
    let out = t.kdbg(["build", "apiserver", "--via-make"]).failure(3);
    assert!(out.stderr.contains("`make` failed"), "{}", out.stderr);
    assert!(out.stderr.contains("healthz.go"), "the compiler's complaint is shown: {}", out.stderr);
    assert!(out.stderr.contains("untouched"), "{}", out.stderr);
    let bin = good[0]["binary"].as_str().unwrap();
    assert_eq!(sha256_file(bin.as_ref()), good[0]["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(t.path("_output/kdbg/state.json")).unwrap(), state);
    t.write("pkg/healthz/healthz.go", &original);
    assert!(hit(&t.build(&["apiserver"]), "kube-apiserver"), "back to the recorded inputs: a hit");
}

#[test]
fn a_second_build_waits_for_the_first() {
    let t = Tree::fixture();
    // The first build's make waits at the gate: it holds the tree's lock until the test opens it.
    let mut first = t.kdbg(["build", "apiserver"]).env("KDBG_IT_MAKE_GATE", t.make_gate());
    let mut first = first.cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = kdbg_tests::sys::wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        (!t.make_runs().is_empty()).then_some(())
    });
    assert!(started.is_some(), "first build never started make");
    assert!(t.path("_output/kdbg/lock").exists());
    let mut second = t.kdbg(["build", "apiserver", "--json"]).cmd;
    let mut second = second.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = read_on(second.stderr.take().unwrap());
    let waiting = kdbg_tests::sys::wait_for(Duration::from_secs(60), Duration::from_millis(20), || {
        Some(()).filter(|_| stderr.lock().unwrap().contains("waiting for another kdbg"))
    });
    assert!(waiting.is_some(), "the second build does not say it waits: {}", stderr.lock().unwrap());
    t.open_make_gate();
    let out = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr.lock().unwrap());
    assert!(stdout.contains("\"hit\":true"), "the second sees the first's result: {stdout}");
    assert!(first.wait().unwrap().success());
    assert_eq!(t.make_runs().len(), 1);
}

/// Sets the mtime of every file and directory under `dir` (but `.git`'s) to `at`.
fn set_mtimes(dir: &Path, at: SystemTime) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let ty = entry.file_type().unwrap();
        if ty.is_dir() && entry.file_name() != ".git" {
            set_mtimes(&entry.path(), at);
        } else if ty.is_file() {
            std::fs::File::options().write(true).open(entry.path()).unwrap().set_modified(at).unwrap();
        }
    }
    std::fs::File::open(dir).unwrap().set_modified(at).unwrap();
}

/// What `pipe` says, collected by a thread of its own as it comes.
fn read_on(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

#[test]
fn a_tree_without_git_needs_a_version() {
    let t = Tree::fixture();
    std::fs::remove_dir_all(t.path(".git")).unwrap();
    let out = t.kdbg(["cache-key", "apiserver"]).failure(1);
    assert!(out.stderr.contains("has no git history") && out.stderr.contains("--kube-version"), "{}", out.stderr);
    t.kdbg(["cache-key", "apiserver", "--kube-version", "v1.20.2"]).success();
    let file = t.scratch().join("version.env");
    std::fs::write(&file, "KUBE_GIT_VERSION='v1.20.2'\n").unwrap();
    t.kdbg(["cache-key", "apiserver"]).env("KUBE_GIT_VERSION_FILE", &file).success();
}

#[test]
fn plan_shows_the_dag_and_runs_nothing() {
    let t = Tree::fixture();
    let out = t.kdbg(["plan", "apiserver", "--debug", "--json"]).success();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in ["build:kube-apiserver", "copy:kube-apiserver", "copy:dlv", "capture-args:kube-apiserver"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for id in ["stop:kube-apiserver", "launch:kube-apiserver", "tunnel:kube-apiserver", "write-ide"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let stop = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == "stop:kube-apiserver").unwrap();
    assert!(stop["deps"].as_array().unwrap().iter().any(|d| d == "copy:kube-apiserver"), "{stop}");
    assert!(t.make_runs().is_empty(), "plan runs nothing");
    let text = t.kdbg(["plan", "apiserver"]).success().stdout;
    assert!(text.contains("build:kube-apiserver") && text.contains("no build recorded"), "{text}");
}

#[test]
fn optimized_is_refused_where_the_build_would_strip_dwarf() {
    let t = Tree::fixture();
    // v1.24+ style: a set GOLDFLAGS no longer replaces `-s -w`; only DBG=1 keeps DWARF.
    let script = std::fs::read_to_string(t.path("hack/lib/golang.sh")).unwrap();
    assert!(script.contains("${GOLDFLAGS+x}"), "the fixture lets a set GOLDFLAGS replace -s -w");
    t.write("hack/lib/golang.sh", &script.replace("-n \"${GOLDFLAGS+x}\"", "-n \"\""));
    let out = t.kdbg(["build", "apiserver", "--optimized"]).failure(1);
    assert!(out.stderr.contains("--optimized cannot keep debug information"), "{}", out.stderr);
    assert!(t.make_runs().is_empty());
    assert!(!hit(&t.build(&["apiserver"]), "kube-apiserver"), "the debug build still works");
}
