//! `kdbg restore`: undo what the journal says, in reverse — kill Delve and the debug build, put
//! the manifest back byte-identical (or start the unit), wait until the original runs again, then
//! forget the entry. Idempotent, and needs nothing but the node's journal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::journal::{self, Entry, EntryState, Journal, Who};
use super::traces::{self, Trace};
use super::{persist, procs, stop, undo, SessionError};
use crate::component::Component;
use crate::crash::CrashAt;
use crate::layout::BIN_DIR;
use crate::node::Node;
use crate::node_lock::Locked;
use crate::plan::exec::{Exec, Inputs, Policy, Ran, Runner};
use crate::plan::{Plan, Step, StepKind};
use crate::report::Reporter;
use crate::tunnels;

#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// Only these components (all that the journal holds when empty).
    pub components: Vec<&'static Component>,
    /// How long to wait for the original to run again.
    pub back_timeout: Duration,
    /// The workstation's state directory (tunnels); `None`: no local tunnels to stop.
    pub state_dir: Option<Utf8PathBuf>,
    pub crash: CrashAt,
    /// A rollback: only what this owner journaled is undone (never another run's session).
    pub owner: Option<Who>,
    /// An unreadable journal is kept aside and the node's state alone says what to put back.
    pub from_node_state: bool,
    /// `--keep-current`: stop Delve and the debug build but keep what is in place now (a manifest
    /// the user put back by hand), dropping kdbg's copy of the original.
    pub keep_current: bool,
}

impl Default for RestoreConfig {
    fn default() -> RestoreConfig {
        RestoreConfig {
            components: Vec::new(),
            back_timeout: Duration::from_secs(120),
            state_dir: None,
            crash: CrashAt::default(),
            owner: None,
            from_node_state: false,
            keep_current: false,
        }
    }
}

/// What restore did for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub component: String,
    pub done: Vec<String>,
}

/// Restores every component the journal holds (or those asked for); components without an entry
/// still get their stray debug processes killed and their local tunnels stopped.
pub fn restore(node: Locked<'_>, cfg: &RestoreConfig, reporter: &dyn Reporter) -> Result<Vec<Restored>, SessionError> {
    let node = node.node();
    let journal = match journal::load(node) {
        Err(SessionError::Journal { detail, .. }) if cfg.from_node_state => {
            let aside = journal::keep_aside(node)?;
            reporter.warn(format!("the journal could not be read ({detail}); kept it as {aside}"));
            journal::Journal::default()
        }
        other => other?,
    };
    let mut names: Vec<String> = match cfg.components.is_empty() {
        true => journal.components.keys().cloned().collect(),
        false => cfg.components.iter().map(|c| c.name.to_string()).collect(),
    };
    names.retain(|n| journal.components.get(n).is_some_and(|e| cfg.owner.as_ref().is_none_or(|o| &e.who == o)));
    // Reverse of the order sessions were started in.
    names.sort_by_key(|n| std::cmp::Reverse(journal.components.get(n).map(|e| (e.started_at, e.updated_at))));
    let run = Restoring { node, journal: Mutex::new(journal), cfg };
    // One at a time, in plan order (they share the journal); a failure leaves the others to run.
    let exec = Exec { parallel: 1, policy: Policy::KeepGoing, crash: cfg.crash.clone() };
    let (first_error, mut outputs) = match exec.run(&plan(&names), &run, reporter) {
        Ok(run) => (None, run.outputs),
        Err(f) => (f.errors.into_iter().next().map(|(_, e)| e), f.outputs),
    };
    // In the order the steps ran.
    let mut out: Vec<Restored> = names.iter().filter_map(|n| outputs.remove(&StepKind::Restore.on(n))).collect();
    let journal = run.journal.into_inner().unwrap();
    if cfg.owner.is_none() {
        // What kdbg left that no journal entry accounts for (a journal removed or unreadable).
        recover_traces(node, &journal, cfg, reporter, &mut out)?;
    }
    if let Some(dir) = &cfg.state_dir {
        let only: Vec<&str> = match cfg.owner {
            Some(_) => names.iter().map(String::as_str).collect(),
            None => cfg.components.iter().map(|c| c.name).collect(),
        };
        let stopped = tunnels::stop(dir, &node.describe(), &only).map_err(|source| SessionError::Local {
            what: "update".into(),
            path: dir.join(tunnels::FILE).to_string(),
            source,
        })?;
        for t in stopped {
            reporter.info(format!("stopped the tunnel localhost:{} (pid {}) for {}", t.local_port, t.pid, t.component));
        }
        if first_error.is_none() {
            // The sessions are over: their trees may be pruned (`kdbg worktrees prune`).
            crate::worktree::forget(dir, &node.describe(), &only).map_err(|source| SessionError::Local {
                what: "update".into(),
                path: dir.to_string(),
                source,
            })?;
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `kdbg restore`'s steps: `restore:<component>` for each of `names`, run in this order (the
/// reverse of the order the sessions started in).
pub fn plan(names: &[String]) -> Plan {
    let mut plan = Plan { schema: crate::plan::PLAN_SCHEMA, steps: Vec::new() };
    for name in names {
        plan.add(StepKind::Restore.on(name), &[], None, false, vec![]);
    }
    plan
}

struct Restoring<'a> {
    node: &'a dyn Node,
    journal: Mutex<Journal>,
    cfg: &'a RestoreConfig,
}

impl Runner for Restoring<'_> {
    type Error = SessionError;
    type Output = Restored;

    fn run(&self, step: &Step, _: &Inputs<'_, Restored>) -> Result<Ran<Restored>, SessionError> {
        let name = step.id.component().expect("a restore step names its component");
        Ok(Ran::done(restore_one(self.node, &mut self.journal.lock().unwrap(), name, self.cfg)?))
    }
}

/// Finds and puts right, per component, what only kdbg could have left on the node.
fn recover_traces(
    node: &dyn Node,
    journal: &journal::Journal,
    cfg: &RestoreConfig,
    reporter: &dyn Reporter,
    out: &mut Vec<Restored>,
) -> Result<(), SessionError> {
    let only: Vec<&str> = cfg.components.iter().map(|c| c.name).collect();
    let found = traces::find(node, journal, &only)?;
    let mut names: Vec<&str> = Vec::new();
    for name in found.iter().map(Trace::component) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let mine: Vec<&Trace> = found.iter().filter(|t| t.component() == name).collect();
        let seen: Vec<String> = mine.iter().map(|t| t.describe()).collect();
        let mut done = vec![format!("found, with no journal entry: {}", seen.join(", "))];
        let (did, left) = traces::recover(node, &mine, cfg.back_timeout)?;
        done.extend(did);
        left.into_iter().for_each(|l| reporter.warn(l));
        out.push(Restored { component: name.into(), done });
    }
    Ok(())
}

/// Restores one component: journal it as restoring, stop Delve and the debug build, put the
/// original back, wait until it runs again, forget the entry, then remove the session's log.
/// Without an entry, only stray debug processes are killed.
fn restore_one(
    node: &dyn Node,
    journal: &mut journal::Journal,
    name: &str,
    cfg: &RestoreConfig,
) -> Result<Restored, SessionError> {
    let Some(mut entry) = journal.components.get(name).cloned() else {
        return kill_strays(node, name);
    };
    let id = StepKind::Restore.on(name);
    // Nothing is stopped unless the original can be put back (or the user keeps what is there).
    if !cfg.keep_current {
        stop::can_put_back(node, &entry.how).map_err(|detail| SessionError::CannotPutBack {
            component: name.into(),
            node: node.describe(),
            detail,
        })?;
    }
    entry.state = EntryState::Restoring;
    persist::put(node, journal, entry.clone())?;
    cfg.crash.within(&id, "journal");

    let mut done = stop_debug(node, name, &entry)?;
    cfg.crash.within(&id, "killed");

    if cfg.keep_current {
        done.push(stop::keep_current(node, &entry.how).map_err(|detail| SessionError::Restore {
            component: name.into(),
            node: node.describe(),
            detail,
        })?);
        journal.components.remove(name);
        persist::save(node, journal)?;
        stop::remove_file(node, &entry.log)?;
        return Ok(Restored { component: name.into(), done });
    }
    done.push(put_original_back(node, name, &entry)?);
    cfg.crash.within(&id, "manifest");

    let back = if entry.was_running { wait_back(node, &entry, cfg.back_timeout)? } else { true };
    journal.components.remove(name);
    persist::save(node, journal)?;
    if !back {
        return Err(not_back(node, name, &entry, cfg.back_timeout));
    }
    if entry.was_running {
        done.push("the original runs again".into());
    }
    // The session's log goes once the original is back: kdbg leaves nothing but its binaries.
    stop::remove_file(node, &entry.log)?;
    Ok(Restored { component: name.into(), done })
}

/// A component the journal does not hold: kill any debug processes of it left running.
fn kill_strays(node: &dyn Node, name: &str) -> Result<Restored, SessionError> {
    let mut done = Vec::new();
    let killed = kill_debug(node, name)?;
    if !killed.is_empty() {
        done.push(format!("killed stray debug processes {killed:?}"));
    }
    Ok(Restored { component: name.into(), done })
}

/// Kills Delve and the debug build of `name` ([`undo::kill_debug`]): the pids killed.
fn kill_debug(node: &dyn Node, name: &str) -> Result<Vec<u32>, SessionError> {
    let out = undo::kill_debug(name).run(node)?;
    Ok(out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// Kills Delve and the debug build of `name` and removes Delve's socket directory: what was done.
fn stop_debug(node: &dyn Node, name: &str, entry: &Entry) -> Result<Vec<String>, SessionError> {
    let mut done = Vec::new();
    let victims = kill_debug(node, name)?;
    if !victims.is_empty() {
        done.push(format!("killed Delve and the debug build (pids {victims:?})"));
    }
    if let Some(socket) = entry.listen.socket() {
        undo::remove_socket_dir(socket).run(node)?;
        done.push(format!("removed Delve's socket directory {}", socket.rsplit_once('/').map_or(socket, |p| p.0)));
    }
    Ok(done)
}

/// Puts the original back as the journal recorded it (manifest, unit or DaemonSet spec): what
/// was done.
fn put_original_back(node: &dyn Node, name: &str, entry: &Entry) -> Result<String, SessionError> {
    stop::put_back(node, &entry.how).map_err(|detail| SessionError::Restore {
        component: name.into(),
        node: node.describe(),
        detail,
    })?;
    Ok(match &entry.how {
        journal::How::StaticPod { manifest, .. } => format!("put {manifest} back"),
        journal::How::Systemd { unit, active: true, .. } => format!("started {unit}"),
        journal::How::Systemd { unit, .. } => format!("left {unit} inactive, as it was before `kdbg debug`"),
        journal::How::DaemonSet { namespace, name, .. } => format!("put the DaemonSet {namespace}/{name}'s spec back"),
    })
}

/// The original did not run again in time: what was waited for and where its logs are.
fn not_back(node: &dyn Node, name: &str, entry: &Entry, timeout: Duration) -> SessionError {
    let logs = match &entry.how {
        journal::How::Systemd { unit, .. } => format!("journalctl -u {unit}"),
        journal::How::StaticPod { .. } | journal::How::DaemonSet { .. } => {
            "the kubelet's, and `crictl logs` of the pod's container".into()
        }
    };
    let waiting = match entry.ports.as_slice() {
        [] => "its process".to_string(),
        ports => format!("its process listening on {ports:?}, the ports the original listened on"),
    };
    SessionError::NotBack {
        component: name.into(),
        node: node.describe(),
        seconds: timeout.as_secs(),
        detail: format!("{}; waited for {waiting}\n  fix: look at its logs ({logs})", entry.how.back_phrase()),
    }
}

/// Waits until the original (not kdbg's build) runs and listens on its ports.
fn wait_back(node: &dyn Node, entry: &Entry, timeout: Duration) -> Result<bool, SessionError> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = procs::running(node, &entry.component, BIN_DIR)?;
        if !pids.is_empty() {
            let poll = procs::poll(node, &[])?;
            if entry.ports.iter().all(|p| poll.listening(*p).is_some()) {
                return Ok(true);
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests;
