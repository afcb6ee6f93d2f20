//! Unit tests of the CLI's error rendering and argument checks.

use clap::Parser;

use super::{message, Arguments};

#[derive(Debug)]
struct Read(std::io::Error);

impl std::fmt::Display for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to read /x: {}", self.0)
    }
}

impl std::error::Error for Read {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn a_cause_already_in_the_message_is_said_once() {
    let e = anyhow::Error::new(Read(std::io::Error::from_raw_os_error(20))).context("failed to write VSCode entries");
    assert_eq!(message(&e), "failed to write VSCode entries: failed to read /x: Not a directory (os error 20)");
    let e = anyhow::anyhow!("inner").context("outer");
    assert_eq!(message(&e), "outer: inner");
}

#[test]
fn prune_days_beyond_a_century_are_refused_before_anything_runs() {
    let days = |d: &str| Arguments::try_parse_from(["kdbg", "worktrees", "prune", "--older-than", d]);
    assert!(days("36500").is_ok());
    let err = days("18446744073709551615").unwrap_err().to_string();
    assert!(err.contains("--older-than") && err.contains("36500"), "{err}");
}

#[test]
fn waits_beyond_a_day_are_refused_before_anything_runs() {
    let parse = |args: &[&str]| Arguments::try_parse_from([&["kdbg"], args].concat());
    assert!(parse(&["restore", "--timeout", "86400"]).is_ok());
    for args in [
        &["restore", "--timeout", "18446744073709551615"][..],
        &["debug", "apiserver", "--stop-timeout", "86401"],
        &["trace", "apiserver", "request", "--for", "999999999"],
        &["watch", "apiserver", "--debounce", "60001"],
    ] {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains("is not in"), "{args:?}: {err}");
    }
}
