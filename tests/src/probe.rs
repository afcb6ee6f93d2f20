//! A request a test can recognise at a breakpoint: `GET /healthz?kdbg-probe=<n>`, and the
//! Delve evaluation (`r.URL.RawQuery` in the halted frame) that says the goroutine Delve stopped
//! is the one serving it — so the request cannot have been answered yet. Tests assert that
//! instead of sleeping and then checking that the request has not finished.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The expression whose value names the request a goroutine in the fixture's healthz handler serves.
pub const QUERY_EXPR: &str = "r.URL.RawQuery";

/// One recognisable request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    query: String,
}

impl Probe {
    /// A query no other probe of this process uses.
    pub fn new() -> Probe {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        Probe { query: format!("kdbg-probe={}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)) }
    }

    /// The request's path: `/healthz?<query>`.
    pub fn path(&self) -> String {
        format!("/healthz?{}", self.query)
    }

    /// What [`QUERY_EXPR`] evaluates to in the goroutine serving this request.
    pub fn query(&self) -> &str {
        &self.query
    }
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::new()
    }
}

/// Evaluates `expr` in the frame where Delve's current goroutine stopped, through Delve's
/// JSON-RPC API on a connection of its own (`addr` is `host:port`, a multi-client server);
/// returns the value as Delve prints it (a string without quotes).
pub fn rpc_eval(addr: &str, expr: &str) -> Result<String> {
    let stream = TcpStream::connect(addr).with_context(|| format!("failed to connect to delve at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let scope = json!({ "GoroutineID": -1, "Frame": 0, "DeferredCall": 0 });
    let msg = json!({ "method": "RPCServer.Eval", "params": [{ "Scope": scope, "Expr": expr }], "id": 1 });
    (&stream).write_all(format!("{msg}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).with_context(|| format!("delve at {addr} did not answer Eval"))?;
    let answer: Value = serde_json::from_str(&line).with_context(|| format!("delve's answer to Eval: {line:?}"))?;
    if !answer["error"].is_null() {
        bail!("delve at {addr} could not evaluate {expr}: {}", answer["error"]);
    }
    match answer["result"]["Variable"]["value"].as_str() {
        Some(value) => Ok(value.to_string()),
        None => bail!("delve's answer to Eval has no value: {answer}"),
    }
}
