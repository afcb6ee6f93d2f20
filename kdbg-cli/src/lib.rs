//! The `kdbg` command: parses arguments, calls kdbg-core, renders results; `xtask` reuses it.

mod args;
mod commands;
mod config;
mod deploy;
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
    match commands::run(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
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

fn exit_code(e: &anyhow::Error) -> u8 {
    use kdbg_core::build::BuildError;
    use kdbg_core::deploy::DeployError;
    let build_failed = |b: &BuildError| matches!(b, BuildError::Make { .. } | BuildError::NoOutput { .. });
    for cause in e.chain() {
        if cause.downcast_ref::<kdbg_core::component::UnknownComponent>().is_some() {
            return 2;
        }
        if cause.downcast_ref::<BuildError>().is_some_and(build_failed) {
            return 3;
        }
        match cause.downcast_ref::<DeployError>() {
            Some(DeployError::Build(b)) if build_failed(b) => return 3,
            Some(DeployError::Node(_)) => return 4,
            _ => {}
        }
        if cause.downcast_ref::<kdbg_core::node::NodeError>().is_some() {
            return 4;
        }
        let session_node = cause
            .downcast_ref::<kdbg_core::session::debug::DebugError>()
            .and_then(|d| d.node_error())
            .or_else(|| cause.downcast_ref::<kdbg_core::session::SessionError>().and_then(|s| s.node_error()))
            .or_else(|| cause.downcast_ref::<kdbg_core::watch::WatchError>().and_then(|w| w.node_error()));
        if session_node.is_some() {
            return 4;
        }
    }
    1
}
