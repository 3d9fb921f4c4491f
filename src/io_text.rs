//! How an I/O error reads in a message: the operating system's reason in
//! lower case, without the "(os error N)" tail. Depends on nothing else in
//! the crate.

/// `"no such file or directory"`, `"permission denied"`.
pub fn reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_lowercase(),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn drops_the_os_error_number() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(super::reason(&e), "no such file or directory");
    }
}
