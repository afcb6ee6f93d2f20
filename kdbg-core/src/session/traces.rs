//! Recovery without a journal: what only kdbg leaves on a node, found by looking at the node.
//!
//! - a static pod manifest in `/var/lib/kdbg/backup/` (kdbg moved it out of the manifests
//!   directory): put back when the manifests directory lacks it, dropped when the manifest there
//!   holds the same bytes, listed with the commands to choose when both exist and differ;
//! - Delve or kdbg's debug build running from `/var/lib/kdbg/bin/`: killed; for a component run by
//!   systemd, its unit (which kdbg stopped) is started again;
//! - a socket directory `/var/lib/kdbg/run/<component>`: removed.
//!
//! Traces a journal entry accounts for are left to the journal. `kdbg restore` acts on the rest
//! (with `--from-node-state` also when the journal cannot be read, after keeping it aside), and
//! `kdbg doctor` reports them.

use crate::node::root_sh;
use std::time::{Duration, Instant};

use super::journal::{How, Journal};
use super::{procs, stop};
use crate::component::{Component, Launch, COMPONENTS, MANIFESTS_DIR};
use crate::layout::{socket_path, BACKUP_DIR, BIN_DIR, RUN_DIR};
use crate::node::{Node, NodeError, Privilege};

/// For each file in the backup directory: `name mode sha256-of-backup sha256-of-manifest|-`.
const BACKUPS: &str = r#"for b in "$1"/*; do
  [ -f "$b" ] || continue
  n=${b##*/}; m="$2/$n"
  s=$(sha256sum < "$b") || exit 1
  if [ -f "$m" ]; then t=$(sha256sum < "$m") || exit 1; t=${t%% *}; else t=-; fi
  echo "$n $(stat -c %a "$b") ${s%% *} $t"
done"#;

/// The names of the socket directories in `$1`.
const SOCKET_DIRS: &str = r#"for d in "$1"/*; do [ -d "$d" ] && echo "${d##*/}"; done; true"#;

/// Something kdbg left on the node that no journal entry accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trace {
    /// kdbg's copy of a static pod manifest.
    Backup { component: String, backup: String, manifest: String, mode: u32, sha256: String, fate: Fate },
    /// Delve or kdbg's debug build, running.
    Process { component: String, pid: u32, exe: String },
    /// The directory of a Delve's unix socket.
    SocketDir { component: String, dir: String },
}

/// What to do with a backup, given what the manifests directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The manifest is missing: put the backup back.
    PutBack,
    /// The manifest holds the same bytes: the backup is a leftover copy.
    Drop,
    /// Both exist and differ: a person must choose.
    Choose,
}

impl Trace {
    pub(crate) fn component(&self) -> &str {
        match self {
            Trace::Backup { component, .. } | Trace::Process { component, .. } | Trace::SocketDir { component, .. } => {
                component
            }
        }
    }

    /// What was found, in words.
    pub(crate) fn describe(&self) -> String {
        match self {
            Trace::Backup { backup, manifest, fate: Fate::PutBack, .. } => {
                format!("kdbg's backup {backup} while {manifest} is missing")
            }
            Trace::Backup { backup, manifest, fate: Fate::Drop, .. } => {
                format!("kdbg's backup {backup}, the same bytes as {manifest}")
            }
            Trace::Backup { backup, manifest, fate: Fate::Choose, .. } => {
                format!("kdbg's backup {backup}, which differs from {manifest}")
            }
            Trace::Process { pid, exe, .. } => format!("a debug process (pid {pid}, {exe})"),
            Trace::SocketDir { dir, .. } => format!("Delve's socket directory {dir}"),
        }
    }
}

/// The traces on `node` that `journal` does not account for, for `only` (all when empty).
pub(crate) fn find(node: &dyn Node, journal: &Journal, only: &[&str]) -> Result<Vec<Trace>, NodeError> {
    let wanted = |name: &str| (only.is_empty() || only.contains(&name)) && !journal.components.contains_key(name);
    let mut out = Vec::new();
    let listed = node.sh(Privilege::Root, BACKUPS, &[BACKUP_DIR, MANIFESTS_DIR])?;
    for line in listed.stdout_str().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [file, mode, sha256, manifest_sha] = f[..] else { continue };
        let component = static_pod(file).map_or_else(|| file.trim_end_matches(".yaml").to_string(), |c| c.name.into());
        let journaled = journal.components.values().any(|e| match &e.how {
            How::StaticPod { backup, .. } => backup.ends_with(&format!("/{file}")),
            How::Systemd { .. } | How::DaemonSet { .. } => false,
        });
        if journaled || !wanted(&component) {
            continue;
        }
        let fate = match manifest_sha {
            "-" => Fate::PutBack,
            m if m == sha256 => Fate::Drop,
            _ => Fate::Choose,
        };
        out.push(Trace::Backup {
            component,
            backup: format!("{BACKUP_DIR}/{file}"),
            manifest: format!("{MANIFESTS_DIR}/{file}"),
            mode: u32::from_str_radix(mode, 8).unwrap_or(0o600),
            sha256: sha256.into(),
            fate,
        });
    }
    for (pid, exe) in debug_processes(node)? {
        let component = component_of(node, pid, &exe)?;
        if wanted(&component) {
            out.push(Trace::Process { component, pid, exe });
        }
    }
    let dirs = node.sh(Privilege::Root, SOCKET_DIRS, &[RUN_DIR])?;
    for component in dirs.stdout_str().lines().filter(|c| wanted(c)) {
        out.push(Trace::SocketDir { component: component.into(), dir: format!("{RUN_DIR}/{component}") });
    }
    Ok(out)
}

/// Puts one component's traces right; returns what was done, and what is left to a person (with
/// the exact command).
pub(crate) fn recover(
    node: &dyn Node,
    traces: &[&Trace],
    back: Duration,
) -> Result<(Vec<String>, Vec<String>), NodeError> {
    let mut done = kill_processes(node, traces)?;
    done.extend(remove_socket_dirs(node, traces)?);
    let (put_back, mut left) = settle_backups(node, traces, &mut done)?;
    let started = start_units(node, traces, &mut done)?.or(put_back);
    if let Some(name) = started {
        if wait_running(node, &name, back)? {
            done.push("the original runs again".into());
        } else {
            left.push(format!("{name} does not run again yet: look at the kubelet's (or its unit's) logs"));
        }
    }
    Ok((done, left))
}

/// Kills the debug processes among `traces`: what was done.
fn kill_processes(node: &dyn Node, traces: &[&Trace]) -> Result<Vec<String>, NodeError> {
    let pids: Vec<u32> =
        traces.iter().filter_map(|t| if let Trace::Process { pid, .. } = t { Some(*pid) } else { None }).collect();
    procs::kill(node, &pids)?;
    Ok(if pids.is_empty() { vec![] } else { vec![format!("killed the debug processes {pids:?}")] })
}

/// Removes the socket directories among `traces`: what was done.
fn remove_socket_dirs(node: &dyn Node, traces: &[&Trace]) -> Result<Vec<String>, NodeError> {
    let mut done = Vec::new();
    for t in traces {
        if let Trace::SocketDir { dir, component } = t {
            let gone = super::endpoint::remove(node, &socket_path(component));
            gone.map_err(|e| NodeError::other(node.describe(), format!("remove {dir}"), e))?;
            done.push(format!("removed {dir}"));
        }
    }
    Ok(done)
}

/// Puts back or drops each backup by its [`Fate`], adding to `done`; returns the last component
/// whose manifest was put back (it starts again), and the backups left to a person to choose.
fn settle_backups(
    node: &dyn Node,
    traces: &[&Trace],
    done: &mut Vec<String>,
) -> Result<(Option<String>, Vec<String>), NodeError> {
    let (mut started, mut left) = (None, Vec::new());
    for t in traces {
        let Trace::Backup { backup, manifest, mode, sha256, fate, component } = t else { continue };
        if *fate == Fate::Choose {
            left.push(format!(
                "{backup} differs from {manifest}: compare them, then `sudo mv {backup} {manifest}` to put kdbg's \
                 copy back, or `sudo rm {backup}` to keep the one in place"
            ));
            continue;
        }
        let how =
            How::StaticPod { manifest: manifest.clone(), sha256: sha256.clone(), mode: *mode, backup: backup.clone() };
        stop::put_back(node, &how).map_err(|d| NodeError::other(node.describe(), "put back", d))?;
        if *fate == Fate::PutBack {
            done.push(format!("put {manifest} back from {backup}"));
            started = Some(component.clone());
        } else {
            done.push(format!("removed {backup} ({manifest} holds the same bytes)"));
        }
    }
    Ok((started, left))
}

/// Starts the unit of each systemd component whose debug build ran (kdbg had stopped it), adding
/// to `done`; returns the last component started.
fn start_units(node: &dyn Node, traces: &[&Trace], done: &mut Vec<String>) -> Result<Option<String>, NodeError> {
    let mut started = None;
    for t in traces {
        let Trace::Process { component, .. } = t else { continue };
        if let Some(Launch::Systemd { unit }) = Component::lookup(component).ok().map(|c| c.launch) {
            root_sh(node, "systemctl start \"$1\"", &[unit], &format!("systemctl start {unit}"))
                .map_err(|e| NodeError::other(node.describe(), format!("start {unit}"), e))?;
            done.push(format!("started {unit}"));
            started = Some(component.clone());
        }
    }
    Ok(started)
}

/// Waits up to `back` until `name`'s original runs again: whether it does.
fn wait_running(node: &dyn Node, name: &str, back: Duration) -> Result<bool, NodeError> {
    let deadline = Instant::now() + back;
    while procs::running(node, name, BIN_DIR)?.is_empty() {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(true)
}

fn static_pod(file: &str) -> Option<&'static Component> {
    COMPONENTS.iter().find(|c| matches!(c.launch, Launch::StaticPod { manifest } if manifest == file))
}

/// kdbg's debug builds and the Delves running them: (pid, executable).
fn debug_processes(node: &dyn Node) -> Result<Vec<(u32, String)>, NodeError> {
    let ours = |exe: &str| exe.starts_with(&format!("{BIN_DIR}/"));
    Ok(procs::exes(node)?.into_iter().filter(|(_, e)| ours(e)).collect())
}

/// The component a debug process is for: its executable's name, or for Delve the binary it runs.
fn component_of(node: &dyn Node, pid: u32, exe: &str) -> Result<String, NodeError> {
    let name = exe.rsplit('/').next().unwrap_or(exe).to_string();
    if name != "dlv" {
        return Ok(name);
    }
    let argv = procs::cmdlines(node, &[pid])?.into_iter().next().map(|(_, a)| a).unwrap_or_default();
    Ok(argv
        .iter()
        .skip(1)
        .find(|a| a.starts_with(&format!("{BIN_DIR}/")))
        .map_or(name, |b| b.rsplit('/').next().unwrap_or(b).to_string()))
}
