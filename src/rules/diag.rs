//! Diagnostics for the rules file: `FILE:LINE:COLUMN: message` lines, the byte
//! offset → line/column mapping behind them, and the "did you mean" hints.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// How bad a diagnostic is: errors reject the file, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the rules file, with a 1-based line and column
/// (columns count characters, not bytes). A line of 0 means the finding is
/// about the file as a whole (it could not be read): Display then omits the
/// position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if self.severity == Severity::Warning {
            f.write_str(" warning:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every diagnostic of a rejected rules file, so that callers can use `?`
/// and still print all of them, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct RuleErrors(pub Vec<Diagnostic>);

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Byte offsets → (line, column), built once per file.
pub(crate) struct LineIndex<'s> {
    text: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        // A span may end inside a multi-byte character only if the parser
        // handed us a bad offset; clamp rather than panic.
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// Collects diagnostics for one file.
pub(crate) struct Sink<'s> {
    pub(crate) file: PathBuf,
    pub(crate) index: LineIndex<'s>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: PathBuf, text: &'s str) -> Self {
        Sink {
            file,
            index: LineIndex::new(text),
            diags: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    fn push(&mut self, span: Range<usize>, severity: Severity, message: String) {
        let (line, column) = self.index.position(span.start);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            severity,
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// File order, so that `check` prints findings as one reads the file.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.line, d.column, d.severity));
        self.diags.dedup();
        self.diags
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible
/// typo (optimal string alignment distance, ignoring case).
pub(crate) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let close = candidates
        .iter()
        .map(|c| (osa_distance(&word, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    // A truncated or extended word ("east" for "east-wh", "taggs" for
    // "tag") is far by edit distance but an obvious intent.
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
    match nearest(word, candidates) {
        Some(near) => format!("unknown {what} {word:?} (did you mean {near:?}?)"),
        None => format!(
            "unknown {what} {word:?} (expected one of: {})",
            candidates.join(", ")
        ),
    }
}

fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let idx = LineIndex::new("ab\nçd = 1\n");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(3), (2, 1));
        assert_eq!(idx.position(6), (2, 3));
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["country", "currency", "channel"];
        assert_eq!(nearest("contry", &keys), Some("country"));
        assert_eq!(nearest("Chanel", &keys), Some("channel"));
        assert_eq!(nearest("weight", &keys), None);
        assert_eq!(nearest("east", &["east-wh", "west-3pl"]), Some("east-wh"));
        assert_eq!(nearest("taggs", &["tag", "untag"]), Some("tag"));
        assert_eq!(nearest("ea", &["east-wh"]), None);
    }
}
