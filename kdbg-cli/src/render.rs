//! Draws kdbg-core's events on the terminal: a spinner with make's latest line, warnings, step results.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kdbg_core::report::{Event, Reporter, StepStatus};

/// Prints to stderr; stdout is kept for results (`--json`, keys).
pub struct Terminal {
    verbose: bool,
    spinner: Mutex<Option<ProgressBar>>,
    tty: bool,
}

impl Terminal {
    pub fn new(verbose: bool) -> Terminal {
        Terminal { verbose, spinner: Mutex::new(None), tty: std::io::stderr().is_terminal() }
    }

    fn println(&self, line: String) {
        match self.spinner.lock().unwrap().as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn start_spinner(&self, message: String) {
        if !self.tty {
            eprintln!("{message}");
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(message);
        *self.spinner.lock().unwrap() = Some(bar);
    }

    fn stop_spinner(&self) {
        if let Some(bar) = self.spinner.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Terminal {
    fn report(&self, event: Event) {
        match event {
            Event::Step { id, status: StepStatus::Started } => self.start_spinner(format!("{id} ...")),
            Event::Step { id, status: StepStatus::Done { seconds } } => {
                self.stop_spinner();
                eprintln!("{id}: done in {seconds:.1}s");
            }
            Event::Step { id, status: StepStatus::Skipped { reason } } => eprintln!("{id}: up to date ({reason})"),
            Event::Step { id, status: StepStatus::Failed { error } } => {
                self.stop_spinner();
                eprintln!("{id}: FAILED: {error}");
            }
            Event::Output { line, .. } => {
                if self.verbose {
                    self.println(format!("  | {line}"));
                }
                if let Some(bar) = self.spinner.lock().unwrap().as_ref() {
                    bar.set_message(line.chars().take(100).collect::<String>());
                }
            }
            Event::Info { message } => self.println(message),
            Event::Warning { message } => self.println(format!("warning: {message}")),
        }
    }
}
