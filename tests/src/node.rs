//! [`TestNode`]: bringing a node up, using it, and tearing it down on drop.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::layout::{self, validate_name, Layout};
use crate::setup::{self, NodeInfo};
use crate::sys::{self, cmd, output_text, start_time, wait_for};
use crate::{net, teardown};

/// How to bring a node up.
#[derive(Clone, Debug)]
pub struct TestNodeConfig {
    /// Node name: netns `kdbg-NAME`, state dir `/tmp/kdbg-testnode-NAME`.
    pub name: String,
    /// Hostname inside the node (default: the name).
    pub hostname: Option<String>,
    /// The `kdbg-testnode` binary (default: `$KDBG_TESTNODE_BIN`, else next to
    /// the current executable or its parent directory, as cargo lays them out).
    pub bin: Option<PathBuf>,
    /// Leave the node running when this process exits (`kdbg-testnode up`).
    pub detached: bool,
    /// How long to wait for `ssh docker@IP sudo -n true` to succeed.
    pub ready_timeout: Duration,
}

impl TestNodeConfig {
    /// A node called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), hostname: None, bin: None, detached: false, ready_timeout: Duration::from_secs(10) }
    }

    /// A node whose name is `prefix-PID-N`: unique across threads and processes.
    pub fn unique(prefix: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self::new(format!("{prefix}-{}-{n}", std::process::id()))
    }

    /// Uses this `kdbg-testnode` binary (in integration tests:
    /// `env!("CARGO_BIN_EXE_kdbg-testnode")`).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = Some(bin.into());
        self
    }

    /// Sets the hostname inside the node.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    fn find_bin(&self) -> Result<PathBuf> {
        if let Some(bin) = self.bin.clone().or_else(|| std::env::var_os("KDBG_TESTNODE_BIN").map(PathBuf::from)) {
            return Ok(bin);
        }
        let exe = std::env::current_exe()?;
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join("kdbg-testnode"))
            .find(|p| p.is_file())
            .context("cannot find the kdbg-testnode binary: set TestNodeConfig::bin or $KDBG_TESTNODE_BIN")
    }
}

/// A minikube-like node on this host: its own network namespace and IP, mount
/// namespace (its own `/etc/kubernetes`, `/var/lib/minikube`, `/home/docker`,
/// ...), pid namespace and hostname; sshd with user `docker` and passwordless
/// sudo; a static-pod runner in place of the kubelet. Dropping it tears it down.
pub struct TestNode {
    info: NodeInfo,
    layout: Layout,
    /// `ip netns exec ... unshare ...`: our child, the parent of node-init.
    init: Option<Child>,
    /// node-init shuts the node down when this pipe closes (we died).
    _lifeline: Option<ChildStdin>,
    pub(crate) tmpfs: std::sync::Mutex<Vec<PathBuf>>,
    done: bool,
}

impl TestNode {
    /// Brings a node up and waits until `ssh docker@IP sudo -n true` works.
    pub fn up(config: TestNodeConfig) -> Result<TestNode> {
        sys::preflight()?;
        validate_name(&config.name)?;
        let bin = config.find_bin()?;
        teardown::sweep_stale();
        let name = config.name.clone();
        let layout = Layout::for_name(&name);
        if let Ok(info) = NodeInfo::load(&layout) {
            if !teardown::is_stale(&info) {
                bail!("test node {name} is already up (`kdbg-testnode down --name {name}`)");
            }
        }
        teardown::by_name(&name)?; // leftovers of an earlier run
        let mut node = TestNode {
            info: NodeInfo::new(&config.name, config.hostname.as_deref(), !config.detached, &layout),
            layout,
            init: None,
            _lifeline: None,
            tmpfs: Default::default(),
            done: false,
        };
        match node.start(&config, &bin) {
            Ok(()) => Ok(node),
            Err(e) => {
                let logs = node.logs();
                Err(e.context(format!("test node {name} did not come up; its logs:\n{logs}")))
            }
        }
    }

    fn start(&mut self, config: &TestNodeConfig, bin: &Path) -> Result<()> {
        let net = net::create(&config.name)?;
        let info = &mut self.info;
        info.index = net.index;
        info.ip = net.ip;
        info.host_ip = net.host_ip;
        info.host_if = net.host_if;
        info.ssh_target = format!("ssh://{}@{}", layout::USER, net.ip);
        std::fs::create_dir_all(self.layout.dir())?;
        info.save(&self.layout)?;
        setup::prepare(&self.layout, info)?;
        info.save(&self.layout)?;

        let log = std::fs::File::create(self.layout.init_log())?;
        let mut command = cmd("ip");
        command
            .args(["netns", "exec", &info.netns])
            .arg(sys::tool("unshare"))
            .args(["--mount", "--pid", "--uts", "--fork", "--kill-child", "--"])
            .arg(bin)
            .arg("node-init")
            .arg("--state")
            .arg(self.layout.dir())
            .stdout(log.try_clone()?)
            .stderr(log);
        if config.detached {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                command.pre_exec(|| (libc::setsid() != -1).then_some(()).ok_or_else(std::io::Error::last_os_error))
            };
            command.stdin(Stdio::null());
        } else {
            use std::os::unix::process::CommandExt;
            command.arg("--watch-stdin").stdin(Stdio::piped()).process_group(0);
        }
        let mut child = command.spawn().context("start node-init")?;
        self._lifeline = child.stdin.take();
        let unshare_pid = child.id();
        self.init = Some(child);

        let pid_file = self.layout.init_pid();
        let init_pid = wait_for(Duration::from_secs(5), Duration::from_millis(10), || {
            let pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok());
            match pid {
                Some(pid) => Some(Ok(pid)),
                None if !sys::is_alive(unshare_pid) => Some(Err(anyhow::anyhow!("node-init exited"))),
                None => None,
            }
        })
        .context("node-init did not write its pid within 5s")??;
        info.init_pid = Some(init_pid);
        info.init_start = start_time(init_pid);
        info.save(&self.layout)?;
        self.wait_ready(config.ready_timeout)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ssh("sudo -n true")?;
            if out.status.success() {
                return Ok(());
            }
            let init_alive = self.info.init_pid.is_some_and(sys::is_alive);
            if !init_alive || Instant::now() >= deadline {
                bail!(
                    "ssh {} 'sudo -n true' did not succeed within {timeout:?} (node-init {}): {}",
                    self.info.ssh_target,
                    if init_alive { "alive" } else { "died" },
                    output_text(&out)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Keeps the node running after this value and this process are gone (for
    /// `kdbg-testnode up`); only `down` removes it then.
    pub fn detach(mut self) -> NodeInfo {
        self.done = true;
        self.info.clone()
    }

    /// Tears the node down now, reporting errors (dropping does the same
    /// silently, printing errors to stderr).
    pub fn down(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        self.done = true;
        self._lifeline = None;
        let result = teardown::by_name(&self.info.name);
        if let Some(mut child) = self.init.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        result
    }

    /// Everything known about the node (also what `up --json` prints).
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }
    /// The node's network namespace (`kdbg-NAME`).
    pub fn netns(&self) -> &str {
        &self.info.netns
    }
    /// The node's IP (10.213.N.2).
    pub fn ip(&self) -> Ipv4Addr {
        self.info.ip
    }
    /// The host's IP on the node's veth link (10.213.N.1).
    pub fn host_ip(&self) -> Ipv4Addr {
        self.info.host_ip
    }
    /// The login user, `docker`.
    pub fn user(&self) -> &str {
        &self.info.user
    }
    /// The private key that logs in as `docker`.
    pub fn identity(&self) -> &Path {
        &self.info.identity
    }
    /// A known_hosts file with the node's host key.
    pub fn known_hosts(&self) -> &Path {
        &self.info.known_hosts
    }
    /// An ssh client config with `Host kdbg-NAME IP` (user, key, known_hosts).
    pub fn ssh_config(&self) -> &Path {
        &self.info.ssh_config
    }
    /// `ssh://docker@IP`, a kdbg target.
    pub fn ssh_target(&self) -> String {
        self.info.ssh_target.clone()
    }
    /// ssh options for this node: `-i KEY -o UserKnownHostsFile=... -o
    /// StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes ...`.
    pub fn ssh_args(&self) -> Vec<String> {
        self.info.ssh_args()
    }
    /// The node's state directory on the host.
    pub fn state_dir(&self) -> &Path {
        self.layout.dir()
    }
    /// Host directory that holds the node's own directories: `root()/etc/kubernetes`
    /// is the node's `/etc/kubernetes` (also `var/lib/minikube`, `var/lib/kdbg`,
    /// `var/lib/kubelet`, `var/log`, `home/docker`, `run/sshd`, `etc/sudoers.d`).
    pub fn root(&self) -> &Path {
        &self.info.root
    }
    /// Host path of a node path under one of the node's own directories
    /// ([`layout::NODE_DIRS`]: `/etc/kubernetes`, `/var/lib/minikube`,
    /// `/var/lib/kdbg`, `/var/log`, `/home/docker`, ...), e.g.
    /// `host_path("/etc/kubernetes/manifests")`. Panics for any other path: the
    /// rest of the node's filesystem has no host-side view (use [`exec`](Self::exec)).
    pub fn host_path(&self, node_path: impl AsRef<Path>) -> PathBuf {
        let node_path = node_path.as_ref();
        assert!(
            layout::NODE_DIRS.iter().any(|dir| node_path.starts_with(dir)),
            "{} is not under one of the node's own directories {:?}",
            node_path.display(),
            layout::NODE_DIRS
        );
        self.layout.host_path(node_path)
    }
    /// The node's static pod manifests directory, as a host path.
    pub fn manifests_dir(&self) -> PathBuf {
        self.host_path(layout::MANIFESTS)
    }
    /// node-init's pid on the host (pid 1 in the node).
    pub fn init_pid(&self) -> u32 {
        self.info.init_pid.unwrap_or(0)
    }

    /// A command that runs `program` inside the node (its net, mount, pid and UTS
    /// namespaces, cwd `/`, as root) via `nsenter`. The spawned child is
    /// `nsenter`, which waits for `program`: to stop a long-running one, kill it
    /// inside the node (`sh("kill PID")`) — killing `nsenter` orphans it to the
    /// host's reaper, and teardown then waits until that reaper collects it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        nsenter(self.init_pid(), program)
    }

    /// Runs `argv` inside the node and returns its output, whatever its status.
    pub fn exec<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv = argv.into_iter();
        let program = argv.next().context("exec: empty command")?;
        let mut command = self.command(program);
        command.args(argv).stdin(Stdio::null());
        command.output().with_context(|| format!("run {}", sys::describe(&command)))
    }

    /// Runs a shell script inside the node; its stdout if it succeeds.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec(["sh", "-c", script])?;
        if !out.status.success() {
            bail!("in node {}: sh -c {script:?}: {}", self.name(), output_text(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An `ssh` command with [`ssh_args`](Self::ssh_args) and `docker@IP`; add the
    /// remote command.
    pub fn ssh_command(&self) -> Command {
        let mut command = cmd("ssh");
        command.args(self.ssh_args()).arg(format!("{}@{}", layout::USER, self.ip())).stdin(Stdio::null());
        command
    }

    /// Runs `remote` over ssh as `docker`; its output, whatever its status.
    pub fn ssh(&self, remote: &str) -> Result<Output> {
        self.ssh_command().arg(remote).output().context("run ssh")
    }

    /// node-init's, sshd's and the runner's logs (for failure messages).
    pub fn logs(&self) -> String {
        let layout = &self.layout;
        [layout.init_log(), layout.sshd_log(), layout.runner_log()]
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                format!("== {} ==\n{}", p.display(), text.trim_end())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.teardown() {
                eprintln!("kdbg-testnode: teardown of {} failed: {e:#}", self.info.name);
            }
        }
    }
}

/// `nsenter` into the namespaces of node-init `init_pid` (net, mount, pid, UTS;
/// cwd `/`), running `program`.
pub fn nsenter(init_pid: u32, program: impl AsRef<OsStr>) -> Command {
    let mut command = cmd("nsenter");
    command.arg("-t").arg(init_pid.to_string()).args(["-n", "-m", "-p", "-u", "--wd=/", "--"]).arg(program);
    command
}
