//! The VSCode task a `kdbg debug` writes runs exactly that session again: started from
//! tasks.json as VSCode would, then attached with launch.json's port.

use std::process::{Command, Stdio};

use camino::Utf8Path;
use kdbg_core::ide::vscode;

use super::Lab;
use crate::support::GO_BIN;

#[test]
fn the_debug_task_runs_the_session_that_wrote_it_and_launch_attaches() {
    let lab = Lab::up("sessv");
    let before = lab.snapshot();
    let port = lab.port.to_string();
    let flags = ["--port", &port, "--kube-version", "v1.20.2", "--leader-elect=false", "--stop-timeout", "60"];
    lab.kdbg(&[&["debug", "apiserver"][..], &flags].concat()).success();
    lab.restore();

    let root = Utf8Path::from_path(&lab.tree.root).unwrap();
    let launch = vscode::read_launch(root).unwrap();
    let attach = launch.iter().find(|c| c["name"] == "kdbg: attach kube-apiserver").expect("the attach entry");
    let attach_port = attach["port"].as_u64().unwrap() as u16;
    assert_eq!(attach_port, lab.port);
    let tasks = vscode::read_tasks(root).unwrap();
    let task = tasks.iter().find(|t| t["label"] == attach["preLaunchTask"]).expect("its preLaunchTask");
    assert_eq!(task["command"], "kdbg");
    let args: Vec<String> = task["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("${workspaceFolder}", root.as_str()))
        .collect();
    let target = kdbg_tests::lab::target_args(&lab.node);
    for part in flags.iter().map(|f| f.to_string()).chain(target) {
        assert!(args.contains(&part), "{part} in the task's {args:?}");
    }

    // Run it as VSCode does: `kdbg` from PATH, in the workspace folder.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kdbg-it"), lab.tree.bin.join("kdbg")).unwrap();
    let out = Command::new("kdbg")
        .args(&args)
        .current_dir(root)
        .env("PATH", format!("{}:{GO_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", lab.tree.bin.display()))
        .env("KDBG_STATE_DIR", lab.state.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == vscode::READY_MARKER), "{stdout}");
    lab.hit_breakpoint_at(attach_port);
    lab.restore();
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();
}
