//! Printing to stdout without panicking when the reader went away (`| head`):
//! the command line's `out!` and `outln!`, imported by path where used.

/// `println!` that does not panic when stdout is closed early (`| head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that does not panic when stdout is closed early.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub(crate) use {out, outln};
