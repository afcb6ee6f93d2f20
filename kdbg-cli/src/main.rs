//! The `kdbg` binary.

fn main() -> std::process::ExitCode {
    kdbg_cli::main_with(std::env::args_os())
}
