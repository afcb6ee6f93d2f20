//! What `kdbg watch` reports: a cycle's timings and the loop's events, for the CLI to print.

use serde::Serialize;

/// What one cycle did, each stage's wall time in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub cycle: u32,
    /// The components relaunched (their binary changed).
    pub relaunched: Vec<String>,
    /// Keys, `make` and recording the outputs.
    pub build_s: f64,
    /// `make` alone, or the replay of its `go` builds (0 when every key was a hit).
    pub make_s: f64,
    /// Which build path ran: `make`, `replay` (see [`crate::build::replay`]), or `None` (all hits).
    pub via: Option<crate::build::Via>,
    pub copy_s: f64,
    /// Bytes sent for the binaries.
    pub copy_bytes: u64,
    /// Stopping the old Delve, starting the new one, until every program serves.
    pub relaunch_s: f64,
    /// Of which, on the node's clock: stopping the old processes until Delve listens (the slowest
    /// component) ...
    pub dlv_s: f64,
    /// ... and until the program serves too: what the node itself spends on a relaunch.
    pub node_s: f64,
    /// From the first change noticed until ready, debounce included.
    pub total_s: f64,
    pub debounce_s: f64,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// Watching started (after syncing the node with the tree); the session is ready.
    Watching {
        components: Vec<String>,
        dirs: usize,
        missing: Vec<String>,
    },
    /// A cycle rebuilds or recopies: `make` starts, or a binary differs from the node's.
    Started {
        cycle: u32,
        files: Vec<String>,
    },
    /// Files changed, but no binary did (outside every closure, or a change `go` ignores).
    NoChange {
        components: Vec<String>,
        files: Vec<String>,
    },
    Done(CycleReport),
    /// A cycle failed at `stage` (build, copy, relaunch); what ran before keeps running.
    Failed {
        cycle: u32,
        stage: String,
        error: String,
        session_kept: bool,
    },
    /// A relaunched program did not serve in time (it may still be starting).
    Warning {
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// `stop` was set (Ctrl-C, SIGTERM).
    Asked,
    /// `max_cycles` cycles ran.
    Cycles,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchOutcome {
    pub cycles: u32,
    pub stopped: Stopped,
}
