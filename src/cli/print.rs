//! Printing to stdout without panicking when the reader went away (`| head`):
//! the command line's `out!` and `outln!`, imported by path where used, and
//! `plural` for counts in messages.

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

/// "1 order", "2 orders".
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
