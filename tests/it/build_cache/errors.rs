//! Local things in the way — `_output` not writable, a directory where the state file goes, state
//! of an unknown schema, `.vscode` as a file: each named once, with its fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Out, Tree};

/// The message names the problem and the fix once each, without `os error` noise.
#[track_caller]
fn once(out: &Out, expect: &[&str]) {
    for e in expect {
        assert_eq!(out.stderr.matches(e).count(), 1, "{e:?} once in:\n{}", out.stderr);
    }
    assert_eq!(out.stderr.matches("fix:").count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);
}

/// A read-only bind mount over a directory, undone on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn over(dir: &Path) -> ReadOnly {
        let mount = |args: &[&str]| {
            let out = Command::new("mount").args(args).arg(dir).arg(dir).output().unwrap();
            assert!(out.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        mount(&["--bind"]);
        let guard = ReadOnly(dir.to_owned());
        mount(&["-o", "remount,bind,ro"]);
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn output_not_writable_names_the_path_and_the_fix() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    t.append("pkg/healthz/healthz.go", "\n// edit\n");
    let output = t.path("_output");
    let ro = ReadOnly::over(&output);
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    let path = format!("cannot write {}/kdbg/lock (read-only file system)", output.display());
    once(&out, &[&path, &format!("fix: make {} writable for this user", output.display())]);
    drop(ro);
    assert!(!t.build(&["apiserver"])[0]["hit"].as_bool().unwrap());
}

#[test]
fn a_directory_as_the_state_file_is_named_and_leaves_no_temp_file() {
    let t = Tree::fixture();
    let state = t.path("_output/kdbg/state.json");
    std::fs::create_dir_all(state.join("inside")).unwrap();
    let out = t.kdbg(["build", "apiserver"]).failure(1);
    let s = state.display();
    assert!(
        out.stderr.contains(&format!("warning: cannot read the build state {s} (is a directory)")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("error: {s} is a directory, where kdbg keeps its build state file")));
    assert!(out.stderr.contains(&format!("fix: remove it (`rm -r {s}`)")), "{}", out.stderr);
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);
    let left: Vec<String> = std::fs::read_dir(t.path("_output/kdbg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&state).unwrap();
    t.build(&["apiserver"]);
}

#[test]
fn state_of_an_unknown_schema_warns_and_rebuilds() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    let state = t.path("_output/kdbg/state.json");
    let text = std::fs::read_to_string(&state).unwrap().replacen("\"schema\":1", "\"schema\":99", 1);
    assert!(text.contains("\"schema\":99"), "{text}");
    std::fs::write(&state, text).unwrap();
    let out = t.kdbg(["build", "apiserver"]).success();
    let warning =
        format!("warning: ignoring build state {} (schema 99, this kdbg writes 1); rebuilding", state.display());
    assert!(out.stderr.contains(&warning), "{}", out.stderr);
    assert_eq!(t.make_runs().len(), 2);
}

#[test]
fn vscode_as_a_file_is_named_once_with_the_fix() {
    let t = Tree::fixture();
    t.build(&["apiserver"]);
    t.write(".vscode", "not a directory\n");
    let out = t.kdbg(["vscode", "apiserver"]).failure(1);
    let path = t.path(".vscode");
    once(&out, &[&format!("{} is a file, but VSCode keeps launch.json", path.display())]);
    assert!(!out.stderr.contains("Not a directory"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("fix: move the file away (e.g. `mv {0} {0}.bak`)", path.display())));
    assert_eq!(std::fs::read_to_string(path).unwrap(), "not a directory\n");
}
