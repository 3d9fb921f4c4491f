//! Config errors: where each one is (file, line, column, or the environment
//! variable it came from), how they print (`FILE:LINE:COLUMN: message`, one per
//! line), and the "did you mean" suggestion for misspelt keys.

use std::fmt;
use std::path::PathBuf;

/// One problem in the config, with its place.
///
/// `line` and `column` are 1-based. They are 0 when the problem has no place
/// in the file: an unreadable file, or a value set in the environment (then
/// `env_var` names the variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The `SWITCHYARD__...` variable the problem comes from, when it comes
    /// from the environment rather than the file.
    pub env_var: Option<String>,
    /// Lowercase, no trailing period; names the offending thing and never
    /// contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env_var {
            Some(var) => write!(f, "environment variable {var}: {}", self.message),
            None if self.line == 0 => write!(f, "{}: {}", self.file.display(), self.message),
            None => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, file errors in file order, then
/// environment errors. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

/// Turns byte offsets (what the `toml` crate's spans hold) into 1-based lines
/// and character columns (what editors show).
pub(crate) struct LineIndex<'s> {
    text: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, line_starts }
    }

    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// The candidate closest to `given`, if it is close enough to be a likely
/// typo; case differences count as no difference.
pub(crate) fn did_you_mean<'c>(
    given: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let given = given.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&given, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, by characters; keys are short so O(n·m) is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let index = LineIndex::new("a = 1\nbé = \"x\"\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(index.line_column(12), (2, 6));
    }

    #[test]
    fn suggests_only_near_misses() {
        let keys = ["poll_interval", "base_url", "webhooks"];
        assert_eq!(did_you_mean("pol_interval", keys), Some("poll_interval"));
        assert_eq!(did_you_mean("Base_URL", keys), Some("base_url"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
