//! How things read in a message: an I/O error as the operating system's
//! reason in lower case, without the "(os error N)" tail, and a count with
//! its noun. Shared by the command line and the daemon's own log lines;
//! depends on nothing else in the crate.

/// `"no such file or directory"`, `"permission denied"`.
pub fn reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_lowercase(),
        None => text.to_lowercase(),
    }
}

/// "1 order", "2 orders".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn drops_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(super::reason(&e), "no such file or directory");
    }
}
