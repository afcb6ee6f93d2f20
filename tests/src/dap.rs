//! A minimal Debug Adapter Protocol client, talking to dlv the way VSCode's `"mode": "remote"` does.
//!
//! VSCode (vscode-go, `"debugAdapter": "dlv-dap"`, `"request": "attach"`, `"mode": "remote"`)
//! connects to the `host:port` of a running `dlv --headless` server; Delve (v1.7.3+) serves DAP
//! on the same listener as JSON-RPC, telling the two apart by the first byte. The session is
//! `initialize` → `attach` (Delve halts the target and sends `initialized`) → `setBreakpoints`
//! → `configurationDone` (Delve resumes) → `stopped` events → `stackTrace`/`continue` →
//! `disconnect` (with `--accept-multiclient`, the server and target keep running).
//! Also [`HeadlessDlv`], the server as kdbg's session launches it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

pub struct DapClient {
    stream: TcpStream,
    buf: Vec<u8>,
    seq: i64,
    /// Events read while waiting for something else, oldest first.
    events: VecDeque<Value>,
    /// How long a request may take.
    pub timeout: Duration,
}

/// The top frame's place, as the editor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub path: String,
    pub line: u64,
}

impl DapClient {
    pub fn connect(addr: &str, timeout: Duration) -> anyhow::Result<DapClient> {
        let mut last = None;
        for sa in addr.to_socket_addrs().with_context(|| format!("failed to resolve {addr}"))? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    return Ok(DapClient {
                        stream,
                        buf: Vec::new(),
                        seq: 0,
                        events: VecDeque::new(),
                        timeout: Duration::from_secs(60),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(anyhow!("failed to connect to {addr}: {last:?}"))
    }

    /// Sends a request and returns its response's `body` (an error when `success` is false).
    pub fn request(&mut self, command: &str, arguments: Value) -> anyhow::Result<Value> {
        let seq = self.send(command, arguments)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let msg = self.read_message(deadline).with_context(|| format!("waiting for the answer to {command}"))?;
            match msg["type"].as_str() {
                Some("response") if msg["request_seq"].as_i64() == Some(seq) => {
                    if msg["success"].as_bool() != Some(true) {
                        bail!("{command} failed: {} {}", msg["message"], msg["body"]);
                    }
                    return Ok(msg.get("body").cloned().unwrap_or(Value::Null));
                }
                Some("event") => self.events.push_back(msg),
                _ => {}
            }
        }
    }

    /// Waits for the event `name` (queued or new) and returns its `body`.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> anyhow::Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            let e = self.events.remove(i).unwrap();
            return Ok(e.get("body").cloned().unwrap_or(Value::Null));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.read_message(deadline).with_context(|| format!("waiting for the {name} event"))?;
            if msg["type"] == "event" {
                if msg["event"] == name {
                    return Ok(msg.get("body").cloned().unwrap_or(Value::Null));
                }
                self.events.push_back(msg);
            }
        }
    }

    pub fn initialize(&mut self) -> anyhow::Result<Value> {
        self.request(
            "initialize",
            json!({ "clientID": "vscode", "adapterID": "go", "linesStartAt1": true, "columnsStartAt1": true, "pathFormat": "path" }),
        )
    }

    /// Sends a launch configuration as VSCode does (variables already substituted) and waits
    /// for the `initialized` event.
    pub fn attach(&mut self, config: Value) -> anyhow::Result<()> {
        self.request("attach", config)?;
        self.wait_event("initialized", self.timeout)?;
        Ok(())
    }

    /// Sets the breakpoints of one file (by the editor's path); returns Delve's answers.
    pub fn set_breakpoints(&mut self, path: &str, lines: &[u64]) -> anyhow::Result<Vec<Value>> {
        let bps: Vec<_> = lines.iter().map(|l| json!({ "line": l })).collect();
        let body = self.request("setBreakpoints", json!({ "source": { "path": path }, "breakpoints": bps }))?;
        Ok(body["breakpoints"].as_array().cloned().unwrap_or_default())
    }

    /// What VSCode does on F5 with a remote-attach configuration (its variables already
    /// substituted): connect to `host:port`, initialize, attach, set one breakpoint at the fixture
    /// tree's marker line of `pkg/healthz/healthz.go` under `root` (a workspace path), check Delve
    /// verified it there, and finish configuration. Returns the client and the breakpoint's line.
    pub fn attach_at_healthz_marker(config: Value, root: &std::path::Path) -> anyhow::Result<(DapClient, u64)> {
        let addr = format!("{}:{}", config["host"].as_str().context("config has no host")?, config["port"]);
        let mut dap = DapClient::connect(&addr, Duration::from_secs(10))?;
        dap.initialize()?;
        dap.attach(config)?;
        let file = root.join(crate::lab::healthz_file(root));
        let line = u64::from(crate::lab::breakpoint_line(root)?);
        let bps = dap.set_breakpoints(&file.to_string_lossy(), &[line])?;
        if bps.first().map(|b| (&b["verified"], &b["line"])) != Some((&Value::Bool(true), &Value::from(line))) {
            bail!("Delve did not verify the breakpoint at {}:{line}: {bps:?}", file.display());
        }
        dap.configuration_done()?;
        Ok((dap, line))
    }

    pub fn configuration_done(&mut self) -> anyhow::Result<()> {
        self.request("configurationDone", json!({}))?;
        Ok(())
    }

    /// Waits for a `stopped` event; returns its body (`reason`, `threadId`).
    pub fn wait_stopped(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        self.wait_event("stopped", timeout)
    }

    pub fn top_frame(&mut self, thread_id: i64) -> anyhow::Result<Frame> {
        let body = self.request("stackTrace", json!({ "threadId": thread_id, "startFrame": 0, "levels": 1 }))?;
        let f = &body["stackFrames"][0];
        Ok(Frame {
            name: f["name"].as_str().unwrap_or_default().to_string(),
            path: f["source"]["path"].as_str().unwrap_or_default().to_string(),
            line: f["line"].as_u64().unwrap_or_default(),
        })
    }

    /// Evaluates `expr` in the top frame of `thread_id` as VSCode's watch panel does; the value
    /// as Delve shows it (a string in quotes).
    pub fn evaluate(&mut self, thread_id: i64, expr: &str) -> anyhow::Result<String> {
        let body = self.request("stackTrace", json!({ "threadId": thread_id, "startFrame": 0, "levels": 1 }))?;
        let frame = body["stackFrames"][0]["id"].as_i64().context("a stack trace without a frame id")?;
        let body = self.request("evaluate", json!({ "expression": expr, "frameId": frame, "context": "watch" }))?;
        body["result"].as_str().map(String::from).with_context(|| format!("evaluate {expr} without a result: {body}"))
    }

    pub fn continue_(&mut self, thread_id: i64) -> anyhow::Result<()> {
        self.request("continue", json!({ "threadId": thread_id }))?;
        Ok(())
    }

    /// Ends the session; `terminate` also ends the debuggee (and a multi-client server).
    pub fn disconnect(mut self, terminate: bool) -> anyhow::Result<()> {
        self.request("disconnect", json!({ "terminateDebuggee": terminate }))?;
        Ok(())
    }

    fn send(&mut self, command: &str, arguments: Value) -> anyhow::Result<i64> {
        self.seq += 1;
        let body = serde_json::to_vec(
            &json!({ "seq": self.seq, "type": "request", "command": command, "arguments": arguments }),
        )?;
        let mut msg = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        msg.extend_from_slice(&body);
        self.stream.write_all(&msg).context("failed to send to the debug adapter")?;
        Ok(self.seq)
    }

    /// One `Content-Length`-framed message.
    fn read_message(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let header = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = header
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length:"))
                    .ok_or_else(|| anyhow!("a DAP header without Content-Length: {header:?}"))?
                    .trim()
                    .parse()?;
                if self.buf.len() >= end + 4 + len {
                    let msg = serde_json::from_slice(&self.buf[end + 4..end + 4 + len])?;
                    self.buf.drain(..end + 4 + len);
                    return Ok(msg);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out");
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("the debug adapter closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `dlv exec <binary> --headless --listen=127.0.0.1:0 --api-version=2 --accept-multiclient
/// --continue -- <args>`, as kdbg's session launches it; killed when dropped.
pub struct HeadlessDlv {
    child: Child,
    /// `127.0.0.1:<port>`, read from dlv's `API server listening at:` line.
    pub addr: String,
}

impl HeadlessDlv {
    pub fn start(binary: &str, args: &[String]) -> anyhow::Result<HeadlessDlv> {
        let mut child = Command::new("dlv")
            .args(["exec", binary, "--headless", "--listen=127.0.0.1:0", "--api-version=2"])
            .args(["--accept-multiclient", "--continue", "--"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to run dlv (is it on PATH?)")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            // Keep reading: the target's output goes through dlv's stdout.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("API server listening at: ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(HeadlessDlv { child, addr }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("dlv did not say where it listens within 60s")
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// Waits until dlv has exited.
    pub fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for HeadlessDlv {
    fn drop(&mut self) {
        // Kill the target too, not only dlv.
        if let Ok(mut c) = kdbg_core::dlv::DlvClient::connect(&self.addr, Duration::from_secs(1)) {
            c.call_timeout = Duration::from_secs(5);
            let _ = c.detach(true);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
