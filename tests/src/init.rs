//! node-init: the node's first process (pid 1 of its pid namespace).
//!
//! Started by the host as `ip netns exec kdbg-NAME unshare --mount --pid --uts
//! --fork --kill-child -- kdbg-testnode node-init --state DIR`. It records its host
//! pid, builds the node's mount table (overlays, bind mounts, a fresh `/proc`),
//! sets the hostname, starts sshd and the static-pod runner, reaps orphans, and
//! on SIGTERM (or, with `--watch-stdin`, when its owner's pipe closes) ends
//! every process of the node and exits — which the kernel completes by killing
//! whatever is left in the pid namespace.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::layout::{self, Layout};
use crate::setup::NodeInfo;
use crate::sys::{bind, mount, write_atomic};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs handlers that set the stop flag on SIGTERM and SIGINT (pid 1 of a namespace ignores
/// signals it has no handler for).
pub fn install_stop_handler() {
    let flag = STOP.get_or_init(Arc::default);
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(flag)).expect("SIGTERM and SIGINT can be handled");
    }
}

/// True once SIGTERM or SIGINT arrived.
pub fn stop_requested() -> bool {
    STOP.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

fn log_file(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("open {}", path.display()))
}

fn say(msg: &str) {
    eprintln!("[node-init {}ms] {msg}", crate::sys::now_ms() % 1_000_000);
}

/// Runs node-init; returns when the node shuts down.
pub fn run(state: &Path, watch_stdin: bool) -> Result<()> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    anyhow::ensure!(
        pid == 1,
        "node-init must be pid 1 of a new pid namespace (it is {pid}): it is started by \
         `TestNode::up` / `kdbg-testnode up`, not by hand"
    );
    install_stop_handler();
    let layout = Layout::at(state.to_path_buf());
    let info = NodeInfo::load(&layout)?;
    // /proc is still the host's: /proc/self names our host pid.
    let host_pid = fs::read_link("/proc/self").context("readlink /proc/self")?;
    build_mounts(&layout)?;
    set_hostname(&info.hostname)?;
    let sshd = spawn_sshd(&layout)?;
    let mut runner = Some(spawn_runner(&layout)?);
    write_atomic(&layout.init_pid(), host_pid.as_os_str().as_encoded_bytes())?;
    say(&format!(
        "node {} up: host pid {}, sshd {}, runner {:?}",
        info.name,
        host_pid.display(),
        sshd.id(),
        runner.as_ref().map(Child::id)
    ));
    drop(sshd); // reaped below like any orphan
    let mut runner_restart: Option<Instant> = None;
    let owner_gone = || watch_stdin && stdin_closed();
    while !(stop_requested() || owner_gone()) {
        reap(&mut runner, &mut runner_restart);
        if runner.is_none() && runner_restart.is_some_and(|t| Instant::now() >= t) {
            runner = spawn_runner(&layout).map_err(|e| say(&format!("{e:#}"))).ok();
            runner_restart = runner.is_none().then(|| Instant::now() + Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say("shutting down");
    shutdown(runner);
    Ok(())
}

fn build_mounts(layout: &Layout) -> Result<()> {
    let root = Path::new("/");
    mount(None, root, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // Directories under /tmp that must stay visible once /tmp is the node's own:
    // the state directory, and where this binary lives (tests run it by path).
    let mut keep = vec![layout.dir().to_path_buf()];
    keep.extend(std::env::current_exe()?.parent().map(Path::to_path_buf));
    keep.retain(|dir| dir.starts_with(layout::NODE_TMP));
    keep.dedup();
    let keep: Vec<(PathBuf, File)> = keep
        .into_iter()
        .map(|dir| File::open(&dir).map(|f| (dir, f)))
        .collect::<std::io::Result<_>>()
        .context("open a directory to keep in /tmp")?;
    for parent in layout::OVERLAY_PARENTS {
        let (upper, work) = layout.overlay(parent);
        let data = format!("lowerdir={parent},upperdir={},workdir={}", upper.display(), work.display());
        mount(Some("overlay"), Path::new(parent), Some("overlay"), 0, Some(&data))?;
    }
    for dir in layout::NODE_DIRS {
        let target = Path::new(dir);
        fs::create_dir_all(target).with_context(|| format!("mkdir {dir}"))?;
        bind(&layout.host_path(dir), target)?;
    }
    for file in layout::NODE_FILES {
        let target = Path::new(file);
        if !target.exists() {
            File::create(target).with_context(|| format!("create {file}"))?;
        }
        bind(&layout.file_copy(file), target)?;
    }
    let tmp = Path::new(layout::NODE_TMP);
    mount(Some("tmpfs"), tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=1777"))?;
    for (dir, handle) in &keep {
        fs::create_dir_all(dir)?;
        bind(Path::new(&format!("/proc/self/fd/{}", handle.as_raw_fd())), dir)?;
    }
    // Our own pid namespace gets its own /proc.
    mount(Some("proc"), Path::new("/proc"), Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)?;
    Ok(())
}

fn set_hostname(name: &str) -> Result<()> {
    // SAFETY: pointer and length describe a valid buffer.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    anyhow::ensure!(rc == 0, "sethostname: {}", std::io::Error::last_os_error());
    Ok(())
}

fn spawn_sshd(layout: &Layout) -> Result<Child> {
    let log = log_file(&layout.sshd_log())?;
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(layout.sshd_config())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start /usr/sbin/sshd")
}

fn spawn_runner(layout: &Layout) -> Result<Child> {
    let log = log_file(&layout.runner_log())?;
    // /proc/self/exe: this very binary, even if its path is not visible here.
    Command::new("/proc/self/exe")
        .args(["runner", "--manifests", layout::MANIFESTS, "--log", layout::POD_LOGS])
        .args(["--state", layout::PODS_STATE])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start the static-pod runner")
}

/// True when fd 0 is at end of file or hung up (the owner went away).
fn stdin_closed() -> bool {
    let mut fds = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    if n <= 0 {
        return false;
    }
    if fds.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return true;
    }
    let mut buf = [0u8; 64];
    // SAFETY: reading into a valid buffer of the given length.
    let read = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    read == 0
}

/// Reaps every exited child (orphans of the namespace included).
fn reap(runner: &mut Option<Child>, restart: &mut Option<Instant>) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if runner.as_ref().is_some_and(|r| r.id() as i32 == pid) {
            say(&format!("runner exited (status {status:#x}); restarting in 1s"));
            *runner = None;
            *restart = Some(Instant::now() + Duration::from_secs(1));
        }
    }
}

fn shutdown(runner: Option<Child>) {
    if let Some(runner) = runner {
        crate::sys::kill(runner.id(), libc::SIGTERM);
        // Its pods get a moment for SIGTERM; teardown need not be graceful.
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: waitpid on our own child.
            let pid = unsafe { libc::waitpid(runner.id() as i32, &mut status, libc::WNOHANG) };
            if pid != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: as pid 1 of the namespace, -1 means "every other process in it".
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        // SAFETY: waitpid with a null status pointer is allowed.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid < 0 {
            break; // no children left
        }
        if pid == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(-1, libc::SIGKILL) };
}
