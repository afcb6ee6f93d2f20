//! Relaunching one component's Delve under `kdbg watch`: the same arguments, environment, working
//! directory, listen address and log as the session `kdbg debug` started, on the new binary.
//!
//! The environment's values are not in the journal (only their names are), so [`capture`] reads
//! them, once, from the running Delve's `/proc/PID/environ` (`kdbg debug` starts it with
//! `env -i` and exactly the captured environment) and keeps them in memory: a later relaunch
//! works even when the previous one left Delve down. [`relaunch`] is one round trip for the
//! node's part — stop the old Delve and debug build, start Delve, wait until it listens and the
//! program serves — between two journal writes (`launching` before, `launched` with the new pid
//! after), so `kdbg restore` can undo it at any point.

use std::sync::Mutex;
use std::time::Duration;

use super::WatchError;
use crate::node::{Node, NodeError, Privilege};
use crate::session::journal::{Entry, EntryState, Journal};
use crate::session::launch::{self, LaunchSpec};
use crate::session::listen::Listen;
use crate::session::{persist, scripts, SessionError};

/// Stops the old Delve and debug build, starts Delve, waits (polling every 20 ms on the node) until
/// it listens and, with `--continue`, until the program listens on its ports. Prints `begin T`,
/// `stopped T`, `pid N`, then `dlv T` and `serving T` (T: the node's uptime), or `exited`,
/// `gone` or `timeout dlv|serve`.
/// The old processes are found by what they run (the binary, and `dlv exec BINARY`), never by a
/// remembered pid that may have been reused. Arguments: log, working dir, binary, dlv, Delve's
/// port or `unix:SOCKET`, the program's ports (`,`), run (1/0), dlv timeout, serve timeout (s),
/// then the command. A socket left by the killed Delve is removed before the new one binds it,
/// and handed to its directory's owner once it accepts (see `session::endpoint`). The functions
/// it calls (`alive`, `kill_wait`, `exe_pids`, `hand_over`, `begin_log`, `start`) are `session::scripts`'.
const RELAUNCH: &str = r#"set -u
log=$1 wd=$2 bin=$3 dlv=$4 dport=$5 ports=$6 run=$7 tdlv=$8 tserve=$9; shift 9
up() { cut -d' ' -f1 /proc/uptime; }
listening() {
  case $1 in
  unix:*) s=${1#unix:}; awk -v p="$s" '$4 == "00010000" && $8 == p { f = 1 } END { exit !f }' /proc/net/unix &&
    hand_over "$s" ;;
  *) grep -qE ":$(printf %04X "$1") [0-9A-F]+:0000 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null ;;
  esac
}
echo "begin $(up)"
victims=$(exe_pids "$bin")
for p in $(exe_pids "$dlv"); do
  case " $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) " in *" exec $bin "*) victims="$victims $p" ;; esac
done
kill_wait $victims || exit 1
echo "stopped $(up)"
case $dport in unix:*) rm -f "${dport#unix:}" ;; esac
begin_log "$log" "$wd" "restarts for kdbg watch" || exit 1
pid=$(start "$log" "$@")
echo "pid $pid"
end=$(($(date +%s) + tdlv))
until listening "$dport"; do
  alive "$pid" || { echo exited; exit 0; }
  [ "$(date +%s)" -lt "$end" ] || { echo "timeout dlv"; exit 0; }
  sleep 0.02
done
echo "dlv $(up)"
[ "$run" = 1 ] || exit 0
end=$(($(date +%s) + tserve)); i=0
while :; do
  ok=1
  for p in $(echo "$ports" | tr ',' ' '); do listening "$p" || { ok=0; break; }; done
  [ $ok = 1 ] && { echo "serving $(up)"; exit 0; }
  alive "$pid" || { echo exited; exit 0; }
  [ $((i % 25)) = 24 ] && [ -z "$(exe_pids "$bin")" ] && { echo gone; exit 0; }
  [ "$(date +%s)" -lt "$end" ] || { echo "timeout serve"; exit 0; }
  sleep 0.02; i=$((i + 1))
done"#;

/// One component under debug, as `kdbg watch` relaunches it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub component: String,
    /// How Delve runs, `listen` included.
    pub spec: LaunchSpec,
    /// The ports the program serves on.
    pub ports: Vec<u16>,
}

/// What one relaunch took, from the node's clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Relaunched {
    pub dlv_pid: u32,
    /// Stopping the old Delve and program.
    pub stop_s: f64,
    /// From starting Delve until it listens.
    pub dlv_s: f64,
    /// From Delve listening until the program serves (0 when it waits for a debugger).
    pub serve_s: f64,
    /// The program did not serve in time (it may still be starting).
    pub warning: Option<String>,
}

/// Reads how Delve runs `entry`'s component now: the journal's arguments, listen address and
/// log, and the running Delve's environment, working directory and `--continue`.
pub(crate) fn capture(node: &dyn Node, entry: &Entry) -> Result<Held, WatchError> {
    let gone = |why: String| WatchError::NoDelve { component: entry.component.clone(), node: node.describe(), why };
    let pid = match (entry.state, entry.dlv_pid) {
        (EntryState::Launched, Some(pid)) => pid,
        (state, _) => return Err(gone(format!("the journal's state is {state:?}, not Launched"))),
    };
    let read = |what: &str| node.read_file(&format!("/proc/{pid}/{what}"), Privilege::Root).map_err(SessionError::from);
    let cmdline = split_nul(&read("cmdline")?.unwrap_or_default());
    let ours = cmdline.first() == Some(&entry.dlv)
        && cmdline.get(1).map(String::as_str) == Some("exec")
        && cmdline.get(2) == Some(&entry.binary);
    if !ours {
        return Err(gone(format!("process {pid} is not `{} exec {}` (any more)", entry.dlv, entry.binary)));
    }
    let env = split_nul(&read("environ")?.unwrap_or_default())
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let cwd =
        node.exec(&["readlink", &format!("/proc/{pid}/cwd")], Privilege::Root, &[]).map_err(SessionError::from)?;
    let working_dir = Some(cwd.stdout_str().trim().to_string()).filter(|d| cwd.success() && !d.is_empty());
    let options = cmdline.iter().take_while(|a| *a != "--");
    let spec = LaunchSpec {
        dlv: entry.dlv.clone(),
        args: entry.args.clone(),
        env,
        working_dir: working_dir.unwrap_or_else(|| "/".into()),
        listen: entry.listen.clone(),
        run: options.into_iter().any(|a| a == "--continue"),
        log: entry.log.clone(),
        mounts: entry.how.bind_mounts(),
    };
    Ok(Held { component: entry.component.clone(), spec, ports: entry.ports.clone() })
}

/// Relaunches Delve on the binary now on the node, journaling before and after. Relaunches of
/// several components may run at once: they share `journal` (loaded by the caller), so no
/// write loses another's entry.
pub(crate) fn relaunch(
    node: &dyn Node,
    journal: &Mutex<Journal>,
    held: &Held,
    dlv_timeout: Duration,
    serve_timeout: Duration,
) -> Result<Relaunched, WatchError> {
    let name = &held.component;
    let Some(mut entry) = journal.lock().unwrap().components.get(name).cloned() else {
        return Err(WatchError::NotUnderDebug { component: name.clone(), node: node.describe() });
    };
    persist::launching(node, journal, &mut entry)?;
    let (marks, outcome) = run_script(node, held, dlv_timeout, serve_timeout)?;
    let pid = delve_started(node, held, &marks, &outcome, dlv_timeout)?;
    persist::launched(node, journal, &mut entry, pid)?;
    let warning = program_outcome(node, held, &outcome, serve_timeout)?;
    Ok(Relaunched { warning, ..stages(pid, &marks) })
}

/// The arguments of [`RELAUNCH`], in its order.
fn script_args(held: &Held, dlv_timeout: Duration, serve_timeout: Duration) -> Vec<String> {
    let spec = &held.spec;
    let ports: Vec<String> = held.ports.iter().map(u16::to_string).collect();
    let mut argv: Vec<String> = vec!["sh".into(), "-s".into(), "--".into()];
    argv.extend([spec.log.clone(), spec.working_dir.clone(), spec.args[0].clone(), spec.dlv.clone()]);
    argv.extend([delve_port(&spec.listen), ports.join(","), u8::from(spec.run).to_string()]);
    argv.extend([dlv_timeout.as_secs().max(1).to_string(), serve_timeout.as_secs().max(1).to_string()]);
    argv.extend(spec.command());
    argv
}

/// Runs [`RELAUNCH`] on the node as root: the marks it printed and its last word.
fn run_script(
    node: &dyn Node,
    held: &Held,
    dlv_timeout: Duration,
    serve_timeout: Duration,
) -> Result<(Marks, String), WatchError> {
    let argv = script_args(held, dlv_timeout, serve_timeout);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let f = [
        scripts::ALIVE,
        scripts::KILL_WAIT,
        scripts::EXES,
        scripts::EXE_PIDS,
        scripts::HAND_OVER,
        scripts::BEGIN_LOG,
        scripts::START,
    ];
    let script = scripts::with(&f, RELAUNCH);
    let out = node.exec(&argv, Privilege::Root, script.as_bytes()).map_err(SessionError::from)?;
    if !out.success() {
        let cmd = format!("relaunch {}", held.spec.dlv);
        let e = NodeError::Command { node: node.describe(), cmd, status: out.status, stderr: out.stderr_str() };
        return Err(SessionError::from(e).into());
    }
    Ok(parse(&out.stdout_str()))
}

/// Delve's pid once the script saw it start and listen; the error (with Delve's log) when it
/// did not.
fn delve_started(
    node: &dyn Node,
    held: &Held,
    marks: &Marks,
    outcome: &str,
    dlv_timeout: Duration,
) -> Result<u32, WatchError> {
    let pid = marks.pid.ok_or_else(|| dlv_failed(node, held, "Delve did not start".into()))?;
    match outcome {
        "exited" if marks.dlv.is_none() => Err(dlv_failed(node, held, "Delve exited".into())),
        "timeout dlv" => {
            let detail = format!("Delve does not listen on {} after {}s", held.spec.listen, dlv_timeout.as_secs());
            Err(dlv_failed(node, held, detail))
        }
        _ => Ok(pid),
    }
}

/// What became of the program under a listening Delve: an error when it (or Delve) exited, a
/// warning when it did not serve in time.
fn program_outcome(
    node: &dyn Node,
    held: &Held,
    outcome: &str,
    serve_timeout: Duration,
) -> Result<Option<String>, WatchError> {
    let spec = &held.spec;
    match outcome {
        "exited" => Err(dlv_failed(node, held, "Delve exited while the program started".into())),
        "gone" => Err(dlv_failed(
            node,
            held,
            "the debug build exited as it started (Delve stays, the program is gone)".into(),
        )),
        "timeout serve" => Ok(Some(format!(
            "{} does not listen on {:?} after {}s under Delve; its log ({}):\n{}",
            held.component,
            held.ports,
            serve_timeout.as_secs(),
            spec.log,
            launch::log_tail(node, &spec.log)
        ))),
        _ => Ok(None),
    }
}

/// How long each stage took on the node's clock, from the script's marks.
fn stages(dlv_pid: u32, marks: &Marks) -> Relaunched {
    let span = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(0.0, |(a, b)| (b - a).max(0.0));
    Relaunched {
        dlv_pid,
        stop_s: span(marks.begin, marks.stopped),
        dlv_s: span(marks.stopped, marks.dlv),
        serve_s: span(marks.dlv, marks.serving),
        warning: None,
    }
}

/// Delve failed for `held`'s component: `detail` and the tail of its log.
fn dlv_failed(node: &dyn Node, held: &Held, detail: String) -> WatchError {
    WatchError::Session(SessionError::Dlv {
        component: held.component.clone(),
        node: node.describe(),
        detail,
        log: held.spec.log.clone(),
        tail: launch::log_tail(node, &held.spec.log),
    })
}

/// The script's `dport`: Delve's TCP port, or `unix:SOCKET`.
fn delve_port(listen: &Listen) -> String {
    match listen {
        Listen::Tcp { port, .. } => port.to_string(),
        Listen::Unix { .. } => listen.to_string(),
    }
}

/// The marks the relaunch script printed, and its last word.
#[derive(Debug, Default, PartialEq)]
struct Marks {
    begin: Option<f64>,
    stopped: Option<f64>,
    pid: Option<u32>,
    dlv: Option<f64>,
    serving: Option<f64>,
}

fn parse(text: &str) -> (Marks, String) {
    let mut m = Marks::default();
    let mut last = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (word, value) = line.split_once(' ').unwrap_or((line, ""));
        let t = value.parse().ok();
        match word {
            "begin" => m.begin = t,
            "stopped" => m.stopped = t,
            "pid" => m.pid = value.parse().ok(),
            "dlv" => m.dlv = t,
            "serving" => m.serving = t,
            _ => {}
        }
        last = line.to_string();
    }
    (m, last)
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_marks_give_each_stage() {
        let (m, last) = parse("begin 100.10\nstopped 100.15\npid 4242\ndlv 100.65\nserving 101.05\n");
        assert_eq!(m.pid, Some(4242));
        assert_eq!((m.begin, m.stopped, m.dlv, m.serving), (Some(100.10), Some(100.15), Some(100.65), Some(101.05)));
        assert_eq!(last, "serving 101.05");
        let (m, last) = parse("begin 1\nstopped 1\npid 7\ntimeout dlv\n");
        assert_eq!((m.dlv, last.as_str()), (None, "timeout dlv"));
    }

    #[test]
    fn the_script_waits_for_delves_port_or_socket() {
        assert_eq!(delve_port(&Listen::every_interface(2349)), "2349");
        assert_eq!(delve_port(&Listen::loopback(2345)), "2345");
        let socket = Listen::Unix { path: "/var/lib/kdbg/run/kubelet/dlv.sock".into() };
        assert_eq!(delve_port(&socket), "unix:/var/lib/kdbg/run/kubelet/dlv.sock");
    }

    #[test]
    fn proc_files_split_on_nul() {
        assert_eq!(split_nul(b"PATH=/bin\0A=b=c\0"), ["PATH=/bin", "A=b=c"]);
        assert!(split_nul(b"").is_empty());
    }
}
