//! A real linux/arm64 test node: Debian 12's arm64 kernel and an initramfs made of Debian arm64
//! packages, booted under `qemu-system-aarch64` (software emulation), reached over ssh through a
//! forwarded loopback port.
//!
//! The image (kernel, initramfs, the qemu to run them, the node's ssh key, the arm64 Delve) is
//! built by `cargo xtask e2e arm64` into a cache (`/var/cache/kdbg-arm64`, see
//! `xtask/src/arm64.rs`), which records it in `image.json`; [`Arm64Image::from_cache`] reads it.
//! The node is minikube-shaped like the namespace node ([`crate::TestNode`]): user `docker` with
//! passwordless sudo, kubeadm's paths (`/etc/kubernetes/manifests`, `/var/lib/kdbg`), and a
//! static-pod runner (a busybox script) that runs every non-hidden file of the manifests
//! directory the way the kubelet does, output in `/var/log/pods/<file>.log`.
//!
//! ```no_run
//! use kdbg_tests::arm64::{Arm64Image, Arm64Node};
//! let image = Arm64Image::from_cache(&Arm64Image::default_cache()).unwrap();
//! let node = Arm64Node::boot(&image).unwrap();
//! assert_eq!(node.ssh("uname -m").unwrap().trim(), "aarch64");
//! drop(node); // kills qemu, removes the node's temp files
//! ```
//!
//! Facts this rests on (timings, pitfalls) are in `shared/TESTNODE.md`, "An arm64 node under qemu".

mod snapshot;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use snapshot::Snapshot;

/// The node's address on qemu's user network; the host is `10.0.2.2` from inside.
pub const NODE_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);
/// The node's Delve, from Debian's arm64 `delve` package.
pub const NODE_DLV: &str = "/usr/bin/dlv";

/// Everything a boot needs, as the cache holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Arm64Image {
    /// `qemu-system-aarch64`, unpacked from Debian's `.deb`s.
    pub qemu: PathBuf,
    /// `LD_LIBRARY_PATH` for it (its shared libraries, unpacked beside it).
    pub qemu_lib_path: String,
    /// Its data directory (`-L`).
    pub qemu_data: PathBuf,
    /// Debian's arm64 kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The node's root filesystem as an uncompressed newc cpio.
    pub initrd: PathBuf,
    /// The private key whose public half is the `docker` user's `authorized_keys`.
    pub identity: PathBuf,
    /// The node's ssh host key (`ssh-ed25519 AAAA...`), for a known_hosts line.
    pub host_key: String,
    /// Debian's arm64 Delve (`/usr/bin/dlv` of the arm64 `.deb`), on the host: kdbg's
    /// `--dlv linux/arm64=PATH`.
    pub dlv: PathBuf,
    /// The Debian packages the initramfs was made of, `name=version`.
    pub packages: Vec<String>,
}

impl Arm64Image {
    /// `$KDBG_ARM64_CACHE`, else `/var/cache/kdbg-arm64`.
    pub fn default_cache() -> PathBuf {
        std::env::var_os("KDBG_ARM64_CACHE").map_or_else(|| PathBuf::from("/var/cache/kdbg-arm64"), PathBuf::from)
    }

    /// The image recorded in `<cache>/image.json`.
    pub fn from_cache(cache: &Path) -> Result<Arm64Image> {
        let path = cache.join("image.json");
        let text = std::fs::read(&path).with_context(|| {
            format!("no arm64 node image in {}; build it with `cargo xtask e2e arm64`", cache.display())
        })?;
        serde_json::from_slice(&text).with_context(|| format!("failed to read {}", path.display()))
    }
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Until ssh answers `sudo -n true` (8–30 s is usual under emulation).
    pub timeout: Duration,
    pub memory_mb: u32,
    pub cpus: u32,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions { timeout: Duration::from_secs(180), memory_mb: 1024, cpus: 2 }
    }
}

/// A booted node. Dropping it kills qemu (and the ssh master) and removes its temp files.
///
/// qemu and the ssh master also die with the thread that booted the node (`PR_SET_PDEATHSIG`):
/// boot it on the thread that uses it.
pub struct Arm64Node {
    image: Arm64Image,
    port: u16,
    dir: tempfile::TempDir,
    qemu: Child,
    master: Option<Child>,
}

impl Arm64Node {
    /// Boots with [`BootOptions::default`].
    pub fn boot(image: &Arm64Image) -> Result<Arm64Node> {
        Arm64Node::boot_with(image, &BootOptions::default())
    }

    /// Starts qemu with ssh forwarded from a free loopback port and waits until `docker` can run
    /// `sudo -n true` there; then opens an ssh master connection that later commands share.
    pub fn boot_with(image: &Arm64Image, opts: &BootOptions) -> Result<Arm64Node> {
        let dir = tempfile::Builder::new().prefix("kdbg-arm64-").tempdir()?;
        let port = free_port()?;
        let known = format!("[127.0.0.1]:{port} {}\n", image.host_key.trim());
        std::fs::write(dir.path().join("known_hosts"), known)?;
        let console = dir.path().join("console.log");
        let mut qemu = Command::new(&image.qemu);
        qemu.env("LD_LIBRARY_PATH", &image.qemu_lib_path)
            .arg("-L")
            .arg(&image.qemu_data)
            .args(["-machine", "virt", "-cpu", "max,pauth-impdef=on"])
            .args(["-smp", &opts.cpus.to_string(), "-m", &opts.memory_mb.to_string()])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .args(["-append", "console=ttyAMA0 rdinit=/init panic=-1"])
            .args(["-netdev", &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22")])
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("qemu.log"))?);
        die_with_parent(&mut qemu);
        let qemu = qemu.spawn().with_context(|| format!("failed to start {}", image.qemu.display()))?;
        let mut node = Arm64Node { image: image.clone(), port, dir, qemu, master: None };
        node.wait_ssh(opts.timeout)?;
        node.start_master()?;
        Ok(node)
    }

    fn wait_ssh(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.qemu.try_wait()? {
                bail!("qemu exited ({status}) before ssh answered\n{}", self.diagnostics());
            }
            // Until sshd runs, qemu's forward accepts and the banner never comes: a short
            // ConnectTimeout keeps each such try short.
            let mut probe = self.ssh_command("sudo -n true");
            probe.arg("-o").arg("ConnectTimeout=3").stdout(Stdio::null()).stderr(Stdio::null());
            if probe.status()?.success() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "the arm64 node's ssh did not answer within {}s (qemu still runs)\n{}",
                    timeout.as_secs(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn start_master(&mut self) -> Result<()> {
        let mut master = Command::new("ssh");
        master.args(self.base_args()).args(["-N", "-o", "ControlMaster=yes"]).arg(self.login());
        master.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        die_with_parent(&mut master);
        self.master = Some(master.spawn().context("failed to start the ssh master connection")?);
        let ready = crate::sys::wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
            let mut check = Command::new("ssh");
            check.args(self.base_args()).args(["-O", "check"]).arg(self.login());
            check.stdout(Stdio::null()).stderr(Stdio::null()).status().ok().filter(|s| s.success())
        });
        ready.map(|_| ()).context("the ssh master connection to the arm64 node did not come up")
    }

    /// The port on 127.0.0.1 that reaches the node's sshd.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// kdbg's target: `ssh://docker@127.0.0.1:PORT`.
    pub fn ssh_target(&self) -> String {
        format!("ssh://{}:{}", self.login(), self.port)
    }

    /// The private key for `docker`.
    pub fn identity(&self) -> &Path {
        &self.image.identity
    }

    /// A known_hosts file with this boot's `[127.0.0.1]:PORT` host key only.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    pub fn image(&self) -> &Arm64Image {
        &self.image
    }

    /// `--target ... --identity ... --ssh-option UserKnownHostsFile=...`: how kdbg reaches the node.
    pub fn target_args(&self) -> Vec<String> {
        vec![
            "--target".into(),
            self.ssh_target(),
            "--identity".into(),
            self.identity().display().to_string(),
            "--ssh-option".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "--ssh-option".into(),
            "StrictHostKeyChecking=yes".into(),
        ]
    }

    /// Runs `cmd` through the node's login shell as `docker`; its stdout (fails on a non-zero exit).
    pub fn ssh(&self, cmd: &str) -> Result<String> {
        self.ssh_with_input(cmd, &[])
    }

    /// [`Arm64Node::ssh`] with `input` on the command's stdin (e.g. a file for `sudo tee`).
    pub fn ssh_with_input(&self, cmd: &str, input: &[u8]) -> Result<String> {
        use std::io::Write;
        let mut c = self.ssh_command(cmd);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().context("failed to run ssh")?;
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::scope(|s| {
            let w = s.spawn(move || stdin.write_all(input));
            let out = child.wait_with_output();
            (w.join(), out)
        });
        let out = writer.1?;
        if !out.status.success() {
            bail!("`{cmd}` on the arm64 node failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Forwards a free port on 127.0.0.1 to `remote` (`host:port` as the node sees it) through the
    /// master connection; returns the local port.
    pub fn forward(&self, remote: &str) -> Result<u16> {
        let local = free_port()?;
        let spec = format!("127.0.0.1:{local}:{remote}");
        let out = Command::new("ssh")
            .args(self.base_args())
            .args(["-O", "forward", "-L", &spec])
            .arg(self.login())
            .output()?;
        if !out.status.success() {
            bail!("failed to forward {spec} to the arm64 node: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(local)
    }

    /// What "byte-identical" means for the node (see [`Snapshot`]).
    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::take(self)
    }

    /// The node's serial console so far (kernel messages, `/init`'s output).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let qemu = std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
        let console = self.console();
        let tail: Vec<&str> = console.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("qemu's stderr:\n{qemu}\nlast lines of the console:\n{}", tail.join("\n"))
    }

    /// `ssh [options] docker@127.0.0.1 CMD`, sharing the master connection once there is one.
    pub fn ssh_command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(self.base_args()).args(["-o", "ControlMaster=no"]).arg(self.login()).arg(cmd);
        c
    }

    fn login(&self) -> String {
        "docker@127.0.0.1".into()
    }

    fn base_args(&self) -> Vec<String> {
        let opt = |o: String| ["-o".to_string(), o];
        let mut args =
            vec!["-p".to_string(), self.port.to_string(), "-i".into(), self.identity().display().to_string()];
        args.extend(opt(format!("UserKnownHostsFile={}", self.known_hosts().display())));
        args.extend(opt("StrictHostKeyChecking=yes".into()));
        args.extend(opt("IdentitiesOnly=yes".into()));
        args.extend(opt("BatchMode=yes".into()));
        args.extend(opt("LogLevel=ERROR".into()));
        args.extend(opt(format!("ControlPath={}", self.dir.path().join("cm").display())));
        args
    }
}

impl Drop for Arm64Node {
    fn drop(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Makes the child get SIGKILL when the thread that started it ends, so that a killed test
/// process leaves no qemu behind.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own attributes.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
