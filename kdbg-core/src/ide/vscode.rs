//! VSCode: kdbg's entries in `.vscode/launch.json` and `.vscode/tasks.json`, merged in place.
//!
//! Per component one launch configuration, `kdbg: attach <component>`, attaching vscode-go's
//! `dlv-dap` adapter to the Delve server kdbg started (`"request": "attach", "mode": "remote"`;
//! Delve's headless JSON-RPC listener also serves DAP since v1.7.3), and the tasks
//! `kdbg: debug <component>` (its `preLaunchTask`, so one F5 builds, deploys and attaches),
//! `kdbg: watch <component>` and `kdbg: restore`.
//!
//! `substitutePath` semantics (vscode-go `docs/debugging.md`, "substitutePath": "an array of
//! mappings from a local path (editor) to the remote path (debugee)"; Delve's DAP
//! `SubstitutePath`: `from` is "the local path to be replaced when passing paths to the
//! debugger", `to` "the remote path to be replaced when passing paths back to the client", an
//! empty value adds or removes a prefix, e.g. for `-trimpath` binaries): `from` is
//! `${workspaceFolder}[/dir]`, `to` what the binary recorded for it, most specific first, as
//! [`super::mapping`] derives them. `remotePath`/`cwd` are ignored by dlv-dap remote attach.
//!
//! kdbg's entries are those whose `name`/`label` starts with `kdbg:`; kdbg updates the
//! properties it writes and leaves any other property, and every other entry, alone.

use camino::{Utf8Path, Utf8PathBuf};
use jsonc_parser::cst::CstInputValue;
use serde::Serialize;
use serde_json::Value;

use super::dwarf::{DwarfError, RecordedPaths};
use super::jsonc::{self, obj, strs, MergeError};
use super::mapping::{Mapping, PathRule};

/// The prefix of every launch configuration name and task label kdbg owns.
pub(crate) const PREFIX: &str = "kdbg:";
/// What `kdbg debug`/`kdbg watch` print when a cycle starts; background tasks key on it.
pub const START_MARKER: &str = "kdbg: start";
/// What `kdbg debug`/`kdbg watch` print once dlv is reachable on 127.0.0.1; the debug task ends
/// its "starting" phase there and VSCode attaches.
pub const READY_MARKER: &str = "kdbg: ready";

/// One component to write entries for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdeEntry {
    pub component: String,
    /// The port dlv is reachable on at 127.0.0.1 (the tunnel's end).
    pub port: u16,
    /// Editor ↔ binary path rules, most specific first.
    pub substitute_from_to: Vec<PathRule>,
    /// The node, when one session runs on several (`kdbg debug --all-nodes`): the entry is
    /// `kdbg: attach <component> (<node>)`, with no debug or watch task of its own (the session's
    /// tasks name all its nodes).
    pub node: Option<String>,
}

/// The flags of the `kdbg debug` that writes the entries, so its tasks run exactly that session
/// again: each debug task is `kdbg debug <component> --src ${workspaceFolder} --no-ide --port
/// <its port>` followed by these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskArgs {
    /// How to reach the node: `--target`, `--identity`, `--ssh-option`, `--dlv` (every task).
    pub target: Vec<String>,
    /// What to build: `--kube-version`, `--optimized` (debug and watch tasks).
    pub build: Vec<String>,
    /// How to run it: `--leader-elect=false`, `--expose`, `--wait-for-debugger`, `--stop-timeout`
    /// (debug tasks).
    pub session: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdeReport {
    /// The files whose bytes changed (none on a second run).
    pub files_changed: Vec<Utf8PathBuf>,
    pub launch: Utf8PathBuf,
    pub tasks: Utf8PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum IdeError {
    #[error("{path} is a file, but VSCode keeps launch.json and tasks.json in a directory of that name\n  fix: move the file away (e.g. `mv {path} {path}.bak`) and run kdbg again (`kdbg debug --no-ide` writes no VSCode entries)")]
    NotADirectory { path: Utf8PathBuf },
    #[error("failed to read {path}: {source}")]
    Read { path: Utf8PathBuf, source: std::io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: Utf8PathBuf, source: std::io::Error },
    #[error(
        "failed to update {path}: {source}; kdbg leaves it as it is: fix it, or move it away and run kdbg vscode again"
    )]
    Merge { path: Utf8PathBuf, source: MergeError },
}

const LAUNCH_NEW: &str = "// kdbg writes the entries named \"kdbg: ...\" (and updates them in place); the rest is yours.\n{\n  \"version\": \"0.2.0\",\n  \"configurations\": []\n}\n";
const TASKS_NEW: &str = "// kdbg writes the tasks labelled \"kdbg: ...\" (and updates them in place); the rest is yours.\n{\n  \"version\": \"2.0.0\",\n  \"tasks\": []\n}\n";

/// Reads `binary`'s DWARF and derives `component`'s entry, for dlv on `127.0.0.1:<port>`;
/// also returns what was read (root prefix, optimisation flags) and any unmapped files.
pub fn entry(
    component: &str,
    port: u16,
    binary: &Utf8Path,
    tree_root: &Utf8Path,
) -> Result<(IdeEntry, RecordedPaths, Mapping), DwarfError> {
    let recorded = super::dwarf::recorded_sources(binary)?;
    let mapping = super::mapping::mapping(&recorded, tree_root);
    let entry =
        IdeEntry { component: component.to_string(), port, substitute_from_to: mapping.rules.clone(), node: None };
    Ok((entry, recorded, mapping))
}

/// Writes or merges `<tree_root>/.vscode/{launch,tasks}.json`; `args` are passed to the `kdbg`
/// the tasks run.
pub fn write(tree_root: &Utf8Path, entries: &[IdeEntry], args: &TaskArgs) -> Result<IdeReport, IdeError> {
    let dir = tree_root.join(".vscode");
    if dir.symlink_metadata().is_ok() && !dir.is_dir() {
        return Err(IdeError::NotADirectory { path: dir });
    }
    let launch = dir.join("launch.json");
    let tasks = dir.join("tasks.json");
    let mut report = IdeReport { files_changed: Vec::new(), launch: launch.clone(), tasks: tasks.clone() };
    let configs: Vec<_> = entries.iter().map(launch_config).collect();
    let header = [("version", CstInputValue::String("0.2.0".into()))];
    if merge_file(&launch, LAUNCH_NEW, &header, "configurations", "name", &configs)? {
        report.files_changed.push(launch);
    }
    let tasks_list = task_list(entries, args);
    let header = [("version", CstInputValue::String("2.0.0".into()))];
    if merge_file(&tasks, TASKS_NEW, &header, "tasks", "label", &tasks_list)? {
        report.files_changed.push(tasks);
    }
    Ok(report)
}

/// The launch configurations in `<tree_root>/.vscode/launch.json` (empty when there is none).
pub fn read_launch(tree_root: &Utf8Path) -> Result<Vec<Value>, IdeError> {
    read_entries(&tree_root.join(".vscode/launch.json"), "configurations")
}

/// The tasks in `<tree_root>/.vscode/tasks.json` (empty when there is none).
pub fn read_tasks(tree_root: &Utf8Path) -> Result<Vec<Value>, IdeError> {
    read_entries(&tree_root.join(".vscode/tasks.json"), "tasks")
}

fn read_entries(path: &Utf8Path, key: &str) -> Result<Vec<Value>, IdeError> {
    let path = path.to_owned();
    match std::fs::read_to_string(&path) {
        Ok(text) => jsonc::read_array(&text, key).map_err(|source| IdeError::Merge { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(IdeError::Read { path, source }),
    }
}

pub fn launch_name(component: &str) -> String {
    format!("{PREFIX} attach {component}")
}

pub(crate) fn debug_task(component: &str) -> String {
    format!("{PREFIX} debug {component}")
}

pub(crate) fn watch_task(component: &str) -> String {
    format!("{PREFIX} watch {component}")
}

pub(crate) const RESTORE_TASK: &str = "kdbg: restore";

/// `${workspaceFolder}` or `${workspaceFolder}/<dir>`.
pub(crate) fn workspace_path(tree: &str) -> String {
    if tree.is_empty() {
        "${workspaceFolder}".to_string()
    } else {
        format!("${{workspaceFolder}}/{tree}")
    }
}

fn launch_config(e: &IdeEntry) -> CstInputValue {
    let rules = e
        .substitute_from_to
        .iter()
        .map(|r| {
            obj(vec![
                ("from", CstInputValue::String(workspace_path(&r.tree))),
                ("to", CstInputValue::String(r.recorded.clone())),
            ])
        })
        .collect();
    let name = match &e.node {
        Some(node) => format!("{} ({node})", launch_name(&e.component)),
        None => launch_name(&e.component),
    };
    let mut fields = vec![
        ("name", name.into()),
        ("type", "go".into()),
        ("request", "attach".into()),
        ("mode", "remote".into()),
        ("debugAdapter", "dlv-dap".into()),
        // Not "localhost": VSCode's Node may resolve it to ::1 first, and dlv (and kdbg's tunnel
        // when the target is this host) listens on 127.0.0.1 only.
        ("host", "127.0.0.1".into()),
        ("port", u32::from(e.port).into()),
        ("substitutePath", CstInputValue::Array(rules)),
    ];
    if e.node.is_none() {
        fields.push(("preLaunchTask", debug_task(&e.component).into()));
    }
    obj(fields)
}

fn task_list(entries: &[IdeEntry], a: &TaskArgs) -> Vec<CstInputValue> {
    let mut tasks = Vec::new();
    let target = a.target.iter().map(String::as_str);
    for e in entries.iter().filter(|e| e.node.is_none()) {
        let c = e.component.as_str();
        let port = e.port.to_string();
        let mut args = vec!["debug", c, "--src", "${workspaceFolder}", "--no-ide", "--port", &port];
        args.extend(a.build.iter().chain(&a.session).map(String::as_str));
        args.extend(target.clone());
        tasks.push(background_task(
            &debug_task(c),
            &format!("build {c}, run it under dlv on the target, forward dlv to 127.0.0.1:{}", e.port),
            &args,
        ));
        let mut args = vec!["watch", c, "--src", "${workspaceFolder}"];
        args.extend(a.build.iter().map(String::as_str));
        args.extend(target.clone());
        tasks.push(background_task(&watch_task(c), &format!("rebuild and relaunch {c} on every change"), &args));
    }
    if !entries.is_empty() {
        let mut args = vec!["restore"];
        args.extend(target);
        tasks.push(obj(vec![
            ("label", RESTORE_TASK.into()),
            ("detail", "stop dlv and put every component back the way it was".into()),
            ("type", "process".into()),
            ("command", "kdbg".into()),
            ("args", strs(&args)),
            ("problemMatcher", CstInputValue::Array(Vec::new())),
        ]));
    }
    tasks
}

/// A task that keeps running; VSCode treats it as ready when kdbg prints [`READY_MARKER`], and
/// shows Go compile errors (`file.go:line:col: message`, relative to the tree) as problems.
fn background_task(label: &str, detail: &str, args: &[&str]) -> CstInputValue {
    let pattern = obj(vec![
        ("regexp", r"^(\S+\.go):(\d+):(\d+): (.*)$".into()),
        ("file", 1u32.into()),
        ("line", 2u32.into()),
        ("column", 3u32.into()),
        ("message", 4u32.into()),
    ]);
    let background = obj(vec![
        ("activeBegin", true.into()),
        ("beginsPattern", format!("^{START_MARKER}").into()),
        ("endsPattern", format!("^{READY_MARKER}").into()),
    ]);
    obj(vec![
        ("label", label.into()),
        ("detail", detail.into()),
        ("type", "process".into()),
        ("command", "kdbg".into()),
        ("args", strs(args)),
        ("isBackground", true.into()),
        (
            "problemMatcher",
            obj(vec![
                ("owner", "kdbg".into()),
                ("fileLocation", strs(&["relative", "${workspaceFolder}"])),
                ("pattern", pattern),
                ("background", background),
            ]),
        ),
    ])
}

/// Merges into `path` (or `fresh` when it does not exist or is blank); true when bytes changed.
fn merge_file(
    path: &Utf8Path,
    fresh: &str,
    header: &[(&str, CstInputValue)],
    array_key: &str,
    id_key: &str,
    entries: &[CstInputValue],
) -> Result<bool, IdeError> {
    let before = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(IdeError::Read { path: path.to_owned(), source }),
    };
    let base = before.as_deref().filter(|t| !t.trim().is_empty()).unwrap_or(fresh);
    let after = jsonc::merge(base, header, array_key, id_key, entries)
        .map_err(|source| IdeError::Merge { path: path.to_owned(), source })?;
    if before.as_deref() == Some(after.as_str()) {
        return Ok(false);
    }
    let write_err = |source| IdeError::Write { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    // Write beside and rename, so an editor never reads half a file.
    let tmp = path.with_extension("json.kdbg-tmp");
    std::fs::write(&tmp, &after).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
