//! Stopping the original safely: journal first, then the static pod's manifest moves out of the
//! kubelet's directory (or `systemctl stop`), then a bounded wait until the process is gone and its
//! ports are free. On timeout the manifest goes back and the node is as it was.

use crate::node::root_sh;
use std::time::{Duration, Instant};

use super::capture::Captured;
use super::journal::{Entry, EntryState, How, Journal};
use super::{persist, procs, SessionError};
use crate::crash::CrashAt;
use crate::node::{Node, Privilege};
use crate::plan::StepKind;

/// Removes the manifest and makes the removal durable (`$1` file, `$2` its directory).
const REMOVE: &str = r#"rm -f "$1" && { sync "$2" 2>/dev/null || sync; }"#;

/// Stops the original. The entry (state `Stopping`) is journaled before anything changes.
pub(crate) fn stop(
    node: &dyn Node,
    cap: &Captured,
    journal: &mut Journal,
    entry: &mut Entry,
    timeout: Duration,
    crash: &CrashAt,
) -> Result<(), SessionError> {
    let id = StepKind::Stop.on(cap.component.name);
    entry.state = EntryState::Stopping;
    persist::put(node, journal, entry.clone())?;
    crash.within(&id, "journal");
    match &cap.how {
        How::StaticPod { manifest, mode, backup, .. } => {
            let bytes = cap.manifest_bytes.as_deref().expect("static pods are captured with their manifest");
            node.write_file(backup, bytes, *mode, Privilege::Root)?;
            crash.within(&id, "backup");
            let dir = manifest.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
            root_sh(node, REMOVE, &[manifest, dir], &format!("remove {manifest}"))?;
            crash.within(&id, "moved");
        }
        How::DaemonSet { .. } => {
            crash.within(&id, "backup");
            super::daemonset::stop(node, &cap.how, cap.component.name, cap.pid)?;
            crash.within(&id, "moved");
        }
        How::Systemd { unit, .. } => {
            crash.within(&id, "backup");
            root_sh(node, "systemctl stop \"$1\"", &[unit], &format!("systemctl stop {unit}"))?;
            crash.within(&id, "moved");
        }
    }
    // Free again: what the original was seen listening on, and what its flags name (a port held
    // by a process that outlives the original must not reach the debug build).
    let mut ports = entry.ports.clone();
    ports.extend(procs::ports_from_args(cap.component, &cap.argv));
    ports.sort_unstable();
    ports.dedup();
    if let Err(waiting) = wait_stopped(node, cap.pid, &ports, timeout)? {
        let put_back = put_back(node, &cap.how).is_ok() && {
            journal.components.remove(cap.component.name);
            persist::save(node, journal).is_ok()
        };
        return Err(SessionError::StopTimeout {
            component: cap.component.name.into(),
            node: node.describe(),
            seconds: timeout.as_secs(),
            waiting,
            put_back,
        });
    }
    entry.state = EntryState::Stopped;
    persist::put(node, journal, entry.clone())?;
    Ok(())
}

/// Polls until `pid` is gone and nothing listens on `ports`; `Err(what is still there)` on timeout.
pub(crate) fn wait_stopped(
    node: &dyn Node,
    pid: Option<u32>,
    ports: &[u16],
    timeout: Duration,
) -> Result<Result<(), String>, SessionError> {
    let deadline = Instant::now() + timeout;
    let pids: Vec<u32> = pid.into_iter().collect();
    loop {
        let poll = procs::poll(node, &pids)?;
        let mut left = Vec::new();
        if let Some(p) = poll.alive.first() {
            left.push(format!("pid {p} still runs"));
        }
        for port in ports {
            if poll.listening(*port).is_some() {
                left.push(format!("port {port} is still listened on"));
            }
        }
        if left.is_empty() {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(left.join(", ")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the original can be put back, asked before anything is changed: `Err` says why not
/// and the way out (`kdbg restore --keep-current` keeps what is there now).
pub(crate) fn can_put_back(node: &dyn Node, how: &How) -> Result<(), String> {
    match how {
        How::StaticPod { manifest, sha256, backup, .. } => parked(node, manifest, sha256, backup),
        How::Systemd { .. } | How::DaemonSet { .. } => Ok(()),
    }
}

/// The original is in place or in kdbg's copy (`Ok`), else why not and the way out.
fn parked(node: &dyn Node, manifest: &str, sha256: &str, backup: &str) -> Result<(), String> {
    let sums = node.sha256s(&[manifest, backup]).map_err(|e| e.to_string())?;
    match (&sums[0], &sums[1]) {
        (Some(m), _) if m == sha256 => Ok(()),
        (Some(_), _) => Err(format!(
            "{manifest} holds other bytes than the manifest kdbg moved away (put back or edited by hand?); \
             kdbg's copy of the original is {backup}\n  fix: `kdbg restore --keep-current` keeps the manifest now in \
             place (stops Delve and the debug build, drops kdbg's copy); or move {backup} over it and run `kdbg \
             restore` to get the original back"
        )),
        (None, Some(b)) if b == sha256 => Ok(()),
        (None, b) => Err(format!(
            "neither {manifest} nor kdbg's copy {backup} holds the original (sha256 {sha256}): the copy was {}\n  \
             fix: put the manifest you want into {manifest} and run `kdbg restore --keep-current`; or put the \
             original's bytes back into {backup} and run `kdbg restore`",
            if b.is_some() { "changed" } else { "removed" }
        )),
    }
}

/// `--keep-current`: what is in place now stays; kdbg's copy of the original goes.
pub(crate) fn keep_current(node: &dyn Node, how: &How) -> Result<String, String> {
    match how {
        How::StaticPod { manifest, backup, .. } => {
            remove_backup(node, backup)?;
            Ok(format!("kept {manifest} as it is now (--keep-current) and removed kdbg's copy {backup}"))
        }
        How::Systemd { unit, .. } => Ok(format!("left {unit} as it is now (--keep-current)")),
        How::DaemonSet { namespace, name, .. } => {
            Ok(format!("left the DaemonSet {namespace}/{name} as it is now (--keep-current)"))
        }
    }
}

fn remove_backup(node: &dyn Node, backup: &str) -> Result<(), String> {
    remove_file(node, backup).map_err(|e| e.to_string())
}

/// Removes `path` on the node, and its directory too once empty: kdbg leaves nothing it does not
/// need (a backup, a session's log).
pub(crate) fn remove_file(node: &dyn Node, path: &str) -> Result<(), crate::node::NodeError> {
    let script = r#"rm -f "$1" && { rmdir "${1%/*}" 2>/dev/null; true; }"#;
    root_sh(node, script, &[path], &format!("remove {path}")).map(drop)
}

/// Puts the original back in place ([`super::undo::put_back`]: the manifest's exact bytes,
/// verified against the journaled sha256, or `systemctl start`, or the DaemonSet's spec).
/// Idempotent; the backup is removed only once the manifest is back.
pub(crate) fn put_back(node: &dyn Node, how: &How) -> Result<(), String> {
    // The op checks too, but says less: this names the way out.
    can_put_back(node, how)?;
    for op in super::undo::put_back(how)? {
        op.run(node).map_err(|e| e.to_string())?;
    }
    Ok(())
}
