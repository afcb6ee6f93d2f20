//! Golden tests of kdbg's VSCode files: fresh, merged into a user's JSONC, and idempotent.

use camino::{Utf8Path, Utf8PathBuf};
use expect_test::expect;

use super::*;

fn tree() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, root)
}

fn entry(component: &str, port: u16) -> IdeEntry {
    IdeEntry {
        component: component.into(),
        port,
        substitute_from_to: vec![
            PathRule { tree: "vendor/k8s.io/klog/v2".into(), recorded: "k8s.io/klog/v2@v2.4.0".into() },
            PathRule { tree: String::new(), recorded: "k8s.io/kubernetes".into() },
        ],
        node: None,
    }
}

fn read(root: &Utf8Path, file: &str) -> String {
    std::fs::read_to_string(root.join(".vscode").join(file)).unwrap()
}

#[test]
fn fresh_files_attach_with_dlv_dap_in_remote_mode() {
    let (_dir, root) = tree();
    let report = write(
        &root,
        &[entry("kube-apiserver", 2345)],
        &TaskArgs { target: vec!["--target".into(), "minikube".into()], ..TaskArgs::default() },
    )
    .unwrap();
    assert_eq!(report.files_changed, [root.join(".vscode/launch.json"), root.join(".vscode/tasks.json")]);
    expect![[r#"
        // kdbg writes the entries named "kdbg: ..." (and updates them in place); the rest is yours.
        {
          "version": "0.2.0",
          "configurations": [
            {
              "name": "kdbg: attach kube-apiserver",
              "type": "go",
              "request": "attach",
              "mode": "remote",
              "debugAdapter": "dlv-dap",
              "host": "127.0.0.1",
              "port": 2345,
              "substitutePath": [
                {
                  "from": "${workspaceFolder}/vendor/k8s.io/klog/v2",
                  "to": "k8s.io/klog/v2@v2.4.0"
                },
                {
                  "from": "${workspaceFolder}",
                  "to": "k8s.io/kubernetes"
                }
              ],
              "preLaunchTask": "kdbg: debug kube-apiserver"
            }
          ]
        }
    "#]]
    .assert_eq(&read(&root, "launch.json"));
    expect![[r#"
        // kdbg writes the tasks labelled "kdbg: ..." (and updates them in place); the rest is yours.
        {
          "version": "2.0.0",
          "tasks": [
            {
              "label": "kdbg: debug kube-apiserver",
              "detail": "build kube-apiserver, run it under dlv on the target, forward dlv to 127.0.0.1:2345",
              "type": "process",
              "command": "kdbg",
              "args": ["debug", "kube-apiserver", "--src", "${workspaceFolder}", "--no-ide", "--port", "2345", "--target", "minikube"],
              "isBackground": true,
              "problemMatcher": {
                "owner": "kdbg",
                "fileLocation": ["relative", "${workspaceFolder}"],
                "pattern": {
                  "regexp": "^(\\S+\\.go):(\\d+):(\\d+): (.*)$",
                  "file": 1,
                  "line": 2,
                  "column": 3,
                  "message": 4
                },
                "background": {
                  "activeBegin": true,
                  "beginsPattern": "^kdbg: start",
                  "endsPattern": "^kdbg: ready"
                }
              }
            }
          ,
            {
              "label": "kdbg: watch kube-apiserver",
              "detail": "rebuild and relaunch kube-apiserver on every change",
              "type": "process",
              "command": "kdbg",
              "args": ["watch", "kube-apiserver", "--src", "${workspaceFolder}", "--target", "minikube"],
              "isBackground": true,
              "problemMatcher": {
                "owner": "kdbg",
                "fileLocation": ["relative", "${workspaceFolder}"],
                "pattern": {
                  "regexp": "^(\\S+\\.go):(\\d+):(\\d+): (.*)$",
                  "file": 1,
                  "line": 2,
                  "column": 3,
                  "message": 4
                },
                "background": {
                  "activeBegin": true,
                  "beginsPattern": "^kdbg: start",
                  "endsPattern": "^kdbg: ready"
                }
              }
            },
            {
              "label": "kdbg: restore",
              "detail": "stop dlv and put every component back the way it was",
              "type": "process",
              "command": "kdbg",
              "args": ["restore", "--target", "minikube"],
              "problemMatcher": []
            }]
        }
    "#]]
    .assert_eq(&read(&root, "tasks.json"));
}

const USER_LAUNCH: &str = r#"{
    // My own configurations.
    "version": "0.2.0",
    "configurations": [
        {
            "name": "Launch test", // keep me
            "type": "go",
            "request": "launch",
            "mode": "test",
            "program": "${workspaceFolder}/pkg/healthz",
        },
        /* kdbg's, from an older run: port and mapping are stale, showLog is mine */
        {
            "name": "kdbg: attach kube-apiserver",
            "type": "go",
            "request": "attach",
            "mode": "remote",
            "debugAdapter": "dlv-dap",
            "host": "localhost",
            "port": 40000,
            "showLog": true,
            "substitutePath": [{ "from": "${workspaceFolder}", "to": "/old/tree" }],
            "preLaunchTask": "kdbg: debug kube-apiserver",
        },
    ],
}
"#;

const USER_TASKS: &str = r#"// tasks
{
	"version": "2.0.0",
	"tasks": [
		{ "label": "make", "type": "shell", "command": "make", }, // tabs and trailing commas
	],
}
"#;

#[test]
fn merging_keeps_comments_trailing_commas_and_user_entries_and_updates_kdbg_entries_in_place() {
    let (_dir, root) = tree();
    std::fs::create_dir_all(root.join(".vscode")).unwrap();
    std::fs::write(root.join(".vscode/launch.json"), USER_LAUNCH).unwrap();
    std::fs::write(root.join(".vscode/tasks.json"), USER_TASKS).unwrap();
    write(&root, &[entry("kube-apiserver", 2345), entry("kube-scheduler", 2347)], &TaskArgs::default()).unwrap();
    expect![[r#"
        {
            // My own configurations.
            "version": "0.2.0",
            "configurations": [
                {
                    "name": "Launch test", // keep me
                    "type": "go",
                    "request": "launch",
                    "mode": "test",
                    "program": "${workspaceFolder}/pkg/healthz",
                },
                /* kdbg's, from an older run: port and mapping are stale, showLog is mine */
                {
                    "name": "kdbg: attach kube-apiserver",
                    "type": "go",
                    "request": "attach",
                    "mode": "remote",
                    "debugAdapter": "dlv-dap",
                    "host": "127.0.0.1",
                    "port": 2345,
                    "showLog": true,
                    "substitutePath": [
                        {
                            "from": "${workspaceFolder}/vendor/k8s.io/klog/v2",
                            "to": "k8s.io/klog/v2@v2.4.0",
                        },
                        {
                            "from": "${workspaceFolder}",
                            "to": "k8s.io/kubernetes",
                        },
                    ],
                    "preLaunchTask": "kdbg: debug kube-apiserver",
                },
                {
                    "name": "kdbg: attach kube-scheduler",
                    "type": "go",
                    "request": "attach",
                    "mode": "remote",
                    "debugAdapter": "dlv-dap",
                    "host": "127.0.0.1",
                    "port": 2347,
                    "substitutePath": [
                        {
                            "from": "${workspaceFolder}/vendor/k8s.io/klog/v2",
                            "to": "k8s.io/klog/v2@v2.4.0",
                        },
                        {
                            "from": "${workspaceFolder}",
                            "to": "k8s.io/kubernetes",
                        },
                    ],
                    "preLaunchTask": "kdbg: debug kube-scheduler",
                },
            ],
        }
    "#]]
    .assert_eq(&read(&root, "launch.json"));
    let tasks = read(&root, "tasks.json");
    assert!(tasks.starts_with("// tasks\n{\n\t\"version\": \"2.0.0\",\n\t\"tasks\": [\n\t\t{ \"label\": \"make\", \"type\": \"shell\", \"command\": \"make\", }, // tabs and trailing commas\n"), "{tasks}");
    let labels: Vec<_> =
        jsonc::read_array(&tasks, "tasks").unwrap().iter().map(|t| t["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        labels,
        [
            "make",
            "kdbg: debug kube-apiserver",
            "kdbg: watch kube-apiserver",
            "kdbg: debug kube-scheduler",
            "kdbg: watch kube-scheduler",
            "kdbg: restore"
        ]
    );
}

#[test]
fn a_second_run_changes_no_byte() {
    for existing in [None, Some((USER_LAUNCH, USER_TASKS))] {
        let (_dir, root) = tree();
        if let Some((launch, tasks)) = existing {
            std::fs::create_dir_all(root.join(".vscode")).unwrap();
            std::fs::write(root.join(".vscode/launch.json"), launch).unwrap();
            std::fs::write(root.join(".vscode/tasks.json"), tasks).unwrap();
        }
        let entries = [entry("kube-apiserver", 2345), entry("kubelet", 2348)];
        write(&root, &entries, &TaskArgs::default()).unwrap();
        let (launch, tasks) = (read(&root, "launch.json"), read(&root, "tasks.json"));
        let again = write(&root, &entries, &TaskArgs::default()).unwrap();
        assert_eq!(again.files_changed, Vec::<Utf8PathBuf>::new());
        assert_eq!((read(&root, "launch.json"), read(&root, "tasks.json")), (launch, tasks));
    }
}

#[test]
fn a_file_that_is_not_jsonc_is_left_alone_with_a_clear_error() {
    let (_dir, root) = tree();
    std::fs::create_dir_all(root.join(".vscode")).unwrap();
    std::fs::write(root.join(".vscode/launch.json"), "{ \"configurations\": [ oops ").unwrap();
    let err = write(&root, &[entry("kube-apiserver", 2345)], &TaskArgs::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("failed to update {root}/.vscode/launch.json: it is not valid JSONC: ")), "{msg}");
    assert!(msg.ends_with("kdbg leaves it as it is: fix it, or move it away and run kdbg vscode again"), "{msg}");
    assert_eq!(read(&root, "launch.json"), "{ \"configurations\": [ oops ");
}

#[test]
fn read_launch_gives_the_configurations_without_comments() {
    let (_dir, root) = tree();
    assert_eq!(read_launch(&root).unwrap(), Vec::<Value>::new());
    std::fs::create_dir_all(root.join(".vscode")).unwrap();
    std::fs::write(root.join(".vscode/launch.json"), USER_LAUNCH).unwrap();
    let names: Vec<_> = read_launch(&root).unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, ["Launch test", "kdbg: attach kube-apiserver"]);
}
