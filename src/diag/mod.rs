//! Located errors and did-you-mean, shared by the config (`config/`) and the
//! rules file (`rules/`): byte offsets (what the `toml` crate's spans hold)
//! to 1-based lines and character columns (what editors show), the nearest
//! valid word to a typo (`strsim`), and the one TOML syntax error worth
//! showing (`toml_syntax.rs`). Depends on nothing else in the crate.

pub(crate) mod toml_syntax;

/// Byte offsets → (line, column), built once per file.
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

    /// The 1-based line and character column of a byte offset. An offset
    /// inside a multi-byte character (only a parser's bad offset could be)
    /// counts as that character's start; past the end, as the end.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
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

/// The candidate closest to `word`, if it is close enough to be a plausible
/// typo: an edit distance (with transpositions, ignoring case) of at most a
/// third of the candidate's length, or a truncated or extended word ("east"
/// for "east-wh", "taggs" for "tag") of at least three characters.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word = word.to_lowercase();
    let candidates: Vec<&'c str> = candidates.into_iter().collect();
    let close = candidates
        .iter()
        .map(|c| (strsim::osa_distance(&word, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    close.or_else(|| {
        candidates.iter().copied().find(|c| {
            let c = c.to_lowercase();
            let (short, long) = if c.len() < word.len() {
                (c.as_str(), word.as_str())
            } else {
                (word.as_str(), c.as_str())
            };
            short.chars().count() >= 3 && long.starts_with(short)
        })
    })
}

/// `unknown <what> "x" (did you mean "y"?)`, or the list of valid words when
/// nothing is close.
pub(crate) fn unknown_word(what: &str, word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(near) => format!("unknown {what} {word:?} (did you mean {near:?}?)"),
        None => format!(
            "unknown {what} {word:?} (expected one of: {})",
            candidates.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let index = LineIndex::new("a = 1\nbé = \"x\"\n");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(index.position(12), (2, 6));
        // Inside "é", and past the end.
        assert_eq!(index.position(8), (2, 2));
        assert_eq!(index.position(999), (3, 1));
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["country", "currency", "channel"];
        assert_eq!(did_you_mean("contry", keys), Some("country"));
        assert_eq!(did_you_mean("Chanel", keys), Some("channel"));
        assert_eq!(did_you_mean("cuntry", keys), Some("country"));
        assert_eq!(did_you_mean("weight", keys), None);
        assert_eq!(
            did_you_mean("east", ["east-wh", "west-3pl"]),
            Some("east-wh")
        );
        assert_eq!(did_you_mean("taggs", ["tag", "untag"]), Some("tag"));
        assert_eq!(did_you_mean("ea", ["east-wh"]), None);
        let config = ["poll_interval", "base_url", "webhooks"];
        assert_eq!(did_you_mean("pol_interval", config), Some("poll_interval"));
        assert_eq!(did_you_mean("Base_URL", config), Some("base_url"));
        assert_eq!(did_you_mean("colour", config), None);
        assert_eq!(
            unknown_word("priority", "hihg", &["low", "normal", "high"]),
            r#"unknown priority "hihg" (did you mean "high"?)"#
        );
        assert_eq!(
            unknown_word("priority", "urgent", &["low", "high"]),
            r#"unknown priority "urgent" (expected one of: low, high)"#
        );
    }
}
