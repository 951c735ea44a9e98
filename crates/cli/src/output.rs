//! The command's output on stdout. `println!` panics when stdout is gone;
//! `orch gc | head -1` closes it early, and a command's output must end
//! there quietly, as `head` expects of the tools before it.

use std::io::Write;

/// Write `args` to stdout (`out!`/`outln!`). A reader that went away ends
/// the command at once with success (its output was not wanted); another
/// write error (a full disk behind a redirect) is said on stderr and ends
/// it with status 1.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let _ = writeln!(std::io::stderr(), "orch: writing the output failed: {e}");
        std::process::exit(1);
    }
}

/// A progress line: a reader that went away does not stop the work it
/// reports on (quickstart's pipeline goes on to its end).
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// `print!` for the command's output (see [`write`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}

/// `println!` for the command's output (see [`write`]).
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
