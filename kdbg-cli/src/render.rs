//! Draws kdbg-core's events on the terminal: a spinner with make's latest line, a bar per long
//! transfer, warnings, step results.

use crate::out::errln;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use kdbg_core::plan::StepId;
use kdbg_core::report::{Event, Reporter, StepStatus};

/// Prints to stderr; stdout is kept for results (`--json`, keys).
pub struct Terminal {
    verbose: bool,
    spinner: Mutex<Option<ProgressBar>>,
    /// One bar per transfer in progress (pulls run in parallel), on a tty.
    bars: Mutex<HashMap<StepId, ProgressBar>>,
    multi: MultiProgress,
    tty: bool,
}

impl Terminal {
    pub fn new(verbose: bool) -> Terminal {
        let tty = std::io::stderr().is_terminal();
        Terminal { verbose, spinner: Mutex::new(None), bars: Mutex::default(), multi: MultiProgress::new(), tty }
    }

    fn println(&self, line: String) {
        match self.spinner.lock().unwrap().as_ref() {
            Some(bar) => bar.println(line),
            None => errln!("{line}"),
        }
    }

    fn start_spinner(&self, message: String) {
        if !self.tty {
            errln!("{message}");
            return;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(message);
        *self.spinner.lock().unwrap() = Some(bar);
    }

    /// Advances `id`'s transfer bar (made on its first report; none without a tty).
    fn progress(&self, id: StepId, done: u64, total: u64) {
        if !self.tty {
            return;
        }
        let mut bars = self.bars.lock().unwrap();
        let bar = bars.entry(id.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total));
            let style = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}";
            bar.set_style(ProgressStyle::with_template(style).expect("valid template").progress_chars("=> "));
            bar.set_message(format!("{id} pulling"));
            bar
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
            bars.remove(&id);
        }
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
                errln!("{id}: done in {seconds:.1}s");
            }
            Event::Step { id, status: StepStatus::Skipped { reason } } => errln!("{id}: up to date ({reason})"),
            Event::Step { id, status: StepStatus::Failed { error } } => {
                self.stop_spinner();
                errln!("{id}: FAILED: {error}");
            }
            Event::Output { line, .. } => {
                if self.verbose {
                    self.println(format!("  | {line}"));
                }
                if let Some(bar) = self.spinner.lock().unwrap().as_ref() {
                    bar.set_message(line.chars().take(100).collect::<String>());
                }
            }
            Event::Progress { id, done, total } => self.progress(id, done, total),
            Event::Info { message } => self.println(message),
            Event::Warning { message } => self.println(format!("warning: {message}")),
        }
    }
}

/// Rows as lines whose columns fit their contents: every column but the last padded to its widest
/// cell (right-aligned where `right` says so), `gaps[i]` after column `i`, trailing blanks trimmed.
pub fn columns<const N: usize>(rows: &[[String; N]], right: &[bool], gaps: &[&str]) -> Vec<String> {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let line = |r: &[String; N]| {
        let mut s = String::new();
        for c in 0..N - 1 {
            let pad = " ".repeat(widths[c] - r[c].chars().count());
            match right.get(c).copied().unwrap_or(false) {
                true => s += &format!("{pad}{}", r[c]),
                false => s += &format!("{}{pad}", r[c]),
            }
            s += gaps.get(c).copied().unwrap_or("  ");
        }
        s += &r[N - 1];
        s.trim_end().to_string()
    };
    rows.iter().map(line).collect()
}
