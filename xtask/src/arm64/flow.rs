//! kdbg itself on the arm64 node, from this amd64 workstation: `kdbg debug apiserver` builds the
//! fixture tree for linux/arm64 and runs it under the node's arm64 Delve; VSCode's attach (DAP,
//! by workspace path, through kdbg's tunnel) stops in the healthz handler; `kdbg status` names
//! linux/arm64; a no-op `kdbg deploy` sends no binary bytes; a `kdbg watch` edit is rebuilt for
//! arm64 and relaunched; `kdbg restore` leaves the node as it was.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_tests::arm64::Arm64Node;
use kdbg_tests::dap::DapClient;
use kdbg_tests::probe::{Probe, QUERY_EXPR};
use serde_json::Value;

use super::smoke;
use crate::e2e::Stages;

/// Delve's port on the node (TCP: Delve 1.20 has no unix sockets) and the IDE's on this host.
const PORT: u16 = 2445;

/// kdbg against the arm64 node: its binary, the tree, the target flags and the state directory.
pub struct Kdbg<'a> {
    pub bin: Utf8PathBuf,
    pub tree: Utf8PathBuf,
    pub node: &'a Arm64Node,
    pub dlv: Utf8PathBuf,
    pub state: Utf8PathBuf,
}

impl Kdbg<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).args(self.node.target_args()).current_dir(&self.tree);
        c.env("KDBG_STATE_DIR", &self.state).env("PATH", format!("{}:{}", kdbg_tests::lab::GO_BIN, path()));
        c
    }

    /// Runs kdbg; its stdout, failing with its output when it fails.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.command(args).stdin(Stdio::null()).output()?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("{stderr}");
        ensure!(out.status.success(), "kdbg {} failed:\n{stdout}\n{stderr}", args.join(" "));
        Ok(stdout.into_owned())
    }
}

fn path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

pub fn run(stages: &mut Stages, k: &Kdbg<'_>, api_port: u16) -> Result<()> {
    stages.run("kdbg doctor passes on the arm64 node (platform → build → Delve)", || {
        let dlv = format!("linux/arm64={}", k.dlv);
        let out = k.run(&["doctor", "--dlv", &dlv])?;
        eprintln!("{out}");
        ensure!(out.contains("node linux/arm64 → binaries cross-built"), "{out}");
        Ok(())
    })?;
    let before = k.node.snapshot()?;
    let port = PORT.to_string();
    let dlv = format!("linux/arm64={}", k.dlv);
    let debug = ["debug", "apiserver", "--kube-version", "v1.20.2", "--port", &port, "--dlv", &dlv];
    let out = stages.run("kdbg debug apiserver: built for linux/arm64, arm64 Delve on the node", || {
        let out = k.run(&debug)?;
        smoke::wait_healthz(k.node, api_port)?;
        Ok(out)
    })?;
    eprintln!("{out}");
    let mut flow = || -> Result<()> {
        stages.run("VSCode attach (DAP) through the tunnel: breakpoint by workspace path hit", || {
            attach_and_break(&k.tree, api_port)
        })?;
        stages.run("kdbg status names linux/arm64", || {
            let status = k.run(&["status"])?;
            ensure!(status.contains("for linux/arm64"), "{status}");
            Ok(())
        })?;
        stages.run("a no-op kdbg deploy sends no binary bytes", || no_op_deploy(k))?;
        stages.run("kdbg watch: an edit rebuilt for arm64 and relaunched", || watch_cycle(k, api_port))?;
        Ok(())
    };
    let result = flow();
    stages.run("kdbg restore: the node as it was", || {
        k.run(&["restore"])?;
        smoke::wait_healthz(k.node, api_port)?;
        smoke::same_node(&before, &k.node.snapshot()?)
    })?;
    result
}

/// What VSCode does with the entry `kdbg debug` wrote: attach to localhost:PORT, a breakpoint at
/// the healthz marker by the workspace's own path; a probe request on the node stops there.
fn attach_and_break(tree: &Utf8Path, api_port: u16) -> Result<()> {
    let configs = kdbg_core::ide::vscode::read_launch(tree)?;
    let config = configs.iter().find(|c| c["name"] == "kdbg: attach kube-apiserver").context("no launch entry")?;
    let config: Value = serde_json::from_str(&config.to_string().replace("${workspaceFolder}", tree.as_str()))?;
    let (mut dap, line) = DapClient::attach_at_healthz_marker(config, tree.as_std_path())?;
    let file = tree.join(kdbg_tests::lab::healthz_file(tree.as_std_path())).to_string();
    let probe = Probe::new();
    let path = probe.path();
    let request = std::thread::spawn(move || smoke::get(api_port, &path));
    let stopped = dap.wait_stopped(Duration::from_secs(120))?;
    ensure!(stopped["reason"] == "breakpoint", "{stopped}");
    let thread = stopped["threadId"].as_i64().context("a thread id")?;
    let frame = dap.top_frame(thread)?;
    ensure!(frame.path == file && frame.line == line, "stopped at {}:{}, not {file}:{line}", frame.path, frame.line);
    let query = dap.evaluate(thread, QUERY_EXPR)?;
    ensure!(query.trim_matches('"') == probe.query(), "stopped serving {query}");
    eprintln!("arm64: VSCode's attach stopped at {}:{} in {}", frame.path, frame.line, frame.name);
    dap.continue_(thread)?;
    let response = request.join().map_err(|_| anyhow::anyhow!("the request panicked"))??;
    ensure!(response.ends_with("\r\n\r\nok"), "{response}");
    dap.set_breakpoints(&file, &[])?;
    dap.disconnect(false)?;
    Ok(())
}

fn no_op_deploy(k: &Kdbg<'_>) -> Result<()> {
    let dlv = format!("linux/arm64={}", k.dlv);
    let out = k.run(&["deploy", "apiserver", "--kube-version", "v1.20.2", "--dlv", &dlv, "--json"])?;
    let doc: Value = serde_json::from_str(&out)?;
    ensure!(doc["platform"] == "linux/arm64", "{doc:#}");
    for f in doc["files"].as_array().context("files")? {
        ensure!(f["copied"] == false && f["wire_bytes"] == 0, "{f:#}");
    }
    Ok(())
}

/// `kdbg watch apiserver`: an edit of the healthz handler's body is rebuilt for linux/arm64
/// (replay of make's captured `go` call), copied and relaunched; the node serves the edit.
fn watch_cycle(k: &Kdbg<'_>, api_port: u16) -> Result<()> {
    let mut child = k
        .command(&["watch", "apiserver", "--kube-version", "v1.20.2", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = lines_of(&mut child);
    let result = (|| -> Result<()> {
        wait_line(&lines, "kdbg: ready", |l| l == "kdbg: ready")?;
        let file = k.tree.join(kdbg_tests::lab::healthz_file(k.tree.as_std_path()));
        let text = std::fs::read_to_string(&file)?;
        let nosniff = "w.Header().Set(\"X-Content-Type-Options\", \"nosniff\")";
        let edited = text.replacen(nosniff, &format!("{nosniff}\n\tw.Header().Set(\"X-Kdbg-Arm64\", \"watched\")"), 1);
        ensure!(edited != text, "the healthz handler changed shape");
        std::fs::write(&file, edited)?;
        let cycle = wait_line(&lines, "cycle 1", |l| l.starts_with("cycle 1:"))?;
        eprintln!("arm64: {cycle}");
        wait_line(&lines, "kdbg: ready after the cycle", |l| l.starts_with("kdbg: ready"))?;
        let response = smoke::get(api_port, "/healthz")?;
        ensure!(response.contains("X-Kdbg-Arm64: watched"), "the node serves the edit: {response}");
        let bin = k.tree.join("_output/local/bin/linux/arm64/kube-apiserver");
        ensure!(std::fs::read(&bin)?.get(18) == Some(&183), "{bin} is an aarch64 ELF");
        Ok(())
    })();
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("watch: {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line `matches` accepts (generously bounded: builds and relaunches under emulation).
fn wait_line(lines: &mpsc::Receiver<String>, what: &str, matches: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if matches(&l) => return Ok(l),
            Ok(_) => {}
            Err(_) => bail!("kdbg watch never printed {what}"),
        }
    }
}
