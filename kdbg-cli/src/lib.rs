//! The `kdbg` command: parses arguments, calls kdbg-core, renders results; `xtask` reuses it.

mod args;
mod commands;
mod render;

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
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    use kdbg_core::build::BuildError;
    if e.downcast_ref::<kdbg_core::component::UnknownComponent>()
        .is_some()
    {
        2
    } else if matches!(
        e.downcast_ref::<BuildError>(),
        Some(BuildError::Make { .. } | BuildError::NoOutput { .. })
    ) {
        3
    } else {
        1
    }
}
