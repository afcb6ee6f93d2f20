//! `kdbg watch` as a child process: its stdout read line by line with bounded waits, its stderr
//! kept for failure messages; killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::Run;

pub struct Watcher {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line so far.
    pub stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn spawn(run: Run) -> Watcher {
        let mut cmd = run.cmd;
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kdbg watch starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watcher { child, lines, stdout: Vec::new(), stderr, stderr_reader: Some(stderr_reader) }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until stderr contains `text`: it is read by another thread.
    #[track_caller]
    pub fn wait_stderr(&self, text: &str, timeout: Duration) -> String {
        let found = kdbg_tests::sys::wait_for(timeout, Duration::from_millis(20), || {
            Some(self.stderr()).filter(|s| s.contains(text))
        });
        found.unwrap_or_else(|| panic!("no {text:?} on stderr within {}s:\n{}", timeout.as_secs(), self.stderr()))
    }

    /// Reads stdout until a line satisfies `pred` and returns it; panics (with both outputs)
    /// after `timeout` or when kdbg exits first.
    #[track_caller]
    pub fn wait_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => {
                    let why = match e {
                        RecvTimeoutError::Timeout => format!("no {what} within {}s", timeout.as_secs()),
                        RecvTimeoutError::Disconnected => format!("kdbg watch exited before {what}"),
                    };
                    panic!("{why}\nstdout:\n{}\nstderr:\n{}", self.stdout.join("\n"), self.stderr());
                }
            }
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits (bounded) for the exit code.
    pub fn interrupt(&mut self, timeout: Duration) -> i32 {
        kdbg_tests::sys::kill(self.child.id(), libc::SIGINT);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain(deadline);
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "kdbg watch did not stop on SIGINT\nstderr:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Watcher {
    /// After kdbg exited: reads what it printed last, until both reader threads reach the end
    /// of their pipes (bounded by `deadline`).
    fn drain(&mut self, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("kdbg watch's stdout stays open after it exited"),
            }
        }
        let ended = kdbg_tests::sys::wait_for(
            deadline.saturating_duration_since(Instant::now()),
            Duration::from_millis(10),
            || self.stderr_reader.as_ref().is_none_or(|r| r.is_finished()).then_some(()),
        );
        assert!(ended.is_some(), "kdbg watch's stderr stays open after it exited");
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
