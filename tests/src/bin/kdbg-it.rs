//! The kdbg CLI, built inside the test package so integration tests can run it as a process.

fn main() -> std::process::ExitCode {
    kdbg_cli::main_with(std::env::args_os())
}
