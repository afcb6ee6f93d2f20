//! Events kdbg-core reports instead of printing; the CLI draws them.

use serde::Serialize;

use crate::plan::StepId;

/// How a step ended (or that it began).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    Started,
    /// Nothing to do: the step's fingerprint is unchanged.
    Skipped {
        reason: String,
    },
    Done {
        seconds: f64,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Step {
        id: StepId,
        status: StepStatus,
    },
    /// A line of a long-running tool's output (make, go), for a progress display.
    Output {
        id: StepId,
        line: String,
    },
    /// A long transfer's progress (a pull from the team cache): bytes so far of `total`.
    Progress {
        id: StepId,
        done: u64,
        total: u64,
    },
    Info {
        message: String,
    },
    Warning {
        message: String,
    },
}

pub trait Reporter: Sync {
    fn report(&self, event: Event);

    fn info(&self, message: String) {
        self.report(Event::Info { message });
    }
    fn warn(&self, message: String) {
        self.report(Event::Warning { message });
    }
    fn step(&self, id: &StepId, status: StepStatus) {
        self.report(Event::Step { id: id.clone(), status });
    }
}

/// Names the node in the step events of a run over several nodes that a node's own code
/// reports without it (`restore:kube-apiserver@n1` for a rollback's restore).
pub(crate) struct OnNode<'a> {
    pub inner: &'a dyn Reporter,
    pub node: &'a str,
}

impl Reporter for OnNode<'_> {
    fn report(&self, mut event: Event) {
        if let Event::Step { id, .. } | Event::Output { id, .. } | Event::Progress { id, .. } = &mut event {
            if id.node.is_none() {
                id.node = Some(self.node.to_string());
            }
        }
        self.inner.report(event);
    }
}
