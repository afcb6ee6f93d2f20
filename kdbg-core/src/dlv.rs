//! Delve JSON-RPC API v2 client (state, breakpoints, continue, detach), used by `status`, shutdown and tests.
//!
//! Delve's headless server (`dlv exec --headless --api-version=2 --accept-multiclient`) speaks
//! Go's `net/rpc/jsonrpc` over TCP: `{"method":"RPCServer.State","params":[{...}],"id":N}` in,
//! `{"id":N,"result":{...},"error":null}` out, one JSON object after another. The same listener
//! also accepts DAP clients (a connection whose first byte is `C`, for `Content-Length`), which
//! is how VSCode's `"mode": "remote"` attaches; see `serveConnectionDemux` in Delve's
//! `service/rpccommon/server.go` (v1.7.3+) and `Documentation/api/dap/README.md`.
//!
//! `RPCServer.Command` with `continue` answers only when the target stops again, so
//! [`DlvClient::continue_async`] sends it and returns; the answer is picked up by
//! [`DlvClient::wait_stopped`], or kept aside when it arrives while another call is waiting for
//! its own answer (Delve serves a connection's calls concurrently and matches them by id).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum DlvRpcError {
    #[error("failed to connect to delve at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("lost the connection to delve at {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("delve at {addr} closed the connection")]
    Closed { addr: String },
    #[error("delve at {addr} did not answer {method} within {timeout:?}")]
    Timeout { addr: String, method: String, timeout: Duration },
    #[error("delve at {addr} failed {method}: {message}")]
    Rpc { addr: String, method: String, message: String },
    #[error("unexpected answer from delve at {addr} to {method}: {detail}")]
    Protocol { addr: String, method: String, detail: String },
    #[error("no continue is pending on the connection to delve at {addr}")]
    NotContinuing { addr: String },
}

/// Where a thread is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub function: Option<String>,
}

/// Delve's `DebuggerState`, reduced to what kdbg uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebuggerState {
    pub running: bool,
    pub exited: bool,
    pub exit_status: i32,
    pub pid: u32,
    pub current_thread: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakpoint {
    pub id: i64,
    pub name: String,
    pub file: String,
    pub line: u32,
    pub function: Option<String>,
    pub addrs: Vec<u64>,
}

#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Version {
    pub delve: String,
    pub api: u32,
    pub backend: String,
    pub target_go: String,
}

/// One connection to a Delve server.
pub struct DlvClient {
    addr: String,
    stream: TcpStream,
    /// Bytes read but not yet parsed (a read can end mid-message).
    buf: Vec<u8>,
    next_id: u64,
    /// The id of a `continue` whose answer has not been read.
    continuing: Option<u64>,
    /// That answer, when it arrived while waiting for another one.
    stopped: Option<Result<DebuggerState, DlvRpcError>>,
    /// How long an ordinary call may take.
    pub call_timeout: Duration,
}

impl DlvClient {
    /// Connects to `addr` (`host:port`), giving up after `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> Result<DlvClient, DlvRpcError> {
        let connect_err = |source| DlvRpcError::Connect { addr: addr.to_string(), source };
        let addrs = addr.to_socket_addrs().map_err(connect_err)?;
        let mut last = std::io::Error::new(ErrorKind::NotFound, "the address resolves to nothing");
        for sa in addrs {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(DlvClient {
                        addr: addr.to_string(),
                        stream,
                        buf: Vec::new(),
                        next_id: 1,
                        continuing: None,
                        stopped: None,
                        call_timeout: Duration::from_secs(30),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(connect_err(last))
    }

    #[cfg(test)]
    pub(crate) fn version(&mut self) -> Result<Version, DlvRpcError> {
        let v: RawVersion = self.call("GetVersion", json!({}))?;
        Ok(Version { delve: v.delve_version, api: v.api_version, backend: v.backend, target_go: v.target_go_version })
    }

    /// The state, also while the target runs (`running: true`, no thread).
    pub fn state_nonblocking(&mut self) -> Result<DebuggerState, DlvRpcError> {
        let out: StateOut = self.call("State", json!({ "NonBlocking": true }))?;
        Ok(out.state.into())
    }

    /// A breakpoint at `file:line`, `file` exactly as recorded in the binary.
    pub fn create_breakpoint_file_line(&mut self, file: &str, line: u32) -> Result<Breakpoint, DlvRpcError> {
        self.create(json!({ "Breakpoint": { "file": file, "line": line } }))
    }

    /// A breakpoint at a function's entry, e.g. `k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP`.
    pub fn create_breakpoint_function(&mut self, name: &str) -> Result<Breakpoint, DlvRpcError> {
        self.create(json!({ "Breakpoint": { "functionName": name } }))
    }

    /// A breakpoint at a location expression as `dlv connect`'s `break` takes it (`healthz.go:29`,
    /// `/tree/pkg/healthz/healthz.go:29`); `rules` are `(recorded, local)` prefixes, as in
    /// Delve's `config substitute-path`.
    #[cfg(test)]
    pub(crate) fn create_breakpoint_at(
        &mut self,
        expr: &str,
        rules: &[(String, String)],
    ) -> Result<Breakpoint, DlvRpcError> {
        self.create(json!({ "Breakpoint": {}, "LocExpr": expr, "SubstitutePathRules": rules }))
    }

    fn create(&mut self, params: Value) -> Result<Breakpoint, DlvRpcError> {
        let out: BreakpointOut = self.call("CreateBreakpoint", params)?;
        Ok(out.breakpoint.into())
    }

    pub fn list_breakpoints(&mut self) -> Result<Vec<Breakpoint>, DlvRpcError> {
        let out: BreakpointsOut = self.call("ListBreakpoints", json!({}))?;
        Ok(out.breakpoints.into_iter().map(Into::into).collect())
    }

    pub fn clear_breakpoint(&mut self, id: i64) -> Result<Breakpoint, DlvRpcError> {
        let out: BreakpointOut = self.call("ClearBreakpoint", json!({ "Id": id }))?;
        Ok(out.breakpoint.into())
    }

    /// Resumes the target without waiting for it to stop; see [`DlvClient::wait_stopped`].
    pub fn continue_async(&mut self) -> Result<(), DlvRpcError> {
        if self.continuing.is_some() || self.stopped.is_some() {
            // The previous continue's answer is still to be collected: collecting it first keeps
            // the caller from missing a stop.
            return Err(DlvRpcError::Protocol {
                addr: self.addr.clone(),
                method: "RPCServer.Command".into(),
                detail: "a continue is already pending; call wait_stopped first".into(),
            });
        }
        let id = self.send("Command", json!({ "name": "continue" }))?;
        self.continuing = Some(id);
        Ok(())
    }

    /// Resumes the target and returns once Delve reports it running (or stopped again, or exited,
    /// or 5 s passed): a command that hands the program back and exits leaves it in a definite
    /// state, so the next client does not find Delve still about to run it.
    pub fn resume(&mut self) -> Result<(), DlvRpcError> {
        self.continue_async()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.state_nonblocking()?;
            if s.running || s.exited || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the pending continue ends (a breakpoint, a halt, the target's exit).
    pub fn wait_stopped(&mut self, timeout: Duration) -> Result<DebuggerState, DlvRpcError> {
        if let Some(stopped) = self.stopped.take() {
            return stopped;
        }
        let Some(id) = self.continuing else {
            return Err(DlvRpcError::NotContinuing { addr: self.addr.clone() });
        };
        let out: StateOut = self.wait(id, "RPCServer.Command", timeout)?;
        Ok(out.state.into())
    }

    /// Stops the target (a pending continue then ends, and its answer is consumed here).
    pub fn halt(&mut self) -> Result<DebuggerState, DlvRpcError> {
        let out: StateOut = self.call("Command", json!({ "name": "halt" }))?;
        if self.continuing.is_some() {
            let timeout = self.call_timeout;
            let _ = self.wait_stopped(timeout);
        }
        self.stopped = None;
        Ok(out.state.into())
    }

    /// Ends the debug session: the target is killed or left running, and the server exits.
    /// A running target is halted first (Delve cannot detach from a running process).
    pub fn detach(mut self, kill: bool) -> Result<(), DlvRpcError> {
        if self.continuing.is_some() || self.state_nonblocking()?.running {
            self.halt()?;
        }
        match self.call::<Value>("Detach", json!({ "Kill": kill })) {
            // The server may exit before its answer is flushed.
            Ok(_) | Err(DlvRpcError::Closed { .. }) => Ok(()),
            Err(DlvRpcError::Io { source, .. }) if source.kind() == ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Calls `RPCServer.<method>` and waits for its answer.
    pub(crate) fn call<T: DeserializeOwned>(&mut self, method: &str, params: Value) -> Result<T, DlvRpcError> {
        let id = self.send(method, params)?;
        let timeout = self.call_timeout;
        self.wait(id, &format!("RPCServer.{method}"), timeout)
    }

    fn send(&mut self, method: &str, params: Value) -> Result<u64, DlvRpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "method": format!("RPCServer.{method}"), "params": [params], "id": id });
        let mut bytes = serde_json::to_vec(&msg).expect("a json value serializes");
        bytes.push(b'\n');
        self.stream.write_all(&bytes).map_err(|source| self.io(source))?;
        Ok(id)
    }

    fn wait<T: DeserializeOwned>(&mut self, id: u64, method: &str, timeout: Duration) -> Result<T, DlvRpcError> {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.read_message(deadline, method, timeout)?;
            let got = msg.get("id").and_then(Value::as_u64);
            if got.is_some() && got == self.continuing {
                self.continuing = None;
                if got != Some(id) {
                    self.stopped = Some(self.decode::<StateOut>(&msg, "RPCServer.Command").map(|o| o.state.into()));
                    continue;
                }
            }
            if got == Some(id) {
                return self.decode(&msg, method);
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, msg: &Value, method: &str) -> Result<T, DlvRpcError> {
        match msg.get("error") {
            Some(Value::Null) | None => {}
            Some(e) => {
                let message = e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string());
                return Err(DlvRpcError::Rpc { addr: self.addr.clone(), method: method.to_string(), message });
            }
        }
        let result = msg.get("result").cloned().unwrap_or(Value::Null);
        serde_json::from_value(result).map_err(|e| self.protocol(method, e.to_string()))
    }

    /// The next whole JSON message, reading more as needed until `deadline`.
    fn read_message(&mut self, deadline: Instant, method: &str, timeout: Duration) -> Result<Value, DlvRpcError> {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    return Ok(v);
                }
                Some(Err(e)) if !e.is_eof() => return Err(self.protocol(method, e.to_string())),
                _ => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DlvRpcError::Timeout { addr: self.addr.clone(), method: method.to_string(), timeout });
            }
            self.stream.set_read_timeout(Some(left)).map_err(|source| self.io(source))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(DlvRpcError::Closed { addr: self.addr.clone() }),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    fn io(&self, source: std::io::Error) -> DlvRpcError {
        DlvRpcError::Io { addr: self.addr.clone(), source }
    }

    fn protocol(&self, method: &str, detail: String) -> DlvRpcError {
        DlvRpcError::Protocol { addr: self.addr.clone(), method: method.to_string(), detail }
    }
}

mod wire;
#[cfg(test)]
use wire::RawVersion;
use wire::{BreakpointOut, BreakpointsOut, StateOut};

mod trace;
pub(crate) use trace::{Stop, TraceBreakpoint};

#[cfg(test)]
mod tests;
