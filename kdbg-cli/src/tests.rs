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
        &["debug", "apiserver", "--stop-timeout", "0"],
        &["trace", "apiserver", "request", "--for", "999999999"],
        &["watch", "apiserver", "--debounce", "60001"],
    ] {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains("is not in"), "{args:?}: {err}");
    }
}

#[test]
fn exit_codes_are_the_documented_ones_for_the_class_core_gives() {
    use anyhow::Context;
    use kdbg_core::build::BuildError;
    use kdbg_core::node::NodeError;
    use kdbg_core::session::{debug::DebugError, SessionError};

    let code = super::exit_code;
    assert_eq!(code(&anyhow::anyhow!("inner").context("outer")), 1);
    let unknown = kdbg_core::component::UnknownComponent { name: "etcd".into() };
    assert_eq!(code(&anyhow::Error::new(unknown)), 2);
    let make = BuildError::Make { root: "/k".into(), tail: "boom".into() };
    assert_eq!(code(&anyhow::Error::new(make)), 3);
    let replay = BuildError::Replay { root: "/k".into(), tail: "boom".into() };
    assert_eq!(code(&anyhow::Error::new(replay)), 1);
    let node = NodeError::SudoDenied { node: "n1".into() };
    let debug: Result<(), _> = Err(DebugError::Session(SessionError::Node(node)));
    assert_eq!(code(&debug.context("failed to start debugging on n1").unwrap_err()), 4);
    assert!(
        crate::args::EXIT_CODES.contains("3  the build failed")
            && crate::args::EXIT_CODES.contains("4  the target node")
    );
}

#[test]
fn one_node_named_in_two_spellings_is_refused_before_any_connection() {
    let args =
        ["kdbg", "debug", "apiserver", "--target", "ssh://docker@192.0.2.7", "--target", "ssh://docker@192.0.2.7:22"];
    let crate::args::Command::Debug(debug) = Arguments::try_parse_from(args).unwrap().command else { unreachable!() };
    let err = debug.target.nodes().err().expect("refused").to_string();
    assert!(err.contains("named twice") && err.contains("ssh://docker@192.0.2.7:22"), "{err}");
}

#[test]
fn a_printed_command_line_reads_back_as_the_same_words() {
    let args: Vec<String> =
        ["--target", "ssh://u@h", "--identity", "/keys/my key", "--ssh-option", "it's"].map(String::from).into();
    assert_eq!(
        crate::config::shell_line(&args),
        r#"--target ssh://u@h --identity '/keys/my key' --ssh-option 'it'\''s'"#
    );
}

#[test]
fn a_halted_program_names_kdbg_trace_clear() {
    let hint = crate::session::halted_hint("kube-apiserver", "halted at pkg/healthz/healthz.go:29").unwrap();
    assert!(hint.contains("`kdbg trace apiserver --clear`"), "{hint}");
    assert_eq!(crate::session::halted_hint("kube-apiserver", "running"), None);
}
