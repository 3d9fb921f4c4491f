//! A secret value (token, signing key) that never prints: `Debug` and
//! `Display` show `***`, and it has no `Serialize`, so it cannot leak into
//! logs, errors or JSON by accident. Connectors hold their credentials in it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in time that depends only on the
    /// length of `presented`, so that timing tells a guesser nothing about
    /// how much of a guess was right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = u8::from(expected.len() != presented.len());
        for (i, &p) in presented.iter().enumerate() {
            diff |= p ^ expected.get(i).copied().unwrap_or(!p);
        }
        // Keeps the optimizer from turning the fold into an early exit.
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("hunter2");
        assert!(s.matches(b"hunter2"));
        for wrong in [&b""[..], b"hunter", b"hunter22", b"Hunter2", b"hunter3"] {
            assert!(!s.matches(wrong), "{:?}", String::from_utf8_lossy(wrong));
        }
    }
}
