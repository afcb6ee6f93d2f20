//! Delve's wire types (service/api/types.go, service/rpc2/server.go), only the fields kdbg
//! reads, and their conversion into the client's own types.

use serde::Deserialize;

use super::{Breakpoint, DebuggerState, Location};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
#[cfg(test)]
pub(super) struct RawVersion {
    #[serde(default)]
    pub(super) delve_version: String,
    #[serde(rename = "APIVersion", default)]
    pub(super) api_version: u32,
    #[serde(default)]
    pub(super) backend: String,
    #[serde(default)]
    pub(super) target_go_version: String,
}

/// `StateOut` and `CommandOut` alike.
#[derive(Deserialize)]
pub(super) struct StateOut {
    #[serde(rename = "State")]
    pub(super) state: RawState,
}

#[derive(Deserialize)]
pub(super) struct RawState {
    #[serde(rename = "Pid", default)]
    pub(super) pid: u32,
    #[serde(rename = "Running", default)]
    pub(super) running: bool,
    #[serde(default)]
    pub(super) exited: bool,
    #[serde(rename = "exitStatus", default)]
    pub(super) exit_status: i32,
    #[serde(rename = "currentThread")]
    pub(super) current_thread: Option<RawThread>,
}

#[derive(Deserialize)]
pub(super) struct RawThread {
    #[serde(default)]
    pub(super) file: String,
    #[serde(default)]
    pub(super) line: u32,
    pub(super) function: Option<RawFunction>,
}

#[derive(Deserialize)]
pub(super) struct RawFunction {
    #[serde(default)]
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct BreakpointOut {
    #[serde(rename = "Breakpoint")]
    pub(super) breakpoint: RawBreakpoint,
}

#[derive(Deserialize)]
pub(super) struct BreakpointsOut {
    #[serde(rename = "Breakpoints", default)]
    pub(super) breakpoints: Vec<RawBreakpoint>,
}

#[derive(Deserialize)]
pub(super) struct RawBreakpoint {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) file: String,
    #[serde(default)]
    pub(super) line: u32,
    #[serde(rename = "functionName")]
    pub(super) function_name: Option<String>,
    #[serde(default)]
    pub(super) addrs: Option<Vec<u64>>,
}

impl From<RawState> for DebuggerState {
    fn from(s: RawState) -> DebuggerState {
        let current_thread = s.current_thread.filter(|t| !t.file.is_empty() || t.line != 0).map(|t| Location {
            file: t.file,
            line: t.line,
            function: t.function.map(|f| f.name).filter(|n| !n.is_empty()),
        });
        DebuggerState { running: s.running, exited: s.exited, exit_status: s.exit_status, pid: s.pid, current_thread }
    }
}

impl From<RawBreakpoint> for Breakpoint {
    fn from(b: RawBreakpoint) -> Breakpoint {
        Breakpoint {
            id: b.id,
            name: b.name,
            file: b.file,
            line: b.line,
            function: b.function_name.filter(|n| !n.is_empty()),
            addrs: b.addrs.unwrap_or_default(),
        }
    }
}
