//! The session lease in the CLI: `--lease`, `kdbg renew`, and the lines `kdbg debug` and
//! `kdbg status` print about it (see `kdbg_core::session::lease`).

use crate::out::outln;
use anyhow::Context;
use clap::Args;
use kdbg_core::session::journal::now;
use kdbg_core::session::lease::{self, Look, NodeRestore, Standing, Watchdog};
use serde_json::{json, Value};

use crate::config::TargetArgs;

/// `--lease DURATION|none` as clap reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseArg(pub Option<std::time::Duration>);

impl Default for LeaseArg {
    fn default() -> LeaseArg {
        LeaseArg(Some(lease::DEFAULT))
    }
}

impl std::fmt::Display for LeaseArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => f.write_str(&lease::human(d.as_secs())),
            None => f.write_str("none"),
        }
    }
}

pub fn parse_lease(text: &str) -> Result<LeaseArg, String> {
    lease::parse(text).map(LeaseArg)
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  kdbg renew                                  # the default target's session: its full lease again
  kdbg renew --target kind://dev --all-nodes

While a session runs, the node puts itself back when its lease passes without a word from a
workstation (`kdbg debug --lease`, 4h by default). Every kdbg command that reaches the node renews
it, and `kdbg watch` and `kdbg trace` keep it while they run; sitting in the IDE does not.")]
pub struct RenewArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print each node's deadline as JSON (`expires_at` in Unix seconds, the lease's `seconds`).
    #[arg(long)]
    pub json: bool,
}

/// `kdbg renew`: each node's deadline pushed out by its lease's length.
pub fn renew(args: RenewArgs) -> anyhow::Result<()> {
    let nodes = args.target.nodes()?;
    let mut docs = Vec::new();
    for (_, t, node) in &nodes {
        let standing = lease::renew(&**node).with_context(|| format!("failed to renew the lease on {t}"))?;
        if args.json {
            docs.push(json!({ "node": node.describe(), "lease": standing_json(&standing) }));
            continue;
        }
        match standing.deadline {
            Some(d) => outln!(
                "renewed the session's lease on {}: the node puts itself back {} unless renewed again",
                node.describe(),
                lease::when(&d, now())
            ),
            None => outln!("no session with a lease on {} (nothing to renew)", node.describe()),
        }
    }
    if args.json {
        outln!("{}", crate::config::one_or_nodes(docs));
    }
    Ok(())
}

/// What `kdbg debug` says of the lease it took on `node`.
pub fn debug_lines(node: &str, standing: &Standing) -> String {
    let mut s = match standing.deadline {
        Some(d) => format!(
            "lease: {node} puts itself back {} unless renewed (`kdbg renew` or `kdbg status`; `kdbg watch` \
             and `kdbg trace` keep it while they run)\n",
            lease::when(&d, now())
        ),
        None if standing.watchdog.is_some() => format!("lease: none (--lease none): {node} waits for `kdbg restore`\n"),
        None => String::new(),
    };
    match standing.watchdog {
        Some(Watchdog::Systemd) => s += &format!("  a restart of {node} puts it back too (kdbg-restore.service)\n"),
        Some(Watchdog::Process) => {
            s += &format!("  {node} has no systemd: if it restarts during the session, run `kdbg restore`\n")
        }
        None => {}
    }
    s
}

/// `kdbg status`'s lines on the lease and on the node's last restore of its own.
pub fn status_lines(node: &str, look: &Look) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(d) = look.standing.deadline {
        let now = now();
        let left = d.was.map(|w| format!("{} was left; ", lease::human(w.saturating_sub(now)))).unwrap_or_default();
        let t = lease::when(&d, now);
        lines.push(format!("lease: {left}renewed: {node} puts itself back {t} unless renewed again (`kdbg renew`)"));
    }
    if let Some(r) = &look.restored {
        lines.push(restored_line(node, r));
    }
    lines
}

fn restored_line(node: &str, r: &NodeRestore) -> String {
    let at = clock(r.at);
    let mut s = format!("restored by the node at {at}: {}", r.why);
    if !r.restored.is_empty() {
        s += &format!(" (put back {})", r.restored.join(", "));
    }
    if !r.failed.is_empty() {
        s += &format!(
            "; could NOT put back {} — see {} on {node}, then `kdbg restore` (or `--keep-current`)",
            r.failed.join(", "),
            lease::LOG
        );
    } else {
        s += &format!("; log: {} on {node}", lease::LOG);
    }
    s
}

/// `2026-12-08 07:12:03 UTC`.
fn clock(unix: u64) -> String {
    let t = kdbg_core::cache::remote::artifact::rfc3339(unix);
    t.replacen('T', " ", 1).replace('Z', " UTC")
}

pub fn standing_json(s: &Standing) -> Value {
    let watchdog = s.watchdog.map(|w| match w {
        Watchdog::Systemd => "systemd",
        Watchdog::Process => "process",
    });
    match s.deadline {
        Some(d) => json!({ "expires_at": d.expires_at, "seconds": d.seconds, "watchdog": watchdog }),
        None => json!({ "expires_at": null, "seconds": null, "watchdog": watchdog }),
    }
}

pub fn restored_json(r: &Option<NodeRestore>) -> Value {
    match r {
        Some(r) => json!({ "at": r.at, "why": r.why, "restored": r.restored, "failed": r.failed }),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_as_a_sentence_with_its_time() {
        assert_eq!(clock(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(clock(1_796_703_123), "2026-12-08 04:12:03 UTC");
        let r = NodeRestore {
            at: 0,
            why: "the lease expired".into(),
            restored: vec!["kube-apiserver".into()],
            failed: vec![],
        };
        let line = restored_line("n1", &r);
        assert!(
            line.starts_with(
                "restored by the node at 1970-01-01 00:00:00 UTC: the lease expired (put back kube-apiserver)"
            ),
            "{line}"
        );
        assert_eq!(parse_lease("90m").unwrap().to_string(), "1h30m");
        assert_eq!(parse_lease("none").unwrap(), LeaseArg(None));
        assert!(parse_lease("0s").is_err() && parse_lease("4 hours").is_err() && parse_lease("5").is_err());
    }
}
