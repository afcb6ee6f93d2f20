//! `kdbg <subcommand> --help` for every subcommand clap knows, each a snapshot file under
//! `help/` (`help/debug.txt`, `help/worktrees_prune.txt`; `help/kdbg.txt` is `kdbg --help`).
//! The CLI runs as a process with a cleared environment, so no `KDBG_*` value of this machine
//! shows in an `[env: ...]` note and the width is clap's default (100 columns).

use std::os::unix::process::CommandExt;
use std::process::Command;

use clap::CommandFactory;
use expect_test::{expect, expect_file};

/// Every subcommand's path below `kdbg`, depth first (`help` aside: clap's own).
fn subcommands() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path: Vec<String> = prefix.iter().cloned().chain([sub.get_name().to_string()]).collect();
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = vec![Vec::new()];
    walk(&kdbg_cli::Arguments::command(), &[], &mut out);
    out
}

/// `kdbg <path> --help` as a user's terminal shows it (argv[0] is `kdbg`).
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kdbg-it"))
        .arg0("kdbg")
        .args(path)
        .arg("--help")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "kdbg {path:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_of_every_subcommand() {
    let paths = subcommands();
    let names: Vec<String> = paths.iter().map(|p| file_name(p)).collect();
    expect![[r#"
        [
            "kdbg",
            "components",
            "build",
            "cache",
            "cache_push",
            "cache_ls",
            "plan",
            "cache-key",
            "deploy",
            "doctor",
            "debug",
            "status",
            "restore",
            "renew",
            "vscode",
            "watch",
            "worktrees",
            "worktrees_list",
            "worktrees_prune",
            "trace",
        ]
    "#]]
    .assert_debug_eq(&names);
    for (path, name) in paths.iter().zip(&names) {
        expect_file![format!("help/{name}.txt")].assert_eq(&help(path));
    }
}

/// `debug`, `worktrees_prune`; `kdbg` for the top level.
fn file_name(path: &[String]) -> String {
    if path.is_empty() {
        "kdbg".into()
    } else {
        path.join("_")
    }
}
