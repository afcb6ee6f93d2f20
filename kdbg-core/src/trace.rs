//! `kdbg trace`: a guided tour of how a component handles one action, recorded live through the
//! Delve of a `kdbg debug` session.
//!
//! ```text
//! tour (data) --resolve against Delve's ListFunctions--> breakpoints named kdbgtrace*
//!   continue; trigger (--run, on the workstation) ----> each stop: record goroutine, file:line,
//!   captured expressions, continue at once ("tracepoint loop") until --for seconds have passed
//!   and the trigger ended; then halt, clear every kdbgtrace* breakpoint, continue
//! ```
//! Delve's own tracepoints (`Tracepoint: true`) do not stop, but their hits reach only the
//! client whose `continue` is pending, one `Command` answer per hit, which is the same loop; a
//! plain breakpoint that kdbg continues is what works across Delve 1.20-1.27 alike. `--stop`
//! leaves the breakpoints set and the program halted at the first hit, for the IDE.
//!
//! File names are the binary's (`file:line` as Delve reports them) mapped to the user's tree by
//! the same rules the IDE gets ([`crate::ide::mapping`]).

mod record;
pub mod report;
mod run;
pub mod tour;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::dlv::DlvRpcError;
use crate::ide::mapping::PathRule;
use crate::session::SessionError;

pub use crate::toolchain::goroot;
pub use run::{clear, trace, unresolvable, TraceConfig};

/// Breakpoints kdbg sets for tours are named with this prefix (Delve takes letters and digits).
pub(crate) const BREAKPOINT_PREFIX: &str = "kdbgtrace";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    Dlv(#[from] DlvRpcError),
    #[error("{component} is not under debug on {node}\n  fix: `kdbg debug {alias} --target ...` first, then trace it (`kdbg status` shows what is under debug)")]
    NotUnderDebug { component: String, alias: String, node: String },
    #[error("no tour {tour} for {component}\n  fix: `kdbg trace --list` shows the tours and their components")]
    UnknownTour { component: String, tour: String },
    #[error("no waypoint of tour {tour} matches a function of {component}'s binary\n  fix: is the binary a kubernetes {component}? `kdbg trace --list --target ...` shows how many resolve")]
    NothingResolved { component: String, tour: String },
    #[error("{component} exited while being traced (status {status})\n  fix: `kdbg status` shows the session; `kdbg restore` puts the original back")]
    Exited { component: String, status: i32 },
    #[error("failed to run the trigger `{command}`: {detail}")]
    Trigger { command: String, detail: String },
    #[error("the trace of {component} ended: {why}\n  fix: `kdbg status` shows the session; `kdbg debug {alias} --target ...` starts a new one")]
    SessionEnded { component: String, alias: String, why: String },
}

impl TraceError {
    /// The class of the node's failure behind this error; the rest are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            TraceError::Session(e) => e.exit_class(),
            TraceError::Node(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }
}

/// A waypoint's functions found in the binary, with the breakpoints kdbg set on them.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    /// The waypoint's number in the tour, from 1 (as everywhere kdbg shows one).
    pub waypoint: usize,
    pub name: String,
    pub functions: Vec<String>,
}

/// A waypoint this binary has no function for (reported; the tour goes on).
#[derive(Debug, Clone, Serialize)]
pub struct Unresolved {
    /// The waypoint's number in the tour, from 1.
    pub waypoint: usize,
    pub name: String,
    pub patterns: Vec<String>,
    /// Why: nothing matches, or Delve refused the breakpoint.
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub expr: String,
    pub value: String,
}

/// One recorded stop.
#[derive(Debug, Clone, Serialize)]
pub struct TimedHit {
    /// 1-based order of arrival.
    pub seq: usize,
    /// The waypoint's number in the tour, from 1 (text, HTML and `--json` alike).
    pub waypoint: usize,
    pub waypoint_name: String,
    pub function: String,
    pub goroutine: i64,
    /// Milliseconds since the trigger started (negative: before it).
    pub ms: i64,
    /// The file as the binary recorded it.
    pub recorded_file: String,
    /// The same file in the user's tree, when the mapping knows it.
    pub file: Option<Utf8PathBuf>,
    pub line: u32,
    pub captures: Vec<Capture>,
}

impl TimedHit {
    /// The file to show: in the tree, else as recorded.
    pub fn shown_file(&self) -> &str {
        self.file.as_deref().map(Utf8Path::as_str).unwrap_or(&self.recorded_file)
    }

    /// The tour's waypoint of this hit.
    pub fn waypoint_of<'t>(&self, tour: &'t tour::Tour) -> Option<&'t tour::Waypoint> {
        self.waypoint.checked_sub(1).and_then(|i| tour.waypoints.get(i))
    }

    /// The Go package of the hit's function (`k8s.io/apiserver/pkg/endpoints/filters`).
    pub(crate) fn package(&self) -> &str {
        package_of(&self.function)
    }
}

/// `a/b/c.(*T).M.func1` → `a/b/c`.
pub fn package_of(function: &str) -> &str {
    let slash = function.rfind('/').map_or(0, |i| i + 1);
    match function[slash..].find('.') {
        Some(dot) => &function[..slash + dot],
        None => function,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TriggerOutcome {
    pub command: String,
    /// `None` when it had not ended when kdbg stopped waiting (`--stop`).
    pub exit_code: Option<i32>,
    pub output: String,
}

/// What a trace recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub component: String,
    pub node: String,
    pub tour: tour::Tour,
    pub resolved: Vec<Resolved>,
    pub unresolved: Vec<Unresolved>,
    pub trigger: Option<TriggerOutcome>,
    pub hits: Vec<TimedHit>,
    /// `--stop`: the breakpoints left set for the IDE (Delve ids).
    pub left_set: Vec<i64>,
}

/// Maps recorded file names to the user's tree with the IDE's rules.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    pub root: Utf8PathBuf,
    /// Most specific first, as [`crate::ide::mapping::Mapping`] orders them.
    pub rules: Vec<PathRule>,
    /// The GOROOT of the Go kdbg selected (`--go`, the tree's `.go-version`, the `go` on PATH:
    /// [`goroot`]): the standard library's files (`net/http/server.go` in a
    /// -trimpath build) are shown from `<goroot>/src`.
    pub goroot: Option<Utf8PathBuf>,
}

impl PathMap {
    /// The local file `recorded` stands for, if a rule (or GOROOT) covers it and it exists.
    pub(crate) fn to_tree(&self, recorded: &str) -> Option<Utf8PathBuf> {
        self.by_rules(recorded).or_else(|| {
            let std = self.goroot.as_ref()?.join("src").join(recorded);
            (!recorded.starts_with('/') && std.is_file()).then_some(std)
        })
    }

    fn by_rules(&self, recorded: &str) -> Option<Utf8PathBuf> {
        for r in &self.rules {
            let rest = if r.recorded.is_empty() {
                (!recorded.starts_with('/')).then_some(recorded)
            } else if recorded == r.recorded {
                Some("")
            } else {
                recorded.strip_prefix(r.recorded.trim_end_matches('/')).and_then(|rest| rest.strip_prefix('/'))
            };
            if let Some(rest) = rest {
                let mut p = self.root.join(&r.tree);
                if !rest.is_empty() {
                    p = p.join(rest);
                }
                return p.is_file().then_some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_of_methods_closures_and_vendored_functions() {
        assert_eq!(package_of("net/http.(*conn).serve"), "net/http");
        assert_eq!(package_of("k8s.io/kubernetes/pkg/healthz.(*Handler).ServeHTTP"), "k8s.io/kubernetes/pkg/healthz");
        assert_eq!(
            package_of("k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/endpoints/filters.WithAuthentication.func1"),
            "k8s.io/kubernetes/vendor/k8s.io/apiserver/pkg/endpoints/filters"
        );
        assert_eq!(package_of("main.main"), "main");
    }

    #[test]
    fn maps_recorded_files_into_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().to_path_buf();
        std::fs::create_dir_all(root.join("pkg/healthz")).unwrap();
        std::fs::write(root.join("pkg/healthz/healthz.go"), "package healthz\n").unwrap();
        let map = PathMap {
            root: root.clone(),
            rules: vec![PathRule { tree: String::new(), recorded: "k8s.io/kubernetes".into() }],
            goroot: Some(root.join("goroot")),
        };
        std::fs::create_dir_all(root.join("goroot/src/net/http")).unwrap();
        std::fs::write(root.join("goroot/src/net/http/server.go"), "package http\n").unwrap();
        assert_eq!(map.to_tree("net/http/server.go"), Some(root.join("goroot/src/net/http/server.go")));
        assert_eq!(map.to_tree("k8s.io/kubernetes/pkg/healthz/healthz.go"), Some(root.join("pkg/healthz/healthz.go")));
        assert_eq!(map.to_tree("k8s.io/kubernetes/pkg/gone.go"), None);
        assert_eq!(map.to_tree("/usr/lib/go/src/net/http/server.go"), None);
    }
}
