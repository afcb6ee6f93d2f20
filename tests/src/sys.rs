//! Small host-side helpers: running tools, waiting, reading `/proc`, raw mounts.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Fails with a clear message unless we run as root (namespaces, mounts and
/// sshd all need it).
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the kdbg test node needs root (network namespaces, mounts, sshd): \
             run the tests as root, e.g. `sudo -E cargo test -p kdbg-tests --test it`"
        );
    }
    Ok(())
}

/// Checks root and the tools a node needs, naming the Debian packages to
/// install for a missing one.
pub fn preflight() -> Result<()> {
    require_root()?;
    let needed = [
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("sudo", "sudo"),
    ];
    let mut missing: Vec<&str> = needed.iter().filter(|(t, _)| !tool(t).is_absolute()).map(|(_, p)| *p).collect();
    if !Path::new("/usr/sbin/sshd").is_file() {
        missing.push("openssh-server");
    }
    missing.dedup();
    if !missing.is_empty() {
        bail!("the kdbg test node needs these Debian packages: apt-get install {}", missing.join(" "));
    }
    Ok(())
}

/// Absolute path of a system tool, looked up in PATH and then in the sbin/bin
/// directories (cargo's environment does not always have `/usr/sbin`).
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A `Command` for a system tool (see [`tool`]).
pub fn cmd(name: &str) -> Command {
    Command::new(tool(name))
}

/// Runs a command to completion and fails (with its output) unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{} failed: {}", describe(cmd), output_text(&out));
    }
    Ok(out)
}

/// `program arg arg ...` for error messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
}

/// Exit status plus trimmed stdout and stderr, for error messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}; stdout: {:?}; stderr: {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Polls `f` every `interval` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, interval: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// The fields of `/proc/PID/stat` after the command name: index 0 is the state.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// True if the process exists and is neither a zombie nor dead.
pub fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| !matches!(f.first().map(String::as_str), Some("Z" | "X")))
}

/// The start time of a process (clock ticks since boot), to tell a process from a
/// later one that reuses its pid.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// True if `pid` is alive and is the same process that had `start` as start time.
pub fn same_process(pid: u32, start: Option<u64>) -> bool {
    is_alive(pid) && start.is_none_or(|s| start_time(pid) == Some(s))
}

/// The inode of one of a process's namespaces (`net`, `mnt`, `pid`, ...).
pub fn ns_inode(pid: &str, kind: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).ok().map(|m| m.ino())
}

/// Every pid visible in this process's `/proc`.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// The short command name of a process.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_owned())
}

/// Sends a signal; errors (no such process) are ignored.
pub fn kill(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill has no memory-safety preconditions; pid > 0 so this
            // never signals a process group or every process.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// Waits until none of `pids` is alive; true if that happened within `timeout`.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    wait_for(timeout, Duration::from_millis(20), || pids.iter().all(|&p| !is_alive(p)).then_some(())).is_some()
}

fn cstr(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).context("path contains NUL")
}

/// mount(2) with an optional source, fstype and data string.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let source = source.map(CString::new).transpose()?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let target_c = cstr(target)?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a valid NUL-terminated string that
    // outlives the call.
    let rc = unsafe { libc::mount(ptr(&source), target_c.as_ptr(), ptr(&fstype), flags, ptr(&data).cast()) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!("mount {source:?} on {} ({fstype:?}): {err}", target.display());
    }
    Ok(())
}

/// Bind-mounts `source` onto `target` (both must exist and be of the same kind).
pub fn bind(source: &Path, target: &Path) -> Result<()> {
    let source = source.to_str().context("non-UTF-8 path")?;
    mount(Some(source), target, None, libc::MS_BIND, None)
}

/// Writes a file through a temporary sibling and a rename, so readers never see
/// it half-written.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
