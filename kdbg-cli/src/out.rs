//! Printing that survives a reader that went away (`kdbg status | head -5`): a write to a closed
//! stdout or stderr is dropped instead of panicking, the command finishes what it was doing (a
//! change to a node is never cut short by a print), and kdbg then exits as Unix tools do on
//! SIGPIPE: status 141, without a word.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// The exit status of a process whose output pipe closed (128 + SIGPIPE).
pub const SIGPIPE_STATUS: u8 = 141;

/// Whether a print found its pipe closed.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

fn write(mut w: impl Write, args: fmt::Arguments<'_>) {
    if let Err(e) = w.write_fmt(args).and_then(|()| w.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

pub fn stdout(args: fmt::Arguments<'_>) {
    write(std::io::stdout().lock(), args);
}

pub fn stderr(args: fmt::Arguments<'_>) {
    write(std::io::stderr().lock(), args);
}

/// `println!` that never panics on a closed stdout.
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that never panics on a closed stdout.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::stdout(format_args!($($t)*)) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    () => { $crate::out::stderr(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {errln, out, outln};
