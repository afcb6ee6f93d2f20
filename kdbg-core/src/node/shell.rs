//! The `Node` methods every transport shares, written once over a [`Transport`]: the local process
//! (ssh, `docker exec`, `sh`) that runs one command on the node.
//!
//! Every method is one round trip: a POSIX `sh` script with its arguments in argv (never pasted
//! into the script), data on stdin. Bytes and round trips are counted here, at the transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use camino::Utf8Path;

use super::copy::{self, Method, Probe};
use super::errors::{command_failure, Fixes};
use super::{CopyStats, Endpoint, Node, NodeError, NodeOutput, Privilege, Tunnel};
use crate::host::{Cmd, HostError};

/// How one transport runs a command on its node.
pub trait Transport: Send + Sync {
    /// How messages name the node.
    fn describe(&self) -> String;
    /// The local process that runs `argv` on the node (adding `sudo -n` for [`Privilege::Root`]
    /// when the login is not root).
    fn command(&self, argv: &[&str], privilege: Privilege) -> Cmd;
    /// Called before each command: opens a shared connection if there is none.
    fn connect(&self) -> Result<(), NodeError> {
        Ok(())
    }
    /// If a command's failure is the transport's (ssh could not log in), that error.
    fn transport_failure(&self, out: &NodeOutput) -> Option<NodeError> {
        let _ = out;
        None
    }
    /// Whether copies are worth compressing (not for this host).
    fn compress(&self) -> bool {
        true
    }
    /// For a transport that cannot stream a command's stdin: the command that uploads `local` to
    /// the node path `tmp` (then `sh` moves it in place).
    fn upload(&self, local: &Utf8Path, tmp: &str) -> Option<Cmd> {
        let _ = (local, tmp);
        None
    }
    /// Advice for connection failures.
    fn fixes(&self) -> Fixes {
        Fixes::default()
    }
    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError>;
}

/// A [`Node`] over a [`Transport`].
pub struct ShellNode<T> {
    pub transport: T,
    sent: AtomicU64,
    trips: AtomicU64,
    probe: Mutex<Option<Probe>>,
}

const READ: &str = r#"if [ -e "$1" ]; then exec cat -- "$1"; else echo kdbg-no-such-file >&2; exit 1; fi"#;
const SHA256S: &str = r#"for p; do
  if [ -f "$p" ]; then s=$(sha256sum < "$p") || exit 1; echo "${s%% *}"; else echo -; fi
done"#;
const FINISH_UPLOAD: &str = r#"set -u
tmp=$1; dst=$2; sha=$3; mode=$4
trap 'rm -f "$tmp"' EXIT
got=$(sha256sum < "$tmp") || exit 1
[ "${got%% *}" = "$sha" ] || { echo "kdbg: $dst arrived with sha256 ${got%% *}, expected $sha" >&2; exit 1; }
chmod "$mode" "$tmp" && sync && mv -f "$tmp" "$dst""#;

impl<T: Transport> ShellNode<T> {
    pub(crate) fn new(transport: T) -> ShellNode<T> {
        ShellNode { transport, sent: AtomicU64::new(0), trips: AtomicU64::new(0), probe: Mutex::new(None) }
    }

    fn host_error(&self, what: &str, e: HostError) -> NodeError {
        NodeError::other(self.transport.describe(), what, e)
    }

    /// One round trip: runs `argv` with `stdin`, maps transport, sudo and disk failures to errors.
    fn run(&self, argv: &[&str], privilege: Privilege, stdin: &[u8]) -> Result<NodeOutput, NodeError> {
        self.transport.connect()?;
        let cmd = self.transport.command(argv, privilege);
        self.count(argv, stdin.len() as u64);
        let out = cmd.output_with_input(stdin).map_err(|e| self.host_error(&format!("run {}", argv[0]), e))?;
        self.check(
            NodeOutput { status: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr },
            privilege,
        )
    }

    fn count(&self, argv: &[&str], extra: u64) {
        let cmdline: usize = argv.iter().map(|a| a.len() + 1).sum();
        self.sent.fetch_add(cmdline as u64 + extra, Ordering::Relaxed);
        self.trips.fetch_add(1, Ordering::Relaxed);
    }

    fn check(&self, out: NodeOutput, privilege: Privilege) -> Result<NodeOutput, NodeError> {
        if let Some(e) = self.transport.transport_failure(&out) {
            return Err(e);
        }
        if let Some(e) = command_failure(&self.transport.describe(), &out, privilege) {
            return Err(e);
        }
        Ok(out)
    }

    fn failed(&self, what: &str, out: &NodeOutput) -> NodeError {
        NodeError::Command {
            node: self.transport.describe(),
            cmd: what.into(),
            status: out.status,
            stderr: out.stderr_str().trim().to_string(),
        }
    }

    /// What the node is and can decode (one round trip, then remembered).
    pub(crate) fn probe(&self) -> Result<Probe, NodeError> {
        if let Some(p) = self.probe.lock().unwrap().clone() {
            return Ok(p);
        }
        let out = self.run(&["sh", "-c", copy::PROBE_SCRIPT], Privilege::User, &[])?;
        let probe = Probe::parse(&out.stdout_str())
            .filter(|_| out.success())
            .ok_or_else(|| self.failed("uname -s; uname -m", &out))?;
        *self.probe.lock().unwrap() = Some(probe.clone());
        Ok(probe)
    }

    fn copy(&self, local: &Utf8Path, remote: &str, mode: u32, base: Option<&Utf8Path>) -> Result<CopyStats, NodeError> {
        let probe = self.probe()?;
        let (sha, size) = copy::hash_file(local)
            .map_err(|e| NodeError::other(self.transport.describe(), format!("read {local}"), e))?;
        let tmp = format!("{remote}.kdbg-upload");
        if let Some(upload) = self.transport.upload(local, &tmp) {
            return self.copy_by_upload(upload, (&tmp, remote), &sha, size, mode);
        }
        let method = probe.method(self.transport.compress(), base.is_some());
        let argv = copy::receive_argv(method, remote, &sha, mode);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.transport.connect()?;
        let cmd = self.transport.command(&argv, Privilege::Root);
        self.count(&argv, 0);
        let mut child = cmd.spawn_piped().map_err(|e| self.host_error("start the copy", e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let (sent, out) = std::thread::scope(|s| {
            let writer = s.spawn(move || copy::send(local, base, method, &mut stdin));
            let out = child.wait_with_output();
            (writer.join().expect("copy writer panicked"), out)
        });
        let out = out.map_err(|e| self.host_error("copy", HostError::Io { cmd: cmd.display(), source: e }))?;
        let wire_bytes = sent.as_ref().copied().unwrap_or(0);
        self.sent.fetch_add(wire_bytes, Ordering::Relaxed);
        let out = self.check(
            NodeOutput { status: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr },
            Privilege::Root,
        )?;
        if !out.success() {
            return Err(self.failed(&format!("copy to {remote}"), &out));
        }
        sent.map_err(|e| NodeError::other(self.transport.describe(), format!("send {local}"), e))?;
        Ok(CopyStats { file_bytes: size, wire_bytes, method })
    }

    fn copy_by_upload(
        &self,
        upload: Cmd,
        (tmp, remote): (&str, &str),
        sha: &str,
        size: u64,
        mode: u32,
    ) -> Result<CopyStats, NodeError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(size, Ordering::Relaxed);
        upload.read().map_err(|e| self.host_error(&format!("upload to {tmp}"), e))?;
        let mode = format!("{mode:o}");
        let argv = ["sh", "-c", FINISH_UPLOAD, "kdbg-finish", tmp, remote, sha, &mode];
        let out = self.run(&argv, Privilege::Root, &[])?;
        if !out.success() {
            return Err(self.failed(&format!("move {tmp} to {remote}"), &out));
        }
        Ok(CopyStats { file_bytes: size, wire_bytes: size, method: Method::Plain })
    }
}

impl<T: Transport> Node for ShellNode<T> {
    fn describe(&self) -> String {
        self.transport.describe()
    }

    fn exec(&self, argv: &[&str], privilege: Privilege, stdin: &[u8]) -> Result<NodeOutput, NodeError> {
        self.run(argv, privilege, stdin)
    }

    fn spawn(&self, argv: &[&str], privilege: Privilege) -> Result<std::process::Child, NodeError> {
        self.transport.connect()?;
        let cmd = self.transport.command(argv, privilege);
        self.count(argv, 0);
        cmd.spawn_piped().map_err(|e| self.host_error(&format!("start {}", argv[0]), e))
    }

    fn copy_to(&self, local: &Utf8Path, remote: &str, mode: u32) -> Result<CopyStats, NodeError> {
        self.copy(local, remote, mode, None)
    }

    fn copy_to_delta(
        &self,
        local: &Utf8Path,
        remote: &str,
        mode: u32,
        base: &Utf8Path,
    ) -> Result<CopyStats, NodeError> {
        self.copy(local, remote, mode, Some(base))
    }

    fn read_file(&self, path: &str, privilege: Privilege) -> Result<Option<Vec<u8>>, NodeError> {
        let out = self.run(&["sh", "-c", READ, "kdbg-read", path], privilege, &[])?;
        match out.success() {
            true => Ok(Some(out.stdout)),
            false if out.stderr_str().contains("kdbg-no-such-file") => Ok(None),
            false => Err(self.failed(&format!("cat {path}"), &out)),
        }
    }

    fn write_file(&self, path: &str, bytes: &[u8], mode: u32, privilege: Privilege) -> Result<(), NodeError> {
        use sha2::{Digest, Sha256};
        let sha = hex::encode(Sha256::digest(bytes));
        let argv = copy::receive_argv(Method::Plain, path, &sha, mode);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.run(&argv, privilege, bytes)?;
        match out.success() {
            true => Ok(()),
            false => Err(self.failed(&format!("write {path}"), &out)),
        }
    }

    fn sha256s(&self, paths: &[&str]) -> Result<Vec<Option<String>>, NodeError> {
        let mut argv = vec!["sh", "-c", SHA256S, "kdbg-sha256"];
        argv.extend_from_slice(paths);
        let out = self.run(&argv, Privilege::Root, &[])?;
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();
        if !out.success() || lines.len() != paths.len() {
            return Err(self.failed("sha256sum", &out));
        }
        Ok(lines.iter().map(|l| (*l != "-").then(|| l.trim().to_string())).collect())
    }

    fn platform(&self) -> Result<(String, String), NodeError> {
        let p = self.probe()?;
        Ok((p.os, p.arch))
    }

    fn forward(&self, local_port: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        self.transport.connect()?;
        self.transport.forward(local_port, to)
    }

    fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}
