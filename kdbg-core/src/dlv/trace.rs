//! The calls `kdbg trace` adds to the Delve client: the binary's function list, breakpoints that
//! capture expressions, and the stop answer's per-thread breakpoint hits.
//!
//! Delve evaluates a breakpoint's `variables` when a thread stops there (with a fixed load
//! configuration: strings up to 64 bytes, one level of structs) and puts them in that thread's
//! `breakPointInfo`; an expression that fails is returned with `unreadable` set, never an error.
//! Wire names (`breakPoint`, `breakPointInfo`, `goroutineID`) are from `service/api/types.go`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Breakpoint, BreakpointOut, DlvClient, DlvRpcError};

/// What a breakpoint set for a tour looks like to Delve.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceBreakpoint {
    /// Delve's breakpoint name (letters and digits; not a number).
    pub name: String,
    /// A function, exactly as `list_functions` named it.
    pub function: String,
    /// Expressions evaluated at each hit.
    pub variables: Vec<String>,
    /// Stop only when this expression is true (Delve evaluates it in the target).
    pub cond: Option<String>,
}

/// A thread stopped at a breakpoint, with what it captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Hit {
    pub breakpoint: i64,
    pub goroutine: i64,
    pub file: String,
    pub line: u32,
    pub function: Option<String>,
    /// `(expression, value)`; an expression Delve could not evaluate has the error as value.
    pub captures: Vec<(String, String)>,
}

/// The end of a `continue`: which threads stopped at breakpoints, and whether the target exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stop {
    pub hits: Vec<Hit>,
    pub exited: bool,
}

impl DlvClient {
    /// The functions of the binary whose names match the Go regular expression `filter`.
    pub(crate) fn list_functions(&mut self, filter: &str) -> Result<Vec<String>, DlvRpcError> {
        let out: FunctionsOut = self.call("ListFunctions", json!({ "Filter": filter }))?;
        Ok(out.funcs)
    }

    /// A breakpoint at `bp.function`'s entry that evaluates `bp.variables` when hit.
    pub(crate) fn create_trace_breakpoint(&mut self, bp: &TraceBreakpoint) -> Result<Breakpoint, DlvRpcError> {
        let mut spec = json!({ "name": bp.name, "functionName": bp.function, "variables": bp.variables });
        if let Some(cond) = &bp.cond {
            spec["Cond"] = json!(cond);
        }
        let out: BreakpointOut = self.call("CreateBreakpoint", json!({ "Breakpoint": spec }))?;
        Ok(out.breakpoint.into())
    }

    /// Like [`DlvClient::wait_stopped`], keeping each thread's breakpoint and captured values.
    pub(crate) fn wait_hits(&mut self, timeout: Duration) -> Result<Stop, DlvRpcError> {
        if self.stopped.is_some() {
            return Err(self.protocol("RPCServer.Command", "the stop was already consumed".into()));
        }
        let Some(id) = self.continuing else {
            return Err(DlvRpcError::NotContinuing { addr: self.addr.clone() });
        };
        let out: HitsOut = self.wait(id, "RPCServer.Command", timeout)?;
        let hits = out
            .state
            .threads
            .into_iter()
            .filter_map(|t| {
                let bp = t.breakpoint?;
                let captures = t
                    .info
                    .map(|i| i.variables)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v.name.clone(), v.render()))
                    .collect();
                Some(Hit {
                    breakpoint: bp.id,
                    goroutine: t.goroutine,
                    file: t.file,
                    line: t.line,
                    function: t.function.map(|f| f.name),
                    captures,
                })
            })
            .collect();
        Ok(Stop { hits, exited: out.state.exited })
    }
}

/// Go marshals a nil slice as `null`.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct FunctionsOut {
    #[serde(rename = "Funcs", default, deserialize_with = "nullable")]
    funcs: Vec<String>,
}

#[derive(Deserialize)]
struct HitsOut {
    #[serde(rename = "State")]
    state: HitsState,
}

#[derive(Deserialize)]
struct HitsState {
    #[serde(rename = "Threads", default, deserialize_with = "nullable")]
    threads: Vec<HitThread>,
    #[serde(default)]
    exited: bool,
}

#[derive(Deserialize)]
struct HitThread {
    #[serde(default)]
    file: String,
    #[serde(default)]
    line: u32,
    function: Option<super::wire::RawFunction>,
    #[serde(rename = "goroutineID", default)]
    goroutine: i64,
    #[serde(rename = "breakPoint")]
    breakpoint: Option<BpId>,
    #[serde(rename = "breakPointInfo")]
    info: Option<BpInfo>,
}

#[derive(Deserialize)]
struct BpId {
    id: i64,
}

#[derive(Deserialize)]
struct BpInfo {
    #[serde(default, deserialize_with = "nullable")]
    variables: Vec<Variable>,
}

/// `api.Variable`, the fields needed to print a captured value.
#[derive(Deserialize)]
struct Variable {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    type_: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "nullable")]
    children: Vec<Variable>,
    #[serde(default)]
    unreadable: String,
}

impl Variable {
    /// A short rendering: the value of a scalar or string, `{a, b}` of a struct's first fields,
    /// `<unreadable: ...>` when Delve could not evaluate it.
    fn render(&self) -> String {
        if !self.unreadable.is_empty() {
            return format!("<unreadable: {}>", self.unreadable);
        }
        if !self.value.is_empty() || self.children.is_empty() {
            return if self.type_ == "string" { format!("{:?}", self.value) } else { self.value.clone() };
        }
        let parts: Vec<String> = self.children.iter().take(4).map(|c| format!("{}: {}", c.name, c.render())).collect();
        let more = if self.children.len() > 4 { ", ..." } else { "" };
        format!("{{{}{more}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values_structs_and_errors() {
        let v: Variable =
            serde_json::from_value(json!({"name": "r.URL.Path", "type": "string", "value": "/healthz"})).unwrap();
        assert_eq!(v.render(), "\"/healthz\"");
        let v: Variable = serde_json::from_value(json!({"name": "n", "type": "int", "value": "201"})).unwrap();
        assert_eq!(v.render(), "201");
        let v: Variable =
            serde_json::from_value(json!({"name": "x", "unreadable": "eval error: could not find symbol value for x"}))
                .unwrap();
        assert_eq!(v.render(), "<unreadable: eval error: could not find symbol value for x>");
        let v: Variable = serde_json::from_value(json!({"name": "gr", "type": "GroupResource", "children": [
            {"name": "Group", "type": "string", "value": ""}, {"name": "Resource", "type": "string", "value": "namespaces"}
        ]}))
        .unwrap();
        assert_eq!(v.render(), "{Group: \"\", Resource: \"namespaces\"}");
    }

    #[test]
    fn reads_threads_stopped_at_breakpoints() {
        let answer = json!({"State": {"Running": false, "Threads": [
            {"id": 1, "file": "/x/h.go", "line": 3, "goroutineID": 7, "function": {"name": "p.F"},
             "breakPoint": {"id": 4}, "breakPointInfo": {"variables": [{"name": "k", "type": "string", "value": "v"}]}},
            {"id": 2, "file": "/x/o.go", "line": 9, "goroutineID": 0, "breakPointInfo": null, "ReturnValues": null}
        ], "exited": false}});
        let out: HitsOut = serde_json::from_value(answer).unwrap();
        assert_eq!(out.state.threads.len(), 2);
        assert!(out.state.threads[1].breakpoint.is_none());
        assert_eq!(out.state.threads[0].info.as_ref().unwrap().variables[0].render(), "\"v\"");
    }
}
