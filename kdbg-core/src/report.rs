//! Events kdbg-core reports instead of printing: the CLI draws them, tests collect them.

use std::sync::Mutex;

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

/// Keeps every event; for tests and for `--json` renderers that print at the end.
#[derive(Debug, Default)]
pub struct Collect(pub Mutex<Vec<Event>>);

impl Reporter for Collect {
    fn report(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

/// Drops everything.
pub struct Quiet;

impl Reporter for Quiet {
    fn report(&self, _: Event) {}
}
