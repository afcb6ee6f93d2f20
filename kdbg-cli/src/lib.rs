//! The `kdbg` command: parses arguments, calls kdbg-core, renders results; `xtask` reuses it.

use crate::out::errln;
mod args;
mod cache;
mod commands;
mod config;
mod deploy;
mod lease;
mod out;
mod render;
mod session;
mod trace;
mod vscode;
mod watch;
mod worktrees;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Parser;
use kdbg_core::exit::ExitClass;

pub use args::Arguments;

/// Runs kdbg with these arguments (without the program name's special meaning: `args[0]` is it).
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let arguments = match Arguments::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = commands::run(arguments);
    if let Err(e) = &result {
        errln!("error: {}", message(e));
    }
    // A reader that went away (`kdbg status | head -1`) ends kdbg as SIGPIPE ends Unix tools.
    match result {
        _ if out::closed() => ExitCode::from(out::SIGPIPE_STATUS),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(exit_code(&e)),
    }
}

/// The error and its causes, `: `-joined like `{e:#}`, but a cause whose text the message already
/// holds (a `failed to read X: {source}` over that source) is said once, not twice.
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

/// The exit code `--help` documents ([`args::EXIT_CODES`]) for the class kdbg-core gives the error.
fn exit_code(e: &anyhow::Error) -> u8 {
    match ExitClass::of(e.as_ref()) {
        ExitClass::Failure => 1,
        ExitClass::BadUsage => 2,
        ExitClass::BuildFailed => 3,
        ExitClass::NodeFailed => 4,
    }
}
