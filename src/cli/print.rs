//! Printing to stdout without panicking when the reader went away (`| head`):
//! the command line's `out!` and `outln!`, imported by path where used, and
//! `plural` for counts in messages (the daemon's, from `io_text`), `table`
//! for listings, `time` for timestamps people read.

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

pub(crate) use crate::io_text::plural;

/// Rows under a header, each column as wide as its widest cell, two spaces
/// apart; trailing spaces trimmed.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: [&str; N]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(header);
    for r in rows {
        push_row(std::array::from_fn(|i| r[i].as_str()));
    }
    out
}

/// A time as people read it in listings: UTC, to the second, with its zone
/// (`2026-11-27 05:01:02 UTC`).
pub(crate) fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
