//! Starting the debug build under Delve on the node, detached from the ssh session, and waiting
//! (bounded) until Delve listens and the component serves.
//!
//! The node command is `env -i ENV… dlv exec BINARY --headless --listen=… --api-version=2
//! --accept-multiclient [--only-same-user=false] [--continue] -- ARGS…`
//! ([`LaunchSpec::command`]): exactly the captured environment, started in a new session
//! (`scripts::START`) with its output appended to the log under `/var/log/kdbg`. Ready means Delve
//! is alive and its socket (`/proc/net/unix`) or port (`/proc/net/tcp`) listens, then, with
//! `--continue`, that the program listens on its ports (a warning, not an error, when it does not).

use std::time::{Duration, Instant};

use super::listen::Listen;
use super::{procs, scripts, SessionError};
use crate::node::{Node, NodeError, Privilege};
use crate::report::Reporter;

/// Starts `$@` in a new session (`scripts::START`), output appended to `$1` (the log), cwd `$2`;
/// prints the pid that becomes Delve.
const LAUNCH: &str = r#"set -u
log=$1 wd=$2; shift 2
begin_log "$log" "$wd" starts || exit 1
start "$log" "$@""#;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaunchSpec {
    pub dlv: String,
    /// The debug build's argv (argv[0] is the binary).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    /// `unix:/var/lib/kdbg/run/<component>/dlv.sock`, `127.0.0.1:2345` (or `0.0.0.0:2345` with
    /// `--expose`).
    pub listen: Listen,
    /// `--continue`: run at once; without it the program waits at its entry for a debugger.
    pub run: bool,
    pub log: String,
    /// `(node path, path the program sees)`: bind mounts in a private mount namespace (a
    /// DaemonSet pod's files); none: Delve runs in the node's own.
    pub mounts: Vec<(String, String)>,
}

/// Bind-mounts each `source target` pair up to `--` in the private namespace, then execs the rest.
const MOUNTS: &str = r#"while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; exec "$@""#;

impl LaunchSpec {
    /// The node command: `env -i ENV... dlv exec BINARY --headless ... -- ARGS...`, behind
    /// `unshare --mount` when there are bind mounts (the same pid becomes Delve either way).
    pub(crate) fn command(&self) -> Vec<String> {
        let mut cmd = Vec::new();
        if !self.mounts.is_empty() {
            cmd.extend(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNTS, "kdbg-mounts"].map(String::from),
            );
            for (source, target) in &self.mounts {
                cmd.extend([source.clone(), target.clone()]);
            }
            cmd.push("--".into());
        }
        cmd.extend(["env".to_string(), "-i".into()]);
        cmd.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.extend([
            self.dlv.clone(),
            "exec".into(),
            self.args[0].clone(),
            "--headless".into(),
            format!("--listen={}", self.listen),
            "--api-version=2".into(),
            "--accept-multiclient".into(),
        ]);
        if let Listen::Tcp { .. } = self.listen {
            // The forwarded connection comes from the login user's sshd, not from root. Delve
            // checks the user of loopback TCP connections only: a socket needs no such flag.
            cmd.push("--only-same-user=false".into());
        }
        if self.run {
            cmd.push("--continue".into());
        }
        cmd.push("--".into());
        cmd.extend(self.args[1..].iter().cloned());
        cmd
    }
}

/// Starts Delve detached; returns its pid on the node.
pub(crate) fn spawn(node: &dyn Node, spec: &LaunchSpec) -> Result<u32, SessionError> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".into(),
        scripts::with(&[scripts::BEGIN_LOG, scripts::START], LAUNCH),
        "kdbg".into(),
        spec.log.clone(),
        spec.working_dir.clone(),
    ];
    argv.extend(spec.command());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = node.exec(&argv, Privilege::Root, &[])?;
    let pid = out.stdout_str().trim().parse().ok().filter(|_| out.success());
    pid.ok_or_else(|| {
        SessionError::Node(NodeError::Command {
            node: node.describe(),
            cmd: format!("start {}", spec.dlv),
            status: out.status,
            stderr: out.stderr_str().trim().to_string(),
        })
    })
}

/// Waits until Delve listens on its `--listen` (a TCP port, or a socket that then goes to the login
/// user, see `session::endpoint`); an error with the log's tail if it exits or times out.
pub(crate) fn wait_listening(
    node: &dyn Node,
    component: &str,
    spec: &LaunchSpec,
    pid: u32,
    timeout: Duration,
) -> Result<(), SessionError> {
    let deadline = Instant::now() + timeout;
    let endpoint = spec.listen.endpoint();
    loop {
        let poll = procs::poll(node, &[pid])?;
        let detail = if poll.alive.is_empty() {
            "Delve exited".to_string()
        } else if poll.serves(&endpoint) {
            if let Some(socket) = spec.listen.socket() {
                super::endpoint::hand_over(node, socket)?;
            }
            return Ok(());
        } else if Instant::now() >= deadline {
            format!("Delve does not listen on {} after {}s", spec.listen, timeout.as_secs())
        } else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        return Err(SessionError::Dlv {
            component: component.into(),
            node: node.describe(),
            detail,
            log: spec.log.clone(),
            tail: log_tail(node, &spec.log),
        });
    }
}

/// Waits (bounded) until the debug build listens on its ports; only warns if it does not, since
/// a program held by a breakpoint or still starting is not a failure of kdbg's.
pub(crate) fn wait_serving(
    node: &dyn Node,
    component: &str,
    spec: &LaunchSpec,
    dlv_pid: u32,
    ports: &[u16],
    timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<(), SessionError> {
    let deadline = Instant::now() + timeout;
    loop {
        let poll = procs::poll(node, &[dlv_pid])?;
        // Delve stays up when its program exits: look for the program itself.
        let program = procs::exes(node)?.iter().any(|(_, exe)| *exe == spec.args[0]);
        if poll.alive.is_empty() || !program {
            let detail = match program {
                true => "Delve exited while the program started",
                false => "the debug build exited as it started (Delve stays, the program is gone)",
            };
            return Err(SessionError::Dlv {
                component: component.into(),
                node: node.describe(),
                detail: detail.into(),
                log: spec.log.clone(),
                tail: log_tail(node, &spec.log),
            });
        }
        if ports.iter().all(|p| poll.listening(*p).is_some()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            reporter.warn(format!(
                "{component} does not listen on {ports:?} after {}s under Delve; its log ({}):\n{}",
                timeout.as_secs(),
                spec.log,
                log_tail(node, &spec.log)
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last lines of a log on the node, indented (for error messages).
pub(crate) fn log_tail(node: &dyn Node, log: &str) -> String {
    let out = node.exec(&["tail", "-n", "15", log], Privilege::Root, &[]);
    let text = out.map(|o| o.stdout_str()).unwrap_or_default();
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delve_command_line() {
        let spec = LaunchSpec {
            dlv: "/var/lib/kdbg/bin/dlv".into(),
            args: vec!["/var/lib/kdbg/bin/kube-apiserver".into(), "--secure-port=8443".into(), "--v=2".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: "/".into(),
            listen: Listen::loopback(2345),
            run: true,
            log: "/var/log/kdbg/kube-apiserver.log".into(),
            mounts: vec![],
        };
        expect_test::expect![[r#"env -i PATH=/bin /var/lib/kdbg/bin/dlv exec /var/lib/kdbg/bin/kube-apiserver --headless --listen=127.0.0.1:2345 --api-version=2 --accept-multiclient --only-same-user=false --continue -- --secure-port=8443 --v=2"#]]
            .assert_eq(&spec.command().join(" "));
        let socket = Listen::Unix { path: "/var/lib/kdbg/run/kube-apiserver/dlv.sock".into() };
        let socket = LaunchSpec { listen: socket, ..spec.clone() };
        expect_test::expect!["env -i PATH=/bin /var/lib/kdbg/bin/dlv exec /var/lib/kdbg/bin/kube-apiserver --headless --listen=unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock --api-version=2 --accept-multiclient --continue -- --secure-port=8443 --v=2"].assert_eq(&socket.command().join(" "));
        let exposed = LaunchSpec { listen: Listen::every_interface(2345), ..spec.clone() };
        let exposed = exposed.command().join(" ");
        assert!(exposed.contains(" --listen=0.0.0.0:2345 --api-version=2 --accept-multiclient --only-same-user=false "));
        let waiting = LaunchSpec { run: false, ..spec.clone() };
        assert!(!waiting.command().contains(&"--continue".to_string()));
        let mounted =
            LaunchSpec { mounts: vec![("/var/lib/kdbg/pods/p/0".into(), "/var/lib/kube-proxy".into())], ..spec };
        let cmd = mounted.command();
        assert_eq!(cmd[..4], ["unshare", "--mount", "--propagation", "private"]);
        assert_eq!(cmd[8..13], ["/var/lib/kdbg/pods/p/0", "/var/lib/kube-proxy", "--", "env", "-i"]);
    }
}
