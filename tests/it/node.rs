//! `kdbg deploy` and `kdbg doctor` against the test node (real sshd, go and dlv): copies only what
//! changed, compressed deltas, a forward to the node's loopback, a copy killed mid-way.

mod faults;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kdbg_core::node::ssh::{self, SshConfig};
use kdbg_core::node::{Node, Privilege};
use kdbg_tests::TestNode;
use serde_json::Value;

use crate::testnode::{up, TESTNODE_BIN};

/// The kdbg CLI cargo built for these tests.
const KDBG: &str = env!("CARGO_BIN_EXE_kdbg-it");
const APISERVER: &str = "/var/lib/kdbg/bin/kube-apiserver";

/// A test node plus a fixture tree, and kdbg pointed at both.
pub struct Setup {
    pub node: TestNode,
    _dir: tempfile::TempDir,
    pub tree: PathBuf,
}

impl Setup {
    pub fn new(prefix: &str) -> Result<Setup> {
        let node = up(prefix)?;
        let dir = tempfile::tempdir()?;
        let tree = kdbg_tests::fixture::copy_to(dir.path())?;
        Ok(Setup { node, _dir: dir, tree })
    }

    /// `kdbg ARGS --src TREE --target ssh://docker@IP --identity KEY` with the node's known_hosts.
    pub fn kdbg(&self, args: &[&str]) -> Command {
        self.kdbg_as(args, self.node.identity(), self.node.known_hosts())
    }

    /// [`kdbg`](Self::kdbg) with another key or known_hosts file.
    pub fn kdbg_as(&self, args: &[&str], identity: &Path, known_hosts: &Path) -> Command {
        let mut c = Command::new(KDBG);
        c.args(args)
            .arg("--target")
            .arg(self.node.ssh_target())
            .arg("--identity")
            .arg(identity)
            .arg("--ssh-option")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .stdin(Stdio::null());
        if args.first() == Some(&"deploy") {
            c.arg("--src").arg(&self.tree);
        }
        c
    }

    /// `kdbg deploy apiserver --json`, which must succeed.
    pub fn deploy(&self) -> Result<Value> {
        let out = self.kdbg(&["deploy", "apiserver", "--json"]).output()?;
        ensure!(out.status.success(), "kdbg deploy failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).context("kdbg deploy --json")
    }

    /// sha256 of a file as the node sees it (also under a tmpfs the host cannot see).
    pub fn node_sha(&self, path: &str) -> Result<String> {
        let out = self.node.exec(["sha256sum", path])?;
        ensure!(out.status.success(), "sha256sum {path}: {}", text(&out));
        Ok(String::from_utf8_lossy(&out.stdout).split(' ').next().unwrap_or("").to_string())
    }

    /// Temp files a copy left in the node's bin dir.
    pub fn leftovers(&self) -> Result<String> {
        self.node.sh("ls -A /var/lib/kdbg/bin | grep kdbg-tmp || true")
    }

    /// A one-line change inside the handler tests break in.
    pub fn change_source(&self, header: &str) -> Result<()> {
        let file = self.tree.join("pkg/healthz/healthz.go");
        let src = std::fs::read_to_string(&file)?;
        let anchor = "w.Header().Set(\"X-Content-Type-Options\", \"nosniff\")";
        ensure!(src.contains(anchor), "fixture changed: {anchor} not in {}", file.display());
        let changed = src.replace(anchor, &format!("{anchor}\n\tw.Header().Set(\"X-Kdbg\", \"{header}\")"));
        Ok(std::fs::write(file, changed)?)
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The deployed file called `name` in a `kdbg deploy --json` outcome.
pub fn file<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    let files = outcome["files"].as_array().expect("files");
    files.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("{name} not in {outcome}"))
}

/// PATH with every directory that holds `dlv` replaced by a copy (of symlinks) without it.
pub fn path_without_dlv(scratch: &Path) -> Result<OsString> {
    let mut dirs = Vec::new();
    for (i, dir) in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).enumerate() {
        if !dir.join("dlv").exists() {
            dirs.push(dir);
            continue;
        }
        let shadow = scratch.join(format!("path{i}"));
        std::fs::create_dir_all(&shadow)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name() != "dlv" {
                std::os::unix::fs::symlink(entry.path(), shadow.join(entry.file_name()))?;
            }
        }
        dirs.push(shadow);
    }
    Ok(std::env::join_paths(dirs)?)
}

#[test]
fn deploy_copies_once_then_sends_nothing() -> Result<()> {
    let s = Setup::new("deploy")?;
    let first = s.deploy()?;
    let (api, dlv) = (file(&first, "kube-apiserver"), file(&first, "dlv"));
    assert_eq!((api["copied"].as_bool(), dlv["copied"].as_bool()), (Some(true), Some(true)), "{first}");
    assert!(api["wire_bytes"].as_u64() > Some(0));
    assert_eq!(s.node_sha(APISERVER)?, api["sha256"].as_str().unwrap());
    assert_eq!(s.node_sha("/var/lib/kdbg/bin/dlv")?, dlv["sha256"].as_str().unwrap());
    assert!(s.node.sh("/var/lib/kdbg/bin/dlv version")?.contains("Version:"));

    let second = s.deploy()?;
    for f in second["files"].as_array().unwrap() {
        assert_eq!((f["copied"].as_bool(), f["wire_bytes"].as_u64()), (Some(false), Some(0)), "{f}");
    }
    // One round trip decides for every file; the other one learns the node's platform.
    assert_eq!(second["decide_round_trips"], 1, "{second}");
    assert_eq!(second["round_trips"], 2, "{second}");
    let sent = second["bytes_sent"].as_u64().unwrap();
    assert!(sent < 2048, "a no-op deploy sent {sent} bytes");
    eprintln!("no-op deploy: {sent} bytes of commands, {} round trips", second["round_trips"]);
    assert_eq!(s.leftovers()?, "");
    Ok(())
}

#[test]
fn a_changed_binary_goes_as_a_compressed_delta() -> Result<()> {
    let s = Setup::new("delta")?;
    s.deploy()?;
    s.change_source("1")?;
    let outcome = s.deploy()?;
    let api = file(&outcome, "kube-apiserver");
    let (wire, size) = (api["wire_bytes"].as_u64().unwrap(), api["file_bytes"].as_u64().unwrap());
    let ratio = wire as f64 / size as f64;
    eprintln!("one-line change, delta: {wire} bytes sent for a {size}-byte binary ({:.1}%)", ratio * 100.0);
    assert_eq!(api["method"], "zstd-delta", "{api}");
    assert!(ratio <= 0.45, "sent {:.1}% of the binary", ratio * 100.0);
    assert_eq!(file(&outcome, "dlv")["copied"], false);
    assert_eq!(s.node_sha(APISERVER)?, api["sha256"].as_str().unwrap());

    // Without the last deployed bytes to diff against (e.g. after `make clean` kept the node), the
    // file still goes compressed, whole.
    std::fs::remove_dir_all(s.tree.join("_output/kdbg/deployed"))?;
    s.change_source("2")?;
    let outcome = s.deploy()?;
    let api = file(&outcome, "kube-apiserver");
    let (wire, size) = (api["wire_bytes"].as_u64().unwrap(), api["file_bytes"].as_u64().unwrap());
    eprintln!(
        "one-line change, no base: {wire} bytes sent for a {size}-byte binary ({:.1}%)",
        wire as f64 * 100.0 / size as f64
    );
    assert_eq!(api["method"], "zstd", "{api}");
    assert!(wire < size, "{api}");
    assert_eq!(s.node_sha(APISERVER)?, api["sha256"].as_str().unwrap());
    Ok(())
}

#[test]
fn killed_copy_leaves_a_whole_binary() -> Result<()> {
    let s = Setup::new("kill")?;
    let old = s.deploy()?;
    let old_sha = file(&old, "kube-apiserver")["sha256"].as_str().unwrap().to_string();
    s.change_source("killed")?;
    let mut kdbg =
        s.kdbg(&["deploy", "apiserver"]).env(kdbg_core::node::copy::DELAY_ENV, "150").stderr(Stdio::null()).spawn()?;
    let bin_dir = s.node.host_path("/var/lib/kdbg/bin");
    let deadline = Instant::now() + Duration::from_secs(60);
    // In flight: the node's temp file has some of the new binary's bytes.
    let in_flight = loop {
        let arrived = std::fs::read_dir(&bin_dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".kdbg-tmp.kube-apiserver"))
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 0));
        if arrived {
            break true;
        }
        if Instant::now() > deadline || kdbg.try_wait()?.is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(in_flight, "never saw the copy in flight");
    kdbg.kill()?; // SIGKILL
    kdbg.wait()?;
    assert_eq!(s.node_sha(APISERVER)?, old_sha, "the old binary stays until the new one is whole");

    // The next run finishes the job and leaves no temp files behind.
    let new = s.deploy()?;
    let api = file(&new, "kube-apiserver");
    assert_eq!(api["copied"], true);
    assert_eq!(s.node_sha(APISERVER)?, api["sha256"].as_str().unwrap());
    assert_ne!(api["sha256"].as_str().unwrap(), old_sha);
    assert_eq!(s.leftovers()?, "");
    Ok(())
}

#[test]
fn ssh_transport_runs_copies_and_forwards() -> Result<()> {
    let node = up("transport")?;
    let ssh = ssh::node(SshConfig {
        user: Some("docker".into()),
        host: node.ip().to_string(),
        port: None,
        identity: Some(node.identity().to_str().unwrap().into()),
        options: vec![format!("UserKnownHostsFile={}", node.known_hosts().display())],
    })?;
    assert_eq!(ssh.platform()?.0, "linux");
    assert_eq!(ssh.exec(&["id", "-u"], Privilege::Root, &[])?.stdout_str().trim(), "0");
    assert_eq!(ssh.exec(&["id", "-un"], Privilege::User, &[])?.stdout_str().trim(), "docker");
    let out = ssh.exec(&["sh", "-c", "cat; echo \" $1\"", "sh", "it's $HOME"], Privilege::User, b"stdin")?;
    assert_eq!(out.stdout_str(), "stdin it's $HOME\n", "arguments arrive as they were given");
    let journal = "/var/lib/kdbg/journal.json";
    ssh.write_file(journal, b"{\"v\":1}", 0o600, Privilege::Root)?;
    assert_eq!(ssh.read_file(journal, Privilege::Root)?.as_deref(), Some(&b"{\"v\":1}"[..]));
    assert_eq!(ssh.read_file("/var/lib/kdbg/none", Privilege::Root)?, None);
    assert_eq!(node.sh("stat -c '%a %U' /var/lib/kdbg/journal.json")?.trim(), "600 root");

    // dlv on the node listens on its loopback only; the forward reaches it from here.
    let mut listener =
        node.command(TESTNODE_BIN).args(["listen", "--addr", "127.0.0.1:23460"]).stdout(Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(listener.stdout.take().unwrap()).read_line(&mut line)?;
    let pid = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    let tunnel = ssh.forward(0, &kdbg_core::node::Endpoint::Loopback(23460))?;
    let mut greeting = String::new();
    TcpStream::connect(("127.0.0.1", tunnel.local_port()))?.read_to_string(&mut greeting)?;
    assert_eq!(greeting, "kdbg-testnode\n");
    drop(tunnel);
    node.sh(&format!("kill {pid}"))?;
    listener.wait()?;
    Ok(())
}
