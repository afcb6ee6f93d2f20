//! The session lease: a node that puts itself back when its kdbg is gone, or when it restarts.
//!
//! Not the node lock's heartbeat (`node_lock`: 60 s, keeps two kdbgs from changing a node at
//! once). The session lease is hours long and keeps a cluster from staying broken: while a
//! session runs, the node holds a deadline (`/var/lib/kdbg/lease`) that the workstation pushes
//! out — every journal write, `kdbg status`, `kdbg renew`, and a background renewal while
//! `kdbg watch` or `kdbg trace` runs. When the deadline passes, the node's watchdog restores the
//! node from its journal with no workstation and logs it under `/var/log/kdbg/`.
//!
//! ```text
//! journal write ──▶ arm: restore.sh (from the journal, before it) + lease + watchdog + boot unit
//!                   watchdog: a transient systemd timer (kdbg-lease.timer), else a setsid loop
//!                   boot unit: kdbg-restore.service (systemd only), before kubelet.service
//! lease passes / node restarts ──▶ watchdog.sh under the node lock ──▶ sh restore.sh
//! journal emptied (kdbg restore, or restore.sh) ──▶ disarm: all of it goes, logs stay
//! ```
//!
//! `restore.sh` is made of the same node operations `kdbg restore` runs ([`super::undo`]), each
//! idempotent, and forgets the journal only once everything is back: a restore killed at any
//! step is finished by the next tick, the next boot or `kdbg restore`.

pub(crate) mod restore_sh;

use std::time::Duration;

use serde::Deserialize;

use super::journal::{Journal, Lease};
use crate::node::{root_sh, Node, NodeError};

/// The lease `kdbg debug` takes unless told (`--lease`).
pub const DEFAULT: Duration = Duration::from_secs(4 * 3600);

/// The node-side watchdog, whole (see its header): written to `/var/lib/kdbg/watchdog.sh` and
/// run from there by the timer, the loop and the boot unit; kdbg runs `disarm` from its own copy.
const WATCHDOG: &str = include_str!("lease/watchdog.sh");

/// `$1` watchdog.sh, `$2` restore.sh, `$3` period, `$4` lease: both scripts in place (atomic),
/// then armed.
const ARM: &str = r#"d=/var/lib/kdbg
umask 077
printf '%s' "$1" > "$d/watchdog.sh.tmp" && mv -f "$d/watchdog.sh.tmp" "$d/watchdog.sh" &&
printf '%s' "$2" > "$d/restore.sh.tmp" && mv -f "$d/restore.sh.tmp" "$d/restore.sh" &&
exec sh "$d/watchdog.sh" arm "$3" "$4""#;

/// What `/var/log/kdbg/node-restore.json` says: the node's last restore of its own.
pub const RECORD: &str = "/var/log/kdbg/node-restore.json";
/// The node's log of what its watchdog did.
pub const LOG: &str = "/var/log/kdbg/node-restore.log";

/// `--lease`: `4h`, `90m`, `1h30m`, `45s`, or `none` (`Ok(None)`).
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "none" {
        return Ok(None);
    }
    let bad = || format!("`{text}` is not a lease: give a duration like 4h, 90m, 1h30m or 45s, or `none`");
    let (mut total, mut number) = (0u64, String::new());
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            'd' => 86400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(total)))
}

/// `4h`, `1h30m`, `45s`.
pub fn human(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out += &format!("{n}{unit}");
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

/// A new lease of `length` from now.
pub(crate) fn starting(length: Duration) -> Lease {
    let now = super::journal::now();
    Lease { seconds: length.as_secs(), expires_at: now + length.as_secs(), renewed_at: now }
}

/// How often the watchdog looks at the deadline: a quarter of the lease, from 1 s to 30 s.
fn period(lease: &Lease) -> u64 {
    (lease.seconds / 4).clamp(1, 30)
}

/// How the node's watchdog runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watchdog {
    /// A transient systemd timer, and a boot unit that restores after a restart.
    Systemd,
    /// A detached process on the node (no systemd): a restart is not covered.
    Process,
}

/// Before the journal is written: the node's restore script for `journal`, the lease's deadline,
/// and the watchdog and boot unit when missing. The journal's lease is renewed from now.
pub(crate) fn arm(node: &dyn Node, journal: &mut Journal) -> Result<Watchdog, NodeError> {
    let now = super::journal::now();
    let lease = match &mut journal.lease {
        Some(l) => {
            l.renewed_at = now;
            l.expires_at = now + l.seconds;
            format!("{} {}", l.expires_at, l.seconds)
        }
        None => "none".into(),
    };
    let period = journal.lease.as_ref().map_or(30, period).to_string();
    let script = restore_sh::script(journal);
    let out = root_sh(node, ARM, &[WATCHDOG, &script, &period, &lease], "arm the node's watchdog")?;
    Ok(if out.contains("kdbg-armed systemd") { Watchdog::Systemd } else { Watchdog::Process })
}

/// The session is over: the journal, the restore script, the lease, the watchdog and the boot
/// unit go (the logs stay).
pub(crate) fn disarm(node: &dyn Node) -> Result<(), NodeError> {
    root_sh(node, WATCHDOG, &["disarm"], "remove the journal and the node's watchdog").map(drop)
}

/// A lease's deadline on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Unix seconds.
    pub expires_at: u64,
    /// The lease's length.
    pub seconds: u64,
    /// When it would have passed before this renewal (Unix seconds).
    pub was: Option<u64>,
}

/// The lease and watchdog of the node's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// `None`: no lease (`--lease none`), or no session armed by this kdbg.
    pub deadline: Option<Deadline>,
    /// `None`: no session armed by this kdbg.
    pub watchdog: Option<Watchdog>,
}

/// Pushes the node's deadline out by the lease's length. Needs no lock (one file, renamed into
/// place).
pub fn renew(node: &dyn Node) -> Result<Standing, NodeError> {
    Ok(parse_standing(&root_sh(node, RENEW, &[], "renew the session's lease")?))
}

/// The node's renewal, where a session armed its watchdog (else nothing).
const RENEW: &str = "[ ! -r /var/lib/kdbg/watchdog.sh ] || sh /var/lib/kdbg/watchdog.sh renew";

fn parse_standing(out: &str) -> Standing {
    let watchdog = out.lines().find_map(|l| match l.strip_prefix("kdbg-watchdog ")? {
        "systemd" => Some(Watchdog::Systemd),
        _ => Some(Watchdog::Process),
    });
    Standing { deadline: parse_deadline(out), watchdog }
}

fn parse_deadline(out: &str) -> Option<Deadline> {
    let line = out.lines().find_map(|l| l.strip_prefix("kdbg-lease "))?;
    let mut words = line.split_whitespace().map(|w| w.parse::<u64>().ok());
    let (expires_at, seconds) = (words.next()??, words.next()??);
    Some(Deadline { expires_at, seconds, was: words.next().flatten() })
}

/// The node's last restore of its own (`/var/log/kdbg/node-restore.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeRestore {
    /// Unix seconds.
    pub at: u64,
    /// `the lease expired`, `the node restarted`.
    pub why: String,
    /// Components put back, and those it could not put back (see the log).
    pub restored: Vec<String>,
    pub failed: Vec<String>,
}

/// What `kdbg status` tells of the lease: the deadline (renewed by asking), and the node's last
/// restore of its own since the last session began.
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub standing: Standing,
    pub restored: Option<NodeRestore>,
}

/// Renews the lease (`kdbg status` reaches the node) and reads the node's last restore record.
pub fn look(node: &dyn Node) -> Result<Look, NodeError> {
    let script = format!("{RENEW}\necho '#record'; cat {RECORD} 2>/dev/null; true");
    let out = root_sh(node, &script, &[], "read the session's lease")?;
    let (lease, record) = out.split_once("#record").unwrap_or((&out, ""));
    let restored = serde_json::from_str(record.trim()).ok();
    Ok(Look { standing: parse_standing(lease), restored })
}

/// Runs `f` while a background thread renews the node's lease (`kdbg watch`, `kdbg trace`): every
/// third of the lease, at most every 10 minutes. A failed renewal is retried at the next turn.
pub fn keeping<T>(node: &dyn Node, f: impl FnOnce() -> T) -> T {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut every = Duration::from_secs(60);
            loop {
                if let Ok(Standing { deadline: Some(d), .. }) = renew(node) {
                    every = Duration::from_secs((d.seconds / 3).clamp(1, 600));
                }
                match stopped.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            }
        });
        let out = f();
        drop(stop);
        out
    })
}

/// `in 3h59m (at 07:12 UTC)`: when a deadline passes, for messages.
pub fn when(deadline: &Deadline, now: u64) -> String {
    let at = deadline.expires_at;
    let clock = format!("{:02}:{:02} UTC", at % 86400 / 3600, at % 3600 / 60);
    match at.checked_sub(now) {
        Some(left) if left > 0 => format!("in {} (at {clock})", human(left)),
        _ => format!("now (it passed at {clock})"),
    }
}

#[cfg(test)]
mod tests;
