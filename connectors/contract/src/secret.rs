//! A secret value (token, signing key) that never prints: `Debug` and
//! `Display` show `***`, and it has no `Serialize`, so it cannot leak into
//! logs, errors or JSON by accident. Connectors hold their credentials in it.
//! Comparisons take the same time however much of a guess is right.

use std::fmt;

use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in constant time (`subtle`):
    /// timing tells a guesser whether the length was right, never how much
    /// of the value was.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// Equal values, compared as [`Secret::matches`] does (a config re-read
/// tells a rotated secret from the one in force this way).
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for Secret {}

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
        assert_eq!(s, Secret::new("hunter2"));
        assert_ne!(s, Secret::new("hunter3"));
    }
}
