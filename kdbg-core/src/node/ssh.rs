//! The ssh transport: the system OpenSSH client, so `~/.ssh/config`, agents and ProxyJump work.
//!
//! One master connection per run (`ControlMaster`, socket in a private 0700 temp dir, started
//! with `-N -f` and `ControlPersist` so it outlives no run by more than a minute); every node
//! command is a quick mux client on it. `BatchMode=yes` and `ConnectTimeout` make every failure
//! an error within seconds instead of a prompt. Options given by the user come first on the
//! command line, so they win over kdbg's (ssh keeps the first value of an option).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use camino::{Utf8Path, Utf8PathBuf};

use super::errors::{ssh_failure, Fixes};
use super::shell::{ShellNode, Transport};
use super::tunnel::{free_port, ProcessTunnel};
use super::{sh_join, Endpoint, NodeError, NodeOutput, Privilege, Tunnel, CONNECT_TIMEOUT};
use crate::host::Cmd;

/// Where and how to log in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    /// Login user; `None` leaves it to `~/.ssh/config` (then sudo is used for root commands).
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// `-i FILE` (with `IdentitiesOnly=yes`, so an agent's other keys are not tried first).
    pub identity: Option<Utf8PathBuf>,
    /// Extra `-o` options, e.g. `UserKnownHostsFile=/path`.
    pub options: Vec<String>,
}

impl SshConfig {
    /// `user@host`, or `host`.
    pub(crate) fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The arguments every ssh invocation for this node shares (without the control socket).
    pub(crate) fn common_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for o in &self.options {
            args.extend(["-o".to_string(), o.clone()]);
        }
        if let Some(id) = &self.identity {
            args.extend(["-i".into(), id.to_string(), "-o".into(), "IdentitiesOnly=yes".into()]);
        }
        for o in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
            "ServerAliveInterval=5".into(),
            "ServerAliveCountMax=3".into(),
            "LogLevel=ERROR".into(),
        ] {
            args.extend(["-o".to_string(), o]);
        }
        if let Some(p) = self.port {
            args.extend(["-p".to_string(), p.to_string()]);
        }
        args
    }

    fn fixes(&self) -> Fixes {
        let p = self.port.map(|p| format!("-p {p} ")).unwrap_or_default();
        let (host, dest) = (&self.host, self.destination());
        Fixes {
            unreachable: format!(
                "check that {host} is up and sshd listens on port {} (try `ssh {p}{dest} true`); behind a bastion, set ProxyJump for it in ~/.ssh/config",
                self.port.unwrap_or(22)
            ),
            auth: format!(
                "pass the key that logs in to {dest} with --identity FILE (or load it with ssh-add), and check the node's ~/.ssh/authorized_keys; try `ssh {p}{dest} true`"
            ),
            host_key: format!(
                "verify the node's host key fingerprint, then record it: `ssh-keyscan {p}{host} >> ~/.ssh/known_hosts` (after a node was recreated, first `ssh-keygen -R {host}`); or pass --ssh-option StrictHostKeyChecking=accept-new"
            ),
        }
    }
}

/// Runs node commands as mux clients of one master connection.
pub struct SshTransport {
    config: SshConfig,
    /// How messages name the node (a minikube profile's transport says so).
    name: String,
    fixes: Fixes,
    dir: Utf8PathBuf,
    master: Mutex<()>,
}

pub(crate) type SshNode = ShellNode<SshTransport>;

/// An ssh node; nothing connects until the first command.
pub fn node(config: SshConfig) -> Result<SshNode, NodeError> {
    let name = config.destination();
    let fixes = config.fixes();
    Ok(ShellNode::new(SshTransport::new(config, name, fixes)?))
}

impl SshTransport {
    pub(crate) fn new(config: SshConfig, name: String, fixes: Fixes) -> Result<SshTransport, NodeError> {
        sweep_stale_dirs();
        static N: AtomicU32 = AtomicU32::new(0);
        let tmp = Utf8PathBuf::from_path_buf(std::env::temp_dir()).unwrap_or_else(|_| "/tmp".into());
        let dir = tmp.join(format!("kdbg-ssh.{}.{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| NodeError::other(name.clone(), format!("create the ssh control directory {dir}"), e))?;
        Ok(SshTransport { config, name, fixes, dir, master: Mutex::new(()) })
    }

    fn socket(&self) -> Utf8PathBuf {
        self.dir.join("m")
    }

    fn ssh(&self) -> Cmd {
        Cmd::new("ssh")
            .args(self.config.common_args())
            .args(["-o".to_string(), format!("ControlPath={}", self.socket())])
    }

    /// The command that starts the master: backgrounds itself once logged in.
    pub(crate) fn master_command(&self) -> Cmd {
        self.ssh()
            .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=60", "-N", "-f"])
            .arg(self.config.destination())
    }

    fn needs_sudo(&self) -> bool {
        self.config.user.as_deref() != Some("root")
    }
}

impl Transport for SshTransport {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn command(&self, argv: &[&str], privilege: Privilege) -> Cmd {
        let mut words = Vec::new();
        if privilege == Privilege::Root && self.needs_sudo() {
            words.extend(["sudo", "-n", "--"]);
        }
        words.extend_from_slice(argv);
        self.ssh().args(["-o", "ControlMaster=no", "-T"]).arg(self.config.destination()).arg(sh_join(&words))
    }

    fn connect(&self) -> Result<(), NodeError> {
        let _guard = self.master.lock().unwrap();
        if self.socket().exists() {
            return Ok(());
        }
        let log_path = self.dir.join("master.log");
        let err = |what: &str, detail: String| NodeError::Other { node: self.name.clone(), what: what.into(), detail };
        let log = std::fs::File::create(&log_path).map_err(|e| err("create the ssh log", e.to_string()))?;
        use std::process::Stdio;
        let mut child = self
            .master_command()
            .spawn_with(Stdio::null(), Stdio::null(), Stdio::from(log))
            .map_err(|e| err("run ssh", e.to_string()))?;
        let status = child.wait().map_err(|e| err("run ssh", e.to_string()))?;
        if status.success() {
            return Ok(());
        }
        let said = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(ssh_failure(&self.name, &said, &self.fixes).unwrap_or_else(|| NodeError::Unreachable {
            node: self.name.clone(),
            detail: format!("ssh exited with {status}: {}", said.trim()),
            fix: self.fixes.unreachable.clone(),
        }))
    }

    fn transport_failure(&self, out: &NodeOutput) -> Option<NodeError> {
        (out.status == 255).then(|| ssh_failure(&self.name, &out.stderr_str(), &self.fixes)).flatten()
    }

    fn fixes(&self) -> Fixes {
        self.fixes.clone()
    }

    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        let err = |detail: String| NodeError::Other {
            node: self.name.clone(),
            what: format!("forward localhost:{local_port} to the node's {to}"),
            detail,
        };
        let port = match local_port {
            0 => free_port().map_err(|e| err(e.to_string()))?,
            p => p,
        };
        let log_path = self.dir.join(format!("forward-{port}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| err(e.to_string()))?;
        use std::process::Stdio;
        let child = self
            .forward_command(port, to)
            .spawn_with(Stdio::null(), Stdio::null(), Stdio::from(log))
            .map_err(|e| err(e.to_string()))?;
        let tunnel = ProcessTunnel::start(child, port, log_path.as_std_path()).map_err(err)?;
        Ok(Box::new(tunnel))
    }
}

impl SshTransport {
    /// `ssh -N -L 127.0.0.1:PORT:TARGET`: TARGET is the node's `127.0.0.1:P`, or a unix socket's
    /// path (OpenSSH's streamlocal forward: sshd connects to it as the login user).
    pub(crate) fn forward_command(&self, port: u16, to: &Endpoint) -> Cmd {
        Cmd::new("ssh")
            .args(self.config.common_args())
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ExitOnForwardFailure=yes", "-N", "-L"])
            .arg(format!("127.0.0.1:{port}:{}", to.ssh_target()))
            .arg(self.config.destination())
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        close_master(&self.dir);
    }
}

/// Asks the master in `dir` (if any) to exit, then removes `dir`.
fn close_master(dir: &Utf8Path) {
    let socket = dir.join("m");
    if socket.exists() {
        let _ = Cmd::new("ssh")
            .args(["-o".to_string(), format!("ControlPath={socket}"), "-O".into(), "exit".into(), "kdbg".into()])
            .output();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Control directories of kdbg processes that were killed: close their masters, remove them.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("kdbg-ssh.").and_then(|r| r.split('.').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone =
            unsafe { libc::kill(pid, 0) } == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            if let Ok(dir) = Utf8PathBuf::from_path_buf(entry.path()) {
                close_master(&dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_mux_clients_with_sudo_for_root() {
        let config = SshConfig {
            user: Some("docker".into()),
            host: "192.168.49.2".into(),
            port: Some(2222),
            identity: Some("/k/id_rsa".into()),
            options: vec!["UserKnownHostsFile=/dev/null".into()],
        };
        let transport = SshTransport::new(config.clone(), config.destination(), config.fixes()).unwrap();
        let dir = transport.dir.clone();
        let line = transport.command(&["cat", "/etc/kubernetes/manifests/a b.yaml"], Privilege::Root).display();
        let expected = format!(
            "ssh -o UserKnownHostsFile=/dev/null -i /k/id_rsa -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o LogLevel=ERROR -p 2222 -o ControlPath={dir}/m -o ControlMaster=no -T docker@192.168.49.2 'sudo -n -- cat '\\''/etc/kubernetes/manifests/a b.yaml'\\'''"
        );
        assert_eq!(line, expected);
        assert!(transport
            .master_command()
            .display()
            .ends_with("-o ControlMaster=yes -o ControlPersist=60 -N -f docker@192.168.49.2"));
        let root =
            SshTransport::new(SshConfig { user: Some("root".into()), ..config.clone() }, "r".into(), Fixes::default())
                .unwrap();
        assert!(root.command(&["id"], Privilege::Root).display().ends_with("root@192.168.49.2 id"));
        let sock = Endpoint::Socket("/var/lib/kdbg/run/kube-apiserver/dlv.sock".into());
        expect_test::expect!["ssh -o UserKnownHostsFile=/dev/null -i /k/id_rsa -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o LogLevel=ERROR -p 2222 -o ControlMaster=no -o ControlPath=none -o ExitOnForwardFailure=yes -N -L 127.0.0.1:2345:/var/lib/kdbg/run/kube-apiserver/dlv.sock docker@192.168.49.2"].assert_eq(&transport.forward_command(2345, &sock).display());
        let tcp = transport.forward_command(2345, &Endpoint::Loopback(2346)).display();
        assert!(tcp.contains(" -L 127.0.0.1:2345:127.0.0.1:2346 "), "{tcp}");
        drop(transport);
        assert!(!dir.exists(), "the control directory is removed");
    }
}
