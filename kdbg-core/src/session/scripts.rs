//! The node-side shell, once: the functions kdbg's node scripts are made of. `kdbg debug`'s
//! steps (`procs`, `launch`, `endpoint`) and `kdbg watch`'s relaunch (`watch::relaunch`) compose
//! their scripts from these with [`with`], so each script stays one round trip and no piece of
//! shell is written twice.

/// `alive PID`: the process exists and is not a zombie.
pub(crate) const ALIVE: &str =
    r#"alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }"#;

/// `kill_wait PID...` (needs [`ALIVE`]): SIGKILLs the pids and waits (10 s at most) until they
/// are gone; fails naming those still running.
pub(crate) const KILL_WAIT: &str = r#"kill_wait() {
  for p; do kill -9 "$p" 2>/dev/null; done
  i=0
  while :; do
    left=""
    for p; do alive "$p" && left="$left $p"; done
    [ -z "$left" ] && return 0
    [ $i -ge 500 ] && { echo "still running:$left" >&2; return 1; }
    sleep 0.02; i=$((i + 1))
  done
}"#;

/// `exes`: every process's executable, `... /proc/PID/exe -> PATH` per process.
pub(crate) const EXES: &str = r#"exes() { ls -l /proc/[0-9]*/exe 2>/dev/null; true; }"#;

/// `exe_pids BINARY` (needs [`EXES`]): the pids of the processes that run BINARY (also once it was replaced).
pub(crate) const EXE_PIDS: &str = r#"exe_pids() {
  exes | awk -v b="$1" '{ i = index($0, " -> "); x = substr($0, i + 4);
    sub(/ \(deleted\)$/, "", x); if (x == b) { split(substr($0, 1, i - 1), a, "/proc/"); split(a[2], c, "/"); print c[1] } }'
}"#;

/// `hand_over SOCKET`: Delve's socket to its directory's owner (the login user), mode 0600
/// (see `session::endpoint`).
pub(crate) const HAND_OVER: &str = r#"hand_over() { chown "$(stat -c %u:%g "${1%/*}")" "$1" && chmod 0600 "$1"; }"#;

/// `begin_log LOG WD WHY`: the log's directory, the working directory, a dated line in the log.
pub(crate) const BEGIN_LOG: &str = r#"begin_log() {
  mkdir -p "${1%/*}" && cd "$2" && echo "--- kdbg: Delve $3 $(date -u '+%Y-%m-%dT%H:%M:%SZ')" >> "$1"
}"#;

/// `start LOG CMD...`: CMD in a new session, stdin from /dev/null, output appended to LOG; prints
/// the pid that becomes CMD (the inner `sh` execs it, whether or not `setsid` forked). The
/// command line is never logged: it holds the environment's values.
pub(crate) const START: &str =
    r#"start() { log=$1; shift; setsid sh -c 'echo $$; exec "$@" </dev/null >>"$0" 2>&1' "$log" "$@" & }"#;

/// The functions `fragments` ([`EXE_PIDS`] needs [`EXES`]), then `body`.
pub(crate) fn with(fragments: &[&str], body: &str) -> String {
    let mut s = fragments.join("\n");
    s.push('\n');
    s + body
}

/// A root script and its arguments: one step of putting an original back, run by `kdbg restore`
/// through the connection and written as is into the node's own restore script
/// (`session::lease::restore_sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    /// Its name in the node's restore log (`put-back`, `start`).
    pub step: &'static str,
    pub what: String,
    pub script: String,
    pub args: Vec<String>,
}

impl Op {
    /// Runs it on `node` as root.
    pub(crate) fn run(&self, node: &dyn crate::node::Node) -> Result<String, crate::node::NodeError> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        crate::node::root_sh(node, &self.script, &args, &self.what)
    }

    /// As one command line of a node-side script: `sh -c 'SCRIPT' kdbg 'ARG'...`.
    pub(crate) fn command(&self) -> String {
        let mut argv = vec!["sh", "-c", &self.script, "kdbg"];
        argv.extend(self.args.iter().map(String::as_str));
        crate::node::sh_join(&argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fragment_defines_its_function_and_sh_parses_them() {
        let all = [ALIVE, KILL_WAIT, EXES, EXE_PIDS, HAND_OVER, BEGIN_LOG, START];
        let script = with(&all, "alive $$ && [ -n \"$(exe_pids /bin/sh)$(exes)\" ] && echo ok");
        let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    }
}
