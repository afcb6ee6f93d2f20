//! The node's own restore script, `/var/lib/kdbg/restore.sh`, written from the journal before
//! each journal write and run by the watchdog (`sh restore.sh WHY WAIT`).
//!
//! For each component, in the reverse of the order its session started, the ops `kdbg restore`
//! runs ([`undo::all`]), then a bounded wait (WAIT seconds; 0 at boot) until the original runs and
//! listens again. A component whose original cannot be put back (its manifest edited by hand) is
//! left as it is and named in the record; the others are put back. Only when every component is
//! back does the journal go (with the watchdog, `watchdog.sh disarm`): a run killed at any step
//! leaves the journal for the next run, which redoes only what is left (each op is idempotent).
//! `KDBG_NODE_RESTORE_KILL_AT=STEP` kills the run at a step (tests).

use super::super::journal::{Entry, Journal};
use super::super::scripts;
use super::super::undo;
use super::RECORD;
use crate::layout::BIN_DIR;
use crate::node::sh_quote;

/// Functions every restore script starts with.
const COMMON: &str = r#"step() {
  echo "kdbg-restore: $1"
  [ "${KDBG_NODE_RESTORE_KILL_AT:-}" != "$1" ] || kill -9 $$
}
# runs NAME: a process runs an executable called NAME, and not kdbg's debug build.
runs() {
  exes | awk -v n="$1" -v bin="$BIN/" '{ i = index($0, " -> "); x = substr($0, i + 4); sub(/ \(deleted\)$/, "", x)
    m = x; sub(/.*\//, "", m); if (m == n && index(x, bin) != 1) f = 1 } END { exit !f }'
}
# listening PORT...: something listens on each.
listening() {
  for p; do
    awk -v p="$(printf '%04X' "$p")" '$4 == "0A" { split($2, a, ":"); if (toupper(a[2]) == p) f = 1 } END { exit !f }' \
      /proc/net/tcp /proc/net/tcp6 2>/dev/null || return 1
  done
}
# back NAME PORT...: waits up to $wait seconds until the original runs and listens again.
back() {
  [ "$wait" -gt 0 ] || return 0
  n=$1; shift; i=0
  until runs "$n" && listening "$@"; do
    [ $i -lt $((wait * 4)) ] || { echo "kdbg-restore: $n does not run again after ${wait}s (see its logs)"; return 0; }
    sleep 0.25; i=$((i + 1))
  done
  echo "kdbg-restore: $n runs again"
}
record() {
  printf '{"at":%s,"why":"%s","restored":[%s],"failed":[%s]}\n' "$(date +%s)" "$why" "${restored#,}" "${failed#,}" \
    > "$RECORD.tmp" && mv -f "$RECORD.tmp" "$RECORD"
}"#;

/// The script for `journal`.
pub(crate) fn script(journal: &Journal) -> String {
    let mut s = String::from(
        "# kdbg: put this node back as it was before `kdbg debug`. Written by kdbg from\n\
         # /var/lib/kdbg/journal.json with each of its writes; run by /var/lib/kdbg/watchdog.sh.\n\
         # sh restore.sh WHY WAIT   (WAIT: seconds to wait for each original to run again)\n\
         set -u\nwhy=$1 wait=$2\n",
    );
    s += &format!("BIN={}\nRECORD={}\n", sh_quote(BIN_DIR), sh_quote(RECORD));
    s += "[ \"$wait\" -gt 0 ] || export KDBG_NO_BLOCK=1\nmkdir -p \"${RECORD%/*}\"\nrestored=\"\" failed=\"\"\n";
    s += &scripts::with(&[scripts::ALIVE, scripts::KILL_WAIT, scripts::EXES, scripts::EXE_PIDS], COMMON);
    s.push('\n');
    let mut entries: Vec<&Entry> = journal.components.values().collect();
    entries.sort_by_key(|e| std::cmp::Reverse((e.started_at, e.updated_at)));
    for entry in entries {
        s += &component(entry);
    }
    s += "if [ -n \"$failed\" ]; then\n  record\n  echo \"kdbg-restore: not put back: $failed\"; exit 1\nfi\n";
    s += "step journal\nrecord\nexec sh /var/lib/kdbg/watchdog.sh disarm\n";
    s
}

/// One component's part: its ops then the wait, all or nothing for the record.
fn component(entry: &Entry) -> String {
    let name = &entry.component;
    let q = sh_quote(name);
    let json = serde_json::to_string(name).expect("a string serializes");
    let ops = match undo::all(entry) {
        Ok(ops) => ops,
        Err(e) => {
            let why = format!("cannot put {name} back: {e}");
            return format!("echo {}\nfailed=\"$failed,\"{}\n", sh_quote(&why), sh_quote(&json));
        }
    };
    let mut lines = vec![format!("# {name}: {}", entry.how.back_phrase())];
    // The first op stops the debug build and prints the pids it killed.
    let kill = format!("p=$({}) && echo \"kdbg-restore: killed ${{p:-nothing}}\"", ops[0].command());
    let mut steps = vec![format!("step {}:{q} && {kill}", ops[0].step)];
    for op in &ops[1..] {
        steps.push(format!("step {}:{q} && {}", op.step, op.command()));
    }
    let ports: Vec<String> = entry.ports.iter().map(u16::to_string).collect();
    if entry.was_running {
        steps.push(format!("step back:{q} && back {q} {}", ports.join(" ")));
    }
    lines.push(format!("if {}", steps.join(" &&\n   ")));
    lines.push(format!("then restored=\"$restored,\"{}", sh_quote(&json)));
    lines
        .push(format!("else echo \"kdbg-restore: could not put {name} back\"; failed=\"$failed,\"{}", sh_quote(&json)));
    lines.push("fi\n".into());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::journal::testdata;

    #[test]
    fn the_script_of_every_journal_parses_as_sh() {
        for (name, v1, _) in testdata::ALL {
            let journal = crate::session::journal::parse(v1.as_bytes()).unwrap();
            let s = script(&journal);
            let out = std::process::Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
            assert!(out.status.success(), "{name}: {}\n{s}", String::from_utf8_lossy(&out.stderr));
            for c in journal.components.keys() {
                assert!(s.contains(&format!("step stop:{c}")), "{name}: {c}");
            }
        }
    }
}
