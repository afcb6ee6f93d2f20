//! A reader that went away (`kdbg components | head -1`): kdbg neither panics nor says a word,
//! finishes, and exits 141 as Unix tools do on SIGPIPE.

use std::process::{Command, Stdio};

use crate::support::Tree;

/// Runs `cmd` with its stdout a pipe whose reader is already closed.
fn with_closed_stdout(mut cmd: Command) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd.stdout(Stdio::from(writer)).stderr(Stdio::piped()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_stdout_ends_kdbg_with_status_141_and_no_panic() {
    let mut components = Command::new(env!("CARGO_BIN_EXE_kdbg-it"));
    components.arg("components").stdin(Stdio::null());
    let (code, stderr) = with_closed_stdout(components);
    assert_eq!((code, stderr.as_str()), (141, ""), "kdbg components");

    let tree = Tree::fixture();
    let (code, stderr) = with_closed_stdout(tree.kdbg(["plan", "apiserver", "--debug"]).cmd);
    assert_eq!(code, 141, "kdbg plan: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
