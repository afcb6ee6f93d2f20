//! Events kdbg-core reports instead of printing; the CLI draws them.

use serde::Serialize;

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
        id: String,
        status: StepStatus,
    },
    /// A line of a long-running tool's output (make, go), for a progress display.
    Output {
        id: String,
        line: String,
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
    fn step(&self, id: &str, status: StepStatus) {
        self.report(Event::Step { id: id.to_string(), status });
    }
}
